"""`hub asb status|report` and the console's ASB Case Reviews page, over a seeded register."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hub.audit.checkpoint import load_log_key
from hub.audit.store import open_store
from hub.cli.main import app as cli
from hub.clock import FileClock
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.settings import HubSettings
from hub.web import Accounts, Console, Role, create_app
from hub.workflows.asb.register import AsbRegister
from tests import factories

NOW = dt.datetime(2026, 4, 20, 9, 0, tzinfo=dt.UTC)  # the answers were due on Friday 17th
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CASE = "ASB-2026-0042"


def _delivered(event_id: str, event_type: str, recipient: str, rule: str) -> AuditRecord:
    return AuditRecord(
        record_id=record_id_for(event_id, recipient, "delivered"),
        time=NOW,
        event_id=event_id,
        event_type=event_type,
        event_time=NOW,
        publisher="hub" if event_type == factories.ASB_THRESHOLD else "nwcsp.asb-case-review",
        recipient=recipient,
        decision=AuditDecision.DELIVERED,
        rule=rule,
        reason=f"rule {rule}",
        fields=("case_ref",),
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> HubSettings:
    """A case whose housing provider has not answered, and a year's audit records."""
    data_dir = tmp_path_factory.mktemp("asb-views")
    clock = FileClock(data_dir / "clock")
    clock.set(NOW)
    settings = HubSettings(data_dir=data_dir, clock_file=clock.path)
    with AsbRegister(settings.register_path) as register:
        register.open_case(
            event_id="e-app", case_ref=CASE, applicant_ref="APP-42", applicant_kind="mp",
            district="bromsgrove", received_on=dt.date(2026, 4, 1),
        )  # fmt: skip
        for body in ("west-mercia-police", "hw-icb", "bromsgrove-dc.community-safety"):
            register.answer(
                event_id=f"e-{body}", case_ref=CASE, body=body,
                answered_on=dt.date(2026, 4, 10), complaints=[],
            )  # fmt: skip
        register.mark_alert("alert-1", "answer_overdue", CASE, NOW)
    load_log_key(settings, create=True)
    store = open_store(settings)
    try:
        store.append(
            [
                _delivered(
                    "e-app",
                    factories.ASB_APPLICATION,
                    "west-mercia-police",
                    "asb-application-identity",
                ),
                _delivered(
                    "e-app", factories.ASB_APPLICATION, "hw-icb", "asb-application-location-only"
                ),
                _delivered(
                    "e-app2", factories.ASB_APPLICATION, "hw-icb", "asb-application-location-only"
                ),
                _delivered("e-thr", factories.ASB_THRESHOLD, "hw-icb", "asb-threshold-met"),
                _delivered("e-thr", factories.ASB_THRESHOLD, "rp.bdht", "asb-threshold-met"),
                _delivered("e-thr2", factories.ASB_THRESHOLD, "hw-icb", "asb-threshold-not-met"),
                _delivered(
                    "e-appeal", factories.ASB_APPEAL, "hw-icb", "asb-case-progress-to-bodies"
                ),
            ]
        )
    finally:
        store.close()
    accounts = Accounts(settings.console_accounts_path)
    accounts.add(name="ig", role=Role.IG_OFFICER, party=None, password=PASSWORD)
    accounts.add(name="housing", role=Role.AGENCY_USER, party="rp.bdht", password=PASSWORD)
    return settings


def run(settings: HubSettings, *args: str) -> Any:
    env = {"HUB_DATA_DIR": str(settings.data_dir), "HUB_CLOCK_FILE": str(settings.clock_file)}
    return CliRunner().invoke(cli, list(args), env=env)


def test_status_shows_stages_deadlines_and_the_overdue_answer(seeded: HubSettings) -> None:
    result = run(seeded, "asb", "status", "--json")
    assert result.exit_code == 1, result.output  # an overdue deadline
    (case,) = json.loads(result.stdout)["cases"]
    assert (case["case_ref"], case["stage"], case["applicant_kind"]) == (CASE, "received", "mp")
    overdue = {(d["kind"], d["party"]) for d in case["deadlines"] if d["overdue"]}
    assert overdue == {("acknowledge", "nwcsp.asb-case-review"), ("answer", "rp.bdht")}
    assert case["escalated"] == ["answer_overdue"]
    text = run(seeded, "asb", "status")
    assert f"{CASE}  received  bromsgrove  received 2026-04-01  threshold pending" in text.stdout
    assert re.search(r"answer\s+rp\.bdht\s+OVERDUE since 2026-04-17", text.stdout)
    assert "escalated: answer_overdue" in text.stdout
    missing = run(seeded, "asb", "status", "--case", "ASB-NONE")
    assert missing.exit_code == 0
    assert "no such ASB case review" in missing.output


def test_report_counts_each_event_once_by_its_rule(seeded: HubSettings) -> None:
    result = run(seeded, "asb", "report", "--year", "2026", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert {k: figures[k] for k in ("applications", "threshold_decisions", "thresholds_met",
                                    "thresholds_not_met", "outcomes", "appeals")} == {
        "applications": 2, "threshold_decisions": 2, "thresholds_met": 1,
        "thresholds_not_met": 1, "outcomes": 0, "appeals": 1,
    }  # fmt: skip
    assert (
        json.loads(run(seeded, "asb", "report", "--year", "2027", "--json").stdout)["applications"]
        == 0
    )
    bad = run(seeded, "asb", "report", "--year", "soon")
    assert bad.exit_code != 0
    assert "Traceback" not in bad.output


@pytest.fixture
def client(seeded: HubSettings) -> Iterator[TestClient]:
    console = Console(
        settings=seeded,
        accounts=Accounts(seeded.console_accounts_path),
        clock=lambda: NOW,
        wall=lambda: 1_000_000.0,
    )
    with TestClient(create_app(console), follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient, name: str) -> None:
    match = CSRF.search(client.get("/sign-in").text)
    assert match
    client.post(
        "/sign-in",
        data={
            "name": name,
            "password": PASSWORD,
            "csrf_token": match.group(1),
            "next": "/dashboard",
        },
    )


def test_the_console_page_shows_cases_deadlines_and_overdue_items(
    client: TestClient, seeded: HubSettings
) -> None:
    sign_in(client, "ig")
    assert 'href="/asb"' in client.get("/dashboard").text  # in the navigation
    page = client.get("/asb")
    form = dict(re.findall(r'name="(key|what|next|csrf_token)" value="([^"]*)"', page.text))
    assert form.get("key") == "asb-board"  # a justification first: it is a consultation
    reason = "Weekly check of ASB case review timescales"
    client.post("/justify", data={**form, "purpose": "Subject access request", "reason": reason})
    board = client.get("/asb")
    assert board.status_code == 200
    assert CASE in board.text
    assert '<strong id="overdue-count">2</strong>' in board.text
    assert "rp.bdht" in board.text
    assert "overdue" in board.text
    assert "answer_overdue" in board.text


def test_agency_users_cannot_open_the_board(client: TestClient) -> None:
    sign_in(client, "housing")
    assert client.get("/asb").status_code == 403
    assert 'href="/asb"' not in client.get("/dashboard").text
