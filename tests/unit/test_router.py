"""Router.route as a pure function: no broker, real protocol, schemas and pseudonyms."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from hub.agents.routing import Router
from hub.audit.pseudonym import Pseudonymiser
from hub.envelope import wire
from hub.envelope.party import PartyEnvelope
from hub.keys.file_store import FileKeyStore
from hub.keys.model import KeySuite
from hub.keys.store import ensure_dev_keys
from hub.models import AuditDecision, EventAttributes, Origin, QuarantineReason
from hub.policies.loader import load_protocol
from hub.schemas import SchemaRegistry
from hub.settings import default_protocol_path
from tests.factories import BAN, MARAC_RAISED, marac_flag, pubwatch_ban

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
        max_event_bytes=kw.get("max_event_bytes", 64 * 1024),
        clock=lambda: FIXED,
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
    assert len(result.messages) == len(digests) == 4
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
