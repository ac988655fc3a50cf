"""Reads of personal data from the CLI name who and why, and are logged (DPA 2018 s62).

And a read never creates a key or a store: a data dir that holds no hub is refused.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hub.audit.checkpoint import load_log_key, log_signer
from hub.audit.consultations import PURPOSES
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.sqlite import SQLiteAuditStore
from hub.cli import audit_consult
from hub.cli.audit import app
from hub.models import AuditDecision, AuditRecord
from hub.settings import HubSettings
from tests.unit.test_reports import CASE, VICTIM, seed_records

JUSTIFIED = ("--operator", "A Patel", "--purpose", "sar", "--reason", "subject access request 42")

#: every `hub audit` command that shows personal data, with what it needs to find some
READS = {
    "query": ["query", "--subject", VICTIM, "--json"],
    "sar": ["sar", "--subject", VICTIM, "--json"],
    "chronology": ["chronology", "--case", CASE, "--csv"],
    "recipients": ["recipients", "--event", "evt-raise"],
}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray hub.toml, and where ./.hub would be created
    for name in ("HUB_AUDIT_URL", "HUB_PSEUDONYM_KEY"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("HUB_DATA_DIR", str(data))
    return data


@pytest.fixture
def seeded(data_dir: Path) -> Pseudonymiser:
    pseudo = Pseudonymiser(load_pseudonym_key(HubSettings(data_dir=data_dir)))
    with SQLiteAuditStore(data_dir / "audit.sqlite3") as store:
        store.append(seed_records(pseudo))
    return pseudo


def run(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=stdin)


def consulted(data_dir: Path) -> list[AuditRecord]:
    with SQLiteAuditStore(data_dir / "audit.sqlite3") as store:
        return store.query(decision=AuditDecision.CONSULTED)


def size(data_dir: Path) -> int:
    with SQLiteAuditStore(data_dir / "audit.sqlite3") as store:
        return store.size()


# -- refused without who and why ---------------------------------------------------------


@pytest.mark.parametrize("command", sorted(READS))
def test_a_read_without_operator_purpose_and_reason_is_refused(
    seeded: Pseudonymiser, data_dir: Path, command: str
) -> None:
    before = size(data_dir)
    result = run(*READS[command])

    assert result.exit_code == 1
    assert result.stdout == ""  # nothing shown
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: hub audit {command} shows personal data")
    assert "got no --operator, --purpose, --reason" in result.stderr
    assert "Traceback" not in result.stderr
    assert size(data_dir) == before


def test_the_refusal_names_only_what_is_missing(seeded: Pseudonymiser, data_dir: Path) -> None:
    result = run(*READS["sar"], "--operator", "A Patel", "--purpose", "sar")

    assert result.exit_code == 1
    assert "got no --reason " in result.stderr
    assert consulted(data_dir) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--purpose", "curiosity"), "--purpose: expected one of sar, dhr, marac"),
        (("--reason", "because"), "--reason: expected why you need to see this"),
        (("--operator", "   "), "--operator: expected your name"),
    ],
)
def test_unusable_values_are_refused(
    seeded: Pseudonymiser, data_dir: Path, args: tuple[str, str], message: str
) -> None:
    values = dict(zip(JUSTIFIED[::2], JUSTIFIED[1::2], strict=True))
    values.update([args])
    result = run(*READS["sar"], *(part for item in values.items() for part in item))

    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""
    assert consulted(data_dir) == []


# -- logged when justified ---------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(READS))
def test_a_justified_read_appends_one_consulted_record(
    seeded: Pseudonymiser, data_dir: Path, command: str
) -> None:
    before = size(data_dir)
    result = run(*READS[command], *JUSTIFIED)

    assert result.exit_code == 0, result.stderr
    assert VICTIM in result.stdout or CASE in result.stdout or "hw-icb" in result.stdout
    assert size(data_dir) == before + 1
    (record,) = consulted(data_dir)
    assert record.purpose == "Subject access request"
    assert record.event_id.startswith("cli:") or record.event_id == "evt-raise"
    assert "viewed by A Patel (command line, OS user " in record.reason
    assert record.reason.endswith(": subject access request 42")
    # what was read is findable by its pseudonym, never by the reference in clear
    stored = record.model_dump_json()
    assert VICTIM not in stored
    assert CASE not in stored
    expected = {
        "query": ("audit query", (seeded.subject(VICTIM),), None, None),
        "sar": ("subject access report (JSON)", (seeded.subject(VICTIM),), None, None),
        "chronology": ("case chronology (CSV)", (), seeded.case(CASE), None),
        "recipients": ("event recipients", (), None, "evt-raise"),
    }[command]
    what, subjects, case, event = expected
    assert record.reason.startswith(f"{what} ")
    assert record.subject_pseudonyms == subjects
    assert record.case_pseudonym == case
    if event is not None:
        assert record.event_id == event


def test_a_sar_finds_who_looked_from_the_command_line(
    seeded: Pseudonymiser, data_dir: Path
) -> None:
    """The consultation is itself personal-data processing the subject may ask about."""
    run(*READS["sar"], *JUSTIFIED)
    again = run(*READS["query"], *JUSTIFIED, "--decision", "consulted")

    assert again.exit_code == 0, again.stderr
    assert "A Patel (command line" in again.stdout


def test_a_query_names_an_unknown_party_only_as_other(
    seeded: Pseudonymiser, data_dir: Path
) -> None:
    result = run("query", "--party", VICTIM, *JUSTIFIED)

    assert result.exit_code == 0, result.stderr
    (record,) = consulted(data_dir)
    assert record.reason.startswith("audit query (party other, limit 1000, command line) ")
    assert VICTIM not in record.model_dump_json()


def test_on_a_terminal_what_is_missing_is_asked_for(
    seeded: Pseudonymiser, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_consult, "_interactive", lambda: True)
    answers = "A Patel\nnosy\n2\ntoo short\nDHR panel request of 3 May\n"
    result = run(*READS["chronology"], stdin=answers)

    assert result.exit_code == 0, result.stderr
    (record,) = consulted(data_dir)
    assert record.purpose == PURPOSES[1] == "Domestic Homicide Review"
    assert "viewed by A Patel (command line" in record.reason
    assert record.reason.endswith(": DHR panel request of 3 May")
    assert "--purpose: expected one of" in result.stderr  # "nosy" was asked again
    assert "--reason: expected why" in result.stderr  # so was "too short"


def test_the_full_purpose_text_is_accepted(seeded: Pseudonymiser, data_dir: Path) -> None:
    args = ["--operator", "A Patel", "--reason", "annual assurance sample"]
    result = run(*READS["recipients"], *args, "--purpose", " audit AND assurance ")

    assert result.exit_code == 0, result.stderr
    assert consulted(data_dir)[0].purpose == "Audit and assurance"


def test_counts_and_integrity_ask_nothing(seeded: Pseudonymiser, data_dir: Path) -> None:
    load_log_key(HubSettings(data_dir=data_dir), create=True)  # as the hub's sink would
    for args in (["volumes", "--since", "2024-05-01"], ["verify"], ["log-key"], ["checkpoint"]):
        result = run(*args)
        assert result.exit_code == 0, (args, result.stderr)
    assert consulted(data_dir) == []


# -- a read never creates a key ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["log-key"],
        ["verify"],
        ["proof", "--event", "evt-raise"],
        ["consistency", "--from", "1", "--to", "2"],
        ["checkpoint"],
        *[[*args, *JUSTIFIED] for args in READS.values()],
    ],
)
def test_a_read_without_hub_data_dir_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """Run in a directory with no hub: refused, and no ./.hub/keys/log-signing.key."""
    monkeypatch.chdir(tmp_path)
    for name in ("HUB_DATA_DIR", "HUB_AUDIT_URL", "HUB_PSEUDONYM_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = run(*args)

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "no hub has run with this HUB_DATA_DIR" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["log-key"], ["verify"], ["proof", "--event", "evt-raise"]])
def test_a_store_without_its_log_key_is_refused_not_given_a_new_one(
    seeded: Pseudonymiser, data_dir: Path, args: list[str]
) -> None:
    """The wrong data dir (a copy of the store alone) must not mint a verifier key."""
    result = run(*args)

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "log signing key" in result.stderr
    assert "got no such file" in result.stderr
    assert not (data_dir / "keys" / "log-signing.key").exists()


@pytest.mark.parametrize("command", ["sar", "chronology", "query"])
def test_a_postgres_read_without_the_pseudonym_key_creates_none(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """No SQLite file to look for: the missing key refuses the read before any query."""
    monkeypatch.setenv("HUB_AUDIT_URL", "postgresql://hub@127.0.0.1:1/hub?connect_timeout=1")
    result = run(*READS[command], *JUSTIFIED)

    assert result.exit_code == 1
    assert "pseudonym key" in result.stderr
    assert "got no such file" in result.stderr
    assert not data_dir.exists()


def test_the_log_key_printed_is_the_hubs(seeded: Pseudonymiser, data_dir: Path) -> None:
    settings = HubSettings(data_dir=data_dir)
    signer = log_signer(settings, create=True)  # as the hub's sink does when it starts
    printed = run("log-key")

    assert printed.exit_code == 0, printed.stderr
    assert printed.stdout.strip() == signer.verifier_key


def test_the_console_on_a_data_dir_without_the_hubs_keys_says_so(
    seeded: Pseudonymiser, data_dir: Path
) -> None:
    """The console is a reader too: its integrity page refuses, and creates no log key."""
    from fastapi.testclient import TestClient

    from hub.web import Accounts, Console, Role, create_app
    from tests.unit.test_console import PASSWORD, sign_in

    settings = HubSettings(data_dir=data_dir)
    accounts = Accounts(settings.console_accounts_path)
    accounts.add(name="ig", role=Role.IG_OFFICER, party=None, password=PASSWORD)
    console = Console(settings=settings, accounts=accounts, clock=lambda: dt.datetime.now(dt.UTC))
    with TestClient(create_app(console), follow_redirects=False) as client:
        sign_in(client, "ig")
        page = client.get("/integrity")

    assert page.status_code == 503
    assert "no hub has run with this HUB_DATA_DIR" in page.text
    assert not (data_dir / "keys" / "log-signing.key").exists()
