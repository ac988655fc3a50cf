"""Bad input never crashes a worker and never disappears.

Each hostile record is produced with a raw Kafka producer (as a broken or malicious agency
system would), then: it is on hub.quarantine byte for byte with a machine-readable reason,
it has one `rejected` audit record, the publisher got a rejection notice on its own topic,
and a valid event sent afterwards is still routed (the worker is alive).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from hub.envelope import wire
from hub.envelope.crypto import DataKeyCache
from hub.envelope.party import PartyEnvelope
from hub.envelope.sealing import seal_record
from hub.models import AuditDecision, EventAttributes
from hub.schemas import SchemaRegistry
from tests.conftest import RunningHub, unique, wait_for
from tests.factories import MARAC_RAISED, SOCJAG, marac_flag, socjag_intel

pytestmark = pytest.mark.integration

Headers = list[tuple[str, bytes]]


def headers_for(
    party: str, event_type: str, *, event_id: str | None = None, source: str | None = None
) -> Headers:
    attrs = EventAttributes(
        id=event_id or wire.new_event_id(),
        source=source or wire.source_for(party),
        type=event_type,
        time=dt.datetime.now(dt.UTC),
        subject="CASE-1",
    )
    return wire.to_headers(attrs)


def produce(
    hub: RunningHub,
    topic: str,
    value: bytes,
    headers: Sequence[tuple[str, bytes]],
    key: bytes | None = b"CASE-1",
) -> str:
    """Produce one raw record; returns its origin ``topic/partition/offset``."""

    async def run() -> str:
        producer = AIOKafkaProducer(
            bootstrap_servers=hub.bootstrap, acks="all", max_request_size=2 * 1024 * 1024
        )
        await producer.start()
        try:
            meta = await producer.send_and_wait(topic, value=value, key=key, headers=list(headers))
        finally:
            await producer.stop()
        return f"{meta.topic}/{meta.partition}/{meta.offset}"

    return asyncio.run(run())


def quarantined(hub: RunningHub, origin: str) -> tuple[dict[str, bytes], bytes | None]:
    """The hub.quarantine record that came from ``origin`` (headers, value)."""

    async def scan() -> tuple[dict[str, bytes], bytes | None] | None:
        consumer = AIOKafkaConsumer(
            "hub.quarantine",
            bootstrap_servers=hub.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            fetch_max_bytes=4 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=1500)
            for records in batches.values():
                for record in records:
                    headers = dict(record.headers)
                    if headers.get("hub_origin") == origin.encode():
                        return headers, record.value
        finally:
            await consumer.stop()
        return None

    return wait_for(lambda: asyncio.run(scan()), timeout=30, what=f"quarantine of {origin}")


def rejected_record(hub: RunningHub, origin: str, event_id: str) -> str:
    records = hub.wait_records(event_id)
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert records[0].origin == origin
    return records[0].reason


def notice_for(hub: RunningHub, party: str, origin: str) -> dict[str, str]:
    found = hub.deliveries(party, until=lambda ds: any(d.data.get("origin") == origin for d in ds))
    notice = next(d for d in found if d.data.get("origin") == origin)
    assert notice.type == "uk.csp.hub.rejected.v1"
    return {k: str(v) for k, v in notice.data.items()}


def assert_still_routing(hub: RunningHub) -> None:
    event_id = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC")))
    hub.wait_records(event_id, at_least=8)


PARTY = "redditch-bc.housing-repairs"
TOPIC = f"hub.in.{PARTY}"
REGISTRY = SchemaRegistry()
VALID_MARAC = REGISTRY.encode(MARAC_RAISED, marac_flag("MARAC-BAD-0001"))
Record = tuple[bytes, Headers]


def attrs_for(
    event_id: str,
    *,
    event_type: str = MARAC_RAISED,
    source: str | None = None,
    content_type: str = wire.AVRO,
) -> EventAttributes:
    return EventAttributes(
        id=event_id,
        source=source or wire.source_for(PARTY),
        type=event_type,
        time=dt.datetime.now(dt.UTC),
        subject="CASE-1",
        datacontenttype=content_type,
    )


def sealed(
    hub: RunningHub,
    event_id: str,
    plaintext: bytes = VALID_MARAC,
    *,
    by: str = PARTY,
    to: str = "hub",
    **attr_kw: str,
) -> Record:
    record = PartyEnvelope(by, store=hub.keys).seal(
        attrs_for(event_id, **attr_kw), key=b"CASE-1", plaintext=plaintext, recipient=to
    )
    return record.value, list(record.headers)


def mutate(record: Record, name: str, change: Callable[[bytes], bytes]) -> Record:
    value, headers = record
    return value, [(k, change(v) if k == name else v) for k, v in headers]


def add_header(record: Record, name: str, value: bytes) -> Record:
    return record[0], [*record[1], (name, value)]


def flip_last_byte(record: Record) -> Record:
    value, headers = record
    return value[:-1] + bytes([value[-1] ^ 1]), headers


CASES: dict[str, tuple[Callable[[RunningHub, str], Record], str]] = {
    "malformed_avro": (lambda h, e: sealed(h, e, b"\xff\x00garbage\x13"), "malformed_payload"),
    "trailing_bytes": (lambda h, e: sealed(h, e, VALID_MARAC + b"\x00\x01"), "malformed_payload"),
    "truncated_avro": (lambda h, e: sealed(h, e, VALID_MARAC[:-7]), "malformed_payload"),
    "unknown_type": (
        lambda h, e: sealed(h, e, event_type="uk.csp.marac.flag.raised.v9"),
        "unknown_type",
    ),
    "spoofed_source": (
        lambda h, e: sealed(h, e, source="/parties/west-mercia-police"),
        "spoofed_source",
    ),
    "oversized": (lambda h, e: sealed(h, e, b"\x00" * (300 * 1024)), "oversized"),
    "duplicate_header": (
        lambda h, e: add_header(sealed(h, e), "ce_source", b"/parties/marac.north-worcs"),
        "bad_attribute",
    ),
    "header_injection": (
        lambda h, e: mutate(
            sealed(h, e), "ce_type", lambda v: v + b"\n/parties/west-mercia-police"
        ),
        "bad_attribute",
    ),
    "bad_utf8_header": (
        lambda h, e: mutate(sealed(h, e), "ce_subject", lambda v: b"\xc3\x28"),
        "bad_attribute",
    ),
    "bad_time": (
        lambda h, e: mutate(sealed(h, e), "ce_time", lambda v: b"yesterday"),
        "bad_attribute",
    ),
    "wrong_content_type": (
        lambda h, e: sealed(h, e, content_type="application/json"),
        "bad_attribute",
    ),
    "unsigned": (lambda h, e: (VALID_MARAC, wire.to_headers(attrs_for(e))), "unsigned"),
    "bad_signature": (lambda h, e: flip_last_byte(sealed(h, e)), "bad_signature"),
    "signed_by_another_party": (
        lambda h, e: sealed(h, e, by="redditch-bc.neighbourhood-tenancy"),
        "wrong_signer",
    ),
    "unknown_signing_key": (
        lambda h, e: mutate(sealed(h, e), "ce_hubsigkid", lambda v: b"nobody#0000000000000000"),
        "unknown_key",
    ),
    "sealed_to_another_party": (
        lambda h, e: sealed(h, e, to="west-mercia-police"),
        "not_for_recipient",
    ),
}
#: the rest of the hostile corpus (issue 8): shapes an attacker or a broken system sends
_UTF8_BAD = VALID_MARAC.replace(b"MARAC-BAD-0001", b"\xff\xfe" * 7)
_DEEP = b"[" * 100_000 + b"]" * 100_000  # deep nesting: a JSON bomb where Avro is expected
CASES.update(
    {
        "huge_length_prefix": (  # a string claiming gigabytes, then nothing
            lambda h, e: sealed(h, e, b"\xfe\xff\xff\xff\x7f" + VALID_MARAC),
            "malformed_payload",
        ),
        "negative_length": (lambda h, e: sealed(h, e, b"\x01" + VALID_MARAC), "malformed_payload"),
        "bad_utf8_in_payload": (lambda h, e: sealed(h, e, _UTF8_BAD), "malformed_payload"),
        "deep_nesting": (lambda h, e: sealed(h, e, _DEEP[:150_000]), "malformed_payload"),
        "wrong_types": (  # a SOCJAG record labelled as a MARAC flag
            lambda h, e: sealed(h, e, REGISTRY.encode(SOCJAG, socjag_intel("INT-BAD-1"))),
            "malformed_payload",
        ),
        "empty_payload": (lambda h, e: sealed(h, e, b""), "malformed_payload"),
        "huge_string": (  # a valid record whose one string is 400 KB: over the size limit
            lambda h, e: sealed(
                h,
                e,
                REGISTRY.encode(MARAC_RAISED, marac_flag("MARAC-BAD-2", rationale="x" * 400_000)),
            ),
            "oversized",
        ),
        "unknown_schema_version": (
            lambda h, e: sealed(h, e, event_type="uk.csp.marac.flag.raised.v0"),
            "unknown_type",
        ),
        "huge_header": (
            lambda h, e: mutate(sealed(h, e), "ce_subject", lambda v: b"S" * 100_000),
            "bad_attribute",
        ),
        "nul_in_header": (
            lambda h, e: mutate(sealed(h, e), "ce_id", lambda v: v + b"\x00"),
            "bad_attribute",
        ),
    }
)
HEADER_LEVEL = {
    "duplicate_header",
    "header_injection",
    "bad_utf8_header",
    "bad_time",
    "huge_header",
    "nul_in_header",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_record_is_quarantined_audited_and_notified(hub: RunningHub, case: str) -> None:
    make, reason = CASES[case]
    event_id = wire.new_event_id()
    value, headers = make(hub, event_id)
    origin = produce(hub, TOPIC, value, headers)
    q_headers, q_value = quarantined(hub, origin)
    assert q_headers["hub_reason"] == reason.encode(), case
    assert q_value == value  # kept whole: loses nothing
    # attributes that could not be parsed cannot be trusted: audited under the Kafka origin
    audited_id = f"unparsed:{origin}" if case in HEADER_LEVEL else event_id
    text = rejected_record(hub, origin, audited_id)
    assert text.startswith(f"{reason}: ")
    notice = notice_for(hub, PARTY, origin)
    assert notice["reason"] == reason
    assert_still_routing(hub)


def test_revoked_signing_key_is_refused(hub: RunningHub) -> None:
    party = "hw-icb"
    revoked = hub.keys.revoke(hub.keys.active(party).signing_key_id, reason="test: leaver")
    try:
        signer_key = hub.keys.signing_private(revoked.signing_key_id)

        class Signer:
            kid = revoked.signing_key_id

            def sign(self, data: bytes) -> bytes:
                return signer_key.sign(data)

        hub_keys = hub.keys.active("hub")
        event_id = wire.new_event_id()
        record = seal_record(
            attrs_for(event_id, source=wire.source_for(party)),
            key=b"CASE-1",
            plaintext=VALID_MARAC,
            recipient="hub",
            recipient_kid=hub_keys.encryption_key_id,
            suite=hub_keys.suite.value,
            recipient_public=hub_keys.encryption_public(),
            cache=DataKeyCache(),
            signer=Signer(),
        )
        origin = produce(hub, f"hub.in.{party}", record.value, record.headers)
        headers, _ = quarantined(hub, origin)
        assert headers["hub_reason"] == b"revoked_key"
        assert rejected_record(hub, origin, event_id).startswith("revoked_key: ")
    finally:
        hub.keys.rotate(party)


def test_missing_attributes(hub: RunningHub) -> None:
    origin = produce(hub, TOPIC, VALID_MARAC, [("ce_type", MARAC_RAISED.encode())])
    headers, _ = quarantined(hub, origin)
    assert headers["hub_reason"] == b"missing_attribute"
    assert rejected_record(hub, origin, f"unparsed:{origin}").startswith(
        "missing_attribute: missing CloudEvents header(s): ce_specversion, ce_id"
    )


def test_duplicate_event_id_is_quarantined_and_original_delivered_once(hub: RunningHub) -> None:
    event_id = wire.new_event_id()
    payload = REGISTRY.encode(SOCJAG, socjag_intel(unique("INT")))
    police = PartyEnvelope("west-mercia-police", store=hub.keys)

    def signed() -> tuple[bytes, Headers]:
        rec = police.seal(
            attrs_for(event_id, event_type=SOCJAG, source=wire.source_for("west-mercia-police")),
            key=b"CASE-1",
            plaintext=payload,
            recipient="hub",
        )
        return rec.value, list(rec.headers)

    first = produce(hub, "hub.in.west-mercia-police", *signed())
    hub.wait_records(event_id, at_least=7)
    second = produce(hub, "hub.in.west-mercia-police", *signed())
    headers, _ = quarantined(hub, second)
    assert headers["hub_reason"] == b"duplicate_event_id"
    assert first.encode() in headers["hub_detail"]
    reason = rejected_record(hub, second, f"duplicate:{second}")
    assert reason.startswith("duplicate_event_id: ")
    # read until the original is there (its delivery is produced after its audit records)
    deliveries = hub.deliveries("probation", until=lambda ds: event_id in {d.id for d in ds})
    assert [d.id for d in deliveries].count(event_id) == 1
    records = hub.records(event_id)
    assert sum(r.recipient == "probation" for r in records) == 1


def test_whole_corpus_in_one_burst_then_still_routing(hub: RunningHub) -> None:
    """Every hostile record at once, back to back: each quarantined with its own reason."""
    sent: list[tuple[str, str, str, str]] = []  # case, origin, reason, audited event id
    for case, (make, reason) in sorted(CASES.items()):
        event_id = wire.new_event_id()
        value, headers = make(hub, event_id)
        origin = produce(hub, TOPIC, value, headers)
        audited = f"unparsed:{origin}" if case in HEADER_LEVEL else event_id
        sent.append((case, origin, reason, audited))
    assert_still_routing(hub)
    for case, origin, reason, audited in sent:
        kept, _ = quarantined(hub, origin)
        assert kept["hub_reason"] == reason.encode(), case
        assert rejected_record(hub, origin, audited).startswith(f"{reason}: "), case
