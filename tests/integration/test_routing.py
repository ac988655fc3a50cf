"""Every rule of the reference protocol, end to end on the real broker, through the SDK.

For each event: the audit store says who got it under which rule, each recipient's topic
holds exactly the allowed fields, and parties the protocol does not name never see it.
"""

from __future__ import annotations

import sqlite3

import pytest

from hub.models import AuditDecision, Delivery
from tests.conftest import RunningHub, unique, wait_for
from tests.factories import (
    BAN,
    MARAC_RAISED,
    MARAC_WITHDRAWN,
    SOCJAG,
    marac_flag,
    marac_withdrawn,
    pubwatch_ban,
    socjag_intel,
)

pytestmark = pytest.mark.integration

DEPARTMENT_FIELDS = {
    "case_ref",
    "subject_ref",
    "markers",
    "risk_level",
    "address",
    "marac_date",
    "review_date",
    "contact",
}
REDDITCH_DEPTS = {
    "redditch-bc.housing-repairs",
    "redditch-bc.neighbourhood-tenancy",
    "redditch-bc.community-safety",
}
#: health's urgent-care settings and the ICB hold every flag, countywide (NHS CP-IS)
URGENT_CARE = {
    "hw-icb",
    "wah-nhs.alexandra-ed",
    "wah-nhs.kidderminster-miu",
    "wah-nhs.safeguarding",
}
SCHEMES = {
    "pubwatch.redditch.crown-inn",
    "pubwatch.redditch.rising-sun",
    "bcrp.redditch.kingfisher-retail",
}


def delivered_to(hub: RunningHub, event_id: str, records: int) -> dict[str, set[str]]:
    rows = hub.wait_records(event_id, at_least=records)
    return {
        r.recipient: set(r.fields)
        for r in rows
        if r.decision == AuditDecision.DELIVERED and r.recipient is not None
    }


def received(hub: RunningHub, party: str, event_id: str) -> Delivery | None:
    found = hub.deliveries(party, until=lambda ds: any(d.id == event_id for d in ds), timeout=15)
    return next((d for d in found if d.id == event_id), None)


def never_received(hub: RunningHub, party: str, event_id: str) -> bool:
    return all(d.id != event_id for d in hub.deliveries(party))


def test_marac_flag_full_to_police_and_coordinator_minimal_to_district(hub: RunningHub) -> None:
    case = unique("MARAC")
    event_id = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(case))
    delivered = delivered_to(hub, event_id, records=8)

    assert set(delivered) == {"west-mercia-police", *REDDITCH_DEPTS, *URGENT_CARE}
    police = received(hub, "west-mercia-police", event_id)
    assert police is not None
    assert police.data["notes"]
    assert police.data["dash_score"] == 17
    for dept in REDDITCH_DEPTS:
        got = received(hub, dept, event_id)
        assert got is not None, dept
        assert set(got.data) == DEPARTMENT_FIELDS
        assert got.rule == "marac-flag-district-departments"
    records = hub.records(event_id)
    withheld = {r.recipient for r in records if r.decision == AuditDecision.WITHHELD}
    assert {"bromsgrove-dc.housing", "wyre-forest-dc.housing"} <= withheld
    for party in ("bromsgrove-dc.housing", "wyre-forest-dc.community-safety", *SCHEMES):
        assert never_received(hub, party, event_id), party


def test_marac_flag_from_police_reaches_coordinator(hub: RunningHub) -> None:
    case = unique("MARAC")
    event_id = hub.publish(
        "west-mercia-police", MARAC_RAISED, marac_flag(case, district="bromsgrove")
    )
    delivered = delivered_to(hub, event_id, records=8)
    assert set(delivered) == {
        "marac.north-worcs",
        "bromsgrove-dc.housing",
        "bromsgrove-dc.community-safety",
        *URGENT_CARE,
    }
    coordinator = received(hub, "marac.north-worcs", event_id)
    assert coordinator is not None
    assert "notes" in coordinator.data


def test_marac_withdrawal_reaches_district_departments(hub: RunningHub) -> None:
    case = unique("MARAC")
    event_id = hub.publish(
        "marac.north-worcs", MARAC_WITHDRAWN, marac_withdrawn(case, district="wyre_forest")
    )
    delivered = delivered_to(hub, event_id, records=8)
    assert set(delivered) == {
        "west-mercia-police",
        "wyre-forest-dc.housing",
        "wyre-forest-dc.community-safety",
    }
    dept = received(hub, "wyre-forest-dc.housing", event_id)
    assert dept is not None
    assert "notes" not in dept.data


def test_socjag_p_official_reaches_members_never_schemes(hub: RunningHub) -> None:
    ref = unique("INT")
    event_id = hub.publish("west-mercia-police", SOCJAG, socjag_intel(ref))
    delivered = delivered_to(hub, event_id, records=7)
    assert {"probation", "wrs", "redditch-bc.community-safety", "hwfrs"} <= set(delivered)
    assert not SCHEMES & set(delivered)
    for party in SCHEMES:
        assert never_received(hub, party, event_id)


def test_socjag_official_sensitive_never_department_wide(hub: RunningHub) -> None:
    ref = unique("INT")
    event_id = hub.publish(
        "west-mercia-police", SOCJAG, socjag_intel(ref, classification="OFFICIAL-SENSITIVE")
    )
    delivered = delivered_to(hub, event_id, records=7)
    assert set(delivered) == {"probation", "hwfrs", "worcestershire-cc.childrens-services"}
    assert never_received(hub, "wrs", event_id)
    assert never_received(hub, "redditch-bc.community-safety", event_id)


def test_socjag_handling_code_c_only_named_parties(hub: RunningHub) -> None:
    ref = unique("INT")
    event_id = hub.publish(
        "west-mercia-police", SOCJAG, socjag_intel(ref, handling_code="C", share_with=["wrs"])
    )
    delivered = delivered_to(hub, event_id, records=7)
    assert set(delivered) == {"wrs"}
    got = received(hub, "wrs", event_id)
    assert got is not None
    assert got.data["handling_conditions"]["conditions"].startswith("Not to be disclosed")
    assert never_received(hub, "probation", event_id)


def test_pubwatch_ban_members_and_police_licensing(hub: RunningHub) -> None:
    ref = unique("PW")
    event_id = hub.publish("pubwatch.redditch.crown-inn", BAN, pubwatch_ban(ref))
    delivered = delivered_to(hub, event_id, records=3)
    assert set(delivered) == {"pubwatch.redditch.rising-sun", "west-mercia-police.licensing"}
    member = received(hub, "pubwatch.redditch.rising-sun", event_id)
    assert member is not None
    assert set(member.data) == {"ban_ref", "scheme", "subject", "ban_start", "ban_end"}
    assert set(member.data["subject"]) == {"name", "date_of_birth", "photo_ref"}
    assert never_received(hub, "bcrp.redditch.kingfisher-retail", event_id)


def test_pubwatch_theft_ban_stays_with_the_pubs_while_the_schemes_are_not_linked(
    hub: RunningHub,
) -> None:
    ref = unique("PW")
    event_id = hub.publish(
        "pubwatch.redditch.rising-sun", BAN, pubwatch_ban(ref, incident_type="theft")
    )
    delivered = delivered_to(hub, event_id, records=4)
    assert set(delivered) == {"pubwatch.redditch.crown-inn", "west-mercia-police.licensing"}
    assert never_received(hub, "bcrp.redditch.kingfisher-retail", event_id)


def test_ban_decided_by_police_is_rejected_and_publisher_told(hub: RunningHub) -> None:
    ref = unique("PW")
    event_id = hub.publish(
        "pubwatch.redditch.crown-inn", BAN, pubwatch_ban(ref, decided_by="police")
    )
    records = hub.wait_records(event_id)
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert records[0].reason.startswith("policy_rejected: the scheme decides")
    notices = hub.deliveries(
        "pubwatch.redditch.crown-inn",
        until=lambda ds: any(d.data.get("rejected_event_id") == event_id for d in ds),
    )
    notice = next(d for d in notices if d.data.get("rejected_event_id") == event_id)
    assert notice.type == "uk.csp.hub.rejected.v1"
    assert notice.data["reason"] == "policy_rejected"
    assert never_received(hub, "pubwatch.redditch.rising-sun", event_id)
    assert never_received(hub, "west-mercia-police.licensing", event_id)


def test_publisher_not_permitted_is_rejected(hub: RunningHub) -> None:
    case = unique("MARAC")
    event_id = hub.publish("redditch-bc.housing-repairs", MARAC_RAISED, marac_flag(case))
    records = hub.wait_records(event_id)
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert records[0].reason.startswith("publisher_not_permitted")
    assert never_received(hub, "west-mercia-police", event_id)


def test_audit_records_hold_no_payload_and_pseudonymise_subjects(hub: RunningHub) -> None:
    case = unique("MARAC")
    data = marac_flag(case)
    event_id = hub.publish("marac.north-worcs", MARAC_RAISED, data)
    records = hub.wait_records(event_id, at_least=8)
    db = sqlite3.connect(hub.settings.audit_db_path)
    try:  # the whole row, every column, as stored on disk
        rows = db.execute("SELECT * FROM audit_records WHERE event_id = ?", (event_id,))
        raw = repr(rows.fetchall())
    finally:
        db.close()
    for secret in (case, data["subject_ref"], data["notes"], data["address"]["line1"]):
        assert str(secret) not in str(raw)
    delivered = [r for r in records if r.decision == AuditDecision.DELIVERED]
    assert all(r.payload_sha256 and len(r.payload_sha256) == 64 for r in delivered)
    assert all(r.subject_pseudonyms and r.case_pseudonym for r in delivered)
    assert all(r.lawful_basis and r.rule and r.protocol_hash for r in delivered)


def test_delivery_digest_matches_bytes_on_the_topic(hub: RunningHub) -> None:
    """The audit's SHA-256 is of the exact (sealed) bytes on the recipient's topic."""
    import asyncio
    import hashlib

    from aiokafka import AIOKafkaConsumer

    case = unique("MARAC")
    event_id = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(case))
    records = hub.wait_records(event_id, at_least=8)
    record = next(r for r in records if r.recipient == "redditch-bc.housing-repairs")

    async def raw_values() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            "hub.out.redditch-bc.housing-repairs",
            bootstrap_servers=hub.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=2000)
            return [
                r.value
                for rs in batches.values()
                for r in rs
                if dict(r.headers).get("ce_id") == event_id.encode()
            ]
        finally:
            await consumer.stop()

    values = wait_for(lambda: asyncio.run(raw_values()), what="the sealed delivery")
    assert [hashlib.sha256(v).hexdigest() for v in values] == [record.payload_sha256]
    assert b"risk_level" not in values[0]  # the broker holds only ciphertext


def test_acknowledgement_is_audited(hub: RunningHub) -> None:
    import asyncio

    from hub.client import HubClient

    case = unique("MARAC")
    event_id = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(case))
    got = received(hub, "redditch-bc.housing-repairs", event_id)
    assert got is not None

    async def ack() -> None:
        async with HubClient(
            "redditch-bc.housing-repairs", bootstrap=hub.bootstrap, keys=hub.keys
        ) as c:
            await c.acknowledge(got)

    asyncio.run(ack())
    acks = wait_for(
        lambda: [r for r in hub.records(event_id) if r.decision == AuditDecision.ACKNOWLEDGED],
        what="the acknowledgement's audit record",
    )
    assert [r.recipient for r in acks] == ["redditch-bc.housing-repairs"]
    assert acks[0].ack_event_id
    assert acks[0].ack_event_id != event_id
