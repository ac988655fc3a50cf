"""Authenticated ``hub.audit`` messages (``hub.audit.stream``) and the sink's reading of them.

A forged, altered or unauthenticated message is refused, never decoded into records to
store; a message under the hub's key is read whole.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.agents.sink import QUARANTINE_COPY_BYTES, read_messages
from hub.audit import stream
from hub.audit.stream import (
    MAC_HEADER,
    WRITER_HEADER,
    AuditStreamError,
    audit_messages,
    load_audit_stream_key,
    mac_headers,
    verify_message,
)
from hub.envelope.wire import WireMessage
from hub.errors import ConfigError
from hub.models import AuditBatch, AuditDecision, AuditRecord, record_id_for
from hub.settings import HubSettings

SECRET = os.urandom(32)


def audit_record(*, event_id: str) -> AuditRecord:
    return AuditRecord(
        record_id=record_id_for(event_id, "west-mercia-police", "delivered"),
        time=dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.UTC),
        event_id=event_id,
        event_type="uk.csp.marac.flag.raised.v1",
        publisher="marac.north-worcs",
        recipient="west-mercia-police",
        decision=AuditDecision.DELIVERED,
        rule="marac-police",
        reason="rule marac-police",
        fields=("case_ref", "risk_level"),
        payload_sha256="0" * 64,
    )


@dataclass
class Fetched:
    """What aiokafka's consumer hands the sink: the fields it reads."""

    value: bytes
    key: bytes | None = b"k"
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    topic: str = "hub.audit"
    partition: int = 0
    offset: int = 7


def signed(value: bytes, *, key: bytes | None = b"k", secret: bytes = SECRET) -> Fetched:
    return Fetched(value, key, mac_headers(secret, writer="router/h/1", key=key, value=value))


def batch_value(n: int = 2, *, prefix: str = "e") -> tuple[bytes, list[str]]:
    records = [audit_record(event_id=f"{prefix}{i}") for i in range(n)]
    return AuditBatch(records=tuple(records)).model_dump_json().encode(), [
        r.record_id for r in records
    ]


def test_a_message_under_the_key_verifies_and_names_its_writer() -> None:
    value, _ = batch_value()
    message = signed(value)
    assert verify_message(SECRET, key=b"k", value=value, headers=message.headers) == "router/h/1"


@pytest.mark.parametrize(
    "tamper",
    ["value", "key", "writer", "other_secret", "no_mac", "no_headers", "mac_twice"],
)
def test_a_forged_or_altered_message_does_not_verify(tamper: str) -> None:
    value, _ = batch_value()
    message = signed(value, secret=os.urandom(32) if tamper == "other_secret" else SECRET)
    headers = list(message.headers)
    key: bytes | None = message.key
    if tamper == "value":
        value = value.replace(b"e0", b"e9")
    elif tamper == "key":
        key = b"other"
    elif tamper == "writer":
        headers = [(WRITER_HEADER, b"router/h/2"), headers[1]]
    elif tamper == "no_mac":
        headers = [h for h in headers if h[0] != MAC_HEADER]
    elif tamper == "no_headers":
        headers = []
    elif tamper == "mac_twice":
        headers.append(headers[1])
    with pytest.raises(AuditStreamError):
        verify_message(SECRET, key=key, value=value, headers=headers)


def test_the_sink_stores_authenticated_records_and_refuses_a_forgery() -> None:
    good, ids = batch_value(3)
    forged_value, forged_ids = batch_value(1, prefix="forged-")
    forged = Fetched(forged_value, offset=8)  # a broker client's own record: no MAC
    records, refused = read_messages([signed(good), forged], secret=SECRET)
    assert [r.record_id for r in records] == ids
    assert forged_ids[0] not in {r.record_id for r in records}
    [refusal] = refused
    assert refusal.reason == "forged_audit_message"
    assert refusal.origin == "hub.audit/0@8"
    record = refusal.audit_record(now=records[0].time)
    assert record.decision == AuditDecision.REJECTED
    assert record.reason.startswith("forged_audit_message:")
    assert record.event_id == "audit:hub.audit/0@8"
    copy = refusal.quarantine_copy()
    assert copy.topic == "hub.quarantine"
    assert copy.value == forged_value
    assert ("hub_reason", b"forged_audit_message") in copy.headers


def test_two_refused_messages_at_one_origin_each_have_their_own_audit_record() -> None:
    # offsets start again when the embedded broker restarts empty: a second forged message
    # at the same offset must not share the first's record id (the store keeps one per id)
    first_value, _ = batch_value(1, prefix="forged-a-")
    other_value, _ = batch_value(1, prefix="forged-b-")
    _, [first] = read_messages([Fetched(first_value)], secret=SECRET)
    _, [other] = read_messages([Fetched(other_value)], secret=SECRET)
    now = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    assert first.origin == other.origin
    assert first.audit_record(now=now).record_id != other.audit_record(now=now).record_id
    # the same message read again (the sink restarted before committing) keeps its id
    _, [again] = read_messages([Fetched(first_value)], secret=SECRET)
    assert again.audit_record(now=now).record_id == first.audit_record(now=now).record_id


def test_an_authenticated_message_that_does_not_decode_is_refused_not_fatal() -> None:
    records, refused = read_messages([signed(b"\xff not json")], secret=SECRET)
    assert records == []
    assert [r.reason for r in refused] == ["unreadable_audit_message"]
    assert refused[0].writer == "router/h/1"


def test_a_huge_refused_message_is_quarantined_as_a_digest_and_a_truncated_copy() -> None:
    value = b"x" * (QUARANTINE_COPY_BYTES + 10)
    _, [refusal] = read_messages([Fetched(value)], secret=SECRET)
    copy = refusal.quarantine_copy()
    assert len(copy.value) == QUARANTINE_COPY_BYTES
    headers = dict(copy.headers)
    assert headers["hub_truncated"] == str(len(value)).encode()
    assert len(headers["hub_sha256"]) == 64


def test_a_batch_is_one_message_split_only_when_too_large() -> None:
    records = [audit_record(event_id=f"e{i}") for i in range(40)]
    [(message, last)] = audit_messages(records, secret=SECRET, writer="router/h/1")
    assert last == records[-1].record_id
    read, refused = read_messages([signed_from(message)], secret=SECRET)
    assert refused == []
    assert [r.record_id for r in read] == [r.record_id for r in records]

    split = audit_messages(records, secret=SECRET, writer="router/h/1", max_bytes=4096)
    assert len(split) > 1
    assert all(len(m.value) <= 4096 for m, _ in split)
    read, refused = read_messages([signed_from(m) for m, _ in split], secret=SECRET)
    assert refused == []
    assert [r.record_id for r in read] == [r.record_id for r in records]
    assert [last for _, last in split][-1] == records[-1].record_id


def signed_from(message: object) -> Fetched:
    from hub.envelope.wire import WireMessage

    assert isinstance(message, WireMessage)
    return Fetched(message.value, message.key, list(message.headers))


def test_the_key_file_is_made_once_and_shared(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path)
    first = load_audit_stream_key(settings)
    assert load_audit_stream_key(settings) == first
    assert len(first) == 32
    assert (tmp_path / "audit-stream.key").stat().st_mode & 0o777 == 0o600


def test_a_short_configured_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path, audit_stream_key="ab" * 8)
    with pytest.raises(ConfigError, match="at least 32 bytes, got 8") as info:
        load_audit_stream_key(settings)
    assert "abab" not in str(info.value)


def _split_as_before(
    records: list[AuditRecord], *, max_bytes: int
) -> list[tuple[WireMessage, str]]:
    """The split as it was: each half serialised on its own (the reference for the bytes)."""
    if not records:
        return []
    value = AuditBatch(records=tuple(records)).model_dump_json().encode()
    if len(value) > max_bytes and len(records) > 1:
        half = len(records) // 2
        return _split_as_before(records[:half], max_bytes=max_bytes) + _split_as_before(
            records[half:], max_bytes=max_bytes
        )
    last = records[-1].record_id
    headers = mac_headers(SECRET, writer="router/h/1", key=last.encode(), value=value)
    return [(WireMessage(topic="hub.audit", key=last.encode(), value=value, headers=headers), last)]


_zones = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))]
)
_texts = st.text(max_size=30)  # any characters: escapes, non-ASCII, surrogates refused


@st.composite
def _records(draw: st.DrawFn) -> AuditRecord:
    when = draw(st.datetimes(timezones=_zones))
    return AuditRecord(
        record_id=draw(st.text("0123456789abcdef", min_size=1, max_size=32)),
        time=when,
        event_id=draw(_texts),
        event_type=draw(st.none() | _texts),
        event_time=draw(st.none() | st.datetimes(timezones=_zones)),
        publisher=draw(st.none() | _texts),
        recipient=draw(st.none() | _texts),
        decision=draw(st.sampled_from(list(AuditDecision))),
        rule=draw(st.none() | _texts),
        reason=draw(_texts),
        gateway=draw(st.none() | _texts),
        fields=tuple(draw(st.lists(_texts, max_size=4))),
        subject_pseudonyms=tuple(draw(st.lists(_texts, max_size=2))),
        payload_sha256=draw(st.none() | st.just("0" * 64)),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_records(), max_size=40), max_bytes=st.integers(100, 12_000))
def test_a_split_batch_is_byte_for_byte_the_halves_serialised_on_their_own(
    records: list[AuditRecord], max_bytes: int
) -> None:
    made = audit_messages(records, secret=SECRET, writer="router/h/1", max_bytes=max_bytes)
    assert made == _split_as_before(records, max_bytes=max_bytes)


def test_a_whole_that_does_not_begin_with_its_first_half_has_its_second_half_serialised() -> None:
    records = [audit_record(event_id=f"e{i}") for i in range(8)]
    whole = AuditBatch(records=tuple(records)).model_dump_json().encode()
    odd = whole.replace(b'"e1"', b'"eX"')  # not what the first half serialises to
    made = stream._messages(
        records, odd, secret=SECRET, writer="router/h/1", max_bytes=len(whole) - 1
    )
    assert made == _split_as_before(records, max_bytes=len(whole) - 1)
