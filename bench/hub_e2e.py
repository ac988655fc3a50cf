"""The whole hub end to end on the embedded broker, beside the passthrough baselines.

Traffic is the reference protocol's seeded scenario (``hub.scenarios.north_worcs``: MARAC,
SOCJAG, Pub Watch; about 4 recipients an event), sealed and signed by each publisher before
the clock starts (the publishers' cost is theirs, not the hub's). Encryption and audit are
on, as in production. Three measurements in one run, each hub on a fresh embedded broker:

- **throughput**: ``events`` records produced as fast as the broker takes them; the clock
  stops when every event has its audit records in the store *and* every delivery the audit
  names has been read back from the recipients' topics. With 1 and with 2 worker processes.
- **latency**: events offered at ``rate`` per second for ``latency_s`` seconds, then again at
  half the rate one worker sustained; for every delivery, the time from its event being
  produced to the delivery being read (p50/p95/p99).
- **baselines**: ``bench.passthrough`` (raw aiokafka, bare faust) in the same run, so the
  hub's rate is reported as a ratio to each.

``profile`` (off by default): the one-worker throughput run is repeated with the worker under
pyinstrument (``HUB_PROFILE_FILE``, honoured by ``hub.agents.worker``) and the top costs by
own time are recorded; the profiled rate is reported apart (sampling slows the worker).
With ``soak_s`` a worker is fed at half the measured throughput for that long and its RSS
sampled every second.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench import passthrough
from bench._harness import Benchmark, CpuMeter, Measured
from hub.agents.supervisor import Supervisor
from hub.broker import EmbeddedBroker
from hub.broker import topics as hub_topics
from hub.broker.fetch import FETCH_WAIT_MS
from hub.client import HubClient
from hub.envelope import wire
from hub.keys.file_store import FileKeyStore
from hub.scenarios.north_worcs import Scenario
from hub.settings import HubSettings

__all__ = ["BENCHMARK", "run"]

COLUMNS = ["measurement", "workers", "events", "value", "unit", "ratio to bare faust batched"]


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
) -> dict[str, Any]:
    """Produce ``messages`` (at ``rate``/s, or flat out) and read every delivery back."""
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
        progress = _AuditProgress(db, ids)
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

    def __init__(self, *, workers: int, profile: Path | None) -> None:
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


def _throughput(params: Mapping[str, Any], workers: int, profile: Path | None) -> dict[str, Any]:
    """One flat-out run; also the CPU each process spent on it, per event.

    The CPU figures say where the machine's time went: a worker near one CPU-second per
    second is CPU-bound, and the broker's and this process's shares are taken from the same
    two cores.
    """
    with _Hub(workers=workers, profile=profile) as hub:
        protocol = hub.supervisor.protocol
        warm = _seal(hub.settings, protocol, 20, seed=99)
        hub.drive(warm, rate=None, within=float(params["timeout_s"]))
        messages = _seal(hub.settings, protocol, int(params["events"]), seed=int(params["seed"]))
        meter = CpuMeter(
            {
                "workers": [w.pid for w in hub.supervisor.workers],
                "webhooks": [w.pid for w in [hub.supervisor.webhooks] if w is not None],
                "broker": [hub.broker.pid or 0],
                "bench": [os.getpid()],
            }
        )
        meter.start()
        result = hub.drive(messages, rate=None, within=float(params["timeout_s"]))
        result["cpu_ms_per_event"] = meter.ms_per(len(messages))
        if profile is not None:
            hub.supervisor.stop()  # the worker writes its profile as it exits
        return result


def _latency(params: Mapping[str, Any], rate: float) -> dict[str, Any]:
    with _Hub(workers=1, profile=None) as hub:
        protocol = hub.supervisor.protocol
        count = int(rate * float(params["latency_s"]))
        messages = _seal(hub.settings, protocol, count, seed=int(params["seed"]) + 1)
        return hub.drive(messages, rate=rate, within=float(params["timeout_s"]))


def _soak(params: Mapping[str, Any], rate: float) -> dict[str, Any]:
    """Feed one worker at ``rate`` for ``soak_s`` seconds in slices; sample its memory."""
    with _Hub(workers=1, profile=None) as hub:
        protocol = hub.supervisor.protocol
        pid = hub.supervisor.workers[0].pid
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
        "anon_first_tenth_kib": max(x["anon"] for x in samples[:tenth]),
        "anon_last_tenth_kib": max(x["anon"] for x in samples[-tenth:]),
        "threads_first": samples[0]["threads"],
        "threads_last": last["threads"],
        "peak_rss_kib": peak,
        **_soak_trend(samples),
        "bytes_per_event_second_half": {k: per_event(k) for k in ("rss", "anon", "file", "shmem")},
        # the whole curve, by kind: warm-up growth (caches filling to their bounds) levels
        # off; a leak keeps climbing through the second half
        "memory_series": samples,
    }


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


def run(params: Mapping[str, Any]) -> Measured:
    """Baselines, then the hub: throughput (1 and 2 workers), latency, soak, profile."""
    load_before = os.getloadavg()[0]
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
    profile_path = Path(tempfile.mkdtemp(prefix="hub-profile-")) / "worker.pyisession"
    top: list[dict[str, Any]] = []
    try:
        best = 0.0
        runs: list[tuple[int, Path | None]] = [(int(w), None) for w in params["workers"]]
        if params["profile"]:  # repeated under the profiler: sampling slows the worker
            runs.append((1, profile_path))
        for workers, profile in runs:
            got = _throughput(params, workers, profile)
            rate = got["events"] / got["elapsed_s"]
            best = max(best, rate) if workers == 1 and profile is None else best
            lat = got["latencies"]
            measurements.append(
                {
                    "operation": "hub throughput",
                    "workers": workers,
                    "events": got["events"],
                    "deliveries": got["deliveries"],
                    "elapsed_s": round(got["elapsed_s"], 3),
                    "events_per_s": round(rate, 1),
                    "deliveries_per_s": round(got["deliveries"] / got["elapsed_s"], 1),
                    "ratio_to_faust_batched": round(rate / faust_rate, 3),
                    "ratio_to_raw_aiokafka": round(rate / rates["raw aiokafka"], 4),
                    "profiled": profile is not None,
                    "p50_ms_flat_out": round(_quantile(lat, 0.5) * 1000, 1),
                    "cpu_ms_per_event": got["cpu_ms_per_event"],
                }
            )
            rows.append(
                [
                    "hub throughput" + (" (profiled)" if profile else ""),
                    workers,
                    got["events"],
                    round(rate, 0),
                    "events/s",
                    rate / faust_rate,
                ]
            )
            if profile is None:
                cpu = got["cpu_ms_per_event"]
                rows.append(
                    [
                        "worker CPU per event (broker, webhooks, bench: "
                        f"{cpu['broker']:.2f}, {cpu['webhooks']:.2f}, {cpu['bench']:.2f} ms)",
                        workers,
                        got["events"],
                        cpu["workers"],
                        "ms",
                        None,
                    ]
                )
            if profile is not None and profile.exists():
                top = _top_costs(profile, int(params["profile_top"]))
        # at the target's offered rate, then at half what one worker sustained: the first
        # measures queueing once the hub is saturated, the second the service time
        for offered in (float(params["rate"]), round(max(1.0, best / 2))):
            lat = _latency(params, offered)
            q = {p: _quantile(lat["latencies"], p / 100) * 1000 for p in (50, 95, 99)}
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
            for p, v in q.items():
                rows.append([f"latency p{p} at {offered:g}/s", 1, lat["events"], v, "ms", None])
        if float(params["soak_s"]) > 0:
            soak = _soak(params, rate=max(1.0, best / 2))
            measurements.append({"operation": "soak", "workers": 1, **soak})
            rows.append(
                ["soak RSS first tenth", 1, "-", soak["rss_first_tenth_kib"] / 1024, "MiB", None]
            )
            rows.append(
                ["soak RSS at half time", 1, "-", soak["rss_middle_kib"] / 1024, "MiB", None]
            )
            rows.append(
                ["soak RSS last tenth", 1, "-", soak["rss_last_tenth_kib"] / 1024, "MiB", None]
            )
            rows.append(
                [
                    "soak anonymous RSS first tenth, last tenth: "
                    f"{soak['anon_first_tenth_kib'] / 1024:.1f}, "
                    f"{soak['anon_last_tenth_kib'] / 1024:.1f} MiB",
                    1,
                    soak["events"],
                    soak["anon_last_tenth_kib"] / 1024,
                    "MiB",
                    None,
                ]
            )
            rows.append(
                [
                    f"soak rate reached (offered {soak['rate']:.0f}/s), first tenth, last "
                    f"tenth: {soak['rate_first_tenth']:g}, {soak['rate_last_tenth']:g}",
                    1,
                    soak["events"],
                    soak["rate_last_tenth"],
                    "events/s",
                    None,
                ]
            )
            rows.append(
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
                ]
            )
            growth = soak["bytes_per_event_second_half"]
            rows.append(
                [
                    f"soak RSS growth per event, second half (anonymous {growth['anon']:g} B, "
                    f"file {growth['file']:g} B, shmem {growth['shmem']:g} B)",
                    1,
                    soak["events"],
                    growth["rss"],
                    "bytes",
                    None,
                ]
            )
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
        "Baselines from bench.passthrough in the same run (1 KB records, 1 partition); the "
        "hub runs 3 partitions per topic.",
        f"Latency: events offered at {params['rate']}/s, then at half the one-worker "
        f"throughput, for {params['latency_s']} s each; per "
        "delivery, produce to read by a consumer in the same process as the producer.",
    ]
    if top:
        notes.append(
            "Top own-time costs in the worker (pyinstrument): "
            + "; ".join(f"{t['function']} {t['share']:.0%}" for t in top[:5])
        )
    return Measured(measurements=measurements, columns=COLUMNS, rows=rows, notes=notes)


BENCHMARK = Benchmark(
    name="hub",
    summary="The whole hub end to end (issue 8): throughput with 1 and 2 workers, latency at "
    "an offered rate, a memory soak, as ratios to the passthrough baselines of the same run.",
    run=run,
    defaults={
        "events": 3000,
        "seed": 8,
        "workers": [1, 2],
        "rate": 1000,
        "latency_s": 10,
        "soak_s": 600,
        "soak_slice_s": 10,
        "baseline_messages": 20000,
        "profile": True,
        "profile_top": 15,
        "timeout_s": 300.0,
    },
    quick={
        "events": 100,
        "workers": [1],
        "rate": 50,
        "latency_s": 2,
        "soak_s": 0,
        "baseline_messages": 300,
        "profile": False,
        "timeout_s": 120.0,
    },
)
