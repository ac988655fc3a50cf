"""The audit store at scale: load, subject access, breach lookup and ``verify`` over N records.

The issue asks for the audit store's query time for a subject over a million records, on
SQLite and PostgreSQL, and for the time ``hub audit verify`` takes over them. For each
backend in ``backends`` this benchmark builds a store of ``records`` audit records and
measures, on the hub's real code:

- **load**: records are written the way the audit sink writes them: ``AuditStore.append``
  in batches of ``batch`` records (the sink's ``getmany(max_records=500)``), and a signed
  checkpoint (``AuditLog.checkpoint``, which extends the in-memory Merkle tree by the new
  leaves read back from the store, then signs and saves the tree head) after every
  ``checkpoint_every`` new records, as ``HUB_CHECKPOINT_EVERY`` (500 by default) makes the
  sink do. Each append and each checkpoint is timed on its own; building the records (the
  router's work) is outside the clock. Reported: append rate, per-batch append time and
  per-checkpoint time for the first and the last tenth of the load (growth with the log's
  size shows there), and the total.
- **subject access**: ``hub.audit.reports.subject_access``, the function ``hub audit sar``
  calls (pseudonymise the reference with the hub's HMAC key, fetch every record naming the
  pseudonym, split disclosures from exemptions, build the report), for ``queries`` random
  subjects that appear in the log; and, alternated with it, the bare
  ``AuditStore.query(subject_pseudonym=...)`` under it, so store time and report time can
  be told apart.
- **event recipients**: ``hub.audit.reports.recipients``, the breach / Art 19 report of
  ``hub audit recipients`` (every record of one event), for ``lookups`` random events.
- **verify**: ``AuditLog.verify()``, exactly what ``hub audit verify`` calls: re-read every
  record, re-derive every column from the canonical bytes, rebuild the Merkle tree and check
  every stored checkpoint's signature and root. Run once, on a fresh ``AuditLog`` and a
  fresh store connection, as the CLI does; a report that is not ``ok`` stops the benchmark.
- **SQLite floor** (``bench.sqlite_floor``): the rows each append wrote, inserted again by
  SQLite alone into a twin of the store and into a bare log, in the same load.
- **size on disk**: SQLite: the database file plus its WAL; PostgreSQL:
  ``pg_database_size`` (tables, indexes, TOAST); per record: the growth over the empty
  store (schema only) divided by the records.

Traffic is synthetic but shaped like the router's output: each event is published by one
party to 3 to 5 recipients (4 on average), each recipient gets a ``delivered`` record (with
its rule, lawful basis, fields and payload SHA-256) or, one time in five, a ``withheld``
one; 60 % of deliveries are acknowledged a few events later (an ``acknowledged`` record
with no subject, as the router writes it). An event names 1 or 2 subjects drawn from a pool
of ``subjects`` references and one case from a pool of ``cases``, pseudonymised with a
random HMAC key exactly as the router does, so a subject has a few tens of records. Times
advance by about two minutes an event. Everything is seeded (``seed``).

SQLite runs as the hub runs it (WAL, ``synchronous=FULL``) in a temporary directory.
PostgreSQL: ``postgres_url`` names an empty database to use, or, if it is ``None``, a
throwaway server is started (``tests.postgres.PostgresServer(durable=True)``: ``initdb`` in a
temporary directory, the binaries found on
``PATH`` or in ``/usr/lib/postgresql/<major>/bin``, run as ``nobody`` when the benchmark
runs as root) with PostgreSQL's default durability (``fsync``, ``synchronous_commit`` and
``full_page_writes`` on, 128 MB ``shared_buffers``), so its commits cost what SQLite's
``synchronous=FULL`` commits cost. After the load it is ``VACUUM ANALYZE``d (timed apart),
standing in for the autovacuum a long-running database has had. Without PostgreSQL
binaries the PostgreSQL rows are skipped with a note saying so, never estimated. Don't
put a password in ``postgres_url``: the parameters are recorded in the result file (use
``PGPASSWORD`` or a ``.pgpass`` file).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import random
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench._harness import Benchmark, Measured, Stats
from bench.sqlite_floor import SQLiteFloor
from hub.audit import reports
from hub.audit.checkpoint import NoteSigner
from hub.audit.log import AuditLog
from hub.audit.pseudonym import Pseudonymiser
from hub.audit.sqlite import SQLiteAuditStore
from hub.audit.store import AuditStore
from hub.models import AuditDecision, AuditRecord, record_id_for
from tests.postgres import PostgresServer, find_pg_bindir

__all__ = ["BENCHMARK", "COLUMNS", "run"]

COLUMNS = ["backend", "operation", "median", "p95", "unit", "detail"]

BACKENDS = ("sqlite", "postgresql")
#: the checkpoint signer's name (the hub's is "<protocol id>.hub/audit")
_ORIGIN = "bench.example.hub/audit"
_PROTOCOL_HASH = "sha256:" + "5e" * 32
_REASON_WITHHELD = "no rule of the protocol shares {type} with {party}"

#: (event type, rule, lawful basis, condition, purpose, fields shared): shapes of real rules
_KINDS: tuple[tuple[str, str, str, str | None, str, tuple[str, ...]], ...] = (
    (
        "uk.csp.marac.flag.raised.v1",
        "marac-flag-full",
        "UK GDPR Art 6(1)(e) public task",
        "DPA 2018 Sch 1 para 18 safeguarding of children and individuals at risk",
        "Manage high-risk domestic abuse cases referred to MARAC",
        ("address", "case_ref", "risk_level", "subject", "summary"),
    ),
    (
        "uk.csp.marac.flag.raised.v1",
        "marac-flag-district-departments",
        "UK GDPR Art 6(1)(e) public task",
        "DPA 2018 Sch 1 para 18 safeguarding of children and individuals at risk",
        "Flag the address and person on departmental systems so staff know who to call",
        ("address", "case_ref", "contact_instructions"),
    ),
    (
        "uk.csp.socjag.intel.shared.v1",
        "socjag-intel-partners",
        "DPA 2018 s35 law enforcement processing",
        "DPA 2018 Sch 8 para 1 statutory purposes",
        "Disrupt serious and organised crime in the district",
        ("handling_code", "intel_ref", "location", "summary"),
    ),
    (
        "uk.csp.pubwatch.ban.issued.v1",
        "pubwatch-ban-members",
        "UK GDPR Art 6(1)(f) legitimate interests",
        None,
        "Keep a banned person out of member premises for the ban period",
        ("ban_ref", "ban_until", "description", "name", "photo_ref"),
    ),
)
_PUBLISHERS = ("marac.north-worcs", "west-mercia-police", "pubwatch.redditch.crown-inn")
_RECIPIENTS = (
    "west-mercia-police",
    "marac.north-worcs",
    "redditch-bc.housing-repairs",
    "redditch-bc.neighbourhood-tenancy",
    "redditch-bc.community-safety",
    "bromsgrove-dc.housing",
    "bromsgrove-dc.community-safety",
    "wyre-forest-dc.housing",
    "worcestershire-cc.childrens-services",
    "hwfrs",
    "probation",
    "hw-icb",
    "pubwatch.redditch.rising-sun",
)
#: recipients per event: 3 to 5, 4 on average
_FANOUT = (3, 4, 4, 5)
_WITHHELD_SHARE = 0.2
_ACK_SHARE = 0.6
#: an acknowledgement lands this many events after its delivery
_ACK_DELAY_EVENTS = 8
_MEAN_EVENT_GAP_S = 120.0
_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
#: subjects queried untimed before the timed ones (plans compiled, connection warm)
_WARMUP = 3


# -- traffic ---------------------------------------------------------------------------------


class _Traffic:
    """A seeded stream of audit records shaped like the router's (see the module docstring)."""

    def __init__(self, *, seed: int, subjects: int, cases: int, pseudonymiser: Pseudonymiser):
        self._rng = random.Random(seed)  # noqa: S311 - benchmark data, not security
        self.subject_refs = [f"NW-PERSON-{i:07d}" for i in range(subjects)]
        self._subject_pseudonyms = [pseudonymiser.subject(ref) for ref in self.subject_refs]
        self._cases = cases
        self._pseudonymiser = pseudonymiser
        self._case_pseudonyms: dict[int, str] = {}
        #: which subjects some record names (queries pick among these)
        self.subject_used = bytearray(subjects)
        #: every event id, in publishing order
        self.event_ids: list[str] = []
        self._time = _START
        self._offsets = dict.fromkeys(_PUBLISHERS, 0)

    def records(self, total: int) -> Iterator[AuditRecord]:
        """Exactly ``total`` records, in the order the sink would write them."""
        pending: deque[tuple[int, AuditRecord]] = deque()
        emitted = 0
        event_no = 0
        while emitted < total:
            while pending and pending[0][0] <= event_no and emitted < total:
                yield pending.popleft()[1]
                emitted += 1
            for record in self._event(event_no, pending):
                if emitted >= total:
                    break
                yield record
                emitted += 1
            event_no += 1

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _case(self) -> str:
        n = self._rng.randrange(self._cases)
        pseudonym = self._case_pseudonyms.get(n)
        if pseudonym is None:
            pseudonym = self._case_pseudonyms[n] = self._pseudonymiser.case(f"NW-CASE-{n:07d}")
        return pseudonym

    def _event(self, event_no: int, pending: deque[tuple[int, AuditRecord]]) -> list[AuditRecord]:
        rng = self._rng
        self._time += timedelta(seconds=rng.expovariate(1 / _MEAN_EVENT_GAP_S))
        event_time = self._time - timedelta(seconds=rng.uniform(0.5, 30))
        event_id = self._uuid()
        self.event_ids.append(event_id)
        event_type, rule, basis, condition, purpose, fields = rng.choice(_KINDS)
        publisher = rng.choice(_PUBLISHERS)
        offset = self._offsets[publisher] = self._offsets[publisher] + 1
        named = rng.sample(range(len(self._subject_pseudonyms)), 2 if rng.random() < 0.5 else 1)
        for n in named:
            self.subject_used[n] = 1
        common: dict[str, Any] = {
            "event_id": event_id,
            "event_type": event_type,
            "event_time": event_time,
            "publisher": publisher,
            "protocol_hash": _PROTOCOL_HASH,
            "case_pseudonym": self._case(),
            "subject_pseudonyms": tuple(self._subject_pseudonyms[n] for n in named),
            "origin": f"hub.in.{publisher}/{offset % 3}/{offset}",
        }
        out: list[AuditRecord] = []
        recipients = rng.sample([p for p in _RECIPIENTS if p != publisher], rng.choice(_FANOUT))
        for i, party in enumerate(recipients):
            at = self._time + timedelta(microseconds=i)
            if rng.random() < _WITHHELD_SHARE:
                out.append(
                    AuditRecord(
                        **common,
                        record_id=record_id_for(event_id, party, AuditDecision.WITHHELD.value),
                        time=at,
                        recipient=party,
                        decision=AuditDecision.WITHHELD,
                        reason=_REASON_WITHHELD.format(type=event_type, party=party),
                    )
                )
                continue
            out.append(
                AuditRecord(
                    **common,
                    record_id=record_id_for(event_id, party, AuditDecision.DELIVERED.value),
                    time=at,
                    recipient=party,
                    decision=AuditDecision.DELIVERED,
                    rule=rule,
                    reason=f"rule {rule}",
                    lawful_basis=basis,
                    condition=condition,
                    purpose=purpose,
                    fields=fields,
                    payload_sha256=f"{rng.getrandbits(256):064x}",
                )
            )
            if rng.random() < _ACK_SHARE:
                pending.append(
                    (event_no + _ACK_DELAY_EVENTS, self._ack(event_id, event_type, party))
                )
        return out

    def _ack(self, event_id: str, event_type: str, party: str) -> AuditRecord:
        """A recipient's acknowledgement, as ``Router._acknowledge`` audits it."""
        offset = self._offsets.setdefault(party, 0) + 1
        self._offsets[party] = offset
        return AuditRecord(
            record_id=record_id_for(event_id, party, AuditDecision.ACKNOWLEDGED.value),
            time=self._time + timedelta(seconds=_ACK_DELAY_EVENTS * _MEAN_EVENT_GAP_S),
            event_id=event_id,
            event_type=event_type,
            publisher=party,
            recipient=party,
            decision=AuditDecision.ACKNOWLEDGED,
            reason=f"{party} acknowledged {event_id} (received)",
            protocol_hash=_PROTOCOL_HASH,
            origin=f"hub.in.{party}/0/{offset}",
            ack_event_id=self._uuid(),
        )


# -- a throwaway PostgreSQL server -----------------------------------------------------------


# -- one backend -------------------------------------------------------------------------------


@dataclass
class _Backend:
    """How to open, size and settle one backend's store."""

    name: str
    open: Callable[[], AuditStore]
    size_bytes: Callable[[], int]
    settle: Callable[[], None] = lambda: None
    notes: list[str] = field(default_factory=list)
    #: the SQLite file, whose rows the floor (``bench.sqlite_floor``) inserts again
    path: Path | None = None


def _sqlite_backend(directory: Path) -> _Backend:
    path = directory / "audit.sqlite3"

    def size() -> int:
        files = [path, path.with_name(path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists())

    return _Backend("sqlite", lambda: SQLiteAuditStore(path), size, path=path)


def _postgres_backend(url: str) -> _Backend:
    import psycopg

    from hub.audit.postgres import PostgresAuditStore

    def size() -> int:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row is not None else 0

    def settle() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE audit_records, audit_subjects, audit_checkpoints")

    return _Backend("postgresql", lambda: PostgresAuditStore(url), size, settle)


@contextlib.contextmanager
def _postgres(params: Mapping[str, Any], notes: list[str]) -> Iterator[_Backend | None]:
    """The PostgreSQL backend: the given database, a throwaway server, or ``None`` (noted)."""
    url = params.get("postgres_url")
    if url:
        backend = _postgres_backend(str(url))
        backend.notes.append("postgresql: the database given as postgres_url, as configured.")
        yield backend
        return
    bindir = find_pg_bindir()
    if bindir is None:
        notes.append(
            "postgresql: skipped, not measured: no PostgreSQL binaries (initdb/pg_ctl on PATH "
            "or in /usr/lib/postgresql/*/bin) and no postgres_url given."
        )
        yield None
        return
    server = PostgresServer(bindir, durable=True)  # appends are commit-bound: keep fsync
    try:
        server.start()
        backend = _postgres_backend(server.url())
        backend.notes.append(
            f"postgresql: a throwaway server from {bindir} with its default settings "
            "(fsync, synchronous_commit and full_page_writes on, shared_buffers 128 MB)."
        )
        yield backend
    finally:
        server.stop()


# -- measuring -------------------------------------------------------------------------------


def _tenths(samples: Sequence[int]) -> tuple[Stats, Stats]:
    """Stats of the first and the last tenth of ``samples`` (at least one sample each)."""
    tenth = max(1, len(samples) // 10)
    return Stats.of(list(samples[:tenth])), Stats.of(list(samples[-tenth:]))


class _Run:
    def __init__(self, params: Mapping[str, Any]) -> None:
        self.records = int(params["records"])
        self.batch = int(params["batch"])
        self.checkpoint_every = int(params["checkpoint_every"])
        self.queries = int(params["queries"])
        self.lookups = int(params["lookups"])
        self.seed = int(params["seed"])
        self.subjects = int(params["subjects"])
        self.cases = int(params["cases"])
        if self.records < 1 or self.batch < 1 or self.queries < 1 or self.lookups < 1:
            raise ValueError("audit bench: records, batch, queries and lookups must be >= 1")
        self.measurements: list[dict[str, Any]] = []
        self.rows: list[list[Any]] = []

    def record(self, backend: str, operation: str, **values: Any) -> None:
        self.measurements.append({"backend": backend, "operation": operation, **values})

    def backend(self, backend: _Backend) -> None:
        """Load, query, look up and verify one backend's store; record everything."""
        pseudonymiser = Pseudonymiser(os.urandom(32))
        signer = NoteSigner(_ORIGIN, Ed25519PrivateKey.generate())
        traffic = _Traffic(
            seed=self.seed, subjects=self.subjects, cases=self.cases, pseudonymiser=pseudonymiser
        )
        with contextlib.closing(backend.open()) as store:
            if store.size() != 0:
                raise RuntimeError(f"audit bench {backend.name}: expected an empty store")
            empty = backend.size_bytes()
            floor = None
            if backend.path is not None:
                floor = SQLiteFloor(backend.path, backend.path.parent)
            try:
                self._load(backend.name, store, AuditLog(store, signer=signer), traffic, floor)
            finally:
                if floor is not None:
                    floor.close()
        t0 = time.perf_counter()
        backend.settle()
        settle_s = time.perf_counter() - t0
        if backend.name == "postgresql":
            self.record(backend.name, "vacuum analyze", seconds=round(settle_s, 3))
            self.rows.append(
                [backend.name, "VACUUM ANALYZE after the load (not in it)", round(settle_s, 2),
                 None, "s", "stands in for autovacuum"]
            )  # fmt: skip
        rng = random.Random(self.seed + 1)  # noqa: S311 - benchmark sampling, not security
        # A fresh connection, as the CLI opens one.
        with contextlib.closing(backend.open()) as store:
            self._subjects(backend.name, store, pseudonymiser, traffic, rng)
            self._events(backend.name, store, traffic, rng)
            self._verify(backend.name, store, signer)
        size = backend.size_bytes()
        per_record = (size - empty) / self.records
        self.record(
            backend.name,
            "size on disk",
            bytes=size,
            empty_bytes=empty,
            bytes_per_record=round(per_record, 1),
            records=self.records,
        )
        self.rows.append(
            [backend.name, "size on disk", round(size / 2**20, 1), None, "MiB",
             f"{per_record:,.0f} B per record over the empty store's {empty / 2**20:,.1f} MiB"]
        )  # fmt: skip

    def _load(
        self,
        name: str,
        store: AuditStore,
        log: AuditLog,
        traffic: _Traffic,
        floor: SQLiteFloor | None,
    ) -> None:
        append_ns: list[int] = []
        checkpoint_ns: list[int] = []
        since_checkpoint = 0
        inserted = 0
        clock = time.perf_counter_ns

        def checkpoint() -> None:
            start = clock()
            log.checkpoint()
            checkpoint_ns.append(clock() - start)

        stream = traffic.records(self.records)
        gc.collect()
        while True:
            buffer = list(itertools.islice(stream, self.batch))
            if not buffer:
                break
            start = clock()
            added = store.append(buffer)
            append_ns.append(clock() - start)
            inserted += added
            since_checkpoint += added
            if floor is not None:
                floor.follow()  # the same rows again, SQLite alone (times itself)
            if self.checkpoint_every and since_checkpoint >= self.checkpoint_every:
                checkpoint()
                since_checkpoint = 0
        if self.checkpoint_every and since_checkpoint:
            checkpoint()  # the sink signs the tail after HUB_CHECKPOINT_INTERVAL
        if inserted != self.records:
            raise RuntimeError(f"audit bench {name}: stored {inserted} of {self.records} records")
        append_s = sum(append_ns) / 1e9
        checkpoint_s = sum(checkpoint_ns) / 1e9
        rate = self.records / append_s
        first, last = _tenths(append_ns)
        self.record(
            name,
            "append",
            records=self.records,
            batches=len(append_ns),
            batch_records=self.batch,
            seconds=round(append_s, 3),
            records_per_s=round(rate, 1),
            batch=Stats.of(append_ns).as_dict(),
            batch_first_tenth=first.as_dict(),
            batch_last_tenth=last.as_dict(),
        )
        self.rows.append(
            [name, f"append, {self.batch} records a batch", round(rate, 0), None, "records/s",
             f"{self.records:,} records in {append_s:,.1f} s; batch median "
             f"{first.median_us / 1000:,.1f} ms in the first tenth, "
             f"{last.median_us / 1000:,.1f} ms in the last"]
        )  # fmt: skip
        if checkpoint_ns:
            stats = Stats.of(checkpoint_ns)
            first, last = _tenths(checkpoint_ns)
            self.record(
                name,
                "checkpoint",
                checkpoints=len(checkpoint_ns),
                every=self.checkpoint_every,
                seconds=round(checkpoint_s, 3),
                **stats.as_dict(),
                first_tenth=first.as_dict(),
                last_tenth=last.as_dict(),
            )
            self.rows.append(
                [name, f"checkpoint every {self.checkpoint_every} records",
                 round(stats.median_us / 1000, 3), round(stats.p95_us / 1000, 3), "ms",
                 f"{len(checkpoint_ns):,} checkpoints, {checkpoint_s:,.1f} s in all; median "
                 f"{first.median_us / 1000:,.1f} ms in the first tenth, "
                 f"{last.median_us / 1000:,.1f} ms in the last"]
            )  # fmt: skip
        if floor is not None:
            self._floor(name, floor, rate)
        total_s = append_s + checkpoint_s
        self.record(name, "load", records=self.records, seconds=round(total_s, 3))
        self.rows.append(
            [name, "load (appends + checkpoints)", round(total_s, 1), None, "s",
             f"{self.records:,} records, {self.records / total_s:,.0f} records/s"]
        )  # fmt: skip

    def _floor(self, name: str, floor: SQLiteFloor, rate: float) -> None:
        """The SQLite floor's rates beside the store's (``bench.sqlite_floor``)."""
        measured = floor.measured()
        if measured["rows"] != self.records:
            raise RuntimeError(
                f"audit bench {name}: the floor inserted {measured['rows']} of {self.records} rows"
            )
        for operation, seconds, what in (
            ("floor: the store's tables", measured["store_tables_s"],
             "the store's rows, schema and settings, prebuilt: one executemany per table"),
            ("floor: bare log", measured["bare_log_s"],
             "(seq, record_id UNIQUE, canonical) only: no query index"),
        ):  # fmt: skip
            floor_rate = self.records / seconds
            ratio = rate / floor_rate
            self.record(
                name,
                operation,
                records=self.records,
                seconds=seconds,
                records_per_s=round(floor_rate, 1),
                store_ratio=round(ratio, 3),
            )
            self.rows.append(
                [name, f"{operation}, {self.batch} records a batch", round(floor_rate, 0), None,
                 "records/s", f"{what}; the store's append runs at {ratio:.2f} of it"]
            )  # fmt: skip

    def _subjects(
        self,
        name: str,
        store: AuditStore,
        pseudonymiser: Pseudonymiser,
        traffic: _Traffic,
        rng: random.Random,
    ) -> None:
        used = [i for i, flag in enumerate(traffic.subject_used) if flag]
        picked = [traffic.subject_refs[i] for i in rng.sample(used, min(len(used), self.queries))]
        warm = [traffic.subject_refs[i] for i in rng.sample(used, min(len(used), _WARMUP))]
        for ref in warm:
            reports.subject_access(store, pseudonymiser, ref)
        report_ns: list[int] = []
        query_ns: list[int] = []
        found: list[int] = []
        clock = time.perf_counter_ns
        for ref in picked:  # alternated, so a slow patch of the machine lands on both
            start = clock()
            report = reports.subject_access(store, pseudonymiser, ref)
            report_ns.append(clock() - start)
            pseudonym = pseudonymiser.subject(ref)
            start = clock()
            records = store.query(subject_pseudonym=pseudonym, limit=100_000)
            query_ns.append(clock() - start)
            found.append(len(records))
            if not records or report.subject_pseudonym != pseudonym:
                raise RuntimeError(f"audit bench {name}: subject {ref} has no records")
        mean = sum(found) / len(found)
        for operation, label, samples in (
            ("subject access", "subject access (reports.subject_access)", report_ns),
            ("subject query", "subject query (AuditStore.query)", query_ns),
        ):
            stats = Stats.of(samples)
            self.record(
                name,
                operation,
                subjects=len(samples),
                records_per_subject_mean=round(mean, 1),
                records_per_subject_max=max(found),
                **stats.as_dict(),
            )
            self.rows.append(
                [name, label, round(stats.median_us / 1000, 3), round(stats.p95_us / 1000, 3), "ms",
                 f"{len(samples)} subjects, {mean:,.1f} records each on average "
                 f"(max {max(found)})"]
            )  # fmt: skip

    def _events(self, name: str, store: AuditStore, traffic: _Traffic, rng: random.Random) -> None:
        picked = rng.sample(traffic.event_ids, min(len(traffic.event_ids), self.lookups))
        for event_id in rng.sample(traffic.event_ids, min(len(traffic.event_ids), _WARMUP)):
            reports.recipients(store, event_id)
        samples: list[int] = []
        found: list[int] = []
        clock = time.perf_counter_ns
        for event_id in picked:
            start = clock()
            got = reports.recipients(store, event_id)
            samples.append(clock() - start)
            found.append(len(got))
        stats = Stats.of(samples)
        mean = sum(found) / len(found)
        self.record(
            name, "event recipients", events=len(samples), recipients_mean=round(mean, 2),
            **stats.as_dict(),
        )  # fmt: skip
        self.rows.append(
            [name, "event recipients (reports.recipients)", round(stats.median_us / 1000, 3),
             round(stats.p95_us / 1000, 3), "ms",
             f"{len(samples)} events, {mean:.1f} recipients each on average"]
        )  # fmt: skip

    def _verify(self, name: str, store: AuditStore, signer: NoteSigner) -> None:
        log = AuditLog(store, signer=signer)
        gc.collect()
        start = time.perf_counter()
        report = log.verify()
        seconds = time.perf_counter() - start
        if not report.ok or report.size != self.records:
            raise RuntimeError(
                f"audit bench {name}: verify expected {self.records} records and no findings, "
                f"got {report.size} and {report.findings[:3]}"
            )
        self.record(
            name,
            "verify",
            records=report.size,
            checkpoints_checked=report.checkpoints_checked,
            seconds=round(seconds, 3),
            records_per_s=round(report.size / seconds, 1),
        )
        self.rows.append(
            [name, "verify (AuditLog.verify, as hub audit verify)", round(seconds, 2), None, "s",
             f"{report.size:,} records, {report.checkpoints_checked:,} checkpoints, "
             f"{report.size / seconds:,.0f} records/s"]
        )  # fmt: skip


def run(params: Mapping[str, Any]) -> Measured:
    """Build, query and verify an audit store of ``records`` records on every backend asked."""
    backends = [str(b) for b in params["backends"]]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise ValueError(f"audit bench backends: expected some of {BACKENDS}, got {unknown}")
    bench = _Run(params)
    notes = [
        f"{bench.records:,} synthetic audit records shaped like the router's (3-5 recipients "
        "an event, 1 in 5 withheld, 60 % of deliveries acknowledged; 1-2 subjects an event "
        f"from {bench.subjects:,}, a case from {bench.cases:,}), seed {bench.seed}.",
        f"append: AuditStore.append in batches of {bench.batch} (the sink's batch) and "
        f"AuditLog.checkpoint after every {bench.checkpoint_every} new records "
        "(HUB_CHECKPOINT_EVERY); each call timed alone with perf_counter, record building "
        "outside the clock.",
        "SQLite floor (bench.sqlite_floor), in the same load, batch by batch after each append: "
        "the rows the store just wrote, read back outside the clock and inserted into a twin "
        "file with the store's schema and settings (one executemany per table, one "
        "transaction), and into a bare log of (seq, record_id UNIQUE, canonical); what SQLite "
        "alone costs for these rows, with and without the query indexes.",
        f"subject access: reports.subject_access (hub audit sar) for {bench.queries} random "
        "subjects in the log, alternated with the bare AuditStore.query by pseudonym; event "
        f"recipients: reports.recipients (hub audit recipients) for {bench.lookups} random "
        f"events; {_WARMUP} untimed warm-up calls each, on a fresh store connection.",
        "verify: AuditLog.verify() once over the whole log (hub audit verify: re-derive every "
        "row, rebuild the Merkle tree, check every checkpoint).",
        "SQLite: WAL, synchronous=FULL, as the hub runs it; size = file + WAL. PostgreSQL: "
        "default durability, VACUUM ANALYZE after the load; size = pg_database_size.",
    ]
    with tempfile.TemporaryDirectory(prefix="hub-bench-audit-") as tmp:
        if "sqlite" in backends:
            bench.backend(_sqlite_backend(Path(tmp)))
        if "postgresql" in backends:
            with _postgres(params, notes) as backend:
                if backend is not None:
                    bench.backend(backend)
                    notes += backend.notes
    return Measured(measurements=bench.measurements, columns=COLUMNS, rows=bench.rows, notes=notes)


BENCHMARK = Benchmark(
    name="audit",
    summary="The audit store at scale (SQLite and PostgreSQL): load rate, subject access and "
    "breach lookups, and hub audit verify, over a million records.",
    run=run,
    defaults={
        "backends": list(BACKENDS),
        "records": 1_000_000,
        "batch": 500,
        "checkpoint_every": 500,
        "subjects": 50_000,
        "cases": 100_000,
        "queries": 50,
        "lookups": 50,
        "seed": 20,
        "postgres_url": None,
    },
    quick={
        "records": 2_000,
        "subjects": 100,
        "cases": 200,
        "queries": 5,
        "lookups": 5,
    },
)
