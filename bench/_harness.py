"""The harness: what a benchmark is, how it is timed, and how its result is recorded.

A benchmark is a ``Benchmark`` value: a name, a one-line summary, default parameters, a
``quick`` set (tiny counts, for tests and smoke runs) and a ``run(params)`` function that
returns a ``Measured``. ``run_benchmark`` adds the machine description and writes
``<results dir>/<name>.json`` atomically (a ``.tmp`` file renamed into place, so a crashed
run never leaves half a record). The JSON is the record and is committed; the tables
of docs/benchmarks.md are rendered from it (``bench.page``).

Result file layout (``format`` = ``RESULT_FORMAT``)::

    {"format", "benchmark", "summary", "started_at", "duration_s",
     "machine": {cpu_count, cpu_model, platform, python, cryptography, aiokafka, faust,
                 git_commit, git_dirty},
     "parameters": {...},          # exactly what the run used
     "measurements": [{...}, ...], # one object per measured operation, with its unit
     "table": {"columns": [...], "rows": [[...], ...]},  # the docs view of it
     "notes": [...]}
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RESULT_FORMAT",
    "ROOT",
    "Benchmark",
    "CpuMeter",
    "MachineMeter",
    "Measured",
    "Stats",
    "machine_info",
    "run_benchmark",
    "time_alternating",
    "time_calls",
    "usable_cpus",
]

#: format tag of a result file, bumped on a breaking change to its layout
RESULT_FORMAT = "hub.bench.result.v1"
#: the repository root (bench/ sits at the top level)
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Stats:
    """Summary of per-call timings, in microseconds."""

    n: int
    median_us: float
    p95_us: float
    mean_us: float
    min_us: float

    @classmethod
    def of(cls, samples_ns: list[int]) -> Stats:
        """Median, nearest-rank 95th percentile, mean and minimum of ``samples_ns``."""
        if not samples_ns:
            raise ValueError("stats: expected at least one sample, got none")
        ordered = sorted(samples_ns)
        n = len(ordered)
        mid = n // 2
        median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        p95 = ordered[max(0, math.ceil(0.95 * n) - 1)]
        return cls(
            n=n,
            median_us=median / 1000,
            p95_us=p95 / 1000,
            mean_us=sum(ordered) / n / 1000,
            min_us=ordered[0] / 1000,
        )

    def as_dict(self) -> dict[str, float | int]:
        """Rounded for the record (0.01 µs is below the timer's noise)."""
        return {
            "n": self.n,
            "median_us": round(self.median_us, 2),
            "p95_us": round(self.p95_us, 2),
            "mean_us": round(self.mean_us, 2),
            "min_us": round(self.min_us, 2),
        }


def time_calls(fn: Callable[[], object], *, iterations: int, warmup: int) -> Stats:
    """Time ``iterations`` calls of ``fn`` one by one, after ``warmup`` untimed calls."""
    return time_alternating({"fn": fn}, iterations=iterations, warmup=warmup, rounds=1)["fn"]


def time_alternating(
    fns: Mapping[str, Callable[[], object]], *, iterations: int, warmup: int, rounds: int = 5
) -> dict[str, Stats]:
    """Time ``iterations`` calls of each of ``fns``, alternating between them in ``rounds``.

    Each call is timed on its own with ``time.perf_counter_ns`` so the median and p95 are
    of single operations, not of a batch. Alternating in rounds (A, B, A, B, ...) rather
    than timing A then B means a slow patch on a shared machine lands on both sides of a
    comparison, so their ratio stays honest. Every function gets ``warmup`` untimed calls
    first. The garbage collector is paused while timing (a collection landing in one
    sample is noise, not the cost of the operation) and run before, so each timed section
    starts from the same heap state.
    """
    if iterations < 1:
        raise ValueError(f"iterations: expected at least 1, got {iterations}")
    rounds = max(1, min(rounds, iterations))
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[int]] = {name: [] for name in fns}
    clock = time.perf_counter_ns
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            count = iterations * (r + 1) // rounds - iterations * r // rounds
            for name, fn in fns.items():
                out = samples[name]
                for _ in range(count):
                    start = clock()
                    fn()
                    out.append(clock() - start)
    finally:
        if was_enabled:
            gc.enable()
    return {name: Stats.of(taken) for name, taken in samples.items()}


class CpuMeter:
    """CPU seconds (user plus system, every thread) that groups of processes spend, from /proc.

    Throughput says how fast; CPU time says what each message or event costs, and on a
    shared two-core machine that is the figure that compares a CPU-bound hub with a
    baseline: a worker near one CPU-second per second is CPU-bound, and the broker's share
    comes out of the same cores.
    """

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self._groups = {name: list(pids) for name, pids in groups.items()}
        self._before: dict[str, float] = {}

    @staticmethod
    def seconds(pid: int) -> float:
        """User plus system CPU seconds ``pid`` has used so far (0 once it has gone)."""
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _now(self) -> dict[str, float]:
        return {k: sum(self.seconds(p) for p in pids) for k, pids in self._groups.items()}

    def start(self) -> None:
        """Start counting from now."""
        self._before = self._now()

    def ms_per(self, units: int) -> dict[str, float]:
        """Milliseconds of CPU per unit (message, event) for each group since ``start``."""
        after = self._now()
        return {k: round((after[k] - self._before[k]) * 1000 / units, 3) for k in after}


class MachineMeter:
    """How many of the machine's CPUs were busy over a stretch, from ``/proc/stat``.

    Why: on a two-core machine a second worker can only go as fast as the CPU the first one
    leaves. The share of the machine busy during a run (every process, the benchmark's and
    anything else's) says whether a run was bound by the machine or by one process.
    """

    def __init__(self) -> None:
        self._before: tuple[int, int] | None = None

    @staticmethod
    def ticks() -> tuple[int, int]:
        """(all ticks, idle ticks: idle plus iowait) since boot, over every CPU."""
        try:
            with open("/proc/stat", encoding="ascii") as stat:
                values = [int(v) for v in stat.readline().split()[1:]]
        except (OSError, ValueError):
            return 0, 0
        return sum(values), values[3] + values[4]

    def start(self) -> None:
        """Start counting from now."""
        self._before = self.ticks()

    def busy_cpus(self) -> float | None:
        """CPUs busy on average since ``start``; None without ``/proc/stat``.

        Of every CPU the machine has (``os.cpu_count``), which ``/proc/stat``'s first line
        sums over, whatever this process's affinity.
        """
        cpus = os.cpu_count() or 1
        if self._before is None:
            return None
        total, idle = self.ticks()
        spent = total - self._before[0]
        if spent <= 0:
            return None
        return round(cpus * (spent - (idle - self._before[1])) / spent, 2)


@dataclass
class Measured:
    """What a benchmark's ``run`` returns: its numbers and the docs view of them."""

    measurements: list[dict[str, Any]]
    columns: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Benchmark:
    """One named benchmark: ``run(params)`` with ``defaults`` overridden by the caller."""

    name: str
    summary: str
    run: Callable[[Mapping[str, Any]], Measured]
    defaults: Mapping[str, Any]
    quick: Mapping[str, Any] = field(default_factory=dict)

    def parameters(
        self, *, quick: bool = False, overrides: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Defaults, then the quick set (if asked), then explicit overrides."""
        params = dict(self.defaults)
        if quick:
            params.update(self.quick)
        for key, value in (overrides or {}).items():
            if key not in params:
                raise KeyError(f"benchmark {self.name}: no parameter {key!r}; has {sorted(params)}")
            params[key] = value
        return params


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - git by absolute path, fixed arguments
            [git, *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), else every CPU the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 0


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured: CPUs, Python, library versions, git commit."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cryptography": _version("cryptography"),
        "aiokafka": _version("aiokafka"),
        "faust": _version("faust-streaming"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
    }


def run_benchmark(
    benchmark: Benchmark,
    *,
    results_dir: Path,
    quick: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> Path:
    """Run ``benchmark`` and write its result file; returns the file's path."""
    params = benchmark.parameters(quick=quick, overrides=overrides)
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    measured = benchmark.run(params)
    duration = time.perf_counter() - t0
    record = {
        "format": RESULT_FORMAT,
        "benchmark": benchmark.name,
        "summary": benchmark.summary,
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(duration, 2),
        "quick": quick,
        "machine": machine_info(),
        "parameters": params,
        "measurements": measured.measurements,
        "table": {"columns": measured.columns, "rows": measured.rows},
        "notes": measured.notes,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    final = results_dir / f"{benchmark.name}.json"
    tmp = results_dir / f"{benchmark.name}.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, final)
    return final
