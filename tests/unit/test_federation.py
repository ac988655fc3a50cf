"""Federation (issue 20): a transfer routed by the North's router, opened by the South's.

No broker: the North router's delivery to its peer is handed, bytes unchanged (as ``hub
federation link`` carries it), to the South router as a record on ``hub.in.nwcsp-hub``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from hub.agents.routing import ACK_TYPE, Router
from hub.audit.checkpoint import NoteSigner
from hub.audit.pseudonym import Pseudonymiser
from hub.audit.store import open_store
from hub.cli.main import app
from hub.envelope import wire
from hub.envelope.party import PartyEnvelope
from hub.envelope.sealing import SealedRecord
from hub.errors import KeyStoreError
from hub.federation.proofs import (
    PROOF_TYPE,
    PeerProofs,
    ProofKept,
    ProofRegister,
    pin_log_key,
    pinned_log_key,
    proof_id,
    verify_entry,
)
from hub.federation.receipts import RECEIPT_TYPE, receipt_id
from hub.keys.file_store import DIRECTORY_FORMAT, FileKeyStore
from hub.keys.model import KeyStatus, KeySuite
from hub.keys.peers import PeerPins, parse_export
from hub.keys.store import ensure_dev_keys
from hub.models import AuditDecision, EventAttributes, Origin, QuarantineReason
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol
from hub.processes.base import apply_effects
from hub.schemas import SchemaRegistry
from hub.settings import HubSettings, default_protocol_path
from tests.factories import (
    MARAC_RAISED,
    MARAC_WITHDRAWN,
    marac_flag,
    marac_withdrawn,
    transfer_proof,
)
from tests.unit.test_router import FIXED, never_seen

REGISTRY = SchemaRegistry()
NORTH = load_protocol(default_protocol_path())
SOUTH_PATH = default_protocol_path().with_name("south-worcestershire.yaml")
SOUTH = load_protocol(SOUTH_PATH)


def _hub_keys(root: Path, protocol: Protocol) -> FileKeyStore:
    store = FileKeyStore(root)
    extra = [KeySuite(s) for s in protocol.crypto.suites[1:]]
    local = [p for p in protocol.party_ids if not protocol.is_peer(p)]
    ensure_dev_keys(store, local, extra_suites=extra)
    return store


def _export(store: FileKeyStore) -> str:
    records = [r.model_dump(mode="json") for r in store.public("hub")]
    return json.dumps({"format": DIRECTORY_FORMAT, "keys": records})


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FileKeyStore]:
    north = _hub_keys(tmp_path_factory.mktemp("north"), NORTH)
    south = _hub_keys(tmp_path_factory.mktemp("south"), SOUTH)
    rogue = _hub_keys(tmp_path_factory.mktemp("rogue"), NORTH)
    # each pins the other's hub keys, as `hub keys export --party hub` / `import --peer`
    PeerPins(north.root).pin(
        "swcsp-hub", parse_export(_export(south), source="s", directory_format=DIRECTORY_FORMAT)
    )
    PeerPins(south.root).pin(
        "nwcsp-hub", parse_export(_export(north), source="n", directory_format=DIRECTORY_FORMAT)
    )
    # the rogue hub pinned the South's keys too: it can seal to the South, not sign as North
    PeerPins(rogue.root).pin(
        "swcsp-hub", parse_export(_export(south), source="s", directory_format=DIRECTORY_FORMAT)
    )
    return {"north": north, "south": south, "rogue": rogue}


def _router(protocol: Protocol, store: FileKeyStore, registers: Sequence[object] = ()) -> Router:
    from hub.processes.base import Stores

    return Router(
        protocol,
        registry=REGISTRY,
        envelope=PartyEnvelope("hub", store=store),
        pseudonymiser=Pseudonymiser(b"k" * 32),
        max_event_bytes=64 * 1024,
        clock=lambda: FIXED,
        stores=Stores(registers) if registers else None,
    )


def _published(store: FileKeyStore, party: str, data: dict[str, Any], event_id: str) -> Any:
    attrs = EventAttributes(
        id=event_id, source=wire.source_for(party), type=MARAC_RAISED, time=FIXED, subject="C"
    )
    sealed = PartyEnvelope(party, store=store).seal(
        attrs, key=b"CASE-T", plaintext=REGISTRY.encode(MARAC_RAISED, data), recipient="hub"
    )
    return {
        "origin": Origin(topic=f"hub.in.{party}", partition=0, offset=0),
        "key": b"CASE-T",
        "value": sealed.value,
        "headers": sealed.headers,
    }


def _transfer(stores: dict[str, FileKeyStore], case: str, event_id: str) -> Any:
    """The North's delivery to its peer, for a victim who moved to Worcester."""
    north = _router(NORTH, stores["north"])
    data = marac_flag(case, district="worcester")
    result = north.route(
        **_published(stores["north"], "marac.north-worcs", data, event_id), seen=never_seen
    )
    [message] = [m for m in result.messages if m.topic == "hub.out.swcsp-hub"]
    return result, message


def _as_inbound(message: Any, *, offset: int = 0, peer: str = "nwcsp-hub") -> dict[str, Any]:
    return {
        "origin": Origin(topic=f"hub.in.{peer}", partition=0, offset=offset),
        "key": message.key,
        "value": message.value,
        "headers": message.headers,
    }


def test_north_delivers_a_move_to_worcester_to_its_peer(stores: dict[str, FileKeyStore]) -> None:
    result, message = _transfer(stores, "MARAC-T1", "t-1")
    [record] = [r for r in result.audit if r.recipient == "swcsp-hub"]
    assert record.decision is AuditDecision.DELIVERED
    assert record.rule == "marac-transfer-to-south"
    headers = dict(wire.decode_headers(message.headers))
    assert headers["ce_hubrecipient"] == "swcsp-hub"
    # sealed to the South hub's own (pinned) key, never to one made here
    assert headers["ce_hubkid"] in stores["south"].active("hub").key_ids
    assert "rationale" not in headers["ce_hubfields"].split(",")


def test_a_move_within_the_north_is_not_transferred(stores: dict[str, FileKeyStore]) -> None:
    north = _router(NORTH, stores["north"])
    data = marac_flag("MARAC-T2", district="redditch")
    result = north.route(
        **_published(stores["north"], "marac.north-worcs", data, "t-2"), seen=never_seen
    )
    assert "hub.out.swcsp-hub" not in {m.topic for m in result.messages}


def test_south_routes_the_transfer_by_its_own_protocol(stores: dict[str, FileKeyStore]) -> None:
    _, message = _transfer(stores, "MARAC-T3", "t-3")
    result = _router(SOUTH, stores["south"]).route(**_as_inbound(message), seen=never_seen)
    assert result.quarantined is None
    delivered = {r.recipient: r for r in result.audit if r.decision is AuditDecision.DELIVERED}
    assert set(delivered) == {"marac.south-worcs", "worcester-cc.housing"}
    assert delivered["marac.south-worcs"].rule == "marac-transfer-from-north"
    assert {r.publisher for r in result.audit} == {"nwcsp-hub"}
    # the department gets the flag-only notice, by the South's own rule
    assert "notes" not in delivered["worcester-cc.housing"].fields
    assert "notes" in delivered["marac.south-worcs"].fields


def test_a_field_the_receiver_does_not_accept_refuses_the_whole_transfer(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    text = SOUTH_PATH.read_text(encoding="utf-8")
    narrower = text.replace("contact, markers, notes]", "contact, markers]")
    assert narrower != text
    path = tmp_path / "south-narrow.yaml"
    path.write_text(narrower, encoding="utf-8")
    _, message = _transfer(stores, "MARAC-T4", "t-4")
    result = _router(load_protocol(path), stores["south"]).route(
        **_as_inbound(message), seen=never_seen
    )
    assert result.quarantined is QuarantineReason.POLICY_REJECTED
    # nobody here receives it; the sender is told why, through its own outbound topic
    [notice] = [m for m in result.messages if m.topic.startswith("hub.out.")]
    assert notice.topic == "hub.out.nwcsp-hub"
    assert dict(wire.decode_headers(notice.headers))["ce_type"] == "uk.csp.hub.rejected.v1"
    [record] = result.audit
    assert record.decision is AuditDecision.REJECTED
    assert "notes" in (record.reason or "")


def test_a_forged_transfer_from_a_third_hub_is_quarantined(
    stores: dict[str, FileKeyStore],
) -> None:
    # a rogue hub with its own keys seals a "transfer" to the South and puts it where the
    # North's link writes: the signature is by no key pinned for the North
    rogue = _router(NORTH, stores["rogue"])
    data = marac_flag("MARAC-T5", district="worcester")
    result = rogue.route(
        **_published(stores["rogue"], "marac.north-worcs", data, "t-5"), seen=never_seen
    )
    [message] = [m for m in result.messages if m.topic == "hub.out.swcsp-hub"]
    south = _router(SOUTH, stores["south"]).route(**_as_inbound(message), seen=never_seen)
    assert south.quarantined is QuarantineReason.UNKNOWN_KEY
    assert {m.topic for m in south.messages} <= {"hub.quarantine", "hub.out.nwcsp-hub"}
    assert [r.decision for r in south.audit] == [AuditDecision.REJECTED]


def test_a_transfer_for_another_peer_is_not_opened(stores: dict[str, FileKeyStore]) -> None:
    _, message = _transfer(stores, "MARAC-T6", "t-6")
    # the South reads it as if the North were another peer's topic: wrong signer
    south = _router(SOUTH, stores["south"]).route(
        **_as_inbound(message, peer="marac.south-worcs"), seen=never_seen
    )
    assert south.quarantined is QuarantineReason.SPOOFED_SOURCE


def test_an_export_with_an_edited_key_is_refused(stores: dict[str, FileKeyStore]) -> None:
    document = json.loads(_export(stores["south"]))
    document["keys"][0]["signing_public_key"] = document["keys"][1 % len(document["keys"])][
        "encryption_public_key"
    ]
    with pytest.raises(KeyStoreError, match="expected id"):
        parse_export(json.dumps(document), source="x", directory_format=DIRECTORY_FORMAT)


def test_an_export_without_the_hub_keys_is_refused(stores: dict[str, FileKeyStore]) -> None:
    records = [r.model_dump(mode="json") for r in stores["south"].public("marac.south-worcs")]
    text = json.dumps({"format": DIRECTORY_FORMAT, "keys": records})
    with pytest.raises(KeyStoreError, match="party 'hub'"):
        parse_export(text, source="x", directory_format=DIRECTORY_FORMAT)


def _revoked(export: str) -> list[Any]:
    return [
        r.model_copy(
            update={
                "status": KeyStatus.REVOKED,
                "revoked_at": FIXED,
                "revocation_reason": "peer key compromised",
            }
        )
        for r in parse_export(export, source="x", directory_format=DIRECTORY_FORMAT)
    ]


def test_a_revoked_peer_key_stops_transfers_withheld_and_audited(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    # the North re-imports the South's export after the South revoked its hub key
    north = _hub_keys(tmp_path / "north", NORTH)
    PeerPins(north.root).pin("swcsp-hub", _revoked(_export(stores["south"])))
    data = marac_flag("MARAC-T7", district="worcester")
    result = _router(NORTH, north).route(
        **_published(north, "marac.north-worcs", data, "t-7"), seen=never_seen
    )
    assert "hub.out.swcsp-hub" not in {m.topic for m in result.messages}
    [record] = [r for r in result.audit if r.recipient == "swcsp-hub"]
    assert record.decision is AuditDecision.WITHHELD
    assert record.rule == "marac-transfer-to-south"
    assert "active key" in record.reason
    assert "hub keys import --peer swcsp-hub" in record.reason


def test_a_transfer_signed_by_a_revoked_peer_key_is_quarantined(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    _, message = _transfer(stores, "MARAC-T8", "t-8")
    south = _hub_keys(tmp_path / "south", SOUTH)
    PeerPins(south.root).pin("nwcsp-hub", _revoked(_export(stores["north"])))
    result = _router(SOUTH, south).route(**_as_inbound(message), seen=never_seen)
    assert result.quarantined is QuarantineReason.REVOKED_KEY
    assert [r.decision for r in result.audit] == [AuditDecision.REJECTED]


def test_a_repeat_from_the_link_is_routed_once_and_refused_nothing(
    stores: dict[str, FileKeyStore],
) -> None:
    _, message = _transfer(stores, "MARAC-T9", "t-9")
    south = _router(SOUTH, stores["south"])
    first = south.route(**_as_inbound(message, offset=5), seen=never_seen)
    assert first.delivered == 2
    # the link sent it again after a crash: the seen-event store knows it from offset 5
    again = south.route(**_as_inbound(message, offset=9), seen=lambda _k: "hub.in.nwcsp-hub/0/5")
    assert again.quarantined is None
    assert again.audit == []
    assert again.messages == []


def test_the_receiver_sends_a_signed_receipt_the_sender_routes_and_audits(
    stores: dict[str, FileKeyStore],
) -> None:
    _, message = _transfer(stores, "MARAC-T10", "t-10")
    south = _router(SOUTH, stores["south"]).route(**_as_inbound(message), seen=never_seen)
    [coordinator] = [r for r in south.audit if r.recipient == "marac.south-worcs"]
    [receipt] = [m for m in south.messages if m.topic == "hub.out.nwcsp-hub"]
    headers = dict(wire.decode_headers(receipt.headers))
    assert headers["ce_type"] == RECEIPT_TYPE
    assert headers["ce_id"] == receipt_id("t-10")
    # the South's link carries it home; the North opens it as its peer's event
    inbound: dict[str, Any] = {
        "origin": Origin(topic="hub.in.swcsp-hub", partition=0, offset=0),
        "key": receipt.key,
        "value": receipt.value,
        "headers": receipt.headers,
    }
    north = _router(NORTH, stores["north"]).route(**inbound, seen=never_seen)
    assert north.quarantined is None
    [record] = [r for r in north.audit if r.decision is AuditDecision.DELIVERED]
    assert record.recipient == "marac.north-worcs"
    assert record.publisher == "swcsp-hub"
    assert record.event_id == receipt_id("t-10")
    assert record.rule == "marac-transfer-receipts-from-south"
    # no receipt for a receipt
    assert not [m for m in north.messages if m.topic == "hub.out.swcsp-hub"]
    [delivery] = north.messages
    opened = PartyEnvelope("marac.north-worcs", store=stores["north"]).open(
        dict(wire.decode_headers(delivery.headers)),
        key=delivery.key,
        value=delivery.value,
        expected_signer="hub",
    )
    body = json.loads(opened.plaintext)
    assert body["audit_record"] == coordinator.record_id
    assert body["case_ref"] == "MARAC-T10"


def test_no_receipt_when_the_transfer_is_refused(
    stores: dict[str, FileKeyStore],
) -> None:
    rogue = _router(NORTH, stores["rogue"])
    data = marac_flag("MARAC-T11", district="worcester")
    result = rogue.route(
        **_published(stores["rogue"], "marac.north-worcs", data, "t-11"), seen=never_seen
    )
    [message] = [m for m in result.messages if m.topic == "hub.out.swcsp-hub"]
    south = _router(SOUTH, stores["south"]).route(**_as_inbound(message), seen=never_seen)
    types = {dict(wire.decode_headers(m.headers)).get("ce_type") for m in south.messages}
    assert RECEIPT_TYPE not in types


def test_a_withdrawal_follows_the_transferred_case_under_art_19(
    stores: dict[str, FileKeyStore],
) -> None:
    north = _router(NORTH, stores["north"])
    south = _router(SOUTH, stores["south"])
    data = marac_flag("MARAC-T12", district="worcester")
    north.route(**_published(stores["north"], "marac.north-worcs", data, "t-12"), seen=never_seen)
    # the case is withdrawn in the North; the South's hub held it, so it is told
    withdrawn = marac_withdrawn("MARAC-T12", district="worcester")
    attrs = EventAttributes(
        id="t-12w", source=wire.source_for("marac.north-worcs"), type=MARAC_WITHDRAWN, time=FIXED
    )
    sealed = PartyEnvelope("marac.north-worcs", store=stores["north"]).seal(
        attrs, key=b"CASE-T", plaintext=REGISTRY.encode(MARAC_WITHDRAWN, withdrawn), recipient="hub"
    )
    result = north.route(
        origin=Origin(topic="hub.in.marac.north-worcs", partition=0, offset=1),
        key=b"CASE-T",
        value=sealed.value,
        headers=sealed.headers,
        seen=never_seen,
    )
    [sent] = [r for r in result.audit if r.recipient == "swcsp-hub"]
    assert sent.decision is AuditDecision.DELIVERED
    assert sent.rule == "marac-art19-holders"
    [message] = [m for m in result.messages if m.topic == "hub.out.swcsp-hub"]
    got = south.route(**_as_inbound(message), seen=never_seen)
    assert got.quarantined is None
    [record] = [r for r in got.audit if r.decision is AuditDecision.DELIVERED]
    assert record.recipient == "marac.south-worcs"
    assert record.rule == "marac-transfer-withdrawn-from-north"


def test_a_peer_hubs_notice_refused_here_is_not_answered(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    # the South refuses a transfer and tells the North (a notice signed by the South's hub)
    text = SOUTH_PATH.read_text(encoding="utf-8")
    path = tmp_path / "south-narrow.yaml"
    path.write_text(text.replace("contact, markers, notes]", "contact, markers]"), "utf-8")
    _, message = _transfer(stores, "MARAC-T13", "t-13")
    refused = _router(load_protocol(path), stores["south"]).route(
        **_as_inbound(message), seen=never_seen
    )
    [notice] = [m for m in refused.messages if m.topic == "hub.out.nwcsp-hub"]
    inbound: dict[str, Any] = {
        "origin": Origin(topic="hub.in.swcsp-hub", partition=0, offset=3),
        "key": notice.key,
        "value": notice.value,
        "headers": notice.headers,
    }
    north = _router(NORTH, stores["north"]).route(**inbound, seen=never_seen)
    # the North keeps and audits the South's refusal, its reason in the South's words, and
    # sends nothing back, or two linked hubs would trade refusals for ever
    assert north.quarantined is QuarantineReason.POLICY_REJECTED
    [record] = north.audit
    assert record.decision is AuditDecision.REJECTED
    assert "peer swcsp-hub refused event t-13 (policy_rejected)" in record.reason
    assert "fields notes" in record.reason
    assert [m.topic for m in north.messages] == ["hub.quarantine"]


def test_before_the_peer_keys_are_pinned_transfers_are_withheld(tmp_path: Path) -> None:
    north = _hub_keys(tmp_path / "north", NORTH)  # no pins, and no key made for the peer
    assert north.public("swcsp-hub") == []
    data = marac_flag("MARAC-T14", district="worcester")
    result = _router(NORTH, north).route(
        **_published(north, "marac.north-worcs", data, "t-14"), seen=never_seen
    )
    [record] = [r for r in result.audit if r.recipient == "swcsp-hub"]
    assert record.decision is AuditDecision.WITHHELD
    assert "hub keys import --peer swcsp-hub" in record.reason


def test_the_reverse_a_move_to_redditch_and_its_withdrawal_reach_the_north(
    stores: dict[str, FileKeyStore],
) -> None:
    south = _router(SOUTH, stores["south"])
    north = _router(NORTH, stores["north"])

    def publish(event_type: str, data: dict[str, Any], event_id: str, offset: int) -> Any:
        attrs = EventAttributes(
            id=event_id, source=wire.source_for("marac.south-worcs"), type=event_type, time=FIXED
        )
        sealed = PartyEnvelope("marac.south-worcs", store=stores["south"]).seal(
            attrs, key=b"CASE-S", plaintext=REGISTRY.encode(event_type, data), recipient="hub"
        )
        result = south.route(
            origin=Origin(topic="hub.in.marac.south-worcs", partition=0, offset=offset),
            key=b"CASE-S",
            value=sealed.value,
            headers=sealed.headers,
            seen=never_seen,
        )
        [message] = [m for m in result.messages if m.topic == "hub.out.nwcsp-hub"]
        got = north.route(
            origin=Origin(topic="hub.in.swcsp-hub", partition=0, offset=offset),
            key=message.key,
            value=message.value,
            headers=message.headers,
            seen=never_seen,
        )
        assert got.quarantined is None
        return [r for r in got.audit if r.decision is AuditDecision.DELIVERED]

    [raised] = publish(MARAC_RAISED, marac_flag("MARAC-S1", district="redditch"), "s-1", 0)
    assert (raised.recipient, raised.rule) == ("marac.north-worcs", "marac-transfer-from-south")
    assert raised.publisher == "swcsp-hub"
    [withdrawn] = publish(MARAC_WITHDRAWN, marac_withdrawn("MARAC-S1"), "s-2", 1)
    assert withdrawn.rule == "marac-transfer-withdrawn-from-south"


def test_the_coordinators_acknowledgement_sends_an_acknowledged_receipt(
    stores: dict[str, FileKeyStore],
) -> None:
    _, message = _transfer(stores, "MARAC-T15", "t-15")
    south = _router(SOUTH, stores["south"])
    south.route(**_as_inbound(message), seen=never_seen)
    ack = {
        "acknowledged_event_id": "t-15",
        "acknowledged_type": MARAC_RAISED,
        "received_at": "2026-11-23T12:05:00Z",
        "status": "received",
        "note": None,
    }
    attrs = EventAttributes(
        id="t-15-ack", source=wire.source_for("marac.south-worcs"), type=ACK_TYPE, time=FIXED
    )
    sealed = PartyEnvelope("marac.south-worcs", store=stores["south"]).seal(
        attrs, key=b"MARAC-T15", plaintext=REGISTRY.encode(ACK_TYPE, ack), recipient="hub"
    )
    acked = south.route(
        origin=Origin(topic="hub.in.marac.south-worcs", partition=0, offset=7),
        key=b"MARAC-T15",
        value=sealed.value,
        headers=sealed.headers,
        seen=never_seen,
    )
    [record] = acked.audit
    assert record.decision is AuditDecision.ACKNOWLEDGED
    [receipt] = [m for m in acked.messages if m.topic == "hub.out.nwcsp-hub"]
    assert dict(wire.decode_headers(receipt.headers))["ce_id"] == receipt_id("t-15", "acknowledged")
    north = _router(NORTH, stores["north"]).route(
        origin=Origin(topic="hub.in.swcsp-hub", partition=0, offset=8),
        key=receipt.key,
        value=receipt.value,
        headers=receipt.headers,
        seen=never_seen,
    )
    [delivered] = [r for r in north.audit if r.decision is AuditDecision.DELIVERED]
    assert delivered.recipient == "marac.north-worcs"
    assert delivered.event_id == receipt_id("t-15", "acknowledged")


def test_status_shows_each_transfer_sent_received_or_refused(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    north = _router(NORTH, stores["north"])
    south = _router(SOUTH, stores["south"])
    narrow = tmp_path / "south-narrow.yaml"
    text = SOUTH_PATH.read_text(encoding="utf-8")
    narrow.write_text(text.replace("contact, markers, notes]", "contact, markers]"), "utf-8")
    records = []
    for n, (event_id, receiver) in enumerate(
        [("t-20", None), ("t-21", south), ("t-22", _router(load_protocol(narrow), stores["south"]))]
    ):
        data = marac_flag(f"MARAC-T2{n}", district="worcester")
        sent = north.route(
            **_published(stores["north"], "marac.north-worcs", data, event_id), seen=never_seen
        )
        records += sent.audit
        if receiver is None:
            continue  # never carried: sent
        [message] = [m for m in sent.messages if m.topic == "hub.out.swcsp-hub"]
        back = receiver.route(**_as_inbound(message, offset=20 + n), seen=never_seen)
        [answer] = [m for m in back.messages if m.topic == "hub.out.nwcsp-hub"]
        got = north.route(
            origin=Origin(topic="hub.in.swcsp-hub", partition=0, offset=20 + n),
            key=answer.key,
            value=answer.value,
            headers=answer.headers,
            seen=never_seen,
        )
        records += got.audit
    settings = HubSettings(data_dir=tmp_path / "data")
    with contextlib.closing(open_store(settings)) as store:
        store.append(records)
    env = {"HUB_DATA_DIR": str(settings.data_dir), "HUB_PROTOCOL": str(default_protocol_path())}
    result = CliRunner().invoke(app, ["federation", "status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    states = {row["event_id"]: row["state"] for row in map(json.loads, result.stdout.splitlines())}
    assert states == {"t-20": "sent", "t-21": "received", "t-22": "refused"}


def test_keys_import_pins_a_peer_export_and_refuses_a_non_peer(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    export = tmp_path / "south-keys.json"
    export.write_text(_export(stores["south"]), encoding="utf-8")
    env = {"HUB_DATA_DIR": str(tmp_path / "data"), "HUB_PROTOCOL": str(default_protocol_path())}
    runner = CliRunner()
    refused = runner.invoke(
        app, ["keys", "import", str(export), "--peer", "marac.north-worcs"], env=env
    )
    assert refused.exit_code == 1
    assert "expected a party of kind peer-hub" in refused.stderr
    assert "Traceback" not in refused.output
    pinned = runner.invoke(app, ["keys", "import", str(export), "--peer", "swcsp-hub"], env=env)
    assert pinned.exit_code == 0, pinned.output
    kid = stores["south"].active("hub").signing_key_id
    assert kid in pinned.stdout
    keys = FileKeyStore(HubSettings(data_dir=tmp_path / "data").keys_dir)
    assert keys.active("swcsp-hub").signing_key_id == kid


def test_link_refuses_a_party_that_is_not_a_peer(tmp_path: Path) -> None:
    env = {"HUB_DATA_DIR": str(tmp_path / "data"), "HUB_PROTOCOL": str(default_protocol_path())}
    result = CliRunner().invoke(
        app,
        ["federation", "link", "--peer", "west-mercia-police", "--peer-bootstrap", "h:1"],
        env=env,
    )
    assert result.exit_code == 1
    assert "expected a party of kind peer-hub" in result.stderr
    assert "Traceback" not in result.output


def _south_sink(tmp_path: Path, stores: dict[str, FileKeyStore]) -> tuple[Any, NoteSigner]:
    """The South's audit sink over a store of its own, proving hand-overs to its peer."""
    from hub.agents.sink import AuditSink
    from hub.audit.log import AuditLog
    from hub.audit.sqlite import SQLiteAuditStore

    store = SQLiteAuditStore(tmp_path / "south-audit.sqlite3")
    signer = NoteSigner("south-worcestershire-csp.hub/audit", Ed25519PrivateKey.generate())
    sink = AuditSink(
        store=store,
        log=AuditLog(store, signer=signer, heads_only=True),
        envelope=PartyEnvelope("hub", store=stores["south"]),
        parties=[],
        checkpoint_every=1,
        checkpoint_interval=60,
        proofs=PeerProofs(SOUTH),
        proof_log=lambda: (AuditLog(store, signer=signer), store),
    )
    return sink, signer


def _proof_inbound(message: Any) -> dict[str, Any]:
    return {
        "origin": Origin(topic="hub.in.swcsp-hub", partition=0, offset=7),
        "key": message.key,
        "value": message.value,
        "headers": message.headers,
    }


def test_the_receivers_sink_proves_its_record_and_the_sender_verifies_and_keeps_it(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    _, message = _transfer(stores, "MARAC-T20", "t-20")
    routed = _router(SOUTH, stores["south"]).route(**_as_inbound(message), seen=never_seen)
    [coordinator] = [r for r in routed.audit if r.recipient == "marac.south-worcs"]
    sink, signer = _south_sink(tmp_path, stores)
    asyncio.run(sink.write(list(routed.audit)))
    assert sink.proofs.pending == 1  # the coordinator's delivery; not the department's
    produced = asyncio.run(sink.checkpoint())
    # never straight to the peer: the hub's own event, for the router to decide and audit
    assert not [m for m in produced if m.topic.startswith("hub.out.")]
    [published] = [m for m in produced if m.topic == "hub.in.hub"]
    south = _router(SOUTH, stores["south"]).route(
        origin=Origin(topic="hub.in.hub", partition=0, offset=3),
        key=published.key,
        value=published.value,
        headers=published.headers,
        seen=never_seen,
    )
    assert south.quarantined is None
    [disclosed] = [r for r in south.audit if r.decision is AuditDecision.DELIVERED]
    assert (disclosed.recipient, disclosed.rule, disclosed.publisher) == (
        "nwcsp-hub",
        "marac-transfer-proofs-to-north",
        "hub",
    )
    [proof] = [m for m in south.messages if m.topic.startswith("hub.out.")]
    assert proof.topic == "hub.out.nwcsp-hub"
    headers = dict(wire.decode_headers(proof.headers))
    assert headers["ce_type"] == PROOF_TYPE
    assert headers["ce_id"] == proof_id(coordinator.record_id) == disclosed.event_id
    kept = ProofRegister(tmp_path / "north-registers.sqlite3")
    north = _router(NORTH, stores["north"], [kept])
    # the South's log key not pinned yet: refused, not kept
    refused = north.route(**_proof_inbound(proof), seen=never_seen)
    assert refused.quarantined is QuarantineReason.UNKNOWN_KEY
    assert refused.effects == []
    pin_log_key(stores["north"].root, "swcsp-hub", signer.verifier_key)
    result = north.route(**_proof_inbound(proof), seen=never_seen)
    assert result.quarantined is None
    # verified while opened, kept only as the accepted event's effect (the worker applies it)
    [effect] = result.effects
    assert isinstance(effect, ProofKept)
    assert (effect.peer, effect.transfer_event_id) == ("swcsp-hub", "t-20")
    assert kept.entries("swcsp-hub", "t-20") == []
    apply_effects(result.effects, north.stores)
    [record] = [r for r in result.audit if r.decision is AuditDecision.DELIVERED]
    assert (record.recipient, record.rule) == (
        "marac.north-worcs",
        "marac-transfer-proofs-from-south",
    )
    [entry] = kept.entries("swcsp-hub", "t-20")
    proven = verify_entry(entry, pinned_log_key(stores["north"].root, "swcsp-hub"))
    assert proven.record.record_id == coordinator.record_id
    assert proven.record.recipient == "marac.south-worcs"
    # no receipt, no proof, for a proof
    assert not [m for m in result.messages if m.topic == "hub.out.swcsp-hub"]


def _south_proof(
    stores: dict[str, FileKeyStore],
    tmp_path: Path,
    case: str,
    event_id: str,
    *,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> SealedRecord:
    """The South's hub's proof of its record of a North transfer, sealed to the North's hub
    (``edit`` changes its body first), with the South's log key pinned at the North."""
    _, message = _transfer(stores, case, event_id)
    routed = _router(SOUTH, stores["south"]).route(**_as_inbound(message), seen=never_seen)
    sink, signer = _south_sink(tmp_path, stores)
    asyncio.run(sink.write(list(routed.audit)))
    [(peer, proof_id, body)] = sink.proofs.bodies(sink.proof_log)
    if edit is not None:
        edit(body)
    attrs = EventAttributes(
        id=proof_id, source="/parties/hub", type=PROOF_TYPE, time=FIXED, subject=None,
        datacontenttype=wire.JSON,
    )  # fmt: skip
    pin_log_key(stores["north"].root, "swcsp-hub", signer.verifier_key)
    return PartyEnvelope("hub", store=stores["south"]).seal(
        attrs, key=None, plaintext=wire.canonical_json(body), recipient=peer
    )


def test_a_proof_whose_record_was_edited_is_refused_and_not_kept(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    def edit(body: dict[str, Any]) -> None:
        body["record"] = body["record"].replace("marac.south-worcs", "marac.south-wrcs")

    sealed = _south_proof(stores, tmp_path, "MARAC-T21", "t-21", edit=edit)
    result = _router(NORTH, stores["north"]).route(
        origin=Origin(topic="hub.in.swcsp-hub", partition=0, offset=8),
        key=None,
        value=sealed.value,
        headers=sealed.headers,
        seen=never_seen,
    )
    assert result.quarantined is QuarantineReason.BAD_SIGNATURE
    assert "inclusion proof" in result.audit[0].reason
    assert not [e for e in result.effects if isinstance(e, ProofKept)]
    assert result.messages == [] or all(m.topic == "hub.quarantine" for m in result.messages)


def test_hub_up_refuses_a_link_to_a_party_that_is_not_a_peer(tmp_path: Path) -> None:
    from hub.agents.supervisor import Supervisor
    from hub.errors import ConfigError

    with pytest.raises(ConfigError, match="west-mercia-police is not a peer-hub party"):
        Supervisor(HubSettings(data_dir=tmp_path, federation_links="west-mercia-police=h:9092"))
    with pytest.raises(ConfigError, match="expected PEER=HOST:PORT"):
        Supervisor(HubSettings(data_dir=tmp_path, federation_links="swcsp-hub"))
    linked = Supervisor(HubSettings(data_dir=tmp_path, federation_links=" swcsp-hub=s:9092 "))
    assert linked.settings.federation_peers == {"swcsp-hub": "s:9092"}


def test_ownership_taken_by_the_south_stops_the_north_following_the_case(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    from hub.federation.ownership import (
        OWNERSHIP_TYPE,
        WITHDRAW_TYPE,
        OwnershipRegister,
        withdraw_id,
    )
    from hub.processes.base import apply_effects

    case = "MARAC-T30"
    # the South's coordinator takes the case; its hub routes that to the North's hub
    south_register = OwnershipRegister(tmp_path / "south" / "ownership.sqlite3")
    south = _router(SOUTH, stores["south"], [south_register])
    body = {"case_ref": case, "previous_owner": "nwcsp-hub", "taken_on": dt.date(2026, 12, 3)}
    attrs = EventAttributes(
        id="own-30", source=wire.source_for("marac.south-worcs"), type=OWNERSHIP_TYPE,
        time=FIXED, subject=None,
    )  # fmt: skip
    sealed = PartyEnvelope("marac.south-worcs", store=stores["south"]).seal(
        attrs, key=case.encode(), plaintext=REGISTRY.encode(OWNERSHIP_TYPE, body), recipient="hub"
    )
    taken = south.route(
        origin=Origin(topic="hub.in.marac.south-worcs", partition=0, offset=0),
        key=case.encode(), value=sealed.value, headers=sealed.headers, seen=never_seen,
    )  # fmt: skip
    apply_effects(taken.effects, south.stores)
    assert [o.side for o in south_register.all()] == ["ours"]
    [to_north] = [m for m in taken.messages if m.topic == "hub.out.nwcsp-hub"]
    # the North's hub: its coordinator is told, the move recorded, the holders told to withdraw
    north_register = OwnershipRegister(tmp_path / "north" / "ownership.sqlite3")
    north = _router(NORTH, stores["north"], [north_register])
    # the North sent the case to the South first (a peer takes only a case it was sent)
    north.route(
        **_published(stores["north"], "marac.north-worcs", marac_flag(case, district="worcester"),
                     "t-30"),
        seen=never_seen,
    )  # fmt: skip
    heard = north.route(**_as_inbound(to_north, peer="swcsp-hub"), seen=never_seen)
    assert heard.quarantined is None
    apply_effects(heard.effects, north.stores)
    owner = north_register.owner(case)
    assert owner is not None
    assert (owner.peer, owner.side, owner.event_id) == ("swcsp-hub", "theirs", "own-30")
    [withdraw] = [m for m in heard.messages if m.topic == "hub.in.hub"]
    assert dict(wire.decode_headers(withdraw.headers))["ce_id"] == withdraw_id("own-30")
    routed = north.route(
        origin=Origin(topic="hub.in.hub", partition=0, offset=0),
        key=withdraw.key, value=withdraw.value, headers=withdraw.headers,
        seen=never_seen,
    )  # fmt: skip
    assert routed.quarantined is None
    assert {r.recipient for r in routed.audit} >= {"marac.north-worcs"}
    assert routed.audit[0].event_type == WITHDRAW_TYPE
    # a later flag event that the transfer rule would send to the South is withheld from it
    later = north.route(
        **_published(stores["north"], "marac.north-worcs", marac_flag(case, district="worcester"),
                     "later-30"),
        seen=never_seen,
    )  # fmt: skip
    [record] = [r for r in later.audit if r.recipient == "swcsp-hub"]
    assert record.decision is AuditDecision.WITHHELD
    assert "peer swcsp-hub took ownership of case MARAC-T30 on 2026-12-03" in record.reason
    assert not [m for m in later.messages if m.topic == "hub.out.swcsp-hub"]
    # nor does the router take the peer for a recipient (whose acknowledgement it would take)
    assert north._delivered_to("later-30", "swcsp-hub") == {}
    [holder, *_] = [r.recipient for r in later.audit if r.decision is AuditDecision.DELIVERED]
    assert north._delivered_to("later-30", str(holder)) != {}
    # another case still goes
    other = north.route(
        **_published(stores["north"], "marac.north-worcs",
                     marac_flag("MARAC-T31", district="worcester"), "other-31"),
        seen=never_seen,
    )  # fmt: skip
    assert [m for m in other.messages if m.topic == "hub.out.swcsp-hub"]


def test_a_peers_ownership_of_a_case_never_sent_to_it_is_refused_and_nobody_withdraws(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    """Else a wrong reference from a peer strips a victim's flag from every holder here."""
    from hub.federation.ownership import OWNERSHIP_TYPE, OwnershipRegister

    case = "MARAC-T32"
    body = {"case_ref": case, "previous_owner": "nwcsp-hub", "taken_on": dt.date(2026, 12, 3)}
    attrs = EventAttributes(
        id="own-32", source=wire.source_for("marac.south-worcs"), type=OWNERSHIP_TYPE,
        time=FIXED, subject=None,
    )  # fmt: skip
    sealed = PartyEnvelope("marac.south-worcs", store=stores["south"]).seal(
        attrs, key=case.encode(), plaintext=REGISTRY.encode(OWNERSHIP_TYPE, body), recipient="hub"
    )
    taken = _router(SOUTH, stores["south"]).route(
        origin=Origin(topic="hub.in.marac.south-worcs", partition=0, offset=0),
        key=case.encode(), value=sealed.value, headers=sealed.headers, seen=never_seen,
    )  # fmt: skip
    [to_north] = [m for m in taken.messages if m.topic == "hub.out.nwcsp-hub"]
    register = OwnershipRegister(tmp_path / "north" / "ownership.sqlite3")
    north = _router(NORTH, stores["north"], [register])
    # the North holds the case (its departments got the raise) but never sent it South
    raised = north.route(
        **_published(stores["north"], "marac.north-worcs", marac_flag(case), "raise-32"),
        seen=never_seen,
    )
    assert raised.quarantined is None
    assert "swcsp-hub" not in {
        r.recipient for r in raised.audit if r.decision is AuditDecision.DELIVERED
    }
    heard = north.route(**_as_inbound(to_north, peer="swcsp-hub"), seen=never_seen)
    assert heard.quarantined is QuarantineReason.POLICY_REJECTED
    [record] = heard.audit
    assert record.decision is AuditDecision.REJECTED
    assert "expected a case this hub transferred to swcsp-hub" in (record.reason or "")
    assert heard.effects == []
    assert not [m for m in heard.messages if m.topic == "hub.in.hub"]  # no withdrawal
    assert [m for m in heard.messages if m.topic == "hub.out.swcsp-hub"]  # the peer is told
    assert register.owner(case) is None


def test_a_link_writes_to_the_peers_broker_with_the_account_the_peer_gave(tmp_path: Path) -> None:
    from hub.errors import ConfigError
    from hub.federation.link_worker import peer_security

    path = tmp_path / "federation-security.json"
    path.write_text(
        json.dumps(
            {
                "swcsp-hub": {
                    "protocol": "SASL_SSL",
                    "sasl_mechanism": "SCRAM-SHA-512",
                    "username": "nwcsp-hub",
                    "password": "from-the-south",
                }
            }
        )
    )
    settings = HubSettings(data_dir=tmp_path, federation_security=path)
    security = peer_security(settings, "swcsp-hub")
    assert (security.protocol, security.username) == ("SASL_SSL", "nwcsp-hub")
    assert security.password is not None
    assert security.password.get_secret_value() == "from-the-south"
    assert peer_security(settings, "other-hub").protocol == "PLAINTEXT"
    assert peer_security(HubSettings(data_dir=tmp_path), "swcsp-hub").protocol == "PLAINTEXT"
    path.write_text(json.dumps({"swcsp-hub": {"protocol": "SASL_SSL"}}))
    with pytest.raises(ConfigError, match=r"peer swcsp-hub: .*needs HUB_KAFKA_SASL_MECHANISM"):
        peer_security(settings, "swcsp-hub")
    path.write_text("[1]")
    with pytest.raises(ConfigError, match="expected an object of peer ids"):
        peer_security(settings, "swcsp-hub")


def test_a_bundle_proves_only_what_it_holds_an_empty_one_or_another_events_fails(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    """An IG officer's check of a peer's bundle never passes on proofs of nothing."""
    from hub.federation.proofs import bundle, entries_for

    _, message = _transfer(stores, "MARAC-T40", "t-40")
    routed = _router(SOUTH, stores["south"]).route(**_as_inbound(message), seen=never_seen)
    sink, signer = _south_sink(tmp_path, stores)
    asyncio.run(sink.write(list(routed.audit)))
    asyncio.run(sink.checkpoint())
    log, store = sink.proof_log()
    entries = entries_for(log, store, "t-40")
    assert entries
    data_dir = tmp_path / "data"
    pin_log_key(HubSettings(data_dir=data_dir).keys_dir, "swcsp-hub", signer.verifier_key)
    env = {"HUB_DATA_DIR": str(data_dir), "HUB_PROTOCOL": str(default_protocol_path())}

    def check(proofs: list[Any], *event: str) -> Any:
        path = tmp_path / "bundle.json"
        path.write_text(json.dumps(bundle("south", proofs)), encoding="utf-8")
        args = ["audit", "proof", "--peer", "swcsp-hub", "--bundle", str(path), *event]
        return CliRunner().invoke(app, args, env=env)

    proved = check(entries, "--event", "t-40")
    assert proved.exit_code == 0, proved.output
    assert "event t-40" in proved.stdout
    assert "verified" in proved.stdout
    emptied = check([])
    assert emptied.exit_code == 1
    assert "expected at least one proof from swcsp-hub, got none" in emptied.stderr
    assert "Traceback" not in emptied.output
    other = check(entries, "--event", "t-41")
    assert other.exit_code == 1
    assert "expected event t-41, got event t-40" in other.stderr
    assert "verified" not in other.stdout


def test_a_repeat_from_the_link_is_found_in_the_seen_store_the_route_loop_writes(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    """The link is at least once: its repeat must meet the claim of the first copy.

    The route loop claims an event under the source its topic names (the peer hub); the
    router must look a transfer up under that source, not the original publisher's, or the
    repeat is routed again and every recipient gets it twice (the audit store, keeping one
    record per deterministic id, hides that).
    """
    from hub.agents.seen import Claim, SeenEvents

    _, message = _transfer(stores, "MARAC-T50", "t-50")
    south = _router(SOUTH, stores["south"])
    seen = SeenEvents(tmp_path / "seen.sqlite3")
    first = south.route(**_as_inbound(message, offset=5), seen=seen.first)
    assert first.delivered == 2
    assert first.remember
    seen.remember_many([Claim(first.event_id, "hub.in.nwcsp-hub/0/5", FIXED)])  # as RouteLoop
    again = south.route(**_as_inbound(message, offset=9), seen=seen.first)
    assert again.quarantined is None
    assert again.audit == []
    assert again.messages == []
    assert again.delivered == 0
    seen.close()


@pytest.mark.parametrize(
    ("protocol", "peer", "rule"),
    [
        (NORTH, "swcsp-hub", "marac-transfer-proofs-to-south"),
        (SOUTH, "nwcsp-hub", "marac-transfer-proofs-to-north"),
    ],
)
def test_a_hubs_proof_reaches_only_the_peer_it_names_under_the_transfer_agreement(
    protocol: Protocol, peer: str, rule: str
) -> None:
    from hub.policies.engine import evaluate

    body = transfer_proof(sender="x-hub")

    def recipients(data: dict[str, Any]) -> set[tuple[str, str | None]]:
        decision = evaluate(
            protocol, event_id="p-1", event_type=PROOF_TYPE, publisher="hub", data=data
        )
        return {(d.party, d.rule_id) for d in decision.deliveries}

    assert recipients({**body, "peer": peer}) == {(peer, rule)}
    [named] = [r for r in protocol.rules if r.id == rule]
    assert named.agreement == "WORCS-MARAC-TRANSFER-2026"
    assert all((named.retention, named.purpose, named.lawful_basis, named.gateway))
    # a proof for no peer, or another one, is disclosed to nobody
    assert recipients({**body, "peer": None}) == set()
    assert recipients({**body, "peer": "elsewhere-hub"}) == set()


def test_hub_up_the_link_process_and_the_link_command_refuse_a_link_alike(
    tmp_path: Path,
) -> None:
    """One check for "a peer, and this protocol has a hub_id": the three callers agree."""
    from hub.agents.supervisor import Supervisor
    from hub.errors import ConfigError
    from hub.federation.link_worker import link_target

    nameless = tmp_path / "north-without-hub-id.yaml"
    text = default_protocol_path().read_text("utf-8")
    assert "  hub_id: nwcsp-hub\n" in text
    nameless.write_text(text.replace("  hub_id: nwcsp-hub\n", ""), "utf-8")
    for protocol, peer, expected in (
        (default_protocol_path(), "west-mercia-police", "is not a peer-hub party of"),
        (nameless, "swcsp-hub", "names no protocol.hub_id"),
    ):
        settings = HubSettings(
            data_dir=tmp_path / "data", protocol=protocol, federation_links=f"{peer}=h:9092"
        )
        with pytest.raises(ConfigError) as up:
            Supervisor(settings)
        with pytest.raises(ConfigError) as linked:
            link_target(settings, peer)
        command = CliRunner().invoke(
            app,
            ["federation", "link", "--peer", peer, "--peer-bootstrap", "h:9092"],
            env={"HUB_DATA_DIR": str(tmp_path / "data"), "HUB_PROTOCOL": str(protocol)},
        )
        assert command.exit_code == 1
        assert "Traceback" not in command.output
        assert expected in str(up.value)
        # the same words, only what asked differs
        assert str(up.value) == str(linked.value)
        assert str(up.value).replace("HUB_FEDERATION_LINKS", "--peer") in command.stderr


def test_a_verified_proof_the_protocol_refuses_is_not_kept(
    stores: dict[str, FileKeyStore], tmp_path: Path
) -> None:
    """Keeping a proof is an effect of its accepted event, never a write while routing."""
    sealed = _south_proof(stores, tmp_path, "MARAC-T22", "t-22")
    # the North's protocol without its rule for the South's proofs: the proof verifies, and
    # the protocol refuses it
    refusing = NORTH.model_copy(
        update={"rules": [r for r in NORTH.rules if r.id != "marac-transfer-proofs-from-south"]}
    )
    kept = ProofRegister(tmp_path / "north-registers.sqlite3")
    north = _router(refusing, stores["north"], [kept])
    result = north.route(
        origin=Origin(topic="hub.in.swcsp-hub", partition=0, offset=9),
        key=None,
        value=sealed.value,
        headers=sealed.headers,
        seen=never_seen,
    )
    assert result.quarantined is not None
    assert result.effects == []
    apply_effects(result.effects, north.stores)
    assert kept.entries("swcsp-hub", "t-22") == []
    # and nothing was written beside the peer's pins either (the old per-host proof files)
    assert not list((stores["north"].root / "peers").glob("*.proofs"))


@pytest.mark.parametrize(("session", "heartbeat"), [(10.0, 3000), (4.0, 1333)])
def test_the_link_joins_its_group_with_the_hubs_session_timeout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session: float, heartbeat: int
) -> None:
    """``hub up`` passes HUB_SESSION_TIMEOUT: a restarted link waits that long, not aiokafka's 10 s
    (and the embedded broker answers its join after half); a few heartbeats fit in a session."""
    import aiokafka

    from hub.federation.link import ForwardedLog, run_link

    seen: dict[str, Any] = {}

    class MadeError(Exception):
        """The consumer's arguments are all this test needs."""

    def consumer(*topics: str, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise MadeError

    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", consumer)
    forwarded = ForwardedLog(tmp_path / "forwarded.sqlite3")
    try:
        with pytest.raises(MadeError):
            asyncio.run(
                run_link(
                    peer="swcsp-hub",
                    hub_id="nwcsp-hub",
                    bootstrap="127.0.0.1:9",
                    peer_bootstrap="127.0.0.1:9",
                    forwarded=forwarded,
                    session_timeout=session,
                )
            )
    finally:
        forwarded.close()
    assert seen["session_timeout_ms"] == int(session * 1000)
    assert seen["heartbeat_interval_ms"] == heartbeat
