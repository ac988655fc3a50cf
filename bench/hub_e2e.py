"""The whole hub end to end on the embedded broker, beside its design floor (issue 16).

Traffic is the reference protocol's seeded scenario (``hub.scenarios.north_worcs``: MARAC,
SOCJAG, Pub Watch; about 4 recipients an event), sealed and signed by each publisher before
the clock starts (the publishers' cost is theirs, not the hub's). Encryption and audit are
on, as in production. Each hub runs on a fresh embedded broker. In one run:

- **throughput**, in ``rounds``: ``events`` records produced as fast as the broker takes
  them; the clock stops when every event has its audit records in the store *and* every
  delivery the audit names has been read back from the recipients' topics. Each round runs
  the hub with each of ``workers`` (1 and 2) worker processes; the medians over the rounds
  are reported, and the scaling (two workers over one).
- **CPU per event** of every process the ``Supervisor`` reports (its workers, its audit sink
  when that is a process of its own, its webhook dispatcher) and of the broker, over the
  timed part; their sum is the **whole-hub CPU per event** (the bench process, which
  produces and reads back, is recorded apart).
- **the design floor** (``bench.floor``, variant (a): the same contract's crypto fan-out in
  a standalone faust agent): run before every round and once after the last, so each hub
  round sits between two floor runs on the same machine at nearly the same time ("measured
  in the same run"). The hub's one-worker throughput is reported as a ratio to floor (a)
  and its whole-hub CPU per event as a multiple of the floor's (worker plus broker), each
  the median over the rounds of the ratio to the two floors around it. Without
  ``bench.floor`` (or with ``floor`` off), floor (a) is read from ``floor_results``, and a
  note says which file and commit it came from; without either, the ratios are skipped.
- **latency**: events offered at each of ``rates`` per second (500 and 1,000) for
  ``latency_s`` seconds; for every delivery, the time from its event being produced to the
  delivery being read (p50/p95/p99).
- **baselines**: ``bench.passthrough`` (raw aiokafka, bare faust) in the same run.

``profile`` (off by default in quick runs): the one-worker throughput run is repeated with
the worker under pyinstrument (``HUB_PROFILE_FILE``, honoured by ``hub.agents.worker``) and
the top costs by own time are recorded; the profiled rate is reported apart (sampling slows
the worker). With ``soak_s`` a worker is fed at ``soak_rate`` for that long and its memory
sampled every slice; its RSS growth from the first tenth to the last is reported in MiB
(issue 16: under 8 MiB over 30 minutes, "at a rate the embedded broker holds for the whole
run"). The default, 20 events/s, is one Tansu's memory store has held for 30 minutes in
every soak recorded (``bench/results/adhoc/hub-soak-20-*.json``); half the one-worker
throughput (``soak_rate`` null), about 300/s, it held for the first minutes only (b933a5c's
run: 116/s reached in the last tenth, the broker at 5 GiB), which makes it a soak of the
broker's slowing rather than of the worker's memory.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import passthrough
from bench._harness import ROOT, Benchmark, CpuMeter, MachineMeter, Measured, usable_cpus
from bench.latency_floor import forwarder
from hub.agents.heap import freeze_heap
from hub.agents.supervisor import Supervisor
from hub.broker import EmbeddedBroker
from hub.broker import topics as hub_topics
from hub.broker.embedded import free_port
from hub.broker.fetch import FETCH_WAIT_MS
from hub.broker.topics import all_topics, ensure_topics
from hub.client import HubClient
from hub.envelope import wire
from hub.keys.file_store import FileKeyStore
from hub.scenarios.north_worcs import Scenario
from hub.settings import HubSettings

__all__ = ["BENCHMARK", "run"]

COLUMNS = ["measurement", "workers", "events", "value", "unit", "ratio to bare faust batched"]
#: the process groups whose CPU is the hub's (issue 16's "whole hub"): all but the bench's own
HUB_GROUPS = ("workers", "sink", "webhooks", "broker")
#: the key of a throughput record's whole-hub CPU per event (ms), the sum of ``HUB_GROUPS``
_WHOLE = "whole_hub_cpu_ms_per_event"


def _seal(settings: HubSettings, protocol: Any, count: int, seed: int) -> list[wire.WireMessage]:
    keys = FileKeyStore(settings.keys_dir)
    clients: dict[str, HubClient] = {}
    out = []
    for item in Scenario(seed=seed).events(count):
        client = clients.setdefault(
            item.publisher,
            HubClient(item.publisher, bootstrap="unused:0", keys=keys, crypto=protocol.crypto),
        )
        out.append(client.build(item.event_type, item.data, key=item.key, subject=item.subject))
    return out


def _event_id(message: wire.WireMessage) -> str:
    return next(v for k, v in message.headers if k == "ce_id").decode()


class _AuditProgress:
    """Events of ``ids`` decided and deliveries audited for them, read from the store.

    Each poll reads only the rows after the last one seen (``seq`` grows with commit order),
    so polling every 50 ms costs the bench process next to nothing, not a rescan of the
    whole table that would take CPU from the hub it is measuring.
    """

    def __init__(self, db: Path, ids: set[str]) -> None:
        self.db, self.ids = db, ids
        self.last = 0
        self.decided: set[str] = set()
        self.delivered = 0

    def poll(self) -> tuple[int, int]:
        """(decided, delivered) so far."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute(
                "SELECT seq, event_id, decision FROM audit_records WHERE seq > ? ORDER BY seq",
                (self.last,),
            ).fetchall()
        finally:
            conn.close()
        for seq, event_id, decision in rows:
            self.last = seq
            if event_id in self.ids:
                self.decided.add(event_id)
                self.delivered += decision == "delivered"
        return len(self.decided), self.delivered


async def _drive(
    bootstrap: str,
    db: Path,
    messages: list[wire.WireMessage],
    parties: tuple[str, ...],
    *,
    rate: float | None,
    within: float,
    watch: Callable[[set[str]], Any] | None = None,
) -> dict[str, Any]:
    """Produce ``messages`` (at ``rate``/s, or flat out) and read every delivery back.

    ``watch``: what tells, from the audit store, how many events are decided and how many
    deliveries audited (``poll``); the SQLite store at ``db`` when not given
    (``bench.scale_out`` watches a PostgreSQL one).
    """
    ids = {_event_id(m) for m in messages}
    reader = AIOKafkaConsumer(
        *[hub_topics.outbound(p) for p in parties],
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=FETCH_WAIT_MS,  # as the hub's consumers (``hub.broker.fetch``)
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=2, max_batch_size=1024 * 1024
    )
    await reader.start()
    await producer.start()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    delivered = 0
    stop = asyncio.Event()

    async def read() -> None:
        nonlocal delivered
        while not stop.is_set():
            batches = await reader.getmany(timeout_ms=100, max_records=5000)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    event_id = next((v for k, v in record.headers if k == "ce_id"), b"").decode()
                    if event_id in sent_at:
                        delivered += 1
                        latencies.append(now - sent_at[event_id])

    try:
        # make sure the reader sits at the end of every topic before anything is sent
        while not reader.assignment():  # noqa: ASYNC110 - aiokafka offers no event for it
            await asyncio.sleep(0.05)
        for tp in reader.assignment():
            await reader.position(tp)
        task = asyncio.create_task(read())
        # the load generator's own heap (every sealed message) out of its collector's way,
        # as the hub's processes do (hub.agents.heap): its full collections took seconds of
        # CPU from the two cores the hub is measured on
        freeze_heap()
        t0 = time.perf_counter()
        for i, m in enumerate(messages):
            if rate is not None:
                due = t0 + i / rate
                if (lag := due - time.perf_counter()) > 0:
                    await asyncio.sleep(lag)
            sent_at[_event_id(m)] = time.perf_counter()
            await producer.send(m.topic, key=m.key, value=m.value, headers=m.headers)
        await producer.flush()
        produced = time.perf_counter() - t0
        deadline = time.monotonic() + within
        progress = _AuditProgress(db, ids) if watch is None else watch(ids)
        while True:
            decided, audited = await asyncio.to_thread(progress.poll)
            if decided == len(ids) and delivered >= audited:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{decided}/{len(ids)} decided, {delivered}/{audited} read")
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - t0
        stop.set()
        await task
    finally:
        gc.unfreeze()
        await producer.stop()
        await reader.stop()
    return {
        "events": len(messages),
        "deliveries": delivered,
        "elapsed_s": elapsed,
        "produce_s": produced,
        "latencies": sorted(latencies),
    }


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else 0.0


def _peak_rss_kib(pid: int) -> int:
    """Peak RSS of a process in KiB, from /proc (its current RSS is in ``_memory``)."""
    return int(_status(pid)["VmHWM"].split()[0])


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def _memory(pid: int) -> dict[str, int]:
    """Resident memory of a process by kind (KiB), and its thread count, from /proc.

    Anonymous is the heap, Python's arenas and thread stacks: where a leak shows. File is
    mapped files: code and libraries, resident as their pages are first used, and SQLite's
    WAL index (its -shm files). Shmem is shared anonymous memory.
    """
    fields = _status(pid)
    kib = {k: int(fields[f"Rss{k.capitalize()}"].split()[0]) for k in ("anon", "file", "shmem")}
    return {"rss": int(fields["VmRSS"].split()[0]), **kib, "threads": int(fields["Threads"])}


class _Hub:
    """One hub (supervisor, workers) on the bench broker, in a throwaway data dir."""

    def __init__(self, *, workers: int, profile: Path | None, metrics: bool = False) -> None:
        # its own broker: a hub started after another on one broker waits out the old
        # consumer group members (Tansu holds JoinGroup for the rebalance timeout)
        self.broker = EmbeddedBroker()
        bootstrap = self.broker.start()
        self.bootstrap = bootstrap
        self.dir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
        if profile is not None:
            os.environ["HUB_PROFILE_FILE"] = str(profile)
        self.settings = HubSettings(
            data_dir=self.dir / "data",
            kafka_bootstrap=bootstrap,
            workers=workers,
            workflow_interval=0,
            log_level="WARNING",
            # the soak reads the worker's SQLite memory from its /metrics
            metrics_port=free_port() if metrics else 0,
        )
        self.supervisor = Supervisor(self.settings)

    def __enter__(self) -> _Hub:
        try:
            self.supervisor.start()
        except BaseException:
            self.__exit__()  # a worker that failed to start must not leave the rest running
            raise
        finally:
            os.environ.pop("HUB_PROFILE_FILE", None)
        return self

    def drive(
        self, messages: list[wire.WireMessage], *, rate: float | None, within: float
    ) -> dict[str, Any]:
        """Publish ``messages`` to this hub and wait until they are audited and delivered."""
        return asyncio.run(
            _drive(
                self.bootstrap,
                self.settings.audit_db_path,
                messages,
                self.supervisor.protocol.party_ids,
                rate=rate,
                within=within,
            )
        )

    def __exit__(self, *_exc: object) -> None:
        self.supervisor.stop()
        self.broker.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pids(found: Any) -> list[int]:
    """The pids in ``found``: a process (anything with ``pid``), a pid, or a list or mapping."""
    if found is None:
        return []
    if isinstance(found, Mapping):
        found = list(found.values())
    if isinstance(found, list | tuple | set | frozenset):
        return [pid for item in found for pid in _pids(item)]
    pid = getattr(found, "pid", found)
    return [pid] if isinstance(pid, int) and not isinstance(pid, bool) else []


def _process_groups(supervisor: Any, broker_pid: int) -> dict[str, list[int]]:
    """Every process the supervisor reports, by role, with the broker's and this process's.

    The audit sink is read with ``getattr`` as ``sink`` (one process) or ``sinks`` (several):
    with the sink a task inside each worker there is none, and its work is the workers'.
    """
    sinks = _pids(getattr(supervisor, "sink", None)) + _pids(getattr(supervisor, "sinks", None))
    return {
        "workers": _pids(getattr(supervisor, "workers", None)),
        "sink": list(dict.fromkeys(sinks)),  # once, if both attributes name one process
        "webhooks": _pids(getattr(supervisor, "webhooks", None)),
        "broker": [broker_pid],
        "bench": [os.getpid()],
    }


def _whole_hub(cpu: Mapping[str, float]) -> float:
    """Whole-hub CPU per event: workers + audit sink + webhook dispatcher + broker."""
    return round(sum(float(cpu.get(group, 0.0)) for group in HUB_GROUPS), 3)


def _throughput(params: Mapping[str, Any], workers: int, profile: Path | None) -> dict[str, Any]:
    """One flat-out run; also the CPU each process spent on it, per event.

    The CPU figures say where the machine's time went: a worker near one CPU-second per
    second is CPU-bound, and the broker's and this process's shares are taken from the same
    two cores. ``cpu_ms_per_event`` has a key per group of ``_process_groups`` (and nothing
    else: ``bench.floor`` sums every key but ``bench`` as the hub's);
    ``whole_hub_cpu_ms_per_event`` is their sum less the bench process; ``processes`` says
    how many processes each group had.
    """
    with _Hub(workers=workers, profile=profile) as hub:
        protocol = hub.supervisor.protocol
        warm = _seal(hub.settings, protocol, 20, seed=99)
        hub.drive(warm, rate=None, within=float(params["timeout_s"]))
        messages = _seal(hub.settings, protocol, int(params["events"]), seed=int(params["seed"]))
        groups = _process_groups(hub.supervisor, hub.broker.pid or 0)
        meter, machine = CpuMeter(groups), MachineMeter()
        meter.start()
        machine.start()
        result = hub.drive(messages, rate=None, within=float(params["timeout_s"]))
        cpu = meter.ms_per(len(messages))
        result["machine_busy_cpus"] = machine.busy_cpus()
        result["cpu_ms_per_event"] = cpu
        result["whole_hub_cpu_ms_per_event"] = _whole_hub(cpu)
        result["processes"] = {name: len(pids) for name, pids in groups.items()}
        if profile is not None:
            hub.supervisor.stop()  # the worker writes its profile as it exits
        return result


def _latency(
    params: Mapping[str, Any], rate: float
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The hub's latency at ``rate``, and the broker's floor with the same messages."""
    with _Hub(workers=1, profile=None) as hub:
        protocol = hub.supervisor.protocol
        count = int(rate * float(params["latency_s"]))
        messages = _seal(hub.settings, protocol, count, seed=int(params["seed"]) + 1)
        got = hub.drive(messages, rate=rate, within=float(params["timeout_s"]))
        partitions = hub.settings.partitions
    floor = None
    if params["latency_floor"]:
        floor = _latency_floor(
            messages, protocol.party_ids, rate=rate, partitions=partitions, params=params
        )
    return got, floor


def _latency_floor(
    messages: list[wire.WireMessage],
    parties: tuple[str, ...],
    *,
    rate: float,
    partitions: int,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """The same messages at the same rate through ``bench.latency_floor``'s forwarder."""
    fanout = int(params["latency_floor_fanout"])
    with EmbeddedBroker() as broker:
        asyncio.run(ensure_topics(broker.bootstrap, all_topics(parties), partitions=partitions))
        with forwarder(broker.bootstrap, fanout=fanout, partitions=partitions, parties=parties):

            def sent(ids: set[str]) -> Any:
                return _Fixed(len(ids), len(ids) * fanout)

            return asyncio.run(
                _drive(
                    broker.bootstrap,
                    Path(os.devnull),
                    messages,
                    parties,
                    rate=rate,
                    within=float(params["timeout_s"]),
                    watch=sent,
                )
            )


class _Fixed:
    """A progress ``watch`` that knows the count in advance: every event, ``copies`` reads."""

    def __init__(self, events: int, copies: int) -> None:
        self._counts = (events, copies)

    def poll(self) -> tuple[int, int]:
        return self._counts


def _sqlite_kib(port: int | None) -> int | None:
    """The worker's ``hub_sqlite_memory_bytes`` in KiB (``hub.state.sqlite_memory``), or None."""
    if port is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("hub_sqlite_memory_bytes "):
            return int(float(line.split()[1])) // 1024
    return None


def _soak(params: Mapping[str, Any], rate: float) -> dict[str, Any]:
    """Feed one worker at ``rate`` for ``soak_s`` seconds in slices; sample its memory."""
    with _Hub(workers=1, profile=None, metrics=True) as hub:
        protocol = hub.supervisor.protocol
        pid = hub.supervisor.workers[0].pid
        port = hub.supervisor.metrics_port(pid)
        per_slice = max(1, int(rate * float(params["soak_slice_s"])))
        samples: list[dict[str, Any]] = []
        t0 = time.monotonic()
        seed = 1000
        events = 0
        broker = hub.broker.pid or 0

        def sample() -> None:
            samples.append(
                {
                    "t": round(time.monotonic() - t0, 1),
                    "events": events,
                    **_memory(pid),
                    "cpu_s": CpuMeter.seconds(pid),
                    "broker_rss": _memory(broker)["rss"],
                    "broker_cpu_s": CpuMeter.seconds(broker),
                    "sqlite_kib": _sqlite_kib(port),
                }
            )

        sample()  # before the first event: where the warm-up starts from
        while time.monotonic() - t0 < float(params["soak_s"]):
            seed += 1
            messages = _seal(hub.settings, protocol, per_slice, seed=seed)
            hub.drive(messages, rate=rate, within=float(params["timeout_s"]))
            events += len(messages)
            sample()
        peak = _peak_rss_kib(pid)
    tenth = max(1, len(samples) // 10)
    half = samples[len(samples) // 2]
    last = samples[-1]

    def per_event(kind: str) -> float:
        """Bytes a kind of memory grew per event over the second half (warm-up is over)."""
        return float(
            round((last[kind] - half[kind]) * 1024 / max(1, last["events"] - half["events"]), 1)
        )

    return {
        "rate": rate,
        "duration_s": round(time.monotonic() - t0, 1),
        "samples": len(samples),
        "events": events,
        "rss_first_tenth_kib": max(x["rss"] for x in samples[:tenth]),
        "rss_middle_kib": half["rss"],
        "rss_last_tenth_kib": max(x["rss"] for x in samples[-tenth:]),
        # issue 16's soak figure: what the worker's RSS grew by, first tenth to last tenth
        "rss_growth_kib": max(x["rss"] for x in samples[-tenth:])
        - max(x["rss"] for x in samples[:tenth]),
        "anon_first_tenth_kib": max(x["anon"] for x in samples[:tenth]),
        "anon_last_tenth_kib": max(x["anon"] for x in samples[-tenth:]),
        # of which SQLite's page caches (None where the worker could not say)
        "sqlite_first_tenth_kib": _most(samples[:tenth], "sqlite_kib"),
        "sqlite_last_tenth_kib": _most(samples[-tenth:], "sqlite_kib"),
        "threads_first": samples[0]["threads"],
        "threads_last": last["threads"],
        "peak_rss_kib": peak,
        **_soak_trend(samples),
        "bytes_per_event_second_half": {k: per_event(k) for k in ("rss", "anon", "file", "shmem")},
        # the whole curve, by kind: warm-up growth (caches filling to their bounds) levels
        # off; a leak keeps climbing through the second half
        "memory_series": samples,
    }


def _most(samples: list[dict[str, Any]], kind: str) -> int | None:
    """The largest of a kind of sample, or None when no sample has it."""
    known = [x[kind] for x in samples if x.get(kind) is not None]
    return max(known) if known else None


def _soak_trend(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The rate each end of the soak reached, and what the broker spent per event and held.

    The offered rate is a ceiling, not what the worker got: Tansu's memory engine keeps
    every record and lists all of a partition's stored batches on each fetch, so its CPU per
    event climbs as the soak goes on and the rate reached falls. The first and last tenths
    say how far, so a soak on the embedded broker is read for what it measured. ``samples``
    starts with one taken before the first event.
    """
    tenth = max(1, (len(samples) - 1) // 10)

    def window(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        events = max(1, after["events"] - before["events"])
        seconds = after["t"] - before["t"]
        return {
            "rate": round(events / seconds, 1) if seconds > 0 else 0.0,
            "worker": round((after["cpu_s"] - before["cpu_s"]) * 1000 / events, 2),
            "broker": round((after["broker_cpu_s"] - before["broker_cpu_s"]) * 1000 / events, 2),
        }

    first = window(samples[0], samples[tenth])
    last = window(samples[-1 - tenth], samples[-1])
    return {
        "rate_first_tenth": first["rate"],
        "rate_last_tenth": last["rate"],
        "worker_cpu_ms_per_event_first_tenth": first["worker"],
        "worker_cpu_ms_per_event_last_tenth": last["worker"],
        "broker_cpu_ms_per_event_first_tenth": first["broker"],
        "broker_cpu_ms_per_event_last_tenth": last["broker"],
        "broker_rss_first_kib": samples[0]["broker_rss"],
        "broker_rss_last_kib": samples[-1]["broker_rss"],
    }


def _top_costs(profile: Path, top: int) -> list[dict[str, Any]]:
    """Functions by own (self) time in a pyinstrument session, idle waiting kept apart.

    Own time is a frame's time less its children's; pyinstrument's synthetic ``[self]``
    frames are skipped (their time is already the parent's own). Time blocked in the event
    loop's ``select``/``epoll`` is reported as one ``idle`` row, not as a cost.
    """
    from pyinstrument.session import Session

    session = Session.load(str(profile))
    own: dict[str, float] = {}
    total = session.duration or 1.0

    def walk(frame: Any) -> None:
        if frame.is_synthetic:
            return
        children = [c for c in frame.children if not c.is_synthetic]
        mine = frame.time - sum(c.time for c in children)
        if frame.function in _IDLE:
            key = "idle (event loop waiting for I/O)"
        else:
            key = f"{frame.function} ({Path(frame.file_path or '?').name}:{frame.line_no})"
        own[key] = own.get(key, 0.0) + mine
        for child in children:
            walk(child)

    root = session.root_frame()
    if root is not None:
        walk(root)
    ranked = sorted(own.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return [{"function": k, "self_s": round(v, 3), "share": round(v / total, 4)} for k, v in ranked]


#: where a profiled event loop waits rather than works
_IDLE = frozenset({"epoll.poll", "poll", "select", "EpollSelector.select"})


# -- the design floor ------------------------------------------------------------------------


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _floor_variant(measurements: Any, variant: str) -> dict[str, Any] | None:
    """Floor ``variant`` ("a": with crypto, "b": without) from a floor record's measurements.

    ``bench/floor.py`` is another module whose record may change shape, so this reads it
    defensively: the first measurement whose ``variant`` names the one asked for ("crypto",
    "with crypto", "a"; "plain", "without crypto", "b") and has a positive ``events_per_s``.
    Its CPU per event is its worker's plus its broker's (``None`` when it has neither).
    """
    if not isinstance(measurements, list):
        return None
    for m in measurements:
        if not isinstance(m, Mapping):
            continue
        name = str(m.get("variant", "")).lower().strip("() ")
        without = name in {"b", "plain"} or "without" in name or "no crypto" in name
        crypto = not without and (name == "a" or "crypto" in name)
        rate = m.get("events_per_s")
        if not (crypto if variant == "a" else without) or not _number(rate) or rate <= 0:
            continue
        cpu = m.get("cpu_ms_per_event")
        parts = (
            {k: float(v) for k, v in cpu.items() if k in ("worker", "broker") and _number(v)}
            if isinstance(cpu, Mapping)
            else {}
        )
        return {
            "variant": variant,
            "events": m.get("events"),
            "events_per_s": float(rate),
            "cpu_ms_per_event": parts,
            "cpu_ms": round(sum(parts.values()), 3) if parts else None,
        }
    return None


def _floor_from_file(path: Path) -> tuple[dict[str, Any] | None, str]:
    """Floor (a) from a recorded ``bench floor`` result, and where it came from (or why not)."""
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"no floor record at {shown}"
    except (OSError, ValueError) as exc:
        return None, f"{shown} unreadable ({exc})"
    if not isinstance(record, dict):
        return None, f"{shown}: expected a bench result record"
    found = _floor_variant(record.get("measurements"), "a")
    if found is None:
        return None, f"{shown} has no floor (a) measurement with events/s"
    machine = record.get("machine")
    if not isinstance(machine, dict):
        machine = {}
    commit = str(machine.get("git_commit") or "unknown")[:10]
    if machine.get("git_dirty"):
        commit += " with uncommitted changes"
    quick = ", a quick run" if record.get("quick") else ""
    return found, (
        f"floor (a) read from {shown} (bench floor started {record.get('started_at', '?')}, "
        f"commit {commit}{quick}): not measured in this run"
    )


class _Floor:
    """Floor (a) measured in this run, by ``bench.floor``'s own ``run``, when it can be.

    ``bench/floor.py`` may be missing or mid-change: what went wrong is kept in ``problems``
    for the notes, and the hub's run goes on without it. After a failed floor run the later
    ones are skipped (a broken floor would cost its timeout every round).
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.events = int(params["floor_events"])
        #: each floor run in this run: the hub round it preceded, its (a) and (b)
        self.runs: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.benchmark: Benchmark | None = None
        if not params["floor"]:
            self.problems.append("floor off in this run's parameters")
            return
        try:
            module = importlib.import_module("bench.floor")
        except ImportError as exc:
            self.problems.append(f"bench.floor not importable ({exc})")
            return
        benchmark = getattr(module, "BENCHMARK", None)
        if not isinstance(benchmark, Benchmark):
            self.problems.append("bench.floor has no BENCHMARK to run")
            return
        self.benchmark = benchmark

    def measure(self, before_round: int) -> None:
        """Run the floor once, before hub round ``before_round`` (or after the last)."""
        if self.benchmark is None:
            return
        wanted = {"events": self.events}
        overrides = {k: v for k, v in wanted.items() if k in self.benchmark.defaults}
        try:
            measured = self.benchmark.run(self.benchmark.parameters(overrides=overrides))
            a = _floor_variant(measured.measurements, "a")
            if a is None:
                raise ValueError("no (a) measurement with events/s in its result")
        except Exception as exc:  # another module's failure must not lose the hub's figures
            self.problems.append(
                f"the floor run before round {before_round} failed ({type(exc).__name__}: "
                f"{exc}); later floor runs skipped"
            )
            self.benchmark = None
            return
        b = _floor_variant(measured.measurements, "b")
        self.runs.append({"round": before_round, "a": a, "b": b})


def _floor_ratios(
    hub_rounds: Sequence[Mapping[str, Any]], floors: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Each one-worker hub round against the floor (a) runs on either side of it.

    ``hub_rounds``: ``{"round", "events_per_s", "whole_hub"}``. ``floors``: ``{"round", "a"}``
    where a floor of round ``r`` ran just before hub round ``r`` (the last, after the last
    round), and round ``None`` (a recorded floor) stands beside every round. A round's floor
    is the mean of the floors around it, so a machine that slows through the run moves both
    sides of the ratio.
    """
    out = []
    for hub in hub_rounds:
        r = hub["round"]
        around = [f["a"] for f in floors if f["round"] is None or f["round"] in (r, r + 1)]
        if not around:
            continue
        rate = statistics.fmean(a["events_per_s"] for a in around)
        cpus = [a["cpu_ms"] for a in around if a.get("cpu_ms")]
        cpu = statistics.fmean(cpus) if cpus else None
        out.append(
            {
                "round": r,
                "floor_events_per_s": round(rate, 1),
                "floor_cpu_ms_per_event": round(cpu, 3) if cpu else None,
                "hub_events_per_s": hub["events_per_s"],
                "hub_whole_cpu_ms_per_event": hub["whole_hub"],
                "throughput_ratio": round(hub["events_per_s"] / rate, 3),
                "cpu_multiple": round(hub["whole_hub"] / cpu, 2) if cpu else None,
            }
        )
    return out


# -- the run and its table -------------------------------------------------------------------


def _baselines(params: Mapping[str, Any]) -> tuple[dict[str, float], list[Any], list[Any]]:
    """``bench.passthrough`` in this run: rates by variant, measurements, table rows."""
    base = passthrough.run(
        {**passthrough.BENCHMARK.defaults, "messages": int(params["baseline_messages"])}
    )
    rates = {m["variant"]: float(m["msgs_per_s"]) for m in base.measurements}
    faust_rate = rates["faust batched"]
    measurements: list[dict[str, Any]] = [dict(m, operation="baseline") for m in base.measurements]
    rows: list[list[Any]] = [
        [f"baseline: {v}", "-", int(params["baseline_messages"]), r, "msg/s", r / faust_rate]
        for v, r in rates.items()
    ]
    for m in base.measurements:  # what one message costs the baseline, to set beside the hub
        cpu = m["cpu_ms_per_msg"]
        rows.append(
            [
                f"baseline CPU per message: {m['variant']} (broker: {cpu['broker']:.3f} ms)",
                "-",
                int(params["baseline_messages"]),
                cpu["worker"],
                "ms",
                None,
            ]
        )
    return rates, measurements, rows


def _throughput_record(
    got: Mapping[str, Any], *, workers: int, round_: int | None, baselines: Mapping[str, float]
) -> dict[str, Any]:
    """The measurement for one throughput run (``round_`` None: the profiled run)."""
    rate = got["events"] / got["elapsed_s"]
    return {
        "operation": "hub throughput",
        "workers": workers,
        "round": round_,
        "events": got["events"],
        "deliveries": got["deliveries"],
        "elapsed_s": round(got["elapsed_s"], 3),
        "events_per_s": round(rate, 1),
        "deliveries_per_s": round(got["deliveries"] / got["elapsed_s"], 1),
        "ratio_to_faust_batched": round(rate / baselines["faust batched"], 3),
        "ratio_to_raw_aiokafka": round(rate / baselines["raw aiokafka"], 4),
        "profiled": round_ is None,
        "p50_ms_flat_out": round(_quantile(got["latencies"], 0.5) * 1000, 1),
        "cpu_ms_per_event": got["cpu_ms_per_event"],
        _WHOLE: got[_WHOLE],
        "processes": got["processes"],
        "machine_busy_cpus": got.get("machine_busy_cpus"),
    }


def _hub_rows(
    runs: Mapping[int, Sequence[Mapping[str, Any]]], faust_rate: float
) -> tuple[dict[str, Any], list[list[Any]]]:
    """Medians over the rounds for each worker count, CPU by process, and the scaling.

    ``runs``: worker count -> that count's ``_throughput_record``s. The CPU figures are the
    round with the median whole-hub CPU (the lower middle for an even count), so its
    processes add up to its whole-hub figure.
    """
    summary: dict[str, Any] = {"operation": "hub summary", "by_workers": {}}
    rows: list[list[Any]] = []
    medians: dict[int, float] = {}
    cpus = usable_cpus()
    every: dict[int, float] = {}  # CPU ms per event of every process measured, bench's too
    for workers, got in runs.items():
        rates = [float(m["events_per_s"]) for m in got]
        medians[workers] = statistics.median(rates)
        events = got[0]["events"]
        label = "hub throughput"
        if len(got) > 1:
            label += f", median of {len(got)} rounds ({', '.join(f'{r:.0f}' for r in rates)})"
        if workers == 1:
            label += " (target ≥ 700 events/s)"
        rows.append(
            [
                label,
                workers,
                events,
                round(medians[workers]),
                "events/s",
                medians[workers] / faust_rate,
            ]
        )
        middle = sorted(got, key=lambda m: m[_WHOLE])[(len(got) - 1) // 2]
        cpu, processes = middle["cpu_ms_per_event"], middle["processes"]
        rows.append(["CPU per event: workers", workers, events, cpu["workers"], "ms", None])
        if processes.get("sink"):
            rows.append(["CPU per event: audit sink", workers, events, cpu["sink"], "ms", None])
        else:
            rows.append(
                [
                    "CPU per event: audit sink (a task in each worker: in theirs)",
                    workers,
                    events,
                    None,
                    "ms",
                    None,
                ]
            )
        if processes.get("webhooks"):
            rows.append(
                ["CPU per event: webhook dispatcher", workers, events, cpu["webhooks"], "ms", None]
            )
        rows.append(["CPU per event: broker", workers, events, cpu["broker"], "ms", None])
        rows.append(
            [
                "whole-hub CPU per event: workers + audit sink + broker (target ≤ 2.0 ms; "
                f"the bench process apart: {cpu['bench']:.2f} ms)",
                workers,
                events,
                middle[_WHOLE],
                "ms",
                None,
            ]
        )
        busy = middle.get("machine_busy_cpus")
        if busy is not None:
            rows.append(
                [
                    f"machine CPUs busy in that round, of {os.cpu_count()} (every process, the "
                    "bench's and any other work's)",
                    workers,
                    events,
                    busy,
                    "CPUs",
                    None,
                ]
            )
        every[workers] = sum(float(v) for v in cpu.values())
        summary["by_workers"][str(workers)] = {
            "rounds": len(got),
            "events_per_s_median": round(medians[workers], 1),
            "events_per_s": rates,
            "cpu_ms_per_event_median_round": cpu,
            "whole_hub_cpu_ms_per_event_median_round": middle[_WHOLE],
            "whole_hub_cpu_ms_per_event": [m[_WHOLE] for m in got],
        }
    if 1 in medians:
        for workers in sorted(w for w in medians if w > 1):
            scaling = medians[workers] / medians[1]
            summary[f"scaling_{workers}_over_1"] = round(scaling, 3)
            rows.append(
                [
                    f"scaling: {workers} workers / 1 worker, median events/s"
                    + (" (target ≥ 1.3)" if workers == 2 else ""),
                    f"{workers}/1",
                    "-",
                    scaling,
                    "ratio",
                    None,
                ]
            )
            if every.get(workers):
                # the most this many workers could route if every CPU were busy with the
                # processes measured, each spending what it spent per event in that round
                ceiling = cpus * 1000 / every[workers]
                summary[f"scaling_{workers}_over_1_ceiling"] = round(ceiling / medians[1], 3)
                rows.append(
                    [
                        f"scaling ceiling of this machine: {cpus} CPUs / the CPU per event of "
                        f"every process with {workers} workers (hub and bench: "
                        f"{every[workers]:.2f} ms) = {ceiling:.0f} events/s, over one "
                        "worker's median",
                        f"{workers}/1",
                        "-",
                        ceiling / medians[1],
                        "ratio",
                        None,
                    ]
                )
    return summary, rows


def _floor_rows(
    floors: Sequence[Mapping[str, Any]],
    ratios: Sequence[Mapping[str, Any]],
    faust_rate: float,
    *,
    in_run: bool,
) -> list[list[Any]]:
    """Floor (a) (and (b), when measured here) and the hub's ratios to (a), as table rows."""
    rows: list[list[Any]] = []
    where = f"{len(floors)} runs in this run" if in_run else "recorded, see the notes"
    for variant, name in (("a", "floor (a) with crypto"), ("b", "floor (b) without crypto")):
        got = [f[variant] for f in floors if f.get(variant)]
        if not got:
            continue
        rates = [g["events_per_s"] for g in got]
        median = statistics.median(rates)
        shown = f" ({', '.join(f'{r:.0f}' for r in rates)})" if len(rates) > 1 else ""
        rows.append(
            [
                f"{name}, {where}{shown}",
                "-",
                got[0]["events"],
                median,
                "events/s",
                median / faust_rate,
            ]
        )
        with_cpu = sorted((g for g in got if g.get("cpu_ms")), key=lambda g: g["cpu_ms"])
        if with_cpu:
            middle = with_cpu[(len(with_cpu) - 1) // 2]
            parts = ", ".join(f"{k} {v:.2f}" for k, v in middle["cpu_ms_per_event"].items())
            rows.append(
                [
                    f"{name}: CPU per event, worker + broker ({parts} ms)",
                    "-",
                    middle["events"],
                    middle["cpu_ms"],
                    "ms",
                    None,
                ]
            )
    if ratios:
        throughput = statistics.median(r["throughput_ratio"] for r in ratios)
        per_round = ", ".join(f"{r['throughput_ratio']:.2f}" for r in ratios)
        rows.append(
            [
                "hub / floor (a): one-worker events/s (target ≥ 0.7)"
                + (f"; median of rounds {per_round}" if len(ratios) > 1 else ""),
                1,
                "-",
                throughput,
                "ratio",
                None,
            ]
        )
        multiples = [r["cpu_multiple"] for r in ratios if r["cpu_multiple"] is not None]
        if multiples:
            rows.append(
                [
                    "hub / floor (a): whole-hub CPU per event over the floor's worker + broker"
                    + (
                        f"; median of rounds {', '.join(f'{m:.2f}' for m in multiples)}"
                        if len(multiples) > 1
                        else ""
                    ),
                    1,
                    "-",
                    statistics.median(multiples),
                    "times",
                    None,
                ]
            )
    return rows


def _latency_rows(params: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """One worker offered each of ``rates`` events/s in turn: p50/p95/p99 produce to read."""
    measurements, rows = [], []
    for offered in (float(r) for r in params["rates"]):
        lat, floor = _latency(params, offered)
        q = {p: _quantile(lat["latencies"], p / 100) * 1000 for p in (50, 95, 99)}
        fq = (
            {p: _quantile(floor["latencies"], p / 100) * 1000 for p in (50, 95, 99)}
            if floor is not None
            else None
        )
        measurements.append(
            {
                "operation": "hub latency",
                "workers": 1,
                "offered_per_s": offered,
                "events": lat["events"],
                "deliveries": lat["deliveries"],
                **{f"p{p}_ms": round(v, 1) for p, v in q.items()},
            }
        )
        if floor is not None and fq is not None:
            measurements.append(
                {
                    "operation": "latency floor (broker, two hops, audit first)",
                    "offered_per_s": offered,
                    "events": floor["events"],
                    "deliveries": floor["deliveries"],
                    **{f"p{p}_ms": round(v, 1) for p, v in fq.items()},
                }
            )
        for p, v in q.items():
            ratio = v / fq[p] if fq is not None and fq[p] > 0 else None
            rows.append([f"latency p{p} at {offered:g}/s", 1, lat["events"], v, "ms", ratio])
        if floor is not None and fq is not None:
            for p, v in fq.items():
                label = f"latency floor p{p} at {offered:g}/s (broker only)"
                rows.append([label, "-", floor["events"], v, "ms", None])
    return measurements, rows


def _soak_rows(soak: Mapping[str, Any]) -> list[list[Any]]:
    """The soak's rows: the worker's RSS over the run, its growth, what the broker held."""
    growth = soak["bytes_per_event_second_half"]
    return [
        ["soak RSS first tenth", 1, "-", soak["rss_first_tenth_kib"] / 1024, "MiB", None],
        ["soak RSS at half time", 1, "-", soak["rss_middle_kib"] / 1024, "MiB", None],
        ["soak RSS last tenth", 1, "-", soak["rss_last_tenth_kib"] / 1024, "MiB", None],
        [
            "soak worker RSS growth, first tenth to last tenth "
            f"({soak['duration_s'] / 60:.0f} min; target < 8 MiB over 30 min)",
            1,
            soak["events"],
            soak["rss_growth_kib"] / 1024,
            "MiB",
            None,
        ],
        [
            "soak anonymous RSS first tenth, last tenth: "
            f"{soak['anon_first_tenth_kib'] / 1024:.1f}, "
            f"{soak['anon_last_tenth_kib'] / 1024:.1f} MiB",
            1,
            soak["events"],
            soak["anon_last_tenth_kib"] / 1024,
            "MiB",
            None,
        ],
        [
            f"soak rate reached (offered {soak['rate']:.0f}/s), first tenth, last "
            f"tenth: {soak['rate_first_tenth']:g}, {soak['rate_last_tenth']:g}",
            1,
            soak["events"],
            soak["rate_last_tenth"],
            "events/s",
            None,
        ],
        [
            "soak broker CPU per event, first tenth, last tenth: "
            f"{soak['broker_cpu_ms_per_event_first_tenth']:g}, "
            f"{soak['broker_cpu_ms_per_event_last_tenth']:g} ms (worker "
            f"{soak['worker_cpu_ms_per_event_first_tenth']:g}, "
            f"{soak['worker_cpu_ms_per_event_last_tenth']:g}); broker RSS "
            f"{soak['broker_rss_first_kib'] / 1024:.0f} to "
            f"{soak['broker_rss_last_kib'] / 1024:.0f} MiB",
            1,
            soak["events"],
            soak["broker_cpu_ms_per_event_last_tenth"],
            "ms",
            None,
        ],
        [
            f"soak RSS growth per event, second half (anonymous {growth['anon']:g} B, "
            f"file {growth['file']:g} B, shmem {growth['shmem']:g} B)",
            1,
            soak["events"],
            growth["rss"],
            "bytes",
            None,
        ],
    ]


def _floor_note(floor: _Floor, recorded: str | None, params: Mapping[str, Any]) -> str:
    """Where floor (a) came from, and how the ratios to it were taken."""
    problems = "; ".join(floor.problems)
    if floor.runs:
        order = ", ".join(f"hub {w}" for w in params["workers"])
        note = (
            f"Floor (a) measured in this run by bench.floor ({params['floor_events']} events a "
            f"run, (b) alongside), {len(floor.runs)} times, interleaved with the hub: floor, "
            f"{order}, floor, ... Each round's ratios are to the mean of the floor runs before "
            "and after it, and the medians over the rounds are reported. Floor CPU per event "
            "is its worker plus its broker; the hub's is the whole hub."
        )
        return note + (f" Problems: {problems}." if problems else "")
    if recorded is not None:
        return f"Floor (a) {recorded} ({problems}); the ratios are to that record."
    return f"No floor (a) for the ratios: {problems}."


def run(params: Mapping[str, Any]) -> Measured:
    """Baselines; rounds of floor (a) and the hub; profile; latency at each rate; soak."""
    if not params["workers"] or not params["rates"]:
        raise ValueError(
            "hub: expected at least one worker count and one rate, got "
            f"workers={params['workers']!r}, rates={params['rates']!r}"
        )
    load_before = os.getloadavg()[0]
    baselines, measurements, rows = _baselines(params)
    faust_rate = baselines["faust batched"]
    floor = _Floor(params)
    rounds = max(1, int(params["rounds"]))
    runs: dict[int, list[dict[str, Any]]] = {int(w): [] for w in params["workers"]}
    for r in range(rounds):  # floor, hub 1 worker, hub 2 workers, floor, ...
        floor.measure(r)
        for workers, done in runs.items():
            got = _throughput(params, workers, None)
            done.append(_throughput_record(got, workers=workers, round_=r, baselines=baselines))
    floor.measure(rounds)
    for done in runs.values():
        measurements.extend(done)
    summary, hub_rows = _hub_rows(runs, faust_rate)
    measurements.append(summary)
    recorded: str | None = None
    floors: list[dict[str, Any]] = list(floor.runs)
    if not floors:
        a, recorded = _floor_from_file(ROOT / str(params["floor_results"]))
        floors = [{"round": None, "a": a, "b": None}] if a is not None else []
        if a is None:
            floor.problems.append(recorded)
            recorded = None
    ratios = _floor_ratios(
        [
            {
                "round": m["round"],
                "events_per_s": m["events_per_s"],
                "whole_hub": m[_WHOLE],
            }
            for m in runs.get(1, [])
        ],
        floors,
    )
    measurements.extend({"operation": "floor", **f} for f in floor.runs)
    measurements.append(
        {
            "operation": "hub over floor",
            "source": "this run" if floor.runs else recorded,
            "floor": [] if floor.runs else floors,
            "by_round": ratios,
            "problems": floor.problems,
        }
    )
    rows += hub_rows
    rows += _floor_rows(floors, ratios, faust_rate, in_run=bool(floor.runs))
    one = summary["by_workers"].get("1") or next(iter(summary["by_workers"].values()))
    profile_path = Path(tempfile.mkdtemp(prefix="hub-profile-")) / "worker.pyisession"
    top: list[dict[str, Any]] = []
    soak: dict[str, Any] | None = None
    try:
        if params["profile"]:  # repeated under the profiler: sampling slows the worker
            got = _throughput(params, 1, profile_path)
            profiled = _throughput_record(got, workers=1, round_=None, baselines=baselines)
            measurements.append(profiled)
            rows.append(
                [
                    "hub throughput (profiled)",
                    1,
                    got["events"],
                    round(profiled["events_per_s"]),
                    "events/s",
                    profiled["events_per_s"] / faust_rate,
                ]
            )
            if profile_path.exists():
                top = _top_costs(profile_path, int(params["profile_top"]))
        lat_measurements, lat_rows = _latency_rows(params)
        measurements += lat_measurements
        rows += lat_rows
        if float(params["soak_s"]) > 0:
            rate = float(params["soak_rate"] or max(1.0, one["events_per_s_median"] / 2))
            soak = _soak(params, rate=rate)
            measurements.append({"operation": "soak", "workers": 1, **soak})
            rows += _soak_rows(soak)
        if top:
            measurements.append({"operation": "profile", "top_self_time": top})
    finally:
        shutil.rmtree(profile_path.parent, ignore_errors=True)
    notes = [
        f"Load average (1 min) {load_before:.2f} before the run and {os.getloadavg()[0]:.2f} "
        "after: on a shared 2-CPU machine, other work lowers every figure here.",
        "Reference protocol scenario traffic (seeded), HPKE sealing per recipient, Ed25519, "
        "audit to SQLite (synchronous=FULL) with signed checkpoints; complete = every event "
        "audited and every audited delivery read back from its recipient's topic.",
        f"Throughput: {params['events']} events flat out, in {rounds} round(s) of "
        f"{', '.join(str(w) for w in params['workers'])} worker(s), medians reported.",
        "CPU per event: user plus system time from /proc over the timed part, of every process "
        "the hub's Supervisor reports (router workers; the audit sink when it is a process of "
        "its own, else it is a task in each worker and in their figure; the webhook "
        "dispatcher when there is one) and of the broker, from the round with the median "
        "whole-hub figure. Whole-hub CPU = workers + audit sink + webhooks + broker "
        "(issue 16: at most 2.0 ms); the bench process, which produces and reads back, is "
        "apart.",
        _floor_note(floor, recorded, params),
        "Baselines from bench.passthrough in the same run (1 KB records, 1 partition); the "
        "hub runs 3 partitions per topic.",
        f"Latency: one worker offered {', '.join(f'{float(r):g}' for r in params['rates'])} "
        f"events/s in turn, {params['latency_s']} s each; per delivery, produce to read by a "
        "consumer in the same process as the producer (issue 16: p99 at most 100 ms at "
        "500/s). Ratio: hub / the latency floor beside it (lower is better; "
        "bench.latency_floor): the same "
        "messages at the same rate through a forwarder that does no routing, on a broker of "
        "its own with the hub's topics, fetch wait and producer settings, its audit message "
        f"acknowledged before {params['latency_floor_fanout']} copies of each record. On the "
        "embedded broker every fetch lasts its whole wait (Tansu 0.6 answers a fetch only "
        f"when its {FETCH_WAIT_MS} ms wait is over), so each of the two hops adds up to "
        f"{FETCH_WAIT_MS} ms.",
    ]
    if soak is not None:
        held = soak["rate_last_tenth"] >= 0.9 * soak["rate"]
        notes.append(
            f"Soak: one worker offered {soak['rate']:.0f} events/s for "
            f"{soak['duration_s'] / 60:.0f} min in {params['soak_slice_s']} s slices. "
            + (
                "The embedded broker held the offered rate to the end."
                if held
                else f"The embedded broker did not hold it: the last tenth reached "
                f"{soak['rate_last_tenth']:g}/s (its memory store slows as it fills); "
                "set soak_rate lower for a soak at a rate it holds."
            )
        )
    if top:
        notes.append(
            "Top own-time costs in the worker (pyinstrument): "
            + "; ".join(f"{t['function']} {t['share']:.0%}" for t in top[:5])
        )
    return Measured(measurements=measurements, columns=COLUMNS, rows=rows, notes=notes)


BENCHMARK = Benchmark(
    name="hub",
    summary="The whole hub end to end (issues 8 and 16): throughput with 1 and 2 workers in "
    "rounds interleaved with the design floor (a), CPU per event by process and for the whole "
    "hub, latency at 500 and 1,000 events/s offered, a 30-minute memory soak; as ratios to "
    "the floor and to the passthrough baselines of the same run.",
    run=run,
    defaults={
        "events": 3000,
        "seed": 8,
        "workers": [1, 2],
        "rounds": 3,
        "floor": True,
        "floor_events": 5000,
        "floor_results": "bench/results/floor.json",
        "rates": [500, 1000],
        "latency_s": 10,
        "latency_floor": True,
        "latency_floor_fanout": 4,
        "soak_s": 1800,
        "soak_rate": 20.0,
        "soak_slice_s": 10,
        "baseline_messages": 20000,
        "profile": True,
        "profile_top": 15,
        "timeout_s": 300.0,
    },
    quick={
        "events": 100,
        "workers": [1],
        "rounds": 1,
        "floor_events": 100,
        "rates": [50],
        "latency_s": 2,
        "soak_s": 0,
        "baseline_messages": 300,
        "profile": False,
        "timeout_s": 120.0,
    },
)
