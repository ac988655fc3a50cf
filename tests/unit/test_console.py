"""The web console through the ASGI test client: every route, every role, CSRF, sessions,
justifications and the ``consulted`` audit records they leave (DPA 2018 s62)."""

from __future__ import annotations

import datetime as dt
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hub.audit import report_csv, reports
from hub.audit.checkpoint import load_log_key
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.store import open_store
from hub.cli.main import app as cli
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.settings import HubSettings
from hub.web import Accounts, Console, Role, create_app
from hub.web.app import safe_next
from hub.web.counters import live_counters
from hub.workflows.register import FlagRegister
from tests.factories import MARAC_RAISED, marac_flag

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery"
CASE = "MARAC-2026-0042"
SUBJECT = "SUBJ-000042"
HOUSING = "redditch-bc.housing-repairs"
POLICE = "west-mercia-police"
COORDINATOR = "marac.north-worcs"
SOCJAG = "uk.csp.socjag.intel.v1"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Wall:
    """A wall clock the test moves (session lifetimes)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _record(
    event_id: str, recipient: str | None, decision: AuditDecision, **kw: Any
) -> AuditRecord:
    values: dict[str, Any] = {
        "record_id": record_id_for(event_id, recipient, decision.value),
        "time": NOW - dt.timedelta(minutes=5),
        "event_id": event_id,
        "event_type": MARAC_RAISED,
        "event_time": NOW - dt.timedelta(minutes=5),
        "publisher": COORDINATOR,
        "recipient": recipient,
        "decision": decision,
        "rule": "marac-flags-to-departments",
        "reason": "rule marac-flags-to-departments",
        "lawful_basis": "UK GDPR Art 6(1)(e)",
        "fields": ("case_ref", "risk_level") if decision is AuditDecision.DELIVERED else (),
    }
    values.update(kw)
    return AuditRecord(**values)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> HubSettings:
    """A data dir with accounts, a MARAC flag in the register and its audit records."""
    data_dir = tmp_path_factory.mktemp("console")
    settings = HubSettings(data_dir=data_dir)
    accounts = Accounts(settings.console_accounts_path)
    accounts.add(name="ig", role=Role.IG_OFFICER, party=None, password=PASSWORD)
    accounts.add(name="coord", role=Role.MARAC_COORDINATOR, party=COORDINATOR, password=PASSWORD)
    accounts.add(name="housing", role=Role.AGENCY_USER, party=HOUSING, password=PASSWORD)
    pseudo = Pseudonymiser(load_pseudonym_key(settings))
    load_log_key(settings, create=True)  # as the hub's audit sink does; the console only reads
    case, subject = pseudo.case(CASE), pseudo.subject(SUBJECT)
    marac = {"case_pseudonym": case, "subject_pseudonyms": (subject,)}
    records = [
        _record(
            "evt-flag",
            HOUSING,
            AuditDecision.DELIVERED,
            gateway="Crime and Disorder Act 1998 s115",
            **marac,
        ),
        _record("evt-flag", POLICE, AuditDecision.DELIVERED, **marac),
        _record("evt-flag", "bromsgrove-dc.housing", AuditDecision.WITHHELD, **marac),
        _record(
            "evt-intel",
            POLICE,
            AuditDecision.DELIVERED,
            event_type=SOCJAG,
            publisher="redditch-bc.community-safety",
            rule="socjag-intel",
            **marac,
        ),
    ]
    # 120 more deliveries to the police, for paging
    records += [
        _record(
            f"evt-bulk-{i:03}",
            POLICE,
            AuditDecision.DELIVERED,
            rule="bulk-rule",
            time=NOW - dt.timedelta(minutes=30 - i // 10),
        )
        for i in range(120)
    ]
    store = open_store(settings)
    try:
        store.append(records)
    finally:
        store.close()
    with FlagRegister(settings.register_path) as register:
        register.record(
            case_ref=CASE,
            subject_ref=SUBJECT,
            subject_pseudonym=subject,
            status="active",
            review_date=dt.date(2027, 5, 19),
            at=NOW - dt.timedelta(minutes=5),
            event_id="evt-flag",
            event_type=MARAC_RAISED,
        )
    return settings


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
def client(seeded: HubSettings, wall: Wall) -> Iterator[TestClient]:
    console = Console(
        settings=seeded,
        accounts=Accounts(seeded.console_accounts_path),
        clock=lambda: NOW,
        wall=wall,
    )
    with TestClient(create_app(console), follow_redirects=False) as test_client:
        yield test_client


def csrf(client: TestClient, path: str = "/sign-in") -> str:
    match = CSRF.search(client.get(path).text)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> Any:
    token = csrf(client)
    return client.post(
        "/sign-in",
        data={"name": name, "password": password, "csrf_token": token, "next": "/dashboard"},
    )


def justify(client: TestClient, page: Any, reason: str = "SAR 2026/117 from the subject") -> Any:
    """Answer the justification form shown on ``page``; returns the redirect."""
    form = dict(re.findall(r'name="(key|what|next|csrf_token)" value="([^"]*)"', page.text))
    assert form.get("key"), "expected the justification form"
    return client.post(
        "/justify",
        data={**_unescape(form), "purpose": "Subject access request", "reason": reason},
    )


def _unescape(form: dict[str, str]) -> dict[str, str]:
    return {
        k: v.replace("&amp;", "&").replace("&#39;", "'").replace("&#34;", '"')
        for k, v in form.items()
    }


def consulted(settings: HubSettings) -> list[AuditRecord]:
    store = open_store(settings)
    try:
        return store.query(decision=AuditDecision.CONSULTED, limit=10_000)
    finally:
        store.close()


# -- sign-in, sessions, CSRF -----------------------------------------------------------------


def test_pages_need_a_sign_in(client: TestClient) -> None:
    response = client.get("/audit?party=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=/audit%3Fparty%3Dx"


def test_sign_in_with_a_wrong_password_is_refused(client: TestClient) -> None:
    response = sign_in(client, "ig", "not the password")
    assert response.status_code == 401
    assert "The name or password is not right." in response.text
    assert sign_in(client, "nobody", PASSWORD).status_code == 401


def test_sign_in_sets_a_strict_http_only_cookie_and_opens_the_dashboard(client: TestClient) -> None:
    response = sign_in(client, "ig")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert "Signed in as <strong>ig</strong>" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_every_post_checks_the_csrf_token(client: TestClient) -> None:
    refused = client.post("/sign-in", data={"name": "ig", "password": PASSWORD, "csrf_token": "x"})
    assert refused.status_code == 403
    sign_in(client, "ig")
    for path, data in [
        ("/justify", {"key": "event:e", "purpose": "Audit and assurance", "reason": "x" * 20}),
        ("/integrity/verify", {}),
        ("/explain", {"sample": "{}", "party": POLICE}),
        ("/sign-out", {}),
    ]:
        assert client.post(path, data={**data, "csrf_token": "forged"}).status_code == 403, path


def test_a_session_expires_after_its_lifetime_however_active(
    client: TestClient, wall: Wall, seeded: HubSettings
) -> None:
    sign_in(client, "ig")
    wall.now += seeded.console_session_lifetime - 1
    assert client.get("/dashboard").status_code == 200
    wall.now += 2
    response = client.get("/dashboard")
    assert response.status_code == 303
    assert "Your session expired" in client.get(response.headers["location"]).text


def test_sign_out_ends_the_session(client: TestClient) -> None:
    sign_in(client, "ig")
    token = csrf(client, "/dashboard")
    assert client.post("/sign-out", data={"csrf_token": token}).status_code == 303
    assert client.get("/dashboard").status_code == 303


def test_a_cookie_copied_before_sign_out_does_not_work_after_it(
    client: TestClient, seeded: HubSettings, wall: Wall
) -> None:
    sign_in(client, "ig")
    copied = client.cookies["hub_console"]
    assert client.get("/dashboard").status_code == 200
    client.post("/sign-out", data={"csrf_token": csrf(client, "/dashboard")})
    # the same app, and a restarted console on the same data dir, both refuse the copy
    restarted = Console(
        settings=seeded,
        accounts=Accounts(seeded.console_accounts_path),
        clock=lambda: NOW,
        wall=wall,
    )
    for app in (client.app, create_app(restarted)):
        with TestClient(app, follow_redirects=False, cookies={"hub_console": copied}) as thief:
            response = thief.get("/dashboard")
            assert response.status_code == 303
            assert response.headers["location"].startswith("/sign-in")
            assert thief.get("/audit", params={"event": "evt-flag"}).status_code == 303


def test_a_session_survives_a_restart_and_ends_on_every_console_of_the_data_dir(
    seeded: HubSettings, wall: Wall
) -> None:
    def console() -> Console:
        accounts = Accounts(seeded.console_accounts_path)
        return Console(settings=seeded, accounts=accounts, clock=lambda: NOW, wall=wall)

    # two consoles over one data dir, as two processes (or a console before and after a
    # restart) would be: a sign-in made on one is honoured by the other, and so is its end
    first, second = create_app(console()), create_app(console())
    with TestClient(first, follow_redirects=False) as one:
        sign_in(one, "ig")
        cookie = one.cookies["hub_console"]
        with TestClient(second, follow_redirects=False, cookies={"hub_console": cookie}) as two:
            assert two.get("/dashboard").status_code == 200
            two.post("/sign-out", data={"csrf_token": csrf(two, "/dashboard")})
        assert one.get("/dashboard").status_code == 303
    assert (seeded.data_dir / "console-sessions.sqlite3").stat().st_mode & 0o077 == 0


def test_a_removed_account_loses_its_session(seeded: HubSettings, wall: Wall) -> None:
    accounts = Accounts(seeded.console_accounts_path)
    accounts.add(name="temp", role=Role.IG_OFFICER, party=None, password=PASSWORD)
    console = Console(settings=seeded, accounts=accounts, clock=lambda: NOW, wall=wall)
    with TestClient(create_app(console), follow_redirects=False) as c:
        sign_in(c, "temp")
        assert c.get("/dashboard").status_code == 200
        accounts.remove("temp")
        assert c.get("/dashboard").status_code == 303


def test_next_is_only_ever_a_local_path() -> None:
    assert safe_next("/audit?x=1") == "/audit?x=1"
    for bad in ("//evil.example", "https://evil.example", "/\\evil", "", None):
        assert safe_next(bad) == "/dashboard"


# -- audit search ----------------------------------------------------------------------------


def test_audit_search_filters_and_pages(client: TestClient) -> None:
    sign_in(client, "ig")
    asked = client.get("/audit", params={"party": POLICE, "rule": "bulk-rule"})
    justify(client, asked, reason="Quarterly review of the police feed")
    page = client.get("/audit", params={"party": POLICE, "rule": "bulk-rule"})
    assert page.status_code == 200
    assert "120 records" in page.text
    assert page.text.count('href="/events/evt-bulk-') == 50
    assert "Page 1 of 3" in page.text
    last = client.get("/audit", params={"party": POLICE, "rule": "bulk-rule", "page": 3})
    assert last.text.count('href="/events/evt-bulk-') == 20
    withheld = client.get("/audit", params={"decision": "withheld"})
    assert "1 record<" in withheld.text
    assert "bromsgrove-dc.housing" in withheld.text
    window = client.get(
        "/audit",
        params={"rule": "bulk-rule", "since": "2026-11-23T11:30", "until": "2026-11-23T11:30:59"},
    )
    assert "10 records" in window.text
    bad = client.get("/audit", params={"since": "yesterday"})
    assert "There is a problem" in bad.text


def test_a_search_by_subject_asks_why_and_is_audited(
    client: TestClient, seeded: HubSettings
) -> None:
    sign_in(client, "ig")
    before = len(consulted(seeded))
    page = client.get("/audit", params={"subject": SUBJECT})
    assert "Why do you need to see this?" in page.text
    assert len(consulted(seeded)) == before  # nothing shown, nothing consulted yet
    too_short = justify(client, page, reason="because")
    assert too_short.status_code == 400
    done = justify(client, page)
    assert done.status_code == 303
    results = client.get(done.headers["location"])
    assert "evt-flag" in results.text
    assert "evt-intel" in results.text
    records = consulted(seeded)
    assert len(records) == before + 1
    last = records[-1]
    pseudonym = Pseudonymiser(load_pseudonym_key(seeded)).subject(SUBJECT)
    assert last.subject_pseudonyms == (pseudonym,)
    assert last.purpose == "Subject access request"
    assert "ig (ig-officer)" in last.reason
    assert "SAR 2026/117" in last.reason
    assert SUBJECT not in last.model_dump_json()  # the reference never reaches the store


def test_an_agency_user_searches_only_their_own_party(client: TestClient) -> None:
    sign_in(client, "housing")
    justify(client, client.get("/audit", params={"party": POLICE}), reason="Our monthly check")
    page = client.get("/audit", params={"party": POLICE})
    assert "1 record<" in page.text
    assert "evt-flag" in page.text
    assert "evt-bulk" not in page.text


def test_a_search_by_event_asks_why_and_is_audited(client: TestClient, seeded: HubSettings) -> None:
    sign_in(client, "ig")
    before = len(consulted(seeded))
    page = client.get("/audit", params={"event": "evt-intel"})
    assert "Why do you need to see this?" in page.text
    assert "socjag-intel" not in page.text  # no record listed before a purpose
    assert len(consulted(seeded)) == before
    justify(client, page, reason="Breach check: who received evt-intel")
    results = client.get("/audit", params={"event": "evt-intel"})
    assert "socjag-intel" in results.text
    records = consulted(seeded)
    assert len(records) == before + 1
    last = records[-1]
    assert last.event_id == "evt-intel"
    assert last.purpose == "Subject access request"
    assert "ig (ig-officer)" in last.reason
    assert "Breach check" in last.reason
    # the event's own page shares the justification, and is audited again
    assert "Why do you need to see this?" not in client.get("/events/evt-intel").text
    assert len(consulted(seeded)) == before + 2


@pytest.mark.parametrize(
    "params",
    [
        {"event": "evt-intel"},
        {"subject": SUBJECT},
        {"case": CASE},
        {"party": POLICE},
        {"decision": "withheld"},
        {"rule": "bulk-rule", "since": "2026-11-23T11:30"},
    ],
    ids=["event", "subject", "case", "party", "decision", "rule-and-time"],
)
def test_every_search_that_lists_records_asks_why_and_each_view_is_audited(
    client: TestClient, seeded: HubSettings, params: dict[str, str]
) -> None:
    sign_in(client, "ig")
    before = len(consulted(seeded))
    asked = client.get("/audit", params=params)
    assert "Why do you need to see this?" in asked.text
    assert 'href="/events/' not in asked.text
    justify(client, asked, reason="Audit and assurance sample 2026-11")
    for _ in range(2):  # each view is a consultation, not only the first
        shown = client.get("/audit", params=params)
        assert 'href="/events/' in shown.text
    records = consulted(seeded)[before:]
    assert len(records) == 2
    pseudo = Pseudonymiser(load_pseudonym_key(seeded))
    for record in records:
        assert record.reason.startswith("audit search (")
        assert record.event_id == params.get("event", record.event_id)
        assert record.subject_pseudonyms == (
            (pseudo.subject(SUBJECT),) if "subject" in params else ()
        )
        assert record.case_pseudonym == (pseudo.case(CASE) if "case" in params else None)
        assert SUBJECT not in record.model_dump_json()
        assert CASE not in record.model_dump_json()


def test_a_reference_typed_into_a_free_text_filter_is_not_recorded_in_clear(
    client: TestClient, seeded: HubSettings
) -> None:
    sign_in(client, "ig")
    params = {"party": SUBJECT, "rule": CASE, "decision": "delivered"}
    justify(client, client.get("/audit", params=params), reason="Testing the search filters")
    client.get("/audit", params=params)
    record = consulted(seeded)[-1]
    assert record.reason.startswith("audit search (party other, rule other, decision delivered)")
    assert SUBJECT not in record.model_dump_json()
    assert CASE not in record.model_dump_json()


# -- event detail and role denial ------------------------------------------------------------


def test_event_detail_is_justified_then_shown_and_audited(
    client: TestClient, seeded: HubSettings
) -> None:
    sign_in(client, "ig")
    page = client.get("/events/evt-flag")
    assert "Why do you need to see this?" in page.text
    justify(client, page, reason="Breach check for the housing feed")
    shown = client.get("/events/evt-flag")
    assert shown.status_code == 200
    assert shown.text.count('class="record"') == 3
    # the record names the legal gateway itself, not only the rule (issue 17)
    assert '<dd class="gateway">Crime and Disorder Act 1998 s115</dd>' in shown.text
    assert any(r.event_id == "evt-flag" for r in consulted(seeded))


def test_an_agency_user_cannot_open_another_partys_event(client: TestClient) -> None:
    sign_in(client, "housing")
    denied = client.get("/events/evt-intel")
    assert denied.status_code == 403
    assert "not one your party published or received" in denied.text
    own = client.get("/events/evt-flag")
    justify(client, own, reason="Checking our marker was placed")
    shown = client.get("/events/evt-flag")
    assert shown.text.count('class="record"') == 1  # only the delivery to housing
    assert client.get("/events/no-such-event").status_code == 404


def test_every_page_renders_for_the_roles_it_allows(client: TestClient) -> None:
    sign_in(client, "ig")
    for path in ("/audit", "/reports/sar", "/reports/chronology", "/integrity", "/protocol",
                 "/explain", "/dashboard"):  # fmt: skip
        page = client.get(path)
        assert page.status_code == 200, path
        assert "<h1>" in page.text, path


def test_roles_bound_the_pages(client: TestClient) -> None:
    sign_in(client, "housing")
    for path in ("/reports/sar", "/reports/chronology", "/marac", "/integrity"):
        assert client.get(path).status_code == 403, path
    assert client.get("/protocol").status_code == 200
    client.cookies.clear()
    sign_in(client, "coord")
    assert client.get("/reports/sar?subject=x").status_code == 403
    assert client.get("/integrity").status_code == 403


# -- reports ---------------------------------------------------------------------------------


def test_sar_page_and_csv_match_the_report(client: TestClient, seeded: HubSettings) -> None:
    sign_in(client, "ig")
    page = client.get("/reports/sar", params={"subject": SUBJECT})
    justify(client, page)
    shown = client.get("/reports/sar", params={"subject": SUBJECT})
    assert "Disclosures (3)" in shown.text
    before = len(consulted(seeded))
    exported = client.get("/reports/sar.csv", params={"subject": SUBJECT})
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    store = open_store(seeded)
    try:
        report = reports.subject_access(store, Pseudonymiser(load_pseudonym_key(seeded)), SUBJECT)
    finally:
        store.close()
    assert exported.text == report_csv.sar_csv(report)
    after = consulted(seeded)
    assert len(after) == before + 1
    assert after[-1].reason.startswith("subject access report (CSV) viewed by ig")
    printable = client.get("/reports/sar", params={"subject": SUBJECT, "print": "1"})
    assert 'class="print-view"' in printable.text


def test_a_coordinator_sees_the_marac_part_of_a_chronology(client: TestClient) -> None:
    sign_in(client, "coord")
    page = client.get("/reports/chronology", params={"case": CASE})
    justify(client, page, reason="MARAC meeting 2026-11-26 preparation")
    shown = client.get("/reports/chronology", params={"case": CASE})
    assert "evt-flag" in shown.text
    assert "evt-intel" not in shown.text
    exported = client.get("/reports/chronology.csv", params={"case": CASE})
    assert exported.text.splitlines()[0].startswith("event_time,event_id")
    assert "evt-intel" not in exported.text


def test_marac_board_shows_flags_departments_and_acknowledgements(client: TestClient) -> None:
    sign_in(client, "coord")
    page = client.get("/marac")
    justify(client, page, reason="Daily check of flag acknowledgements")
    board = client.get("/marac")
    assert CASE in board.text
    assert HOUSING in board.text
    assert "awaiting" in board.text  # delivered five minutes ago, not yet acknowledged


# -- integrity, protocol, explain, counters ---------------------------------------------------


def test_integrity_verifies_now_and_shows_the_result(
    client: TestClient, seeded: HubSettings
) -> None:
    sign_in(client, "ig")
    page = client.get("/integrity")
    assert "No checkpoint has been signed yet." in page.text
    assert "Not verified from the console yet." in page.text
    token = csrf(client, "/integrity")
    done = client.post("/integrity/verify", data={"csrf_token": token})
    assert done.status_code == 303
    after = client.get("/integrity")
    assert 'id="verify-result">verified' in after.text
    store = open_store(seeded)
    try:
        size = store.size()
    finally:
        store.close()
    assert size >= 124  # the seeded records and the consultations so far
    assert f"verified</strong> {size} records" in after.text


def test_protocol_page_lists_parties_rules_and_reviews(client: TestClient) -> None:
    sign_in(client, "housing")
    page = client.get("/protocol")
    assert HOUSING in page.text
    assert "Information sharing agreements" in page.text
    assert "Art 6(1)(e)" in page.text


def test_explain_shows_what_a_party_would_receive(client: TestClient) -> None:
    sign_in(client, "coord")
    sample = {"type": MARAC_RAISED, "source": COORDINATOR, "data": marac_flag(CASE)}
    token = csrf(client, "/explain")
    import json

    result = client.post(
        "/explain", data={"sample": json.dumps(sample), "party": HOUSING, "csrf_token": token}
    )
    assert result.status_code == 200
    assert ">deliver<" in result.text
    assert "notes" in result.text  # listed among the removed fields
    bad = client.post("/explain", data={"sample": "{", "party": HOUSING, "csrf_token": token})
    assert bad.status_code == 400
    assert "not valid JSON" in bad.text


def test_dashboard_counts_and_live_fragment(client: TestClient) -> None:
    sign_in(client, "ig")
    page = client.get("/dashboard")
    assert 'id="count-delivered">123<' in page.text
    assert 'id="count-withheld">1<' in page.text
    fragment = client.get("/dashboard/live")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert 'id="count-quarantined">0<' in fragment.text
    assert "<svg" in fragment.text


def test_live_counters_bucket_by_minute_and_type() -> None:
    at = NOW - dt.timedelta(seconds=30)
    recent = [
        _record("a", POLICE, AuditDecision.DELIVERED, time=at),
        _record("a", HOUSING, AuditDecision.DELIVERED, time=at),
        _record("b", POLICE, AuditDecision.WITHHELD, time=at, event_type=SOCJAG),
        _record("c", POLICE, AuditDecision.DELIVERED, time=NOW - dt.timedelta(minutes=10)),
        _record("d", None, AuditDecision.CONSULTED, time=at),
    ]
    live = live_counters({"delivered": 3}, recent, now=NOW)
    assert live.per_type == [(MARAC_RAISED, 1), (SOCJAG, 1)]
    assert live.peak == 3
    assert len(live.bars) == 60
    assert live.bars[-1].delivered == 0
    assert live.bars[-2].delivered == 2
    assert live.bars[-2].withheld == 1


# -- accounts and the CLI --------------------------------------------------------------------


def test_accounts_keep_only_argon2id_hashes(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "accounts.toml")
    accounts.add(name="a", role=Role.IG_OFFICER, party=None, password=PASSWORD)
    text = (tmp_path / "accounts.toml").read_text()
    assert PASSWORD not in text
    assert 'password_hash = "$argon2id$' in text
    assert stat.S_IMODE((tmp_path / "accounts.toml").stat().st_mode) == 0o600
    assert accounts.authenticate("a", PASSWORD) is not None
    assert accounts.authenticate("a", PASSWORD + "!") is None


def test_production_password_hashes_use_rfc_9106s_argon2id_parameters() -> None:
    # the test process hashes at Argon2's cheapest (conftest), so the parameters a console
    # really uses are read in a fresh interpreter: RFC 9106 section 4's second recommended
    # option, Argon2id with 64 MiB, 3 passes, 4 lanes, a 16-byte salt and a 32-byte tag
    probe = (
        "from hub.web import accounts; h = accounts._HASHER; "
        "print(h.type.name, h.memory_cost, h.time_cost, h.parallelism, h.salt_len, h.hash_len)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert shown == ["ID", "65536", "3", "4", "16", "32"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "a", "role": Role.IG_OFFICER, "party": None, "password": "short"}, "at least 12"),
        ({"name": "a", "role": Role.AGENCY_USER, "party": None, "password": PASSWORD}, "party"),
        ({"name": "a b", "role": Role.IG_OFFICER, "party": None, "password": PASSWORD}, "name"),
    ],
)
def test_bad_accounts_are_refused(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    from hub.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        Accounts(tmp_path / "accounts.toml").add(**kwargs)


def test_cli_adds_and_lists_accounts_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    added = runner.invoke(
        cli,
        ["console", "user", "add", "--name", "h", "--role", "agency-user", "--party", HOUSING,
         "--password-stdin"],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert PASSWORD not in added.output
    listed = runner.invoke(cli, ["console", "user", "list", "--json"])
    assert '"role": "agency-user"' in listed.output
    unknown = runner.invoke(
        cli,
        ["console", "user", "add", "--name", "x", "--role", "agency-user", "--party", "nope",
         "--password-stdin"],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert unknown.exit_code == 1
    assert (tmp_path / "console-accounts.toml").exists()
