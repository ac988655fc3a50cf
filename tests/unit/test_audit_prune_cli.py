"""`hub audit prune`, then `verify` and the IG reports, on both stores, in a seeded data dir."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hub.audit.checkpoint import log_signer
from hub.audit.log import AuditLog
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.store import open_store
from hub.cli.audit import app
from hub.keys.cases import CaseKeys
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.settings import HubSettings, default_protocol_path
from tests.postgres import find_pg_bindir

_NO_PG = pytest.mark.skipif(
    find_pg_bindir() is None,
    reason="PostgreSQL binaries not found (initdb/pg_ctl): PostgreSQL CLI tests skipped",
)
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=365 * 8)  # past the reference protocol's P6Y
RECENT = NOW - timedelta(days=30)
SUBJECT = "SUBJ-0042"


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"), pytest.param("pg", marks=_NO_PG)])
def settings(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> HubSettings:
    monkeypatch.chdir(tmp_path)  # no stray hub.toml
    data = tmp_path / "data"
    monkeypatch.setenv("HUB_DATA_DIR", str(data))
    url = None
    if request.param == "pg":
        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("HUB_AUDIT_URL", url)
    return HubSettings(data_dir=data, audit_url=url)


def delivered(i: int, when: datetime, pseudo: Pseudonymiser) -> AuditRecord:
    return AuditRecord(
        record_id=record_id_for(f"evt-{i}", "redditch-bc.housing", "delivered"),
        time=when,
        event_id=f"evt-{i}",
        event_type="uk.csp.marac.flag.raised.v1",
        publisher="west-mercia-police",
        recipient="redditch-bc.housing",
        decision=AuditDecision.DELIVERED,
        rule="marac-flag-to-housing",
        reason="rule matched",
        fields=("case_ref", "risk_level"),
        case_pseudonym=pseudo.case(f"MARAC-{i}"),
        subject_pseudonyms=(pseudo.subject(SUBJECT),),
    )


@pytest.fixture
def seeded(settings: HubSettings) -> Pseudonymiser:
    """Six records past retention, four within it, a checkpoint every two."""
    pseudo = Pseudonymiser(load_pseudonym_key(settings))
    with contextlib.closing(open_store(settings)) as store:
        log = AuditLog(store, signer=log_signer(settings, create=True))  # the hub's key
        for i in range(10):
            store.append([delivered(i, (OLD if i < 6 else RECENT) + timedelta(minutes=i), pseudo)])
            if i % 2:
                log.checkpoint()
    return pseudo


#: the reports show personal data: who reads them and why (DPA 2018 s62)
READER = ("--operator", "A Patel", "--purpose", "sar", "--reason", "report after a prune")


def run(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=stdin)


def ok(*args: str) -> Any:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


def prunes(settings: HubSettings) -> list[int]:
    with contextlib.closing(open_store(settings)) as store:
        return [p.size for p in store.prunes()]


def test_prune_then_verify_and_report(seeded: Pseudonymiser, settings: HubSettings) -> None:
    result = json.loads(ok("prune", "--yes", "--json").stdout)
    assert (result["pruned"], result["from_index"], result["to_index"]) == (6, 0, 6)
    assert result["stopped_by"] == "cut-off"
    assert "\n10\n" in result["checkpoint_before"]  # signed at the size before pruning
    assert "\n11\n" in result["checkpoint_after"]  # and over the audit record of the prune

    verify = ok("verify")
    assert verify.stdout.startswith("11 records, root ")
    assert "6 records (leaves 0..5" in verify.stdout
    assert "pruned under audit retention" in verify.stdout
    report = json.loads(ok("verify", "--json").stdout)
    assert (report["ok"], report["pruned_records"], report["checkpoints_unchecked"]) == (
        True,
        6,
        0,
    )

    sar = json.loads(ok("sar", "--subject", SUBJECT, "--json", *READER).stdout)
    assert [d["event_id"] for d in sar["disclosures"]] == ["evt-6", "evt-7", "evt-8", "evt-9"]
    assert sar["pruned"]["records"] == 6
    assert "Note: records written before" in ok("sar", "--subject", SUBJECT, *READER).stdout
    chronology = ok("chronology", "--case", "MARAC-1", *READER).stdout
    assert "(0 events)" in chronology
    assert "pruned under audit retention" in chronology
    gone = run("recipients", "--event", "evt-1", *READER)
    assert gone.exit_code == 1
    assert "pruned under audit retention" in gone.stderr
    since = (OLD - timedelta(days=1)).date().isoformat()
    volumes = json.loads(ok("volumes", "--since", since, "--json").stdout)
    assert volumes["pruned"]["records"] == 6
    assert sum(row["delivered"] for row in volumes["volumes"]) == 4
    recent = json.loads(ok("volumes", "--since", RECENT.date().isoformat(), "--json").stdout)
    assert recent["pruned"] is None

    again = ok("prune", "--yes")
    assert again.stdout.startswith("nothing to prune before")
    assert prunes(settings) == [6]


def test_prune_asks_before_it_deletes(seeded: Pseudonymiser, settings: HubSettings) -> None:
    result = run("prune", stdin="n\n")
    assert result.exit_code == 1
    assert "prune records [0, 6) of 10" in result.stderr
    assert prunes(settings) == []
    result = run("prune", "--reason", "annual retention review", stdin="y\n")
    assert result.exit_code == 0, result.stderr
    assert "pruned 6 audit records [0, 6)" in result.stdout
    with contextlib.closing(open_store(settings)) as store:
        (record,) = store.query(decision=AuditDecision.PRUNED)
    assert record.reason.startswith("annual retention review (by ")


def test_a_legal_hold_stops_the_prefix(seeded: Pseudonymiser, settings: HubSettings) -> None:
    CaseKeys(settings.keys_dir, pseudonymise=seeded.case).add_hold(
        "MARAC-3", "Domestic Homicide Review", "IG lead"
    )
    result = ok("prune", "--yes")
    assert result.stdout.startswith("pruned 3 audit records [0, 3)")
    assert f"case {seeded.case('MARAC-3')} is under legal hold" in result.stdout
    assert prunes(settings) == [3]
    assert json.loads(ok("verify", "--json").stdout)["ok"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--before", "2024-13-01"], "prune --before: expected a date (YYYY-MM-DD)"),
        (["--before", "yesterday"], "prune --before: expected a date (YYYY-MM-DD)"),
        (["--before", RECENT.date().isoformat()], "keeps audit records for P6Y"),
        (["--reason", " "], "prune --reason: expected text"),
    ],
)
def test_typos_are_clear_errors(
    seeded: Pseudonymiser, settings: HubSettings, args: list[str], message: str
) -> None:
    result = run("prune", "--yes", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert prunes(settings) == []


def test_without_a_retention_the_date_is_required(
    seeded: Pseudonymiser,
    settings: HubSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = default_protocol_path().read_text()
    assert "  audit_retention: P6Y\n" in text
    protocol = tmp_path / "no-retention.yaml"
    protocol.write_text(text.replace("  audit_retention: P6Y\n", ""))
    monkeypatch.setenv("HUB_PROTOCOL", str(protocol))

    result = run("prune", "--yes")
    assert result.exit_code == 1
    assert "expected an audit_retention (e.g. audit_retention: P6Y" in result.stderr

    when = (OLD + timedelta(minutes=3, seconds=30)).isoformat()
    done = json.loads(ok("prune", "--yes", "--json", "--before", when).stdout)
    assert (done["pruned"], done["stopped_by"]) == (4, "cut-off")


def test_a_bad_retention_in_the_protocol_is_refused_at_load(
    seeded: Pseudonymiser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = default_protocol_path().read_text()
    protocol = tmp_path / "bad-retention.yaml"
    protocol.write_text(text.replace("audit_retention: P6Y", "audit_retention: 6 years"))
    monkeypatch.setenv("HUB_PROTOCOL", str(protocol))
    result = run("prune", "--yes")
    assert result.exit_code == 1
    assert "expected an ISO 8601 duration" in result.stderr
