"""``verify`` reports every corruption of a real store as tampering, and never raises.

A property test: random columns of random rows of a real SQLite store (and of a PostgreSQL
one, as far as the decode path is shared) are changed in value or in type, set to NULL,
deleted, duplicated or reordered, as someone with the database file would; whatever was
done, ``AuditLog.verify`` returns a report, and when anything stored changed the report
says so with a position.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.audit.checkpoint import NoteSigner
from hub.audit.log import AuditLog, VerifyReport
from hub.audit.postgres import PostgresAuditStore
from hub.audit.sqlite import SQLiteAuditStore
from hub.audit.store import AuditStore
from hub.models import AuditDecision, AuditRecord, record_id_for
from tests.postgres import PostgresServer, find_pg_bindir

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
SIGNER = NoteSigner("test.hub/audit", Ed25519PrivateKey.generate())
ROWS = 9
#: every column of a stored record but ``seq`` (the row's identity)
COLUMNS = (
    "position", "record_id", "time", "event_id", "publisher", "recipient", "decision",
    "case_pseudonym", "canonical",
)  # fmt: skip
PG_COLUMNS = tuple(c for c in COLUMNS if c != "position")  # seq is the leaf index there


def records() -> list[AuditRecord]:
    """Records of every shape the hub writes: delivered, withheld, rejected, consulted."""
    out = []
    for i in range(ROWS):
        decision = list(AuditDecision)[i % 4]
        event = f"evt-{i // 2}"
        recipient = None if decision is AuditDecision.REJECTED else f"party-{i % 3}"
        out.append(
            AuditRecord(
                record_id=record_id_for(event, recipient, f"{decision.value}/{i}"),
                time=T0 + dt.timedelta(seconds=i),
                event_id=event,
                event_type="uk.csp.marac.flag.raised.v1" if i % 3 else None,
                publisher="police" if i % 2 else None,
                recipient=recipient,
                decision=decision,
                rule="marac-to-housing" if i % 2 else None,
                reason=f"rule matched {i}" if i % 4 else 'caf\u00e9 \u2014 "quoted"',
                lawful_basis="UK GDPR 6(1)(e)",
                # packed format 2 (with a gateway) and format 1 (without) both
                gateway="Crime and Disorder Act 1998 s115" if i % 2 else None,
                fields=("case_ref", "risk_level") if i % 2 else (),
                case_pseudonym=f"pc_{i:032x}" if i % 3 else None,
                subject_pseudonyms=tuple(f"ps_{i + k:032x}" for k in range(i % 3)),
            )
        )
    return out


def seed(store: AuditStore) -> None:
    """Two appends with a checkpoint after each: every row is under a signed checkpoint."""
    log = AuditLog(store, signer=SIGNER)
    batch = records()
    store.append(batch[:5])
    log.checkpoint()
    store.append(batch[5:])
    log.checkpoint()
    assert log.verify().ok


def check(report: VerifyReport, *, changed: bool, done: object) -> None:
    """Found when something changed, and each finding placed."""
    if changed:
        assert not report.ok, f"a change to the stored log went unreported: {done}"
    for finding in report.findings:
        assert finding.index is not None or finding.kind == "signature", finding


# -- mutations -----------------------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.binary(max_size=40),
)
ROW = st.integers(min_value=0, max_value=ROWS - 1)
MUTATION = st.one_of(
    st.tuples(st.just("set"), ROW, st.sampled_from(COLUMNS), ANY_VALUE),
    st.tuples(st.just("tweak"), ROW, st.sampled_from(COLUMNS), st.integers(0, 200)),
    st.tuples(st.just("delete"), ROW),
    st.tuples(st.just("duplicate"), ROW),
    st.tuples(st.just("swap"), ROW, ROW, st.booleans()),
    st.tuples(st.just("subject-set"), ROW, ANY_VALUE),
    st.tuples(st.just("subject-delete"), ROW),
    st.tuples(st.just("subject-add"), ROW, ROW),
    st.tuples(st.just("note-set"), st.integers(0, 1), ANY_VALUE),
    st.tuples(st.just("note-tweak"), st.integers(0, 1), st.integers(0, 200)),
    st.tuples(st.just("size-set"), st.integers(0, 1), ANY_VALUE),
    st.tuples(st.just("value-set"), st.integers(0, 20), ANY_VALUE),
)


def _tweaked(value: Any, at: int) -> Any:
    """The same type, one character or byte changed (or one more when empty)."""
    if isinstance(value, bytes) and value:
        i = at % len(value)
        return value[:i] + bytes([value[i] ^ 0x01]) + value[i + 1 :]
    if isinstance(value, str) and value:
        i = at % len(value)
        return value[:i] + chr(ord(value[i]) ^ 0x01) + value[i + 1 :]
    if isinstance(value, int):
        return value + 1 + at
    return value


def _update(column: str, mark: str = "?") -> str:
    """``UPDATE audit_records SET <column>`` of one seq (column names are ours, not input)."""
    return f"UPDATE audit_records SET {column} = {mark} WHERE seq = {mark}"  # noqa: S608


def _select(column: str, mark: str = "?") -> str:
    return f"SELECT {column} FROM audit_records WHERE seq = {mark}"  # noqa: S608


def _sqlite_mutate(conn: sqlite3.Connection, mutation: tuple[Any, ...]) -> None:
    seqs = [s for (s,) in conn.execute("SELECT seq FROM audit_records ORDER BY seq")]
    subjects = conn.execute("SELECT pseudonym, seq FROM audit_subjects ORDER BY seq").fetchall()
    notes = [i for (i,) in conn.execute("SELECT id FROM audit_checkpoints ORDER BY id")]
    kind, *args = mutation
    if kind in {"set", "tweak", "delete", "duplicate", "swap"} and not seqs:
        return
    if kind == "set":
        row, column, value = args
        conn.execute(_update(column), (value, seqs[row % len(seqs)]))
    elif kind == "tweak":
        row, column, at = args
        seq = seqs[row % len(seqs)]
        (value,) = conn.execute(_select(column), (seq,)).fetchone()
        conn.execute(_update(column), (_tweaked(value, at), seq))
    elif kind == "delete":
        conn.execute("DELETE FROM audit_records WHERE seq = ?", (seqs[args[0] % len(seqs)],))
    elif kind == "duplicate":
        # a copy of the row after the last one (its id changed: record_id is UNIQUE)
        conn.execute(
            f"INSERT INTO audit_records (seq, {', '.join(COLUMNS)}) SELECT "  # noqa: S608
            "(SELECT MAX(seq) FROM audit_records) + 1, "
            "(SELECT MAX(position) FROM audit_records) + 1, record_id || '-copy', "
            f"{', '.join(COLUMNS[2:])} FROM audit_records WHERE seq = ?",
            (seqs[args[0] % len(seqs)],),
        )
    elif kind == "swap":
        a, b = seqs[args[0] % len(seqs)], seqs[args[1] % len(seqs)]
        if a == b:
            return
        top = max(seqs) + 100
        for seq, to in ((a, top), (b, a), (top, b)):
            conn.execute("UPDATE audit_records SET seq = ? WHERE seq = ?", (to, seq))
            if args[2]:
                conn.execute("UPDATE audit_subjects SET seq = ? WHERE seq = ?", (to, seq))
    elif kind.startswith("subject") and subjects:
        pseudonym, seq = subjects[args[0] % len(subjects)]
        if kind == "subject-set":
            conn.execute(
                "UPDATE audit_subjects SET pseudonym = ? WHERE pseudonym = ? AND seq = ?",
                (args[1], pseudonym, seq),
            )
        elif kind == "subject-delete":
            conn.execute(
                "DELETE FROM audit_subjects WHERE pseudonym = ? AND seq = ?", (pseudonym, seq)
            )
        elif seqs:
            conn.execute(
                "INSERT OR IGNORE INTO audit_subjects (pseudonym, seq) VALUES (?, ?)",
                (pseudonym, seqs[args[1] % len(seqs)]),
            )
    elif kind == "value-set":  # a value the packed rows share (a rule, a lawful basis)
        ids = [i for (i,) in conn.execute("SELECT id FROM audit_values ORDER BY id")]
        if ids:
            conn.execute(
                "UPDATE audit_values SET value = ? WHERE id = ?", (args[1], ids[args[0] % len(ids)])
            )
    elif kind.startswith(("note", "size")) and notes:
        ident = notes[args[0] % len(notes)]
        column = "tree_size" if kind == "size-set" else "note"
        if kind == "note-tweak":
            (value,) = conn.execute(
                "SELECT note FROM audit_checkpoints WHERE id = ?", (ident,)
            ).fetchone()
            conn.execute(
                "UPDATE audit_checkpoints SET note = ? WHERE id = ?",
                (_tweaked(value, args[1]), ident),
            )
        else:
            conn.execute(
                f"UPDATE audit_checkpoints SET {column} = ? WHERE id = ?",  # noqa: S608
                (args[1], ident),
            )


def _sqlite_dump(path: Path) -> list[Any]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.text_factory = bytes  # a mutation may leave text that is not UTF-8: compare bytes
        return [
            conn.execute(f"SELECT *, typeof({c}) FROM {t} ORDER BY 1").fetchall()  # noqa: S608
            for t, c in (
                ("audit_records", "canonical"),
                ("audit_subjects", "pseudonym"),
                ("audit_checkpoints", "note"),
                ("audit_values", "value"),
            )
        ]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded SQLite file (WAL-free: every example starts from a copy)."""
    path = tmp_path_factory.mktemp("pristine") / "audit.sqlite3"
    with SQLiteAuditStore(path) as store:
        seed(store)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    return path


@settings(
    max_examples=int(os.environ.get("HUB_TAMPER_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_sqlite_verify_reports_every_corruption_and_never_raises(
    pristine: Path, tmp_path: Path, mutations: list[tuple[Any, ...]]
) -> None:
    path = tmp_path / f"{os.urandom(6).hex()}.sqlite3"
    shutil.copyfile(pristine, path)
    before = _sqlite_dump(path)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for mutation in mutations:
            with contextlib.suppress(sqlite3.IntegrityError):  # NOT NULL, UNIQUE: not done
                _sqlite_mutate(conn, mutation)
    changed = _sqlite_dump(path) != before
    with SQLiteAuditStore(path) as store:
        report = AuditLog(store, signer=SIGNER).verify()
    check(report, changed=changed, done=mutations)


# -- the command, on the case --------------------------------------------------------


def test_hub_audit_verify_reports_a_column_of_another_type_at_its_index(
    tmp_path: Path,
) -> None:
    """A recipient stored as a BLOB crashed verify with a TypeError: now it is tampering."""
    from hub.audit.checkpoint import load_log_key, log_signer
    from hub.settings import HubSettings

    data = tmp_path / "data"
    settings = HubSettings(data_dir=data)
    load_log_key(settings, create=True)
    with SQLiteAuditStore(data / "audit.sqlite3") as store:
        store.append(records())
        AuditLog(store, signer=log_signer(settings)).checkpoint()
    with contextlib.closing(sqlite3.connect(data / "audit.sqlite3")) as conn, conn:
        conn.execute("UPDATE audit_records SET recipient = X'00ff' WHERE position = 4")
        conn.execute("UPDATE audit_records SET canonical = 'plain text' WHERE position = 6")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("hub")), "audit", "verify"],
        env={**env, "HUB_DATA_DIR": str(data)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "record: index 4: " in result.stderr
    assert "record: index 6: " in result.stderr
    assert result.stderr.splitlines()[-1].endswith("at index 4")


# -- PostgreSQL: the shared decode path ----------------------------------------------------

NO_PG = pytest.mark.skipif(find_pg_bindir() is None, reason="PostgreSQL binaries not found")
#: column type changes an owner of the database could make (the whole column at once)
PG_RETYPES = (
    "ALTER TABLE audit_records ALTER COLUMN canonical TYPE text USING encode(canonical, 'hex')",
    "ALTER TABLE audit_records ALTER COLUMN recipient TYPE bytea USING convert_to(recipient, 'UTF8')",  # noqa: E501
    "ALTER TABLE audit_records ALTER COLUMN time TYPE text USING time::text",
    "ALTER TABLE audit_records ALTER COLUMN decision TYPE bytea USING convert_to(decision, 'UTF8')",
    "ALTER TABLE audit_subjects ALTER COLUMN pseudonym TYPE bytea USING convert_to(pseudonym, 'UTF8')",  # noqa: E501
    "ALTER TABLE audit_checkpoints ALTER COLUMN note TYPE bytea USING convert_to(note, 'UTF8')",
)
PG_VALUE = st.one_of(st.none(), st.text(max_size=40).map(lambda s: s.replace("\x00", "")))
PG_MUTATION = st.one_of(
    st.tuples(st.just("set"), ROW, st.sampled_from(PG_COLUMNS[:-1]), PG_VALUE),
    st.tuples(st.just("tweak"), ROW, st.sampled_from(PG_COLUMNS), st.integers(0, 200)),
    st.tuples(st.just("delete"), ROW),
    st.tuples(st.just("swap"), ROW, ROW, st.booleans()),
    st.tuples(st.just("subject-delete"), ROW),
    st.tuples(st.just("retype"), st.sampled_from(PG_RETYPES)),
)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PostgresServer]:
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found")
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _pg_mutate(conn: psycopg.Connection[Any], mutation: tuple[Any, ...]) -> None:
    seqs = [s for (s,) in conn.execute("SELECT seq FROM audit_records ORDER BY seq")]
    kind, *args = mutation
    if kind == "retype":
        conn.execute(args[0])
        return
    if not seqs:
        return
    seq = seqs[args[0] % len(seqs)]
    if kind == "set":
        conn.execute(_update(args[1], "%s"), (args[2], seq))
    elif kind == "tweak":
        row = conn.execute(_select(args[1], "%s"), (seq,)).fetchone()
        value = _tweaked(row[0] if row else None, args[2])
        if isinstance(value, str):
            value = value.replace("\x00", "\x01")
        conn.execute(_update(args[1], "%s"), (value, seq))
    elif kind == "delete":
        conn.execute("DELETE FROM audit_subjects WHERE seq = %s", (seq,))
        conn.execute("DELETE FROM audit_records WHERE seq = %s", (seq,))
    elif kind == "swap":  # seq is an identity column here: swap everything else
        other = seqs[args[1] % len(seqs)]
        if other == seq:
            return
        columns = ", ".join(PG_COLUMNS)
        read = f"SELECT {columns} FROM audit_records WHERE seq = %s"  # noqa: S608
        write = f"UPDATE audit_records SET ({columns}) = ROW(%s) WHERE seq = %s"  # noqa: S608
        a, b = (tuple(conn.execute(read, (s,)).fetchone() or ()) for s in (seq, other))
        conn.execute(_update("record_id", "%s"), ("swap-in-progress", seq))
        for values, target in ((a, other), (b, seq)):
            marks = ", ".join(["%s"] * len(values))
            conn.execute(write.replace("ROW(%s)", f"ROW({marks})"), (*values, target))
        if args[2]:
            named = {
                s: [
                    p
                    for (p,) in conn.execute(
                        "SELECT pseudonym FROM audit_subjects WHERE seq = %s", (s,)
                    )
                ]
                for s in (seq, other)
            }
            conn.execute("DELETE FROM audit_subjects WHERE seq = ANY(%s)", ([seq, other],))
            for s_from, s_to in ((seq, other), (other, seq)):
                for p in named[s_from]:
                    conn.execute(
                        "INSERT INTO audit_subjects (pseudonym, seq) VALUES (%s, %s)", (p, s_to)
                    )
    elif kind == "subject-delete":
        conn.execute("DELETE FROM audit_subjects WHERE seq = %s", (seq,))


def _pg_dump(url: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        return [
            conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()  # noqa: S608
            for t in ("audit_records", "audit_subjects", "audit_checkpoints")
        ] + [
            conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() ORDER BY 1, 2"
            ).fetchall()
        ]


@NO_PG
@settings(
    max_examples=int(os.environ.get("HUB_TAMPER_PG_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mutations=st.lists(PG_MUTATION, min_size=1, max_size=3))
def test_postgres_verify_reports_every_corruption_and_never_raises(
    pg_server: PostgresServer, mutations: list[tuple[Any, ...]]
) -> None:
    url = pg_server.create_database()
    try:
        with contextlib.closing(PostgresAuditStore(url)) as store:
            seed(store)
        before = _pg_dump(url)
        with psycopg.connect(url, autocommit=True) as conn:
            for mutation in mutations:
                # a mutation the schema refuses (a constraint, a cast) is simply not done
                with contextlib.suppress(psycopg.Error), conn.transaction():
                    _pg_mutate(conn, mutation)
        changed = _pg_dump(url) != before
        with contextlib.closing(PostgresAuditStore(url)) as store:
            report = AuditLog(store, signer=SIGNER).verify()
        check(report, changed=changed, done=mutations)
    finally:
        with contextlib.suppress(psycopg.Error):
            pg_server.drop_database(url)


# -- the tail: records no checkpoint covers yet --------------------------------------------


def test_verify_counts_the_records_no_signed_checkpoint_covers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from hub.audit.checkpoint import log_signer
    from hub.cli.audit import app
    from hub.settings import HubSettings

    data = tmp_path / "data"
    settings = HubSettings(data_dir=data)
    with SQLiteAuditStore(data / "audit.sqlite3") as store:
        log = AuditLog(store, signer=log_signer(settings, create=True))
        batch = records()
        store.append(batch[:5])
        log.checkpoint()
        store.append(batch[5:])
        report = log.verify()
        assert report.ok
        assert (report.unsigned, report.to_json()["unsigned_records"]) == (4, 4)
        # a party's copy of a checkpoint covers records as a stored one does
        copy = log.checkpoint()
        store.append([batch[0].model_copy(update={"record_id": "one-more"})])
        assert log.verify(checkpoints=[copy]).unsigned == 1

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUB_DATA_DIR", str(data))
    text = CliRunner().invoke(app, ["verify"])
    assert text.exit_code == 0, text.stderr
    assert "1 records not yet under a signed checkpoint (the newest 1)" in text.stdout
    with SQLiteAuditStore(data / "audit.sqlite3") as store:
        AuditLog(store, signer=log_signer(settings)).checkpoint()
    again = CliRunner().invoke(app, ["verify"])
    assert "every record is under a signed checkpoint" in again.stdout
