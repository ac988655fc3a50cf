"""The benchmark harness: a tiny crypto run records the right shape; the docs page block swaps.

Speed is never asserted here: only that the numbers exist, are positive and are labelled.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import bench
from bench.__main__ import main
from bench._harness import CpuMeter, MachineMeter
from bench.page import END, START, replace_block, update_page

SUITES = ["x25519", "mlkem768-x25519"]
RECIPIENTS = [1, 3]


@pytest.fixture(scope="module")
def crypto_record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    results = tmp_path_factory.mktemp("results")
    path = bench.run_benchmark(
        bench.load("crypto"),
        results_dir=results,
        quick=True,
        overrides={"suites": SUITES, "recipients": RECIPIENTS},
    )
    assert path == results / "crypto.json"
    assert sorted(p.name for p in results.iterdir()) == ["crypto.json"]  # no .tmp left
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def test_crypto_record_describes_the_run(crypto_record: dict[str, Any]) -> None:
    assert crypto_record["format"] == "hub.bench.result.v1"
    assert crypto_record["benchmark"] == "crypto"
    assert crypto_record["quick"] is True
    machine = crypto_record["machine"]
    assert machine["cpu_count"] >= 1
    assert machine["python"].count(".") == 2
    assert machine["cryptography"]
    assert machine["aiokafka"]
    assert "git_commit" in machine
    assert crypto_record["parameters"]["suites"] == SUITES
    assert crypto_record["parameters"]["recipients"] == RECIPIENTS


def test_crypto_measures_every_case_with_positive_numbers(crypto_record: dict[str, Any]) -> None:
    measured = crypto_record["measurements"]
    seals = {
        (m["suite"], m["recipients"], m["reuse"]): m
        for m in measured
        if m["operation"] == "seal per event"
    }
    assert set(seals) == {(s, n, r) for s in SUITES for n in RECIPIENTS for r in (True, False)}
    opens = {(m["suite"], m["reuse"]): m for m in measured if m["operation"] == "open per delivery"}
    assert set(opens) == {(s, r) for s in SUITES for r in (True, False)}
    raw = {(m["operation"], m["suite"]) for m in measured if m["operation"].startswith("hpke")}
    assert raw == {(op, s) for op in ("hpke seal (raw)", "hpke open (raw)") for s in SUITES}
    ed25519 = {
        f"ed25519 {op} ({lib})"
        for op in ("sign", "verify")
        for lib in ("OpenSSL", "libsodium: the hub's")
    }
    assert ed25519 <= {m["operation"] for m in measured}
    for m in measured:
        assert m["n"] >= 1
        assert 0 < m["min_us"] <= m["median_us"] <= m["p95_us"]
    for (_suite, n, reuse), m in seals.items():
        assert m["median_us_per_recipient"] == pytest.approx(m["median_us"] / n, abs=0.01)
        # without reuse every delivery pays its own HPKE seal; with it, fewer do
        assert (m["hpke_per_delivery"] == 1.0) is (not reuse)
        assert (m.get("speedup_from_reuse", 0) > 0) is reuse
    table = crypto_record["table"]
    assert table["rows"]
    assert all(len(row) == len(table["columns"]) for row in table["rows"])


def _record(name: str, value: float) -> dict[str, Any]:
    return {
        "format": "hub.bench.result.v1",
        "benchmark": name,
        "summary": f"{name} summary.",
        "started_at": "2026-11-23T09:30:00+00:00",
        "duration_s": 1.0,
        "quick": False,
        "machine": {"cpu_count": 2, "python": "3.11.7", "git_commit": "0123456789abcdef"},
        "parameters": {},
        "measurements": [],
        "table": {"columns": ["operation", "median µs"], "rows": [["op|x", value]]},
        "notes": ["a note"],
    }


def test_page_renderer_replaces_only_between_the_markers(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    for name, value in (("zeta", 2.5), ("crypto", 1234.5)):
        (results / f"{name}.json").write_text(json.dumps(_record(name, value)))
    head = "# Title\n\nIntro with `code` and a table:\n\n| a |\n| - |\n\n## Benchmarks\n\n"
    tail = "\n\n## Status and limits\n\nUnchanged text.\n"
    page = tmp_path / "benchmarks.md"
    page.write_text(f"{head}{START}\nold table\n{END}{tail}")

    assert update_page(page, results) is True
    text = page.read_text()
    assert text.startswith(head + START + "\n")
    assert text.endswith(END + tail)
    block = text[len(head) + len(START) : -len(END + tail)]
    assert "old table" not in block
    assert block.index("### crypto") < block.index("### zeta")  # registered ones first
    assert "| operation | median µs |" in block
    assert "| op\\|x | 1,234 |" in block
    assert "- a note" in block
    assert update_page(page, results) is False  # idempotent


@pytest.mark.parametrize(
    "text",
    ["no markers", f"{START} only", f"{END} {START}", f"{START}{END}{START}{END}"],
)
def test_page_renderer_refuses_bad_markers(text: str) -> None:
    with pytest.raises(ValueError, match="marker"):
        replace_block(text, "table")


def test_registry_and_cli_reject_unknown_names() -> None:
    assert "crypto" in bench.names()
    with pytest.raises(KeyError, match="crypto"):
        bench.load("nope")
    with pytest.raises(SystemExit):
        main(["nope", "--no-docs"])
    with pytest.raises(KeyError, match="no parameter"):
        bench.load("crypto").parameters(overrides={"iterations": 1})


def test_cpu_meter_counts_the_work_of_each_group_of_processes() -> None:
    """CPU per unit from /proc: this process's own work shows; an idle child's barely does."""
    waits = "import sys; print('ready', flush=True); sys.stdin.read()"
    with subprocess.Popen(
        [sys.executable, "-c", waits], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as idle:
        assert idle.stdout is not None
        assert idle.stdout.readline() == b"ready\n"  # started: its start-up is not counted
        meter = CpuMeter({"busy": [os.getpid()], "idle": [idle.pid], "gone": [2**22 + 1]})
        meter.start()
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:  # burn 0.3 s of this process's CPU
            hashlib.sha256(b"x" * 4096).digest()
        per = meter.ms_per(10)
        assert idle.stdin is not None
        idle.stdin.close()
    assert per["busy"] >= 30 - 1  # 300 ms over 10 units (clock ticks are 10 ms)
    assert per["idle"] < per["busy"] / 10
    assert per["gone"] == 0.0  # no such process: nothing counted, no error


def test_machine_meter_counts_at_least_this_process_s_work_and_at_most_every_cpu() -> None:
    """Busy CPUs from /proc/stat: 0.3 s of this process's CPU over the wall time shows in it."""
    meter = MachineMeter()
    assert meter.busy_cpus() is None  # not started: nothing to say
    meter.start()
    wall = time.perf_counter()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn 0.3 s of this process's CPU
        hashlib.sha256(b"x" * 4096).digest()
    wall = time.perf_counter() - wall
    cpus = os.cpu_count() or 1
    busy = meter.busy_cpus()
    assert busy is not None
    assert busy >= (0.3 - 0.02) / wall  # our own work at least (clock ticks are 10 ms)
    assert busy <= cpus


def test_soak_memory_by_kind_adds_up_to_the_resident_set() -> None:
    """The soak's breakdown: anonymous growth is what a leak would be; a new buffer shows in it."""
    from bench.hub_e2e import _memory

    before = _memory(os.getpid())
    assert before["rss"] == before["anon"] + before["file"] + before["shmem"]
    assert before["file"] > 0  # the interpreter's own code is mapped from files
    assert before["threads"] >= 1
    held = bytearray(64 * 1024 * 1024)  # 64 MiB, every page touched
    held[::4096] = b"x" * len(held[::4096])
    after = _memory(os.getpid())
    assert after["anon"] - before["anon"] >= 60 * 1024
    del held


def test_soak_trend_reads_each_end_of_the_soak() -> None:
    """A broker that slows as it fills shows as a lower rate and more CPU in the last tenth."""
    from bench.hub_e2e import _soak_trend

    samples = [{"t": 0.0, "events": 0, "cpu_s": 0.0, "broker_cpu_s": 0.0, "broker_rss": 1024}]
    for i in range(1, 21):  # 100 events a slice; each slice 1 s longer, broker 0.1 s dearer
        before = samples[-1]
        samples.append(
            {
                "t": before["t"] + i,
                "events": before["events"] + 100,
                "cpu_s": before["cpu_s"] + 0.2,
                "broker_cpu_s": before["broker_cpu_s"] + 0.1 * i,
                "broker_rss": before["broker_rss"] + 2048,
            }
        )
    trend = _soak_trend(samples)
    assert trend["rate_first_tenth"] == round(200 / 3, 1)  # slices 1 and 2: 200 events in 3 s
    assert trend["rate_last_tenth"] == round(200 / 39, 1)  # slices 19 and 20: 200 in 39 s
    assert trend["worker_cpu_ms_per_event_first_tenth"] == 2.0
    assert trend["worker_cpu_ms_per_event_last_tenth"] == 2.0
    assert trend["broker_cpu_ms_per_event_first_tenth"] == 1.5  # 0.3 s over 200 events
    assert trend["broker_cpu_ms_per_event_last_tenth"] == 19.5  # 3.9 s over 200 events
    assert (trend["broker_rss_first_kib"], trend["broker_rss_last_kib"]) == (1024, 1024 + 20 * 2048)


def test_cli_set_overrides_parameters_and_records_them(tmp_path: Path) -> None:
    """``--set NAME=VALUE`` reaches the run (JSON values) and the result file says so."""
    assert (
        main(
            [
                "crypto",
                "--quick",
                "--no-docs",
                "--results-dir",
                str(tmp_path),
                "--set",
                'suites=["x25519"]',
                "--set",
                "recipients=[2]",
            ]
        )
        == 0
    )
    record = json.loads((tmp_path / "crypto.json").read_text())
    assert record["parameters"]["suites"] == ["x25519"]
    assert record["parameters"]["recipients"] == [2]
    with pytest.raises(SystemExit):
        main(["crypto", "--no-docs", "--set", "iterations=1"])  # no such parameter
    with pytest.raises(SystemExit):
        main(["crypto", "--no-docs", "--set", "suites"])  # no value
