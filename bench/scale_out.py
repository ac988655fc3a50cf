"""Scale out on PostgreSQL state (issue 22): throughput with 1, 2 and 4 router workers.

Each run is ``bench.hub_e2e``'s throughput run (the seeded scenario, sealed before the clock
starts, complete when every event is audited and every audited delivery read back) with the
hub's shared state *and* its audit log in one PostgreSQL database (``HUB_STATE_URL`` and
``HUB_AUDIT_URL``), as a hub on several hosts keeps them. Each worker count gets a fresh
embedded broker and a fresh database on one throwaway server
(``tests.postgres.PostgresServer(durable=True)``: fsync, ``synchronous_commit`` and
``full_page_writes`` on, as in production), or the database server of ``postgres_url``.
The topics have ``partitions`` partitions (at least the largest worker count, so no worker
sits idle).

Reported per worker count: events/s (median over ``rounds``), scaling over one worker, CPU
per event of the workers, the audit sink, the broker, and **PostgreSQL itself** (its
postmaster and every backend and auxiliary process alive when the clock starts: the
workers' and the sink's connections are opened before it; autovacuum workers started
during the run are missed and said so). On a 2-core machine the workers, the broker and the
database share two CPUs: read the scaling with the CPU columns beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bench import hub_e2e
from bench._harness import Benchmark, CpuMeter, Measured
from hub.agents.supervisor import Supervisor
from hub.broker import EmbeddedBroker
from hub.settings import HubSettings

__all__ = ["BENCHMARK", "PgProgress", "postgres_pids", "run"]

COLUMNS = ["measurement", "workers", "events", "value", "unit"]
_GROUPS = ("workers", "sink", "broker", "postgres")


class PgProgress:
    """``hub_e2e._AuditProgress`` over the PostgreSQL audit store: (decided, delivered)."""

    def __init__(self, url: str, ids: set[str]) -> None:
        self.url, self.ids = url, ids
        self.last = 0
        self.decided: set[str] = set()
        self.delivered = 0

    def poll(self) -> tuple[int, int]:
        """Read the rows after the last one seen (``seq`` is commit order) and count them."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT seq, event_id, decision FROM audit_records WHERE seq > %s ORDER BY seq",
                (self.last,),
            ).fetchall()
        for seq, event_id, decision in rows:
            self.last = int(seq)
            if event_id in self.ids:
                self.decided.add(str(event_id))
                self.delivered += decision == "delivered"
        return len(self.decided), self.delivered


def postgres_pids(data_dir: Path) -> list[int]:
    """The postmaster of the cluster in ``data_dir`` and every process it has started."""
    postmaster = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    found = [postmaster]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if int(stat[1]) == postmaster:  # field 4 of stat: the parent's pid
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def _server(params: Mapping[str, Any], notes: list[str]) -> Iterator[tuple[Any, Path | None]]:
    """(make a database URL, the cluster's data dir for its CPU, or None when not ours)."""
    url = params.get("postgres_url")
    if url:
        notes.append("PostgreSQL: the server of postgres_url, as configured; its CPU unmetered.")
        yield (lambda: str(url)), None
        return
    from tests.postgres import PostgresServer, find_pg_bindir

    bindir = find_pg_bindir()
    if bindir is None:
        raise RuntimeError(
            "scaleout: expected PostgreSQL binaries (initdb/pg_ctl on PATH or in "
            "/usr/lib/postgresql/*/bin) or a postgres_url, got neither"
        )
    server = PostgresServer(bindir, durable=True)
    try:
        server.start()
        notes.append(
            f"PostgreSQL: a throwaway server from {bindir} on this machine, default settings "
            "(fsync, synchronous_commit and full_page_writes on, shared_buffers 128 MB)."
        )
        yield server.create_database, server.data_dir
    finally:
        server.stop()


def _throughput(
    params: Mapping[str, Any], workers: int, url: str, pg_dir: Path | None
) -> dict[str, Any]:
    """One flat-out run of a hub with ``workers`` workers on PostgreSQL state."""
    broker = EmbeddedBroker()
    bootstrap = broker.start()
    root = Path(tempfile.mkdtemp(prefix="hub-scaleout-"))
    settings = HubSettings(
        data_dir=root / "data",
        kafka_bootstrap=bootstrap,
        workers=workers,
        partitions=int(params["partitions"]),
        state_url=url,
        audit_url=url,
        workflow_interval=0,
        log_level="WARNING",
    )
    supervisor = Supervisor(settings)
    try:
        supervisor.start()
        protocol = supervisor.protocol
        parties = protocol.party_ids

        def drive(messages: list[Any]) -> dict[str, Any]:
            return asyncio.run(
                hub_e2e._drive(
                    bootstrap,
                    settings.audit_db_path,  # unused: ``watch`` reads PostgreSQL
                    messages,
                    parties,
                    rate=None,
                    within=float(params["timeout_s"]),
                    watch=lambda ids: PgProgress(url, ids),
                )
            )

        drive(hub_e2e._seal(settings, protocol, 20, seed=99))  # warm: keys, connections
        messages = hub_e2e._seal(
            settings, protocol, int(params["events"]), seed=int(params["seed"])
        )
        groups = {
            "workers": [w.pid for w in supervisor.workers],
            "sink": [supervisor.sink.pid] if supervisor.sink is not None else [],
            "broker": [broker.pid or 0],
            "postgres": postgres_pids(pg_dir) if pg_dir is not None else [],
            "bench": [os.getpid()],
        }
        meter = CpuMeter(groups)
        meter.start()
        result = drive(messages)
        result["cpu_ms_per_event"] = meter.ms_per(len(messages))
        result["processes"] = {name: len(pids) for name, pids in groups.items()}
        result["events_per_s"] = result["events"] / result["elapsed_s"]
        result.pop("latencies", None)
        return result
    finally:
        supervisor.stop()
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


def run(params: Mapping[str, Any]) -> Measured:
    """Each worker count in turn, ``rounds`` times; medians, scaling and CPU per event."""
    counts = [int(w) for w in params["workers"]]
    if not counts or int(params["partitions"]) < max(counts):
        raise ValueError(
            f"scaleout: expected worker counts and partitions >= the largest, got "
            f"workers={counts!r}, partitions={params['partitions']!r}"
        )
    load_before = os.getloadavg()[0]
    notes: list[str] = []
    runs: dict[int, list[dict[str, Any]]] = {w: [] for w in counts}
    with _server(params, notes) as (database, pg_dir):
        for _ in range(max(1, int(params["rounds"]))):
            for workers in counts:
                runs[workers].append(_throughput(params, workers, database(), pg_dir))
    measurements: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    medians: dict[int, float] = {}
    for workers, done in runs.items():
        medians[workers] = statistics.median(r["events_per_s"] for r in done)
        middle = sorted(done, key=lambda r: r["events_per_s"])[len(done) // 2]
        cpu = middle["cpu_ms_per_event"]
        measurements.append(
            {
                "operation": "throughput on PostgreSQL state",
                "workers": workers,
                "events_per_s_median": round(medians[workers], 1),
                "runs": done,
            }
        )
        events = middle["events"]
        rows.append(["throughput", workers, events, round(medians[workers]), "events/s"])
        for group in _GROUPS:
            rows.append([f"CPU per event: {group}", workers, events, cpu.get(group, 0.0), "ms"])
        whole = round(sum(float(cpu.get(g, 0.0)) for g in _GROUPS), 3)
        rows.append(["CPU per event: whole hub with PostgreSQL", workers, events, whole, "ms"])
    if 1 in medians:
        for workers in sorted(w for w in medians if w > 1):
            scaling = round(medians[workers] / medians[1], 3)
            measurements.append({"operation": "scaling", "workers": workers, "over_1": scaling})
            rows.append([f"scaling: {workers} workers / 1", workers, None, scaling, "x"])
    notes += [
        f"Load average (1 min) {load_before:.2f} before and {os.getloadavg()[0]:.2f} after; "
        f"{os.cpu_count()} CPUs shared by the workers, the audit sink, the broker, PostgreSQL "
        "and the bench process: past the core count, more workers cannot go faster here.",
        "State (seen ids, registers, case keys) and the audit log in one PostgreSQL database; "
        f"{params['partitions']} partitions per topic; {params['events']} events flat out "
        f"per run, {params['rounds']} round(s), medians reported; CPU from the median run.",
        "CPU of PostgreSQL: its postmaster and every process it had started when the clock "
        "started (the connections are opened before); autovacuum workers started during "
        "the run are not counted.",
    ]
    return Measured(measurements=measurements, columns=COLUMNS, rows=rows, notes=notes)


BENCHMARK = Benchmark(
    name="scaleout",
    summary="Scale out (issue 22): throughput with 1, 2 and 4 router workers with shared state "
    "and audit in PostgreSQL, scaling over one worker, and CPU per event of the workers, the "
    "audit sink, the broker and PostgreSQL itself.",
    run=run,
    defaults={
        "events": 3000,
        "seed": 8,
        "workers": [1, 2, 4],
        "partitions": 4,
        "rounds": 3,
        "postgres_url": None,
        "timeout_s": 300.0,
    },
    quick={"events": 30, "workers": [1], "rounds": 1, "timeout_s": 120.0},
)
