"""``hub keys ...`` through typer's CliRunner, against a temporary data dir."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner, Result

from hub.cli.keys import app
from hub.keys import HUB_PARTY, FileKeyStore, KeyStatus
from hub.policies.loader import load_protocol
from hub.settings import HubSettings, default_protocol_path
from hub.state import open_flag_register
from hub.workflows.register import FlagRegister
from tests.unit.conftest import NO_PG


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray hub.toml
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def run(runner: CliRunner, *args: str, ok: bool = True) -> Result:
    result = runner.invoke(app, list(args))
    assert (result.exit_code == 0) is ok, result.output
    return result


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def store(tmp_path: Path) -> FileKeyStore:
    return FileKeyStore(tmp_path / "data" / "keys")


def test_init_creates_every_protocol_party_and_the_hub(runner: CliRunner, tmp_path: Path) -> None:
    result = run(runner, "init")
    protocol = load_protocol(default_protocol_path())
    # a peer hub's keys are pinned from its export (`hub keys import --peer`), never made here
    expected = {*(p for p in protocol.party_ids if not protocol.is_peer(p)), HUB_PARTY}
    assert protocol.peers
    assert set(store(tmp_path).parties()) == expected
    assert f"{len(expected)} created, 0 already had keys" in result.stdout

    again = run(runner, "init")  # idempotent
    assert f"0 created, {len(expected)} already had keys" in again.stdout
    suites = load_protocol(default_protocol_path()).crypto.suites
    assert {tuple(s.value for s in store(tmp_path).active(p).suites) for p in expected} == {suites}


def test_init_suite_option_overrides_the_protocol(runner: CliRunner, tmp_path: Path) -> None:
    run(runner, "init", "--party", HUB_PARTY, "--suite", "x25519")
    assert store(tmp_path).active(HUB_PARTY).suite.value == "x25519"


def test_init_selected_parties_with_pq_suite(runner: CliRunner, tmp_path: Path) -> None:
    party = load_protocol(default_protocol_path()).party_ids[0]
    result = run(runner, "init", "--party", party, "--suite", "mlkem768-x25519", "--json")
    (record,) = json_lines(result)
    assert record["party"] == party
    assert record["suite"] == "mlkem768-x25519"
    assert store(tmp_path).parties() == [party]


def test_init_unknown_party_is_one_line_error(runner: CliRunner) -> None:
    result = run(runner, "init", "--party", "no-such-agency", ok=False)
    assert result.exit_code == 1
    assert "no-such-agency" in result.stderr
    assert "Traceback" not in result.output


def test_list_rotate_revoke(runner: CliRunner, tmp_path: Path) -> None:
    run(runner, "init", "--party", HUB_PARTY)
    (first,) = json_lines(run(runner, "list", "--json"))
    assert first["status"] == "active"

    (rotated,) = json_lines(run(runner, "rotate", "--party", HUB_PARTY, "--json"))
    listed = json_lines(run(runner, "list", "--party", HUB_PARTY, "--json"))
    assert [r["status"] for r in listed] == ["active", "retired"]
    assert listed[0]["signing_key_id"] == rotated["signing_key_id"]

    result = run(runner, "revoke", "--key", rotated["signing_key_id"], "--reason", "compromised")
    assert "no active key" in result.stdout
    assert store(tmp_path).by_key_id(rotated["signing_key_id"]).status is KeyStatus.REVOKED
    text = run(runner, "list").stdout
    assert "revoked" in text
    assert "retired" in text

    missing = run(runner, "revoke", "--key", "hub#0000000000000000", "--reason", "x", ok=False)
    assert "no such key id" in missing.stderr


def test_rotate_unknown_party_fails_cleanly(runner: CliRunner) -> None:
    result = run(runner, "rotate", "--party", "nobody", ok=False)
    assert "hub keys init --party nobody" in result.stderr


def test_export_public_keys(runner: CliRunner, tmp_path: Path) -> None:
    run(runner, "init", "--party", HUB_PARTY)
    body = json.loads(run(runner, "export", "--party", HUB_PARTY).stdout)
    assert body["format"] == "hub.keys.directory.v2"
    (record,) = body["keys"]
    assert record["party"] == HUB_PARTY
    assert not any("private" in name for name in record)

    out = tmp_path / "hub-keys.json"
    run(runner, "export", "--out", str(out))
    assert json.loads(out.read_text()) == body
    assert "found none" in run(runner, "export", "--party", "x", ok=False).stderr


def holds(runner: CliRunner, *args: str, ok: bool = True) -> Result:
    """`hub holds ...` (the whole `hub` app: holds are a top-level group)."""
    from hub.cli.main import app as hub_app

    result = runner.invoke(hub_app, ["holds", *args])
    assert (result.exit_code == 0) is ok, result.output
    return result


def register_flag(tmp_path: Path, case: str) -> None:
    """A flag in the hub's MARAC register, as the router records one it routed."""
    at = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
    with FlagRegister(tmp_path / "data" / "workflows.sqlite3") as register:
        register.record(
            case_ref=case,
            subject_ref="SUBJ-1",
            subject_pseudonym="ps_1",
            status="active",
            review_date=dt.date(2027, 2, 2),
            at=at,
            event_id="ev-1",
            event_type="uk.csp.marac.flag.raised.v1",
        )


def test_shred_with_hold(runner: CliRunner, tmp_path: Path) -> None:
    hold = holds(runner, "add", "--case", "DHR-7", "--reason", "DHR", "--by", "csp", "--force")
    assert "hold placed on case DHR-7 (pc_" in hold.stdout
    (listed,) = json_lines(holds(runner, "list", "--json"))
    assert listed["reason"] == "DHR"
    keys_dir = tmp_path / "data" / "keys"
    assert b"DHR-7" not in (keys_dir / "holds.json").read_bytes()  # only the pseudonym is kept

    refused = run(runner, "shred", "--case", "DHR-7", "--yes", ok=False)
    assert "legal hold" in refused.stderr
    assert "hub holds lift" in refused.stderr

    holds(runner, "lift", "--case", "DHR-7", "--by", "csp")
    assert holds(runner, "list", "--json").stdout == ""
    shredded = run(runner, "shred", "--case", "DHR-7", "--yes")
    assert "shredded case pc_" in shredded.stdout
    assert "DHR-7" not in "".join(p.name for p in (tmp_path / "data").rglob("*"))


def test_shred_asks_for_confirmation(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["shred", "--case", "C-1"], input="n\n")
    assert result.exit_code == 1  # aborted
    assert not shredded_cases(tmp_path)
    result = runner.invoke(app, ["shred", "--case", "C-1"], input="y\n")
    assert result.exit_code == 0, result.output
    assert len(shredded_cases(tmp_path)) == 1


def shredded_cases(tmp_path: Path) -> list[str]:
    """The tombstones in the case keyring (none if there is no keyring yet)."""
    keyring = next((tmp_path / "data").rglob("keyring.sqlite3"), None)
    if keyring is None:
        return []
    with contextlib.closing(sqlite3.connect(keyring)) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM shredded")]


def test_init_rotates_in_a_suite_the_protocol_started_using(
    runner: CliRunner, tmp_path: Path
) -> None:
    keys = store(tmp_path)
    old = keys.create_party(HUB_PARTY)  # x25519 only, as before crypto.event_types
    result = run(runner, "init", "--party", HUB_PARTY)
    assert "rotated hub" in result.stdout
    assert "(1 rotated to add a suite)" in result.stdout
    new = keys.active(HUB_PARTY)
    assert [s.value for s in new.suites] == list(
        load_protocol(default_protocol_path()).crypto.suites
    )
    assert keys.by_key_id(old.encryption_key_id).status is KeyStatus.RETIRED


def test_hub_holds_records_who_placed_and_lifted_the_hold(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.audit.sqlite import SQLiteAuditStore
    from hub.cli.main import app as hub_app
    from hub.models import AuditDecision

    monkeypatch.setenv("USER", "ig.officer")
    monkeypatch.setenv("LOGNAME", "ig.officer")
    register_flag(tmp_path, "MARAC-NW-2026-0007")
    placed = runner.invoke(
        hub_app, ["holds", "add", "--case", "MARAC-NW-2026-0007", "--reason", "DHR 2026/03"]
    )
    assert placed.exit_code == 0, placed.output
    assert "by ig.officer" in placed.stdout
    lifted = runner.invoke(hub_app, ["holds", "lift", "--case", "MARAC-NW-2026-0007"])
    assert lifted.exit_code == 0, lifted.output
    with SQLiteAuditStore(tmp_path / "data" / "audit.sqlite3") as audit:
        records = audit.query(limit=100)
    decisions = [r.decision for r in records]
    assert decisions == [AuditDecision.HOLD_PLACED, AuditDecision.HOLD_LIFTED]
    assert all("ig.officer" in (r.reason or "") + (r.publisher or "") for r in records)
    assert "DHR 2026/03" in (records[0].reason or "")


def test_hold_on_an_unknown_case_needs_force(runner: CliRunner, tmp_path: Path) -> None:
    refused = holds(runner, "add", "--case", "NOPE-123", "--reason", "DHR", ok=False)
    assert refused.exit_code == 1
    assert "Traceback" not in refused.output
    assert "case NOPE-123: expected a case this hub knows" in refused.stderr
    assert "--force" in refused.stderr
    assert "no legal holds" in holds(runner, "list").stdout  # nothing was held

    forced = holds(runner, "add", "--case", "NOPE-123", "--reason", "DHR", "--force")
    assert "no case NOPE-123 is known to this hub yet: held in advance" in forced.stderr
    assert "hold placed on case NOPE-123" in forced.stdout
    assert len(json_lines(holds(runner, "list", "--json"))) == 1


def test_hold_on_a_registered_case_needs_no_force(runner: CliRunner, tmp_path: Path) -> None:
    register_flag(tmp_path, "MARAC-NW-2026-0042")
    placed = holds(runner, "add", "--case", "MARAC-NW-2026-0042", "--reason", "DHR 2026/04")
    assert placed.stderr == ""
    assert "hold placed on case MARAC-NW-2026-0042" in placed.stdout


def test_hold_list_says_when_empty(runner: CliRunner, tmp_path: Path) -> None:
    listed = holds(runner, "list")
    assert listed.stdout == f"no legal holds in {tmp_path / 'data'}\n"
    assert holds(runner, "list", "--json").stdout == ""  # JSON: no objects, no prose


def test_hold_list_shows_the_reference_the_registers_hold(
    runner: CliRunner, tmp_path: Path
) -> None:
    register_flag(tmp_path, "MARAC-NW-2026-0043")
    holds(runner, "add", "--case", "MARAC-NW-2026-0043", "--reason", "DHR 2026/05", "--by", "ig")
    holds(runner, "add", "--case", "ADVANCE-1", "--reason", "claim", "--by", "ig", "--force")
    lines = holds(runner, "list").stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("MARAC-NW-2026-0043 (pc_")
    assert lines[0].endswith("by ig: DHR 2026/05")
    assert "(reference not in the registers)" in lines[1]  # held in advance: never routed
    assert "ADVANCE-1" not in lines[1]
    by_json = {o["reason"]: o for o in json_lines(holds(runner, "list", "--json"))}
    assert by_json["DHR 2026/05"]["case_ref"] == "MARAC-NW-2026-0043"
    assert by_json["claim"]["case_ref"] is None


def test_keys_hold_is_a_hidden_alias_that_says_where_it_moved(
    runner: CliRunner, tmp_path: Path
) -> None:
    from hub.cli.main import app as hub_app

    assert " hold " not in runner.invoke(hub_app, ["keys", "--help"]).stdout
    moved = runner.invoke(
        hub_app, ["keys", "hold", "add", "--case", "C-9", "--reason", "DHR", "--force"]
    )
    assert moved.exit_code == 0, moved.output
    assert "`hub keys hold` is now `hub holds`" in moved.stderr
    assert len(json_lines(holds(runner, "list", "--json"))) == 1


@NO_PG
def test_holds_and_shred_with_state_in_postgres(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    """HUB_STATE_URL (issue 22): holds, the shred and its tombstone live in PostgreSQL."""
    monkeypatch.setenv("HUB_STATE_URL", postgres_url)
    settings = HubSettings(data_dir=tmp_path / "data", state_url=postgres_url)
    with open_flag_register(settings) as register:  # as the router records a routed flag
        register.record(case_ref="MARAC-NW-2026-0050", subject_ref="SUBJ-1",
                        subject_pseudonym="ps_1", status="active",
                        review_date=dt.date(2027, 2, 2),
                        at=dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC), event_id="ev-1",
                        event_type="uk.csp.marac.flag.raised.v1")  # fmt: skip
    holds(runner, "add", "--case", "MARAC-NW-2026-0050", "--reason", "DHR", "--by", "ig")
    (listed,) = json_lines(holds(runner, "list", "--json"))
    assert listed["case_ref"] == "MARAC-NW-2026-0050"  # found in the PostgreSQL register
    refused = run(runner, "shred", "--case", "MARAC-NW-2026-0050", "--yes", ok=False)
    assert "legal hold" in refused.stderr
    holds(runner, "lift", "--case", "MARAC-NW-2026-0050", "--by", "ig")
    run(runner, "shred", "--case", "MARAC-NW-2026-0050", "--yes")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM shredded").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM legal_holds").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM case_keys").fetchone() == (0,)
    keys_dir = tmp_path / "data" / "keys"
    assert not (keys_dir / "holds.json").exists()
    assert not (keys_dir / "cases").exists()
