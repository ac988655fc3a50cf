"""Automatic crypto-shredding at the end of retention: the rule, holds, audit, the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.sqlite import SQLiteAuditStore
from hub.cli.keys import app
from hub.errors import CaseShreddedError
from hub.keys.cases import CaseKeys
from hub.keys.expiry import add_duration, expire_cases, plan_expiry
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.policies.loader import load_protocol
from hub.settings import HubSettings, default_protocol_path

PROTOCOL = load_protocol(default_protocol_path())
T0 = dt.datetime(2026, 1, 31, 10, 0, tzinfo=dt.UTC)
MARAC_RULE = "marac-flag-full"  # retention P12M
SOCJAG_RULE = "socjag-intel-p-official"  # retention P2Y


def retention(rule_id: str) -> str:
    found = next(r.retention for r in PROTOCOL.rules if r.id == rule_id)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (T0, "P12M", dt.datetime(2027, 1, 31, 10, 0, tzinfo=dt.UTC)),
        (T0, "P1M", dt.datetime(2026, 2, 28, 10, 0, tzinfo=dt.UTC)),  # calendar month
        (T0, "P2Y", dt.datetime(2028, 1, 31, 10, 0, tzinfo=dt.UTC)),
        (T0, "P1W2DT3H", T0 + dt.timedelta(days=9, hours=3)),
    ],
)
def test_add_duration(start: dt.datetime, duration: str, expected: dt.datetime) -> None:
    assert add_duration(start, duration) == expected


@pytest.mark.parametrize("bad", ["", "P", "12M", "P1.5Y", "PT", "P1Y2"])
def test_add_duration_refuses_what_is_not_a_duration(bad: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        add_duration(T0, bad)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def cases(tmp_path: Path) -> CaseKeys:
    return CaseKeys(tmp_path / "keys", pseudonymise=Pseudonymiser(b"k" * 32).case)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteAuditStore:
    return SQLiteAuditStore(tmp_path / "audit.sqlite3")


def disclose(
    store: SQLiteAuditStore, cases: CaseKeys, case: str, rule: str | None, at: dt.datetime
) -> None:
    """A delivery of ``case`` under ``rule``: the key exists and the audit says so."""
    cases.key_for(case)
    event_id = f"ev-{case}-{rule}-{at.isoformat()}"
    store.append(
        [
            AuditRecord(
                record_id=record_id_for(event_id, "p", "delivered"),
                time=at,
                event_id=event_id,
                recipient="p",
                decision=AuditDecision.DELIVERED,
                rule=rule,
                reason="test disclosure",
                case_pseudonym=cases.pseudonym(case),
            )
        ]
    )


def shredded_records(store: SQLiteAuditStore, cases: CaseKeys, case: str) -> list[AuditRecord]:
    return store.query(case_pseudonym=cases.pseudonym(case), decision=AuditDecision.SHREDDED)


def test_case_expires_at_the_end_of_its_retention_and_is_audited(
    cases: CaseKeys, store: SQLiteAuditStore
) -> None:
    disclose(store, cases, "MARAC-1", MARAC_RULE, T0)
    ends = add_duration(T0, retention(MARAC_RULE))
    clock = Clock(ends - dt.timedelta(seconds=1))

    (before,) = expire_cases(cases, store, PROTOCOL, clock=clock)
    assert before.status == "due_later"
    assert before.expires_at == ends
    assert not cases.is_shredded("MARAC-1")
    assert shredded_records(store, cases, "MARAC-1") == []

    clock.now = ends
    (after,) = expire_cases(cases, store, PROTOCOL, clock=clock)
    assert after.status == "expired"
    assert after.key_destroyed
    assert cases.is_shredded("MARAC-1")
    with pytest.raises(CaseShreddedError):
        cases.key_for("MARAC-1")
    (audit,) = shredded_records(store, cases, "MARAC-1")
    assert retention(MARAC_RULE) in audit.reason
    assert MARAC_RULE in audit.reason
    assert audit.time == ends
    # the disclosure records remain; a second sweep finds nothing left to do
    assert store.query(case_pseudonym=cases.pseudonym("MARAC-1"), decision="delivered")
    assert expire_cases(cases, store, PROTOCOL, clock=clock) == []


def test_longest_retention_from_the_last_disclosure_wins(
    cases: CaseKeys, store: SQLiteAuditStore
) -> None:
    disclose(store, cases, "C-1", SOCJAG_RULE, T0)  # P2Y from T0
    late = T0 + dt.timedelta(days=400)
    disclose(store, cases, "C-1", MARAC_RULE, late)  # P12M from T0 + 400 days
    expected = max(
        add_duration(T0, retention(SOCJAG_RULE)), add_duration(late, retention(MARAC_RULE))
    )
    (judged,) = plan_expiry(cases, store, PROTOCOL, now=T0)
    assert judged.expires_at == expected
    assert judged.last_disclosure == late
    refresh = T0 + dt.timedelta(days=500)  # a new disclosure restarts that rule's clock
    disclose(store, cases, "C-1", SOCJAG_RULE, refresh)
    (judged,) = plan_expiry(cases, store, PROTOCOL, now=T0)
    assert judged.expires_at == add_duration(refresh, retention(SOCJAG_RULE))
    assert judged.rule == SOCJAG_RULE


def test_held_case_is_skipped_and_reported_until_the_hold_is_lifted(
    cases: CaseKeys, store: SQLiteAuditStore
) -> None:
    disclose(store, cases, "DHR-1", MARAC_RULE, T0)
    cases.add_hold("DHR-1", "Domestic Homicide Review", "csp-manager")
    clock = Clock(T0 + dt.timedelta(days=3650))
    (held,) = expire_cases(cases, store, PROTOCOL, clock=clock)
    assert held.status == "held"
    assert "legal hold" in held.reason
    assert "csp-manager" in held.reason
    assert not cases.is_shredded("DHR-1")
    assert shredded_records(store, cases, "DHR-1") == []
    cases.lift_hold("DHR-1", "csp-manager")
    (done,) = expire_cases(cases, store, PROTOCOL, clock=clock)
    assert done.status == "expired"
    assert cases.is_shredded("DHR-1")


def test_cases_without_a_known_retention_are_kept(cases: CaseKeys, store: SQLiteAuditStore) -> None:
    disclose(store, cases, "GONE-1", "rule-removed-from-protocol", T0)
    cases.key_for("NEVER-DISCLOSED")
    clock = Clock(T0 + dt.timedelta(days=36500))
    results = {r.case: r for r in expire_cases(cases, store, PROTOCOL, clock=clock)}
    gone = results[cases.pseudonym("GONE-1")]
    never = results[cases.pseudonym("NEVER-DISCLOSED")]
    assert (gone.status, never.status) == ("kept", "kept")
    assert "not in the protocol" in gone.reason
    assert "no disclosure" in never.reason
    assert not cases.is_shredded("GONE-1")
    assert not cases.is_shredded("NEVER-DISCLOSED")


def test_dry_run_changes_nothing(cases: CaseKeys, store: SQLiteAuditStore) -> None:
    disclose(store, cases, "MARAC-2", MARAC_RULE, T0)
    clock = Clock(T0 + dt.timedelta(days=3650))
    (judged,) = expire_cases(cases, store, PROTOCOL, clock=clock, dry_run=True)
    assert judged.status == "expired"
    assert not judged.key_destroyed
    assert not cases.is_shredded("MARAC-2")
    assert shredded_records(store, cases, "MARAC-2") == []


def test_two_sweeps_racing_record_the_expiry_once(
    cases: CaseKeys, store: SQLiteAuditStore, tmp_path: Path
) -> None:
    disclose(store, cases, "MARAC-3", MARAC_RULE, T0)
    other = CaseKeys(tmp_path / "keys", pseudonymise=Pseudonymiser(b"k" * 32).case)
    clock = Clock(T0 + dt.timedelta(days=3650))
    plan_a = plan_expiry(cases, store, PROTOCOL, now=clock())
    expire_cases(other, store, PROTOCOL, clock=clock)
    assert plan_a[0].status == "expired"
    expire_cases(cases, store, PROTOCOL, clock=clock)
    assert len(shredded_records(store, cases, "MARAC-3")) == 1


def test_cli_expire_with_now_dry_run_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    settings = HubSettings(data_dir=tmp_path / "data")
    cases = CaseKeys(
        settings.keys_dir, pseudonymise=Pseudonymiser(load_pseudonym_key(settings)).case
    )
    with SQLiteAuditStore(settings.audit_db_path) as store:
        disclose(store, cases, "MARAC-9", MARAC_RULE, T0)
        disclose(store, cases, "MARAC-10", MARAC_RULE, T0 + dt.timedelta(days=200))
    cases.add_hold("MARAC-10", "DHR", "ig")
    runner = CliRunner()
    later = (T0 + dt.timedelta(days=370)).isoformat()

    dry = runner.invoke(app, ["expire", "--now", later, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    rows = {r["case"]: r for r in map(json.loads, dry.stdout.splitlines())}
    assert rows[cases.pseudonym("MARAC-9")]["status"] == "expired"
    assert rows[cases.pseudonym("MARAC-10")]["status"] == "due_later"
    assert not cases.is_shredded("MARAC-9")

    done = runner.invoke(app, ["expire", "--now", later])
    assert done.exit_code == 0, done.output
    assert f"shredded    case {cases.pseudonym('MARAC-9')}" in done.stdout
    assert "1 shredded, 0 held (skipped), 0 kept" in done.stdout
    assert "MARAC-9" not in done.stdout  # pseudonyms only
    assert cases.is_shredded("MARAC-9")

    much_later = (T0 + dt.timedelta(days=900)).isoformat()
    held = runner.invoke(app, ["expire", "--now", much_later])
    assert "0 shredded, 1 held (skipped)" in held.stdout
    assert "legal hold" in held.stdout

    bad = runner.invoke(app, ["expire", "--now", "next tuesday"])
    assert bad.exit_code == 1
    assert "--now" in bad.stderr


def test_case_key_memory_is_bounded_and_an_evicted_key_is_read_back(
    cases: CaseKeys, tmp_path: Path
) -> None:
    # a worker meets new cases for ever: its in-memory keys must not grow with them (the
    # soak's RSS did), and a key read back is the same key. The keyring keeps none in
    # memory: every key_for reads it from the keyring file.
    first = {ref: cases.key_for(ref) for ref in ("C-1", "C-2", "C-3", "C-4", "C-5")}
    held = [v for v in vars(cases).values() if isinstance(v, bytes | dict | list) and v]
    assert held == []
    assert cases.key_for("C-1") == first["C-1"]  # read back from the keyring
    cases.key_for("C-6")
    assert cases.key_for("C-5") == first["C-5"]
    other = CaseKeys(tmp_path / "keys", pseudonymise=Pseudonymiser(b"k" * 32).case)
    assert {ref: other.key_for(ref) for ref in first} == first
