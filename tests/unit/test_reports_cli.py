"""`hub audit sar|chronology|recipients|volumes|exempt` against a seeded data dir."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.sqlite import SQLiteAuditStore
from hub.cli.audit import app
from hub.models import record_id_for
from hub.settings import HubSettings
from tests.unit.test_reports import CASE, VICTIM, seed_records

ICB_RAISE = record_id_for("evt-raise", "hw-icb", "delivered")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray hub.toml
    data = tmp_path / "data"
    monkeypatch.setenv("HUB_DATA_DIR", str(data))
    return data


@pytest.fixture
def seeded(data_dir: Path) -> Pseudonymiser:
    pseudo = Pseudonymiser(load_pseudonym_key(HubSettings(data_dir=data_dir)))
    with SQLiteAuditStore(data_dir / "audit.sqlite3") as store:
        store.append(seed_records(pseudo))
    return pseudo


#: the reports that show personal data name who reads them and why (DPA 2018 s62)
READS = {"sar", "chronology", "recipients"}
JUSTIFIED = ("--operator", "A Patel", "--purpose", "sar", "--reason", "subject access request 42")


def run(*args: str) -> Any:
    extra = JUSTIFIED if args and args[0] in READS else ()
    return CliRunner().invoke(app, [*args, *extra])


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return str(result.stdout)


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def exempt(record: str = ICB_RAISE, reason: str = "serious harm to the victim") -> str:
    return ok(
        "exempt",
        "--record",
        record,
        "--exemption",
        "DPA 2018 Sch 3 para 5",
        "--reason",
        reason,
        "--officer",
        "A Patel",
    )


# -- sar -----------------------------------------------------------------------------------


def test_sar_json_is_one_document(seeded: Pseudonymiser) -> None:
    doc = json.loads(ok("sar", "--subject", VICTIM, "--json"))

    assert doc["subject_pseudonym"] == seeded.subject(VICTIM)
    assert [(d["event_id"], d["recipient"]) for d in doc["disclosures"]][:2] == [
        ("evt-raise", "redditch-bc.housing"),
        ("evt-raise", "hw-icb"),
    ]
    assert doc["disclosures"][1]["fields"] == ["case_ref", "risk_level"]
    assert doc["withheld_from_response"] == []


def test_sar_pub_watch_reference(seeded: Pseudonymiser) -> None:
    doc = json.loads(ok("sar", "--subject", " JOHN  smith |1990-02-03", "--json"))

    assert [d["recipient"] for d in doc["disclosures"]] == ["redditch-bc.licensing"]


def test_exempt_then_sar_lists_the_withheld_delivery_with_its_reason(
    seeded: Pseudonymiser,
) -> None:
    out = exempt()
    assert f"exempted {ICB_RAISE}" in out
    assert "DPA 2018 Sch 3 para 5: serious harm to the victim (officer A Patel)" in out

    doc = json.loads(ok("sar", "--subject", VICTIM, "--json"))
    assert len(doc["disclosures"]) == 4
    (withheld,) = doc["withheld_from_response"]
    assert withheld["delivery_record_id"] == ICB_RAISE
    assert [e["reason"] for e in withheld["exemptions"]] == [
        "DPA 2018 Sch 3 para 5: serious harm to the victim (officer A Patel)"
    ]

    text = ok("sar", "--subject", VICTIM)
    assert "Disclosures (4):" in text
    assert "Withheld from this response (1):" in text
    assert "serious harm to the victim (officer A Patel)" in text
    assert "west-mercia-police -> redditch-bc.housing" in text


def test_sar_csv_has_a_header_and_one_row_per_entry(seeded: Pseudonymiser) -> None:
    exempt()

    text = ok("sar", "--subject", VICTIM, "--csv")

    assert text.splitlines()[0].startswith("status,record_id,time,event_id")
    rows = csv_rows(text)
    assert [r["status"] for r in rows] == ["disclosed"] * 4 + ["withheld"]
    assert rows[0]["recipient"] == "redditch-bc.housing"
    assert rows[0]["fields"] == "address,case_ref,contact,markers,risk_level"
    assert rows[-1]["record_id"] == ICB_RAISE
    assert rows[-1]["recipient"] == ""  # the reason, not the details
    assert rows[-1]["exemption_reason"].endswith("(officer A Patel)")


def test_csv_cells_cannot_become_spreadsheet_formulas(seeded: Pseudonymiser) -> None:
    ok(
        "exempt", "--record", ICB_RAISE, "--exemption", "=HYPERLINK(\"x\")", "--reason", "r",
        "--officer", "A",
    )  # fmt: skip

    rows = csv_rows(ok("sar", "--subject", VICTIM, "--csv"))

    assert rows[-1]["exemption_reason"].startswith("'=HYPERLINK")


def test_exempt_unknown_record_is_one_line_error(seeded: Pseudonymiser) -> None:
    result = run(
        "exempt", "--record", "nope", "--exemption", "x", "--reason", "y", "--officer", "z"
    )

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "audit record nope: expected a delivered record" in result.stderr


# -- chronology ----------------------------------------------------------------------------


def test_chronology_json_and_csv(seeded: Pseudonymiser) -> None:
    doc = json.loads(ok("chronology", "--case", CASE, "--json"))
    assert doc["case_pseudonym"] == seeded.case(CASE)
    assert [e["event_id"] for e in doc["entries"]] == ["evt-late", "evt-raise", "evt-update"]

    rows = csv_rows(ok("chronology", "--case", CASE, "--csv"))
    assert [(r["event_id"], r["recipient"], r["outcome"]) for r in rows] == [
        ("evt-late", "redditch-bc.housing", "received"),
        ("evt-raise", "redditch-bc.housing", "received"),
        ("evt-raise", "hw-icb", "received"),
        ("evt-raise", "hw-fire", "withheld"),
        ("evt-update", "redditch-bc.housing", "received"),
    ]
    assert rows[1]["acknowledged_at"].startswith("2024-05-01T09:05:00")
    assert rows[2]["acknowledged_at"] == ""
    assert rows[3]["reason"] == "no rule shares with"


def test_chronology_text(seeded: Pseudonymiser) -> None:
    text = ok("chronology", "--case", CASE)

    assert text.startswith(f"Chronology for case {seeded.case(CASE)} (3 events)")
    assert "evt-raise  uk.csp.marac.flag.raised.v1  from west-mercia-police" in text
    assert "acknowledged 2024-05-01 09:05:00Z" in text
    assert "not acknowledged" in text
    assert "no rule shares with" in text


# -- recipients ----------------------------------------------------------------------------


def test_recipients_json_csv_and_text(seeded: Pseudonymiser) -> None:
    doc = json.loads(ok("recipients", "--event", "evt-raise", "--json"))
    assert doc["event_id"] == "evt-raise"
    assert [(r["recipient"], r["acknowledged"]) for r in doc["recipients"]] == [
        ("redditch-bc.housing", True),
        ("hw-icb", False),
    ]

    rows = csv_rows(ok("recipients", "--event", "evt-raise", "--csv"))
    assert [(r["recipient"], r["acknowledged"]) for r in rows] == [
        ("redditch-bc.housing", "yes"),
        ("hw-icb", "no"),
    ]
    assert rows[0]["payload_sha256"] == "sha-evt-raise-redditch-bc.housing"

    text = ok("recipients", "--event", "evt-raise")
    assert text.splitlines()[0].split()[:3] == ["RECIPIENT", "TIME", "RULE"]
    assert "hw-icb" in text


def test_recipients_of_an_unknown_event_is_one_line_error(seeded: Pseudonymiser) -> None:
    result = run("recipients", "--event", "evt-nope")

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "event evt-nope: no audit records" in result.stderr


def test_recipients_of_an_event_nobody_received(seeded: Pseudonymiser) -> None:
    assert "delivered to no party" in ok("recipients", "--event", "evt-bad")
    assert json.loads(ok("recipients", "--event", "evt-bad", "--json"))["recipients"] == []


# -- volumes -------------------------------------------------------------------------------


def test_volumes_json_csv_and_text(seeded: Pseudonymiser) -> None:
    doc = json.loads(ok("volumes", "--since", "2024-05-01", "--json"))
    assert doc["since"] == "2024-05-01T00:00:00+00:00"
    assert len(doc["volumes"]) == 7
    housing = {"rule": "marac-flag-to-housing", "recipient": "redditch-bc.housing"}
    assert {**housing, "delivered": 2, "withheld": 0} in doc["volumes"]

    rows = csv_rows(ok("volumes", "--since", "2024-05-03", "--csv"))
    assert rows == [
        {**housing, "delivered": "1", "withheld": "0"},
        {
            "rule": "probation-to-housing",
            "recipient": "redditch-bc.housing",
            "delivered": "1",
            "withheld": "0",
        },
    ]

    text = ok("volumes", "--since", "2024-05-01")
    assert text.splitlines()[0].split() == ["RULE", "RECIPIENT", "DELIVERED", "WITHHELD"]
    assert text.splitlines()[-1].split() == ["TOTAL", "6", "2"]


def test_volumes_bad_date_is_a_usage_error(seeded: Pseudonymiser) -> None:
    assert run("volumes", "--since", "last week").exit_code == 2


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["sar", "--subject", VICTIM, "--json"],
        ["chronology", "--case", CASE, "--csv"],
        ["recipients", "--event", "evt-raise"],
        ["volumes", "--since", "2024-05-01"],
        ["exempt", "--record", "r", "--exemption", "e", "--reason", "r", "--officer", "o"],
    ],
)
def test_missing_database_is_one_line_and_creates_nothing(data_dir: Path, args: list[str]) -> None:
    result = run(*args)

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "no hub has run with this HUB_DATA_DIR" in result.stderr
    assert not data_dir.exists()  # not even a pseudonym key


def test_json_and_csv_together_is_one_line_error(seeded: Pseudonymiser) -> None:
    result = run("volumes", "--since", "2024-05-01", "--json", "--csv")

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "expected one of --json and --csv" in result.stderr
