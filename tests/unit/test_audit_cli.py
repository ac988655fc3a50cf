"""`hub audit query` against a store seeded directly in a temporary data dir."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.sqlite import SQLiteAuditStore
from hub.audit.subjects import person_ref
from hub.cli.audit import app
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.settings import HubSettings

T0 = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray hub.toml
    for name in ("HUB_AUDIT_URL", "HUB_PSEUDONYM_KEY"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("HUB_DATA_DIR", str(data))
    return data


def record(
    event_id: str, recipient: str | None, decision: AuditDecision, **kwargs: Any
) -> AuditRecord:
    values: dict[str, Any] = {
        "record_id": record_id_for(event_id, recipient, decision),
        "time": T0,
        "event_id": event_id,
        "event_type": "uk.csp.marac.flag.raised.v1",
        "publisher": "police",
        "recipient": recipient,
        "decision": decision,
        "rule": "marac-to-housing",
        "reason": "rule matched",
        "lawful_basis": "UK GDPR 6(1)(e)",
        "fields": ("case_ref", "address"),
    }
    values.update(kwargs)
    return AuditRecord(**values)


@pytest.fixture
def seeded(data_dir: Path) -> Pseudonymiser:
    pseudo = Pseudonymiser(load_pseudonym_key(HubSettings(data_dir=data_dir)))
    with SQLiteAuditStore(data_dir / "audit.sqlite3") as store:
        store.append(
            [
                record(
                    "evt-1",
                    "council.housing",
                    AuditDecision.DELIVERED,
                    subject_pseudonyms=(pseudo.subject("SUBJ-1"),),
                    case_pseudonym=pseudo.case("MARAC-1"),
                ),
                record(
                    "evt-1",
                    "fire",
                    AuditDecision.WITHHELD,
                    rule=None,
                    fields=(),
                    subject_pseudonyms=(pseudo.subject("SUBJ-1"),),
                ),
                record(
                    "evt-2",
                    "licensing",
                    AuditDecision.DELIVERED,
                    event_type="uk.csp.pubwatch.ban.v1",
                    publisher="pubwatch.redditch",
                    subject_pseudonyms=(pseudo.subject(person_ref("John Smith", "1990-02-03")),),
                    case_pseudonym=pseudo.case("PW-7"),
                ),
                record("evt-3", None, AuditDecision.REJECTED, rule=None, fields=()),
            ]
        )
    return pseudo


#: who reads and why: the query shows personal data (DPA 2018 s62)
JUSTIFIED = ("--operator", "A Patel", "--purpose", "assurance", "--reason", "testing audit queries")


def run(*args: str) -> Any:
    return CliRunner().invoke(app, ["query", *args, *JUSTIFIED])


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def test_json_has_every_record_field(seeded: Pseudonymiser) -> None:
    result = run("--json")
    assert result.exit_code == 0, result.stderr
    rows = lines(result.stdout)
    assert [r["event_id"] for r in rows] == ["evt-1", "evt-1", "evt-2", "evt-3"]
    first = rows[0]
    assert set(AuditRecord.model_fields) <= set(first)
    assert first["recipient"] == "council.housing"
    assert first["decision"] == "delivered"
    assert first["rule"] == "marac-to-housing"
    assert first["lawful_basis"] == "UK GDPR 6(1)(e)"
    assert first["fields"] == ["case_ref", "address"]
    assert dt.datetime.fromisoformat(first["time"]) == T0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--event", "evt-1"], [("evt-1", "council.housing"), ("evt-1", "fire")]),
        (["--party", "fire"], [("evt-1", "fire")]),
        (["--party", "pubwatch.redditch"], [("evt-2", "licensing")]),
        (["--decision", "rejected"], [("evt-3", None)]),
        (["--decision", "WITHHELD"], [("evt-1", "fire")]),
        (["--subject", "subj-1"], [("evt-1", "council.housing"), ("evt-1", "fire")]),
        (["--subject", " JOHN  smith |1990-02-03"], [("evt-2", "licensing")]),
        (["--case", "MARAC-1"], [("evt-1", "council.housing")]),
        (["--case", "pw-7"], [("evt-2", "licensing")]),
        (["--event", "evt-1", "--decision", "delivered"], [("evt-1", "council.housing")]),
        (["--limit", "2"], [("evt-1", "council.housing"), ("evt-1", "fire")]),
    ],
)
def test_filters(
    seeded: Pseudonymiser, args: list[str], expected: list[tuple[str, str | None]]
) -> None:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.stderr
    assert [(r["event_id"], r["recipient"]) for r in lines(result.stdout)] == expected


def test_subject_is_not_a_case(seeded: Pseudonymiser) -> None:
    result = run("--case", "SUBJ-1")
    assert result.exit_code == 0
    assert "no audit records match" in result.stderr


def cells(line: str) -> list[str]:
    """A table row's cells (columns are two or more spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


def test_table(seeded: Pseudonymiser) -> None:
    result = run("--event", "evt-1")
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert cells(header) == ["TIME", "EVENT", "TYPE", "DECISION", "WHO", "WHY"]
    assert cells(rows[0]) == [
        "2024-05-01 09:00:00Z",
        "evt-1",
        "uk.csp.marac.flag.raised.v1",
        "delivered",
        "police -> council.housing",
        "rule marac-to-housing: case_ref, address",
    ]
    # a withholding shows its reason, not "-" (it was only in --json)
    assert cells(rows[1])[3:] == ["withheld", "police -> fire", "rule matched"]


def test_table_says_why_for_every_kind_of_record(data_dir: Path) -> None:
    """Who saw it, and why, or why not: withholdings, consultations, holds, rejections."""
    with SQLiteAuditStore(data_dir / "audit.sqlite3") as store:
        store.append(
            [
                record(
                    "evt-9",
                    "hwfrs",
                    AuditDecision.WITHHELD,
                    rule="socjag-intel-c-conditions",
                    fields=(),
                    reason="rule socjag-intel-c-conditions: condition not met: hwfrs cannot "
                    "meet named-officer-only",
                ),
                record(
                    "console:1",
                    None,
                    AuditDecision.CONSULTED,
                    event_type=None,
                    publisher=None,
                    rule=None,
                    fields=(),
                    purpose="subject access request",
                    case_pseudonym="c0ffee" * 10,
                    subject_pseudonyms=("5eed" * 16,),
                    reason="case chronology viewed by alice (ig_officer): SAR 2026/17 from "
                    "the data subject",
                ),
                record(
                    "case-action:1",
                    None,
                    AuditDecision.HOLD_PLACED,
                    event_type=None,
                    publisher=None,
                    rule=None,
                    fields=(),
                    case_pseudonym="abcdef0123456789" * 4,
                    reason="legal hold: Domestic Homicide Review (by bob)",
                ),
                record(
                    "evt-10",
                    None,
                    AuditDecision.REJECTED,
                    rule=None,
                    fields=(),
                    reason="publisher_not_permitted: hwfrs may not publish flags",
                ),
            ]
        )
    result = run()
    assert result.exit_code == 0, result.stderr
    rows = {cells(line)[1]: cells(line) for line in result.stdout.splitlines()[1:]}
    assert rows["evt-9"][4:] == [
        "police -> hwfrs",
        "rule socjag-intel-c-conditions: condition not met: hwfrs cannot meet named-officer-only",
    ]
    assert rows["console:1"][3:] == [
        "consulted",
        "alice (ig_officer)",
        "case chronology, case c0ffeec0ffee, subject 5eed5eed5eed: subject access request: "
        "SAR 2026/17 from the data subject",
    ]
    assert rows["case-action:1"][3:] == [
        "hold_placed",
        "bob",
        "case abcdef012345: legal hold: Domestic Homicide Review",
    ]
    assert rows["evt-10"][3:] == [
        "rejected",
        "from police",
        "publisher_not_permitted: hwfrs may not publish flags",
    ]
    assert " - -> - " not in result.stdout


def test_no_match_is_not_an_error(seeded: Pseudonymiser) -> None:
    result = run("--event", "nope")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no audit records match" in result.stderr


def test_missing_database(data_dir: Path) -> None:
    result = run("--json")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "no hub has run with this HUB_DATA_DIR" in result.stderr
    assert str(data_dir / "audit.sqlite3") in result.stderr
    assert not data_dir.exists()  # a query creates nothing


def test_bad_decision_rejected(seeded: Pseudonymiser) -> None:
    result = run("--decision", "lost")
    assert result.exit_code == 2


def test_postgres_url_is_a_clean_error(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_AUDIT_URL", "postgresql://hub:s3cret@127.0.0.1:1/hub?connect_timeout=2")
    result = run()
    assert result.exit_code == 1
    assert "cannot open" in result.stderr
    assert "s3cret" not in result.stderr
