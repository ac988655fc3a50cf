"""Router.route as a pure function: no broker, real protocol, schemas and pseudonyms."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from hub.agents import routing
from hub.agents.routing import ACK_TYPE, QUARANTINE_MAX_BYTES, Router, RouteResult
from hub.agents.seen import SeenEvents, delivered_lookup
from hub.audit.lookups import delivered_to
from hub.audit.pseudonym import Pseudonymiser
from hub.audit.store import open_store
from hub.envelope import wire
from hub.envelope.party import PartyEnvelope
from hub.keys.file_store import FileKeyStore
from hub.keys.model import KeySuite
from hub.keys.store import ensure_dev_keys
from hub.models import (
    AuditBatch,
    AuditDecision,
    AuditRecord,
    EventAttributes,
    Origin,
    QuarantineReason,
    record_id_for,
)
from hub.policies.engine import minimise
from hub.policies.loader import load_protocol
from hub.processes import apply_effects
from hub.schemas import SchemaRegistry, to_jsonable
from hub.settings import HubSettings, default_protocol_path
from tests.factories import BAN, MARAC_RAISED, SOCJAG, marac_flag, pubwatch_ban, socjag_intel

REGISTRY = SchemaRegistry()
PROTOCOL = load_protocol(default_protocol_path())
FIXED = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> FileKeyStore:
    store = FileKeyStore(tmp_path_factory.mktemp("keys"))
    extra = [KeySuite(s) for s in PROTOCOL.crypto.suites[1:]]
    ensure_dev_keys(store, PROTOCOL.party_ids, extra_suites=extra)
    return store


@pytest.fixture(autouse=True)
def _keys(keys: FileKeyStore) -> None:
    KEYS[0] = keys


KEYS: list[FileKeyStore] = [FileKeyStore(Path("/nonexistent"))]


def make_router(**kw: Any) -> Router:
    return Router(
        PROTOCOL,
        registry=REGISTRY,
        envelope=PartyEnvelope("hub", store=KEYS[0]),
        pseudonymiser=Pseudonymiser(b"k" * 32),
        max_event_bytes=kw.pop("max_event_bytes", 64 * 1024),
        clock=lambda: FIXED,
        **kw,
    )


def record(
    party: str, event_type: str, data: dict[str, Any], *, event_id: str = "e-1", offset: int = 0
) -> dict[str, Any]:
    attrs = EventAttributes(
        id=event_id, source=wire.source_for(party), type=event_type, time=FIXED, subject="CASE-1"
    )
    sealed = PartyEnvelope(party, store=KEYS[0]).seal(
        attrs, key=b"CASE-1", plaintext=REGISTRY.encode(event_type, data), recipient="hub"
    )
    return {
        "origin": Origin(topic=f"hub.in.{party}", partition=0, offset=offset),
        "key": b"CASE-1",
        "value": sealed.value,
        "headers": sealed.headers,
    }


def never_seen(_event_id: str) -> str | None:
    return None


def test_route_is_deterministic_for_a_reprocessed_record() -> None:
    rec = record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-1"))
    first = make_router().route(**rec, seen=never_seen)
    again = make_router().route(**rec, seen=lambda _i: str(rec["origin"]))
    # same deliveries (topics, event ids) and audit record ids; ciphertexts use fresh nonces
    assert [m.topic for m in first.messages] == [m.topic for m in again.messages]
    assert [dict(m.headers)["ce_id"] for m in first.messages] == [
        dict(m.headers)["ce_id"] for m in again.messages
    ]
    assert [r.record_id for r in first.audit] == [r.record_id for r in again.audit]
    assert again.quarantined is None


def test_every_delivery_has_its_audit_record_with_the_digest() -> None:
    result = make_router().route(
        **record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-2")), seen=never_seen
    )
    digests = {
        r.recipient: r.payload_sha256 for r in result.audit if r.decision == AuditDecision.DELIVERED
    }
    # the other of police and coordinator, three Redditch departments, four urgent-care settings
    assert len(result.messages) == len(digests) == 8
    for message in result.messages:
        party = message.topic.removeprefix("hub.out.")
        assert digests[party] == wire.sha256_hex(message.value)


def test_same_id_from_another_record_is_a_duplicate() -> None:
    rec = record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-3"), offset=5)
    result = make_router().route(**rec, seen=lambda _i: "hub.in.marac.north-worcs/0/1")
    assert result.quarantined is QuarantineReason.DUPLICATE_EVENT_ID
    assert not result.remember
    assert [m.topic for m in result.messages] == ["hub.quarantine", "hub.out.marac.north-worcs"]


def test_an_unexpected_failure_quarantines_instead_of_losing_the_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    router = make_router()

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(router, "_decide", boom)
    rec = record("pubwatch.redditch.crown-inn", BAN, pubwatch_ban("PW-1"))
    result = router.route(**rec, seen=never_seen)
    assert result.quarantined is QuarantineReason.INTERNAL_ERROR
    assert result.messages[0].value == rec["value"]
    assert result.audit[0].decision == AuditDecision.REJECTED


def test_oversized_is_checked_before_decoding() -> None:
    rec = record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-4"))
    result = make_router(max_event_bytes=16).route(**rec, seen=never_seen)
    assert result.quarantined is QuarantineReason.OVERSIZED
    assert result.audit[0].event_id == "e-1"


def test_marac_flags_are_sealed_with_the_hybrid_suite_and_bans_with_x25519() -> None:
    marac = make_router().route(
        **record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-9")), seen=never_seen
    )
    ban = make_router().route(
        **record("pubwatch.redditch.crown-inn", BAN, pubwatch_ban("PW-9"), event_id="e-ban"),
        seen=never_seen,
    )
    assert marac.messages
    assert ban.messages
    for result, event_type in ((marac, MARAC_RAISED), (ban, BAN)):
        suite = PROTOCOL.crypto.suite_for(event_type)
        for message in result.messages:
            headers = dict(message.headers)
            assert headers["ce_hubsuite"].decode() == suite
            assert headers["ce_hubkid"].decode().split("#")[1].startswith(f"{suite}:")


def test_a_recipient_without_the_suite_is_withheld_never_downgraded(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys")
    ensure_dev_keys(store, PROTOCOL.party_ids)  # x25519 only
    router = Router(
        PROTOCOL,
        registry=REGISTRY,
        envelope=PartyEnvelope("hub", store=store),
        pseudonymiser=Pseudonymiser(b"k" * 32),
        max_event_bytes=64 * 1024,
        clock=lambda: FIXED,
    )
    attrs = EventAttributes(
        id="e-pq", source=wire.source_for("marac.north-worcs"), type=MARAC_RAISED, time=FIXED
    )
    sealed = PartyEnvelope("marac.north-worcs", store=store).seal(
        attrs,
        key=b"MARAC-8",
        plaintext=REGISTRY.encode(MARAC_RAISED, marac_flag("MARAC-8")),
        recipient="hub",
    )
    result = router.route(
        origin=Origin(topic="hub.in.marac.north-worcs", partition=0, offset=0),
        key=b"MARAC-8",
        value=sealed.value,
        headers=sealed.headers,
        seen=never_seen,
    )
    assert result.messages == []
    permitted = [
        r for r in result.audit if r.reason.startswith("rule ") and "permits it" in r.reason
    ]
    assert permitted, "permitted recipients are recorded as withheld, with the key problem"
    assert {r.decision for r in permitted} == {AuditDecision.WITHHELD}
    assert all("mlkem768-x25519" in r.reason for r in permitted)


# -- identity: an event is its source and id (issue 15, item 5) ------------------------------


def test_the_same_id_from_two_parties_is_two_events(tmp_path: Path) -> None:
    router = make_router()
    with SeenEvents(tmp_path / "seen.sqlite3") as seen:

        def routed(rec: dict[str, Any]) -> RouteResult:
            result = router.route(**rec, seen=seen.first)
            if result.remember:  # as the worker claims it
                seen.remember(result.event_id, origin=str(rec["origin"]), at=FIXED)
            return result

        marac = routed(record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-20")))
        police = routed(record("west-mercia-police", MARAC_RAISED, marac_flag("MARAC-21")))
        replay = routed(
            record("west-mercia-police", MARAC_RAISED, marac_flag("MARAC-21"), offset=9)
        )
    assert marac.quarantined is None
    assert police.quarantined is None, "another party's event with the same id is routed"
    assert police.delivered == marac.delivered == 8  # 4 of them the urgent-care settings
    # the same id, the same recipients: still no record id in common (the store keeps one)
    assert not {r.record_id for r in marac.audit} & {r.record_id for r in police.audit}
    assert {r.publisher for r in police.audit} == {"west-mercia-police"}
    # the same party's id from another record is still a duplicate
    assert replay.quarantined is QuarantineReason.DUPLICATE_EVENT_ID


def test_record_ids_stay_deterministic_with_the_source_in_them() -> None:
    rec = record("west-mercia-police", MARAC_RAISED, marac_flag("MARAC-22"))
    first = make_router().route(**rec, seen=never_seen)
    again = make_router().route(**rec, seen=lambda _k: str(rec["origin"]))
    assert [r.record_id for r in first.audit] == [r.record_id for r in again.audit]
    assert record_id_for("e-1", "probation", "delivered", source="west-mercia-police") != (
        record_id_for("e-1", "probation", "delivered", source="marac.north-worcs")
    )


# -- acknowledgements ------------------------------------------------------------------------


def ack(
    party: str,
    acked: str,
    acked_type: str,
    *,
    status: str = "received",
    event_id: str = "ack-1",
    offset: int = 100,
) -> dict[str, Any]:
    data = {
        "acknowledged_event_id": acked,
        "acknowledged_type": acked_type,
        "received_at": FIXED,
        "status": status,
        "note": None,
    }
    return record(party, ACK_TYPE, data, event_id=event_id, offset=offset)


def test_a_party_that_was_not_sent_the_event_cannot_acknowledge_it() -> None:
    router = make_router()
    intel = router.route(
        **record("west-mercia-police", SOCJAG, socjag_intel("INT-30"), event_id="intel-30"),
        seen=never_seen,
    )
    retailer = "bcrp.redditch.kingfisher-retail"
    assert intel.delivered
    assert retailer not in {m.topic.removeprefix("hub.out.") for m in intel.messages}
    result = router.route(**ack(retailer, "intel-30", SOCJAG), seen=never_seen)
    assert result.quarantined is QuarantineReason.NOT_A_RECIPIENT
    assert not result.remember
    assert [r.decision for r in result.audit] == [AuditDecision.REJECTED]
    assert result.audit[0].reason.startswith("not_a_recipient: ")
    assert AuditDecision.ACKNOWLEDGED not in {r.decision for r in result.audit}
    # kept whole on hub.quarantine, and the retailer is told why
    assert [m.topic for m in result.messages] == ["hub.quarantine", f"hub.out.{retailer}"]


def test_an_acknowledgement_of_an_id_never_delivered_is_not_a_recipient() -> None:
    result = make_router().route(**ack("probation", "nothing-like-it", SOCJAG), seen=never_seen)
    assert result.quarantined is QuarantineReason.NOT_A_RECIPIENT


def test_a_recipient_may_acknowledge_at_once_before_the_audit_store_has_the_delivery() -> None:
    router = make_router()  # no store lookup at all: the router's own deliveries answer
    flag = router.route(
        **record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-31"), event_id="f-31"),
        seen=never_seen,
    )
    assert "hub.out.west-mercia-police" in {m.topic for m in flag.messages}
    result = router.route(**ack("west-mercia-police", "f-31", MARAC_RAISED), seen=never_seen)
    assert result.quarantined is None
    assert result.remember
    [acked] = result.audit
    assert acked.decision is AuditDecision.ACKNOWLEDGED
    assert acked.event_id == "f-31"
    assert acked.recipient == "west-mercia-police"
    assert acked.publisher == "marac.north-worcs"  # whose event was acknowledged
    assert acked.ack_event_id == "ack-1"


def test_the_router_keeps_its_deliveries_until_the_audit_store_holds_their_batch() -> None:
    """Memory as large as the store's lag, not as the router's history (``forget_stored``)."""
    asked: list[str] = []

    def delivered(event_id: str, party: str) -> set[tuple[str, str | None]]:
        asked.append(event_id)
        return set()  # a store that does not have them: only the router's memory answers

    router = make_router(delivered=delivered)
    for batch, event_id in ((1, "f-41"), (2, "f-42")):
        router.batch = batch
        router.route(
            **record("marac.north-worcs", MARAC_RAISED, marac_flag(event_id), event_id=event_id),
            seen=never_seen,
        )
    router.batch = 3
    router.forget_stored(0)  # the store holds nothing yet: both kept
    assert router.route(**ack("west-mercia-police", "f-41", MARAC_RAISED), seen=never_seen).remember
    router.forget_stored(1)  # the store holds batch 1: f-41 is now the store's to answer
    again = ack("west-mercia-police", "f-41", MARAC_RAISED, event_id="ack-2", offset=101)
    assert router.route(**again, seen=never_seen).quarantined is QuarantineReason.NOT_A_RECIPIENT
    later = ack("west-mercia-police", "f-42", MARAC_RAISED, event_id="ack-3", offset=102)
    assert router.route(**later, seen=never_seen).quarantined is None  # batch 2: still kept
    assert "f-41" in asked


def test_an_older_delivery_is_found_in_the_audit_store() -> None:
    asked: list[tuple[str, str]] = []

    def delivered(event_id: str, party: str) -> set[tuple[str, str | None]]:
        asked.append((event_id, party))
        return {("west-mercia-police", SOCJAG)} if party == "probation" else set()

    router = make_router(delivered=delivered)
    ok = router.route(**ack("probation", "intel-32", SOCJAG), seen=never_seen)
    refused = router.route(
        **ack("redditch-bc.housing-repairs", "intel-32", SOCJAG, offset=101), seen=never_seen
    )
    assert asked == [("intel-32", "probation"), ("intel-32", "redditch-bc.housing-repairs")]
    assert ok.quarantined is None
    assert ok.audit[0].publisher == "west-mercia-police"
    assert ok.audit[0].event_type == SOCJAG
    assert refused.quarantined is QuarantineReason.NOT_A_RECIPIENT


def test_another_worker_knows_the_recipients_from_the_shared_seen_store(tmp_path: Path) -> None:
    path = tmp_path / "seen.sqlite3"
    with SeenEvents(path) as first_worker, SeenEvents(path) as second_worker:
        rec = record("west-mercia-police", SOCJAG, socjag_intel("INT-38"), event_id="intel-38")
        routed = make_router().route(**rec, seen=first_worker.first)
        assert routed.recipients
        first_worker.remember(
            routed.event_id, origin=str(rec["origin"]), at=FIXED, recipients=routed.recipients
        )
        # the acknowledgement reaches a worker that did not route the event, before the
        # audit store has anything: the claims answer
        other = make_router(delivered=delivered_lookup(second_worker, older=None))
        recipient = sorted(routed.recipients)[0]
        ok = other.route(**ack(recipient, "intel-38", SOCJAG), seen=second_worker.first)
        refused = other.route(
            **ack("bcrp.redditch.kingfisher-retail", "intel-38", SOCJAG, offset=101),
            seen=second_worker.first,
        )
    assert ok.quarantined is None
    assert [(r.publisher, r.recipient) for r in ok.audit] == [("west-mercia-police", recipient)]
    assert ok.audit[0].event_type is None  # not known yet: never the type the party claims
    assert refused.quarantined is QuarantineReason.NOT_A_RECIPIENT


def test_the_acknowledged_type_is_the_routed_one_not_the_claimed_one() -> None:
    router = make_router()
    routed = router.route(
        **record("west-mercia-police", SOCJAG, socjag_intel("INT-39"), event_id="intel-39"),
        seen=never_seen,
    )
    recipient = sorted(routed.recipients)[0]
    # claiming a MARAC type would show the receipt to the MARAC coordinator
    result = router.route(**ack(recipient, "intel-39", MARAC_RAISED), seen=never_seen)
    assert [r.event_type for r in result.audit] == [SOCJAG]


def test_the_audit_store_lookup_finds_deliveries_by_event_and_party(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path)
    router = make_router()
    intel = router.route(
        **record("west-mercia-police", SOCJAG, socjag_intel("INT-33"), event_id="intel-33"),
        seen=never_seen,
    )
    store = open_store(settings)
    try:
        store.append(intel.audit)
    finally:
        store.close()
    lookup = delivered_to(settings)
    recipient = next(r.recipient for r in intel.audit if r.decision is AuditDecision.DELIVERED)
    assert recipient is not None
    assert set(lookup("intel-33", recipient)) == {("west-mercia-police", SOCJAG)}
    assert set(lookup("intel-33", "bcrp.redditch.kingfisher-retail")) == set()
    assert set(lookup("intel-34", recipient)) == set()


def test_each_acknowledgement_status_is_its_own_audit_record() -> None:
    router = make_router()
    router.route(
        **record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-35"), event_id="f-35"),
        seen=never_seen,
    )
    received = router.route(**ack("west-mercia-police", "f-35", MARAC_RAISED), seen=never_seen)
    actioned = router.route(
        **ack("west-mercia-police", "f-35", MARAC_RAISED, status="actioned", event_id="ack-2"),
        seen=never_seen,
    )
    again = router.route(**ack("west-mercia-police", "f-35", MARAC_RAISED), seen=never_seen)
    assert received.audit[0].record_id != actioned.audit[0].record_id
    assert "(actioned)" in actioned.audit[0].reason
    # a reprocessed acknowledgement is still recognised as the same record
    assert again.audit[0].record_id == received.audit[0].record_id


def test_an_acknowledgement_names_the_event_of_the_party_it_reached() -> None:
    # both publish id f-36 to each other (a publisher is not sent its own event)
    router = make_router()
    for party, case in (("marac.north-worcs", "MARAC-36"), ("west-mercia-police", "MARAC-37")):
        router.route(
            **record(party, MARAC_RAISED, marac_flag(case), event_id="f-36"), seen=never_seen
        )
    from_marac = router.route(**ack("marac.north-worcs", "f-36", MARAC_RAISED), seen=never_seen)
    from_police = router.route(
        **ack("west-mercia-police", "f-36", MARAC_RAISED, offset=101), seen=never_seen
    )
    assert [r.publisher for r in from_marac.audit] == ["west-mercia-police"]
    assert [r.publisher for r in from_police.audit] == ["marac.north-worcs"]
    assert from_marac.audit[0].record_id != from_police.audit[0].record_id


def test_an_acknowledgement_of_two_events_with_one_id_is_recorded_against_each() -> None:
    both = {("west-mercia-police", SOCJAG), ("marac.north-worcs", MARAC_RAISED)}
    router = make_router(delivered=lambda _e, _p: both)
    by_type = router.route(**ack("probation", "x-1", SOCJAG), seen=never_seen)
    assert [r.publisher for r in by_type.audit] == ["west-mercia-police"]  # the type says
    unclear = router.route(**ack("probation", "x-1", "uk.csp.other.v1"), seen=never_seen)
    assert sorted(r.publisher or "" for r in unclear.audit) == [
        "marac.north-worcs",
        "west-mercia-police",
    ]
    assert all("names 2 events" in r.reason for r in unclear.audit)
    assert len({r.record_id for r in unclear.audit}) == 2


# -- oversized records (issue 15, item 3) ----------------------------------------------------


def producer_size(message: wire.WireMessage) -> int:
    """What aiokafka checks against ``max_request_size`` before it sends a record."""
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(
        message.key, message.value, message.headers
    )
    return size


@pytest.mark.parametrize("size", [999_500, 10 * 1024 * 1024])
def test_a_record_too_large_for_quarantine_is_kept_as_a_digest_and_a_truncated_copy(
    size: int,
) -> None:
    rec = record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-40"))
    value = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    result = make_router().route(**{**rec, "value": value}, seen=never_seen)
    assert result.quarantined is QuarantineReason.OVERSIZED
    copy, notice = result.messages
    assert copy.topic == "hub.quarantine"
    assert notice.topic == "hub.out.marac.north-worcs"  # the publisher is told
    # faust's producer refuses more than 1,000,000 bytes; the copy stays under the setting
    assert producer_size(copy) <= QUARANTINE_MAX_BYTES < 1_000_000
    headers = dict(copy.headers)
    assert headers["hub_truncated"] == str(size).encode()
    assert headers["hub_sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["hub_reason"] == b"oversized"
    assert headers["ce_id"] == b"e-1"  # the original headers are kept
    assert value.startswith(copy.value)
    assert len(copy.value) > QUARANTINE_MAX_BYTES - 4096
    [rejected] = result.audit
    assert rejected.decision is AuditDecision.REJECTED
    assert rejected.event_id == "e-1"
    assert hashlib.sha256(value).hexdigest() in rejected.reason


def test_a_record_that_fits_is_quarantined_whole() -> None:
    rec = record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-41"))
    value = b"y" * 300_000  # over HUB_MAX_EVENT_BYTES, well under the quarantine limit
    result = make_router().route(**{**rec, "value": value}, seen=never_seen)
    assert result.quarantined is QuarantineReason.OVERSIZED
    assert result.messages[0].value == value
    assert "hub_truncated" not in dict(result.messages[0].headers)


def test_the_quarantine_limit_is_a_setting() -> None:
    assert HubSettings().quarantine_max_bytes == QUARANTINE_MAX_BYTES
    rec = record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-42"))
    value = b"z" * 200_000
    result = make_router(quarantine_max_bytes=100_000, max_event_bytes=16).route(
        **{**rec, "value": value}, seen=never_seen
    )
    assert producer_size(result.messages[0]) <= 100_000
    assert dict(result.messages[0].headers)["hub_truncated"] == b"200000"


def test_headers_too_large_for_quarantine_are_kept_as_a_digest() -> None:
    rec = record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-43"))
    huge = [(f"x-pad-{i}", b"p" * 100_000) for i in range(9)]  # 900 kB of headers
    result = make_router().route(
        **{**rec, "headers": list(rec["headers"]) + huge, "key": b"k" * 50_000}, seen=never_seen
    )
    assert result.quarantined is not None
    copy = result.messages[0]
    assert producer_size(copy) <= QUARANTINE_MAX_BYTES
    headers = dict(copy.headers)
    assert headers["hub_headers_dropped"] == str(len(rec["headers"]) + 9).encode()
    assert headers["hub_key_truncated"] == b"50000"
    assert copy.value == rec["value"]  # the value itself fitted
    assert result.audit[0].decision is AuditDecision.REJECTED
    assert len(result.messages) == 2  # and the notice


def test_a_key_too_long_for_every_delivery_is_oversized() -> None:
    # the payload is valid and small; the key alone is near the broker's limit, and every
    # delivery would carry it
    rec = record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-44"))
    result = make_router().route(**{**rec, "key": b"K" * 999_000}, seen=never_seen)
    assert all(producer_size(m) <= QUARANTINE_MAX_BYTES for m in result.messages)
    assert result.quarantined is QuarantineReason.OVERSIZED
    assert "record key is 999000 bytes" in result.audit[0].reason
    assert dict(result.messages[0].headers)["hub_key_truncated"] == b"999000"


def test_a_delivery_too_large_to_produce_is_withheld_with_why() -> None:
    # HUB_MAX_EVENT_BYTES set high: the full flag (notes and all) cannot be delivered, the
    # district departments' minimal flag can
    flag = marac_flag("MARAC-45", notes="n" * 950_000)
    rec = record("marac.north-worcs", MARAC_RAISED, flag)
    result = make_router(max_event_bytes=2_000_000).route(**rec, seen=never_seen)
    assert result.quarantined is None
    assert all(producer_size(m) <= QUARANTINE_MAX_BYTES for m in result.messages)
    too_large = [r for r in result.audit if "sealed delivery is" in r.reason]
    assert [r.recipient for r in too_large] == ["west-mercia-police"]
    assert too_large[0].decision is AuditDecision.WITHHELD
    assert result.delivered == len(result.messages) >= 1


# -- work shared by an event's recipients ----------------------------------------------------


def _plaintext(message: wire.WireMessage) -> bytes:
    """A delivery opened as its recipient opens it."""
    party = message.topic.removeprefix("hub.out.")
    opened = PartyEnvelope(party, store=KEYS[0]).open(
        wire.decode_headers(message.headers),
        key=message.key,
        value=message.value,
        expected_signer="hub",
    )
    return opened.plaintext


def test_recipients_with_one_field_list_share_one_minimised_payload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    minimised: list[tuple[str, ...]] = []

    def counted(data: Any, fields: tuple[str, ...]) -> dict[str, Any]:
        minimised.append(fields)
        return minimise(data, fields)

    monkeypatch.setattr(routing, "minimise", counted)
    flag = marac_flag("MARAC-50", rationale="DASH 17.")
    result = make_router().route(**record("marac.north-worcs", MARAC_RAISED, flag), seen=never_seen)
    fields = {r.recipient: r.fields for r in result.audit if r.decision is AuditDecision.DELIVERED}
    texts = {m.topic.removeprefix("hub.out."): _plaintext(m) for m in result.messages}
    assert texts.keys() == fields.keys()
    # the police get the whole flag; three district departments share one shorter list
    lists = set(fields.values())
    assert len(lists) == 2 < len(fields)
    assert len(minimised) == len(lists)  # one minimised payload per distinct list
    data = to_jsonable(REGISTRY.decode(MARAC_RAISED, REGISTRY.encode(MARAC_RAISED, flag)))
    for message in result.messages:
        party = message.topic.removeprefix("hub.out.")
        assert texts[party] == wire.canonical_json(minimise(data, fields[party]))
        assert dict(message.headers)["ce_hubfields"] == ",".join(fields[party]).encode()
    by_list = {f: {texts[p] for p in texts if fields[p] == f} for f in lists}
    assert all(len(same) == 1 for same in by_list.values())  # same list: identical plaintext
    assert len({next(iter(same)) for same in by_list.values()}) == 2  # another list: its own


def test_audit_records_are_the_validated_models_byte_for_byte() -> None:
    # each recipient's record is the event's validated template with its own values: it must
    # be the record that validating those values makes, field for field and byte for byte
    result = make_router().route(
        **record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-51")), seen=never_seen
    )
    assert {r.decision for r in result.audit} == {AuditDecision.DELIVERED, AuditDecision.WITHHELD}
    validated = [
        AuditRecord(**{name: getattr(r, name) for name in r.model_fields_set}) for r in result.audit
    ]
    for built, expected in zip(result.audit, validated, strict=True):
        assert built == expected
        assert built.model_fields_set == expected.model_fields_set
        assert built.model_dump_json() == expected.model_dump_json()
        assert list(built.__dict__) == list(expected.__dict__)
    batch = AuditBatch(records=tuple(result.audit)).model_dump_json()
    assert batch == AuditBatch(records=tuple(validated)).model_dump_json()
    assert len({r.record_id for r in result.audit}) == len(result.audit)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("ce_id", b"e-1"), ("content-type", None), ("ce_subject", b"")],
        [("x-\u00e9t\u00e9", b"\xff" * 3), ("\u2603", b"v" * 5000)],
    ],
)
def test_headers_size_is_the_utf8_sum_of_names_values_and_varints(
    headers: list[tuple[str, bytes | None]],
) -> None:
    expected = sum(len(name.encode()) + len(value or b"") + 10 for name, value in headers)
    assert routing._headers_size(headers) == expected


def _routed_the_same(first: RouteResult, again: RouteResult) -> None:
    assert again.quarantined is None
    assert [m.topic for m in first.messages] == [m.topic for m in again.messages]
    assert [r.record_id for r in first.audit] == [r.record_id for r in again.audit]


def test_a_raise_routed_again_after_a_crash_is_routed_as_before_a_new_one_refused(
    tmp_path: Path,
) -> None:
    from hub.workflows.register import FlagRegister

    with FlagRegister(tmp_path / "workflows.sqlite3") as register:
        router = make_router(register=register)
        rec = record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-R1"), event_id="r-1")
        first = router.route(**rec, seen=never_seen)
        assert first.quarantined is None
        apply_effects(first.effects, router.stores)  # as the worker does
        # at-least-once: the same record again (its offset was not committed before a crash)
        again = router.route(**rec, seen=lambda _k: str(rec["origin"]))
        _routed_the_same(first, again)
        apply_effects(again.effects, router.stores)
        # a new event raising the same case while its flag is active is refused, with why
        other = record(
            "marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-R1"), event_id="r-2", offset=1
        )
        refused = router.route(**other, seen=never_seen)
        assert refused.quarantined is not None
        # quarantined and the publisher told, never delivered to a department
        assert {m.topic for m in refused.messages} <= {
            "hub.quarantine",
            "hub.out.marac.north-worcs",
        }
        (audit,) = refused.audit
        assert audit.decision == AuditDecision.REJECTED
        assert "flag for case MARAC-R1 already raised on 2026-11-23 (event r-1)" in audit.reason
        assert "publish uk.csp.marac.flag.updated.v1" in audit.reason


def test_a_ban_routed_again_after_a_crash_is_routed_as_before_a_new_one_refused(
    tmp_path: Path,
) -> None:
    from hub.workflows.bans import BanRegister

    with BanRegister(tmp_path / "workflows.sqlite3") as bans:
        router = make_router(bans=bans)
        crown = "pubwatch.redditch.crown-inn"
        rec = record(crown, BAN, pubwatch_ban("PW-R1"), event_id="b-1")
        first = router.route(**rec, seen=never_seen)
        assert first.quarantined is None
        apply_effects(first.effects, router.stores)  # as the worker does
        again = router.route(**rec, seen=lambda _k: str(rec["origin"]))
        _routed_the_same(first, again)
        apply_effects(again.effects, router.stores)
        other = record(crown, BAN, pubwatch_ban("PW-R1"), event_id="b-2", offset=1)
        refused = router.route(**other, seen=never_seen)
        (audit,) = refused.audit
        assert audit.decision == AuditDecision.REJECTED
        assert "ban PW-R1 already in force from" in audit.reason
        assert "publish uk.csp.pubwatch.ban.updated.v1" in audit.reason


def test_a_raise_routed_with_no_register_says_what_to_record_as_effects(tmp_path: Path) -> None:
    from hub.audit.subjects import subject_refs
    from hub.processes.marac import FlagRecorded, ReferralAdded
    from hub.workflows.register import Referral

    router = make_router()  # no register, no file: routing writes nothing
    rec_data = marac_flag("MARAC-E1")
    rec = record("marac.north-worcs", MARAC_RAISED, rec_data, event_id="e-1")
    result = router.route(**rec, seen=never_seen)
    assert result.quarantined is None
    subject = Pseudonymiser(b"k" * 32).subject(subject_refs(MARAC_RAISED, rec_data)[0])
    assert result.effects == [
        ReferralAdded(
            Referral(
                event_id="e-1",
                case_ref="MARAC-E1",
                subject_pseudonym=subject,
                referred_at=FIXED,
                reason="dash",
                repeat_of=None,
            )
        ),
        FlagRecorded(
            case_ref="MARAC-E1",
            subject_ref=rec_data["subject_ref"],
            subject_pseudonym=subject,
            status="active",
            review_date=dt.date(2027, 5, 19),
            at=FIXED,
            event_id="e-1",
            event_type=MARAC_RAISED,
        ),
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_ban_routed_with_no_register_says_what_to_record_as_effects() -> None:
    from hub.processes.pubwatch import BanRecorded

    crown = "pubwatch.redditch.crown-inn"
    data = pubwatch_ban("PW-E1")
    result = make_router().route(**record(crown, BAN, data, event_id="b-1"), seen=never_seen)
    assert result.quarantined is None
    (effect,) = result.effects
    assert isinstance(effect, BanRecorded)
    assert (effect.event_type, effect.publisher, effect.at, effect.event_id) == (
        BAN,
        crown,
        FIXED,
        "b-1",
    )
    assert effect.data["ban_ref"] == "PW-E1"


def test_a_refused_event_and_an_intelligence_item_record_nothing() -> None:
    router = make_router()
    bad = marac_flag("MARAC-E2", dash_score=3, referral_reason="dash")
    refused = router.route(
        **record("marac.north-worcs", MARAC_RAISED, bad, event_id="e-2"), seen=never_seen
    )
    assert refused.quarantined is QuarantineReason.POLICY_REJECTED
    assert refused.effects == []
    intel = router.route(
        **record("west-mercia-police", SOCJAG, socjag_intel("INT-E1"), event_id="e-3"),
        seen=never_seen,
    )
    assert intel.quarantined is None
    assert intel.effects == []


def test_each_events_effects_applied_before_the_next_let_its_check_refuse_a_second_raise(
    tmp_path: Path,
) -> None:
    from hub.workflows.register import FlagRegister

    with FlagRegister(tmp_path / "workflows.sqlite3") as register:
        router = make_router(register=register)
        first = router.route(
            **record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-E3"), event_id="x-1"),
            seen=never_seen,
        )
        second = record(
            "marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-E3"), event_id="x-2", offset=1
        )
        # not applied yet: routing wrote nothing, so the second raise is not refused
        assert register.flag("MARAC-E3") is None
        assert router.route(**second, seen=never_seen).quarantined is None
        apply_effects(first.effects, router.stores)
        assert router.route(**second, seen=never_seen).quarantined is not None


def test_two_refused_records_at_one_origin_each_have_their_own_audit_record() -> None:
    # offsets start again when the embedded broker restarts empty (or a topic is re-created):
    # a second unreadable record at the same topic/partition/offset must not share the
    # first's record id, or the store would keep one and the second refusal go unaudited
    origin = Origin(topic="hub.in.marac.north-worcs", partition=0, offset=7)
    router = make_router()
    first = router.route(
        origin=origin, key=b"k", value=b"not an event", headers=[], seen=never_seen
    )
    other = router.route(
        origin=origin, key=b"k", value=b"also not one", headers=[], seen=never_seen
    )
    assert first.quarantined is not None
    assert other.quarantined is not None
    assert first.audit[0].event_id == other.audit[0].event_id == f"unparsed:{origin}"
    assert first.audit[0].record_id != other.audit[0].record_id
    # the same record consumed again (at-least-once) is the same refusal: the same id
    again = make_router().route(
        origin=origin, key=b"k", value=b"not an event", headers=[], seen=never_seen
    )
    assert again.audit[0].record_id == first.audit[0].record_id
    # headers and key are part of the record too
    headed = router.route(
        origin=origin, key=b"k", value=b"not an event", headers=[("h", b"1")], seen=never_seen
    )
    keyless = router.route(
        origin=origin, key=None, value=b"not an event", headers=[], seen=never_seen
    )
    ids = {r.audit[0].record_id for r in (first, headed, keyless)}
    assert len(ids) == 3


def test_two_duplicates_at_one_origin_each_have_their_own_audit_record() -> None:
    seen = lambda _i: "hub.in.marac.north-worcs/0/1"  # noqa: E731 - the original's origin
    a = record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-5"), offset=5)
    b = record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-6"), offset=5)
    first = make_router().route(**a, seen=seen)
    other = make_router().route(**b, seen=seen)
    assert first.quarantined is other.quarantined is QuarantineReason.DUPLICATE_EVENT_ID
    assert first.audit[0].record_id != other.audit[0].record_id
    assert make_router().route(**a, seen=seen).audit[0].record_id == first.audit[0].record_id
