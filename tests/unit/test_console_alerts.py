"""The IG role's alert in the console: hub.audit messages the audit sink refused.

The sink's own ``rejected`` records (event id ``audit:<origin>``, reason
``forged_audit_message: ...`` or ``unreadable_audit_message: ...``) appear as a banner on an IG
officer's dashboard and as a list on the log integrity page; other roles see neither.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.agents.sink import Refused
from hub.audit.checkpoint import load_log_key
from hub.audit.refusals import parse_refusal, recent_refusals, refusals_in
from hub.audit.store import open_store
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.settings import HubSettings
from hub.web import Accounts, Console, Role, create_app
from tests.unit.test_console import COORDINATOR, HOUSING, NOW, PASSWORD, Wall, sign_in

FORGED = b'{"records": [{"event_id": "forged-event"}]}'
JUNK = b"\xff\xfe not an audit message"


def _refusal(offset: int, reason: str, value: bytes, *, minutes_ago: int = 3) -> AuditRecord:
    """The record the real sink writes for a refused message (``Refused.audit_record``)."""
    refused = Refused(
        origin=f"hub.audit/0@{offset}",
        reason=reason,
        detail="no hub_mac header" if reason == "forged_audit_message" else "not an audit batch",
        writer=None,
        key=None,
        value=value,
        headers=[],
    )
    return refused.audit_record(now=NOW - dt.timedelta(minutes=minutes_ago))


def _quarantined_event() -> AuditRecord:
    """An ordinary rejection of a party's event: not an audit stream alert."""
    return AuditRecord(
        record_id=record_id_for("evt-bad", None, "rejected"),
        time=NOW - dt.timedelta(minutes=2),
        event_id="evt-bad",
        publisher=HOUSING,
        decision=AuditDecision.REJECTED,
        reason="bad_signature: the signature does not verify",
    )


def _settings(data_dir: Path, records: list[AuditRecord]) -> HubSettings:
    settings = HubSettings(data_dir=data_dir)
    accounts = Accounts(settings.console_accounts_path)
    accounts.add(name="ig", role=Role.IG_OFFICER, party=None, password=PASSWORD)
    accounts.add(name="coord", role=Role.MARAC_COORDINATOR, party=COORDINATOR, password=PASSWORD)
    accounts.add(name="housing", role=Role.AGENCY_USER, party=HOUSING, password=PASSWORD)
    store = open_store(settings)
    try:
        store.append(records)
    finally:
        store.close()
    load_log_key(settings, create=True)  # as the audit sink of a hub that has run
    return settings


def _client(settings: HubSettings) -> TestClient:
    console = Console(
        settings=settings,
        accounts=Accounts(settings.console_accounts_path),
        clock=lambda: NOW,
        wall=Wall(),
    )
    return TestClient(create_app(console), follow_redirects=False)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """A hub whose sink refused one forged and one unreadable message, long ago and now."""
    records = [
        _refusal(7, "forged_audit_message", FORGED),
        _refusal(8, "unreadable_audit_message", JUNK, minutes_ago=1),
        _refusal(2, "forged_audit_message", b"old", minutes_ago=60 * 24 * 45),  # outside
        _quarantined_event(),
    ]
    with _client(_settings(tmp_path, records)) as test_client:
        yield test_client


def test_an_ig_officer_sees_refusals_on_the_dashboard(client: TestClient) -> None:
    sign_in(client, "ig")
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert 'id="audit-refusals-alert"' in page.text
    assert 'id="refusal-count">2<' in page.text
    assert "hub.audit messages refused since 2026-10-24 12:00:00Z" in page.text
    assert "1 forged:</strong> someone wrote to hub.audit without the hub's key" in page.text
    assert "1 unreadable:" in page.text
    assert 'href="/integrity#refusals"' in page.text


def test_an_ig_officer_sees_each_refusal_on_the_integrity_page(client: TestClient) -> None:
    sign_in(client, "ig")
    page = client.get("/integrity")
    assert page.status_code == 200
    assert 'id="refusal-count">2<' in page.text
    rows = page.text.split('id="refusal-list"')[1].split("</table>")[0]
    newest, older = rows.split("<tr>")[2:]
    assert "2026-11-23 11:59:00Z" in newest
    assert "hub.audit/0@8" in newest
    assert "unreadable_audit_message" in newest
    assert hashlib.sha256(JUNK).hexdigest() in newest
    assert "2026-11-23 11:57:00Z" in older
    assert "hub.audit/0@7" in older
    assert "forged_audit_message" in older
    assert "no hub_mac header" in older
    assert hashlib.sha256(FORGED).hexdigest() in older
    assert "hub.audit/0@2" not in page.text  # outside the alert window
    assert "evt-bad" not in page.text  # an ordinary rejection is not an alert
    assert "/audit?" not in rows  # links to nothing


@pytest.mark.parametrize("name", ["housing", "coord"])
def test_other_roles_see_no_refusals(client: TestClient, name: str) -> None:
    sign_in(client, name)
    page = client.get("/dashboard")
    assert page.status_code == 200
    assert "audit-refusals-alert" not in page.text
    assert "refused" not in page.text
    assert hashlib.sha256(FORGED).hexdigest() not in page.text
    assert client.get("/integrity").status_code == 403


def test_no_banner_without_refusals(tmp_path: Path) -> None:
    with _client(_settings(tmp_path, [_quarantined_event()])) as client:
        sign_in(client, "ig")
        assert "audit-refusals-alert" not in client.get("/dashboard").text
        page = client.get("/integrity")
        assert "audit-refusals-alert" not in page.text
        assert 'id="no-refusals"' in page.text


def test_refusals_are_read_from_the_store_and_parsed(tmp_path: Path) -> None:
    settings = _settings(
        tmp_path, [_refusal(7, "forged_audit_message", FORGED), _quarantined_event()]
    )
    store = open_store(settings)
    try:
        found = recent_refusals(store, now=NOW)
    finally:
        store.close()
    assert found.count == 1
    assert not found.truncated
    (refusal,) = found.items
    assert refusal.origin == "hub.audit/0@7"
    assert refusal.kind == "forged_audit_message"
    assert refusal.detail == "no hub_mac header"
    assert refusal.writer is None
    assert refusal.sha256 == hashlib.sha256(FORGED).hexdigest()


def test_a_party_event_with_an_audit_like_id_is_not_a_refusal() -> None:
    spoof = AuditRecord(
        record_id="x",
        time=NOW,
        event_id="audit:hub.audit/0@1",
        publisher=HOUSING,
        decision=AuditDecision.REJECTED,
        reason="forged_audit_message: looks like one",
    )
    assert refusals_in([spoof]) == []
    odd = spoof.model_copy(update={"publisher": None, "reason": "forged_audit_message: short"})
    parsed = parse_refusal(odd)
    assert (parsed.kind, parsed.detail, parsed.sha256) == ("forged_audit_message", "short", None)


def test_refusals_behind_many_ordinary_rejections_are_found(tmp_path: Path) -> None:
    def ordinary(i: int) -> AuditRecord:
        return _quarantined_event().model_copy(
            update={
                "record_id": f"bad-{i}",
                "event_id": f"evt-bad-{i}",
                "time": NOW - dt.timedelta(minutes=30 - i),
            }
        )

    records = [ordinary(i) for i in range(12)]
    records.insert(3, _refusal(7, "forged_audit_message", FORGED, minutes_ago=27))
    records.append(_refusal(8, "unreadable_audit_message", JUNK, minutes_ago=1))
    store = open_store(_settings(tmp_path, records))
    try:
        found = recent_refusals(store, now=NOW, page=5)
        assert [r.origin for r in found.items] == ["hub.audit/0@8", "hub.audit/0@7"]
        assert not found.truncated
        assert recent_refusals(store, now=NOW, page=5, max_pages=1).truncated
    finally:
        store.close()
