"""``hub state migrate``: a one-host hub's SQLite state copied into PostgreSQL (issue 22).

Stores filled through their SQLite classes, as a hub on one host leaves them, are copied
by the command into a fresh database and read back through the PostgreSQL twins: the same
answers. Running it again copies nothing more, a tombstone wins over a key, and a running
hub (the data dir's lock held) is refused.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.agents.datadir_lock import DataDirLock
from hub.agents.seen import Claim
from hub.cli.main import app
from hub.settings import HubSettings
from hub.state import open_ban_register, open_case_keys, open_flag_register, open_seen
from hub.workflows.bans import BAN_TYPE
from tests.unit.conftest import NO_PG

pytestmark = NO_PG

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
ORIGIN = "hub.in.police.west-mercia/0/17"


def pseudonym(ref: str) -> str:
    return f"case_{ref.replace('-', '_')}"


def fill(settings: HubSettings) -> None:
    """State a one-host hub leaves in its data dir."""
    with open_seen(settings) as seen:
        seen.remember_many([Claim(f"evt-{i}", ORIGIN, T0, recipients=("fire",)) for i in range(5)])
    with open_flag_register(settings) as flags:
        flags.record(case_ref="M-1", subject_ref="S-1", subject_pseudonym="p1", status="active",
                     review_date=dt.date(2025, 9, 1), at=T0, event_id="e1",
                     event_type="uk.csp.marac.flag.raised.v1")  # fmt: skip
        flags.mark_alert("a1", "review-due", "M-1", T0)
    with open_ban_register(settings) as bans:
        data = {"ban_ref": "B-1", "scheme": "redditch", "incident_type": "violence",
                "ban_start": "2025-03-01", "ban_end": "2025-09-01", "subject": {}}  # fmt: skip
        bans.record(BAN_TYPE, data, publisher="pub.a", at=T0, event_id="e2")
    keys = open_case_keys(settings, pseudonymise=pseudonym)
    keys.key_for("C-KEPT")
    keys.key_for("C-HELD")
    keys.key_for("C-GONE")
    keys.add_hold("C-HELD", "DHR", "ig")
    keys.shred("C-GONE")
    keys.close()


def test_migrate_copies_every_store_and_can_run_again(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = HubSettings(data_dir=tmp_path / "data")
    fill(local)
    kept = open_case_keys(local, pseudonymise=pseudonym)
    key = kept.key_for("C-KEPT")
    kept.close()
    monkeypatch.setenv("HUB_DATA_DIR", str(local.data_dir))
    monkeypatch.setenv("HUB_STATE_URL", postgres_url)

    result = CliRunner().invoke(app, ["state", "migrate", "--json"])
    assert result.exit_code == 0, result.output
    counts = {o["table"]: o for o in map(json.loads, result.stdout.splitlines())}
    assert counts["seen_events"] == {"table": "seen_events", "rows": 5, "copied": 5}
    assert counts["marac_flags"]["copied"] == 1
    assert counts["legal_holds"]["copied"] == 1

    shared = HubSettings(data_dir=tmp_path / "other-host", state_url=postgres_url)
    with open_seen(shared) as seen:
        assert seen.count() == 5
        assert seen.first("evt-3") == ORIGIN
        assert seen.delivered("evt-3", "fire") == {("police.west-mercia", None)}
    with open_flag_register(shared) as flags:
        flag = flags.flag("M-1")
        assert flag is not None
        assert (flag.status, flag.review_date) == ("active", dt.date(2025, 9, 1))
        assert flags.alert_sent("a1")
    with open_ban_register(shared) as bans:
        ban = bans.ban("B-1")
        assert ban is not None
        assert bans.started_by("e2", "B-1")
    cases = open_case_keys(shared, pseudonymise=pseudonym)
    try:
        assert cases.key_for("C-KEPT") == key  # the escrow secret survives the move
        assert cases.is_shredded("C-GONE")
        assert [h.case for h in cases.holds()] == [pseudonym("C-HELD")]
        assert cases.live_cases() == sorted([pseudonym("C-KEPT"), pseudonym("C-HELD")])
    finally:
        cases.close()

    again = CliRunner().invoke(app, ["state", "migrate", "--json"])
    assert again.exit_code == 0, again.output
    assert all(json.loads(line)["copied"] == 0 for line in again.stdout.splitlines())


def test_migrate_refuses_while_a_hub_runs_and_without_a_url(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("HUB_DATA_DIR", str(data_dir))
    unset = CliRunner().invoke(app, ["state", "migrate"])
    assert unset.exit_code == 1
    assert "expected HUB_STATE_URL=postgresql://" in unset.stderr
    assert "Traceback" not in unset.output
    monkeypatch.setenv("HUB_STATE_URL", postgres_url)
    running = DataDirLock(data_dir)
    running.acquire()  # as `hub up` holds it
    try:
        refused = CliRunner().invoke(app, ["state", "migrate"])
    finally:
        running.release()
    assert refused.exit_code == 1
    assert "Traceback" not in refused.output


def test_migrate_of_an_unreadable_sqlite_file_is_one_line_and_copies_nothing(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    settings = HubSettings(data_dir=data_dir)
    settings.register_path.parent.mkdir(parents=True, exist_ok=True)
    settings.register_path.write_bytes(b"not a database, a damaged copy" * 200)
    monkeypatch.setenv("HUB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HUB_STATE_URL", postgres_url)
    result = CliRunner().invoke(app, ["state", "migrate"])
    assert isinstance(result.exception, SystemExit), result.exception  # no stack trace
    assert result.exit_code == 1
    assert f"{settings.register_path}: expected a readable SQLite store" in result.stderr
    assert "nothing was copied" in result.stderr


def test_migrate_copies_who_owns_a_transferred_case(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else, once on PostgreSQL, the old area follows a case the peer owns to it again."""
    from hub.federation.ownership import Owned
    from hub.state import open_ownership_register, open_proof_register

    local = HubSettings(data_dir=tmp_path / "data")
    owned = Owned("M-7", "swcsp-hub", "theirs", "own-7", "t-7", dt.date(2026, 12, 3))
    with open_ownership_register(local) as register:
        register.take(owned)
    # and the peer's proofs of the hand-over, which `hub audit proof --peer` reads
    proof = {"record": '{"record_id": "r-7"}', "leaf_index": 1, "tree_size": 2,
             "inclusion_proof": [], "checkpoint": "c"}  # fmt: skip
    with open_proof_register(local) as proofs:
        proofs.add("swcsp-hub", "t-7", proof)
    monkeypatch.setenv("HUB_DATA_DIR", str(local.data_dir))
    monkeypatch.setenv("HUB_STATE_URL", postgres_url)
    result = CliRunner().invoke(app, ["state", "migrate", "--json"])
    assert result.exit_code == 0, result.output
    shared = HubSettings(data_dir=tmp_path / "other-host", state_url=postgres_url)
    with open_ownership_register(shared) as register:
        assert register.owner("M-7") == owned
    with open_proof_register(shared) as proofs:
        assert proofs.entries("swcsp-hub", "t-7") == [proof]


def test_a_crafted_column_name_in_the_sqlite_file_is_an_identifier_never_sql(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names read from the operator's file are quoted on both sides, never run as SQL."""
    import sqlite3
    from contextlib import closing

    import psycopg

    from hub.federation.ownership import Owned
    from hub.state import open_ownership_register
    from hub.workflows.pg_state import libpq_url

    local = HubSettings(data_dir=tmp_path / "data")
    with open_ownership_register(local) as register:
        register.take(Owned("M-8", "swcsp-hub", "theirs", "own-8", "t-8", dt.date(2026, 12, 3)))
    crafted = 'x") VALUES (NULL); DROP TABLE federation_owned; --'
    with closing(sqlite3.connect(local.register_path)) as db:
        db.execute(
            'ALTER TABLE federation_owned ADD COLUMN "' + crafted.replace('"', '""') + '" TEXT'
        )
        db.commit()
    monkeypatch.setenv("HUB_DATA_DIR", str(local.data_dir))
    monkeypatch.setenv("HUB_STATE_URL", postgres_url)
    result = CliRunner().invoke(app, ["state", "migrate"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    # read whole from SQLite, then refused by PostgreSQL as a column it does not have
    assert "expected a readable SQLite store" not in result.stderr
    assert "does not exist" in result.stderr
    assert "nothing was copied" in result.stderr
    with psycopg.connect(libpq_url(postgres_url)) as pg:
        (rows,) = pg.execute("SELECT count(*) FROM federation_owned").fetchone() or (None,)
    assert rows == 0  # the table is there, and nothing was copied into it
