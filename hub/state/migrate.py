"""Copy a hub's SQLite state into PostgreSQL: ``hub state migrate``, once, before switching.

A hub that ran on one host keeps its shared state in the data dir. Setting ``HUB_STATE_URL``
alone would start it from empty registers and an empty keyring (``hub.state`` says why that
is never done silently). This copies, in one PostgreSQL transaction, every table of:

- the seen-event store (``seen-events.sqlite3``);
- the workflow registers (``workflows.sqlite3``: MARAC flags, bans, agreement alerts, ASB Case
  Reviews, s17A, the federation's ownership of transferred cases);
- the case keyring (``keys/cases/keyring.sqlite3``: keys and shred tombstones) and the legal
  holds (``keys/holds.json``).

Rows already in PostgreSQL (the same key) are kept, so an interrupted migration can be run
again. A tombstone wins over a key: a key whose case is shredded in either store is not
copied. It runs under the data dir's lock (``hub.agents.datadir_lock``), so never while a hub
is writing the files. The SQLite files are left as they were: delete them, with the backups
of the data dir, once the hub runs on PostgreSQL (a case key must not outlive its shred in
an old file).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

from hub.agents.datadir_lock import DataDirLock
from hub.errors import ConfigError
from hub.settings import HubSettings
from hub.state import state_url

__all__ = ["migrate"]

_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)")


def _stores(settings: HubSettings) -> list[tuple[Path, Callable[[], Any], Sequence[str]]]:
    """(SQLite file, its PostgreSQL twin's opener, the store's DDL) for every store."""
    from hub.agents.seen import SeenEvents
    from hub.federation.ownership import OwnershipRegister
    from hub.federation.proofs import ProofRegister
    from hub.keys.cases import _DDL as KEYRING_DDL
    from hub.keys.cases import KEYRING_FILE
    from hub.state import (
        open_agreement_alerts,
        open_asb_register,
        open_ban_register,
        open_case_keys,
        open_flag_register,
        open_ownership_register,
        open_proof_register,
        open_seen,
        open_strategic_register,
    )
    from hub.strategic.register import StrategicRegister
    from hub.workflows.agreements import AgreementAlerts
    from hub.workflows.asb.register import AsbRegister
    from hub.workflows.bans import BanRegister
    from hub.workflows.register import FlagRegister

    registers = settings.register_path
    return [
        (settings.seen_path, lambda: open_seen(settings), SeenEvents.ddl),
        (registers, lambda: open_flag_register(settings), FlagRegister.ddl),
        (registers, lambda: open_ban_register(settings), BanRegister.ddl),
        (registers, lambda: open_agreement_alerts(settings), AgreementAlerts.ddl),
        (registers, lambda: open_asb_register(settings), AsbRegister.ddl),
        (registers, lambda: open_strategic_register(settings), StrategicRegister.ddl),
        (registers, lambda: open_ownership_register(settings), OwnershipRegister.ddl),
        (registers, lambda: open_proof_register(settings), ProofRegister.ddl),
        (
            settings.keys_dir / "cases" / KEYRING_FILE,
            lambda: open_case_keys(settings, pseudonymise=str),
            KEYRING_DDL,
        ),
    ]


def migrate(settings: HubSettings) -> dict[str, dict[str, int]]:
    """Copy every SQLite store of ``settings.data_dir`` into ``HUB_STATE_URL``'s database.

    Returns:
        Per table: ``rows`` in SQLite and how many were ``copied`` (the rest were there).

    Raises:
        ConfigError: ``HUB_STATE_URL`` is not a PostgreSQL URL, or a hub is running on this
            data dir.
        RegisterError, KeyStoreError: a store cannot be read or written.
    """
    url = state_url(settings)
    if url is None:
        raise ConfigError(
            "hub state migrate: expected HUB_STATE_URL=postgresql://... (the database to copy "
            "the data dir's state into), got it unset"
        )
    lock = DataDirLock(settings.data_dir, state_file=settings.state_file)
    lock.acquire()  # no hub writes the files meanwhile
    try:
        return _copy_all(settings, url)
    finally:
        lock.release()


def _copy_all(settings: HubSettings, url: str) -> dict[str, dict[str, int]]:
    import psycopg

    from hub.agents.seen import SeenEvents
    from hub.audit.postgres import redacted_url
    from hub.keys.cases import CaseKeys
    from hub.workflows.pg_state import libpq_url
    from hub.workflows.sqlite_state import RegisterError

    # bring the files to this version's layout first (an older seen store's columns, per-case
    # key files of an older keyring), as opening them in a hub would
    if settings.seen_path.exists():
        SeenEvents(settings.seen_path).close()
    if (settings.keys_dir / "cases").is_dir():
        keyring = CaseKeys(settings.keys_dir, pseudonymise=str)
        keyring.live_cases()
        keyring.close()
    done: dict[str, dict[str, int]] = {}
    sources: list[tuple[Path, list[str]]] = []
    for path, open_twin, ddl in _stores(settings):
        twin = open_twin()  # creates the PostgreSQL tables
        twin.close()
        if path.exists():
            sources.append((path, [m.group(1) for s in ddl if (m := _TABLE.search(s))]))
    reading = None
    try:
        with psycopg.connect(libpq_url(url)) as pg, pg.transaction():
            for path, tables in sources:
                reading = path
                with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                    for table in tables:
                        done[table] = _copy(db, pg, table)
                reading = None
            done["legal_holds"] = _copy_holds(settings, pg)
            # a tombstone wins over a key, whichever store held which
            pg.execute("DELETE FROM case_keys WHERE name IN (SELECT name FROM shredded)")
    except sqlite3.Error as exc:  # one transaction: nothing was copied
        raise RegisterError(
            f"hub state migrate: {reading}: expected a readable SQLite store, got {exc}; "
            "nothing was copied (restore the file from a backup, or move it aside if it holds "
            "nothing to keep, and run it again)"
        ) from exc
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RegisterError(
            f"hub state migrate: {redacted_url(url)}: {first}; nothing was copied"
        ) from exc
    return done


def _copy(db: sqlite3.Connection, pg: Any, table: str) -> dict[str, int]:
    """One table's rows, by column name; rows whose key PostgreSQL holds are kept as they are."""
    from psycopg import sql

    found = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    if found is None:  # a file from before this table existed
        return {"rows": 0, "copied": 0}
    # names from the operator's file are identifiers, quoted on both sides, never SQL text
    columns = [str(row[0]) for row in db.execute("SELECT name FROM pragma_table_info(?)", (table,))]
    listed = ", ".join(_sqlite_identifier(c) for c in columns)
    rows = db.execute(f"SELECT {listed} FROM {_sqlite_identifier(table)}").fetchall()  # noqa: S608 - quoted identifiers
    copied = 0
    if rows:
        insert = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            sql.SQL(", ").join([sql.Placeholder()] * len(columns)),
        )
        with pg.cursor() as cur:
            for row in rows:
                cur.execute(insert, row)
                copied += cur.rowcount
    return {"rows": len(rows), "copied": copied}


def _sqlite_identifier(name: str) -> str:
    """``name`` as an SQLite identifier: double-quoted, its own quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def _copy_holds(settings: HubSettings, pg: Any) -> dict[str, int]:
    from hub.keys.cases import CaseKeys

    holds = CaseKeys(settings.keys_dir, pseudonymise=str).holds()  # reads holds.json only
    copied = 0
    with pg.cursor() as cur:
        for hold in holds:
            cur.execute(
                "INSERT INTO legal_holds VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (hold.case, hold.reason, hold.by, hold.placed_at.isoformat()),
            )
            copied += cur.rowcount
    return {"rows": len(holds), "copied": copied}
