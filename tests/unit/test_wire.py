"""``wire.to_headers`` writes exactly what the CloudEvents SDK's Kafka binding writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from hypothesis import given
from hypothesis import strategies as st

from hub.envelope import wire
from hub.models import EventAttributes

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40)
_NAMES = st.sampled_from(["hubrecipient", "hubkid", "hubsuite", "hubdekid", "hubsigkid", "x1"])


def _sdk(attributes: EventAttributes, extensions: dict[str, str]) -> list[tuple[str, bytes]]:
    """The reference: the SDK's event and binding, every time."""
    attrs = {k: v for k, v in attributes.model_dump().items() if v is not None}
    attrs.update(extensions)
    # envelope v2: the value is sealed, so content-type names the envelope and the sealed
    # payload's own type travels as an extension
    attrs["datacontenttype"] = wire.SEALED
    attrs["hubcontenttype"] = attributes.datacontenttype
    event = CloudEvent(attributes=attrs, data=None)
    message = ce_kafka.to_binary(event, JSONFormat(), key_mapper=lambda _e: None)
    return sorted(message.headers.items())


@given(
    event_id=st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=30),
    party=st.from_regex(r"[a-z0-9.\-]{1,20}", fullmatch=True),
    subject=st.none() | _TEXT.filter(bool),
    dataschema=st.none() | st.just("https://hub.example/schemas/x.avsc"),
    offset_minutes=st.sampled_from([0, 60, -300]),
    micros=st.integers(0, 999_999),
    extensions=st.dictionaries(_NAMES, _TEXT.filter(bool), max_size=4),
)
def test_headers_match_the_sdk_binding(
    event_id: str,
    party: str,
    subject: str | None,
    dataschema: str | None,
    offset_minutes: int,
    micros: int,
    extensions: dict[str, str],
) -> None:
    tz = dt.timezone(dt.timedelta(minutes=offset_minutes))
    attributes = EventAttributes(
        id=event_id,
        source=f"/parties/{party}",
        type="uk.csp.test.v1",
        time=dt.datetime(2026, 11, 23, 12, 0, 0, micros, tzinfo=tz),
        subject=subject,
        dataschema=dataschema,
    )
    first = wire.to_headers(attributes, extensions)  # a new shape goes through the SDK
    again = wire.to_headers(attributes, extensions)  # a known shape is written directly
    assert first == again == _sdk(attributes, extensions)


@given(
    event_id=_TEXT,
    party=st.from_regex(r"[a-z0-9.\-]{1,20}", fullmatch=True),
    subject=st.none() | _TEXT,
    dataschema=st.none() | st.just("") | st.just("https://hub.example/schemas/x.avsc"),
    datacontenttype=st.sampled_from([wire.JSON, wire.AVRO, ""]),
    offset_minutes=st.none() | st.sampled_from([0, 60, -300]),
    micros=st.integers(0, 999_999),
)
def test_attribute_texts_are_to_headers_as_text(
    event_id: str,
    party: str,
    subject: str | None,
    dataschema: str | None,
    datacontenttype: str,
    offset_minutes: int | None,
    micros: int,
) -> None:
    # values pydantic would refuse (an empty id, a naive time) are built unvalidated: the
    # fast path must hand them to ``to_headers`` too, never write them itself
    tz = None if offset_minutes is None else dt.timezone(dt.timedelta(minutes=offset_minutes))
    attributes = EventAttributes.model_construct(
        id=event_id,
        source=f"/parties/{party}",
        type="uk.csp.test.v1",
        time=dt.datetime(2026, 11, 23, 12, 0, 0, micros, tzinfo=tz),
        subject=subject,
        dataschema=dataschema,
        datacontenttype=datacontenttype,
    )
    try:
        want = {k: v.decode() for k, v in wire.to_headers(attributes)}
    except CloudEventValidationError:
        want = None  # the SDK refuses it: the texts must not say otherwise
    got = wire.attribute_texts(attributes)
    if want is None:
        assert got is None
    elif got is not None:  # None (ask ``to_headers``) is always a right answer
        assert got == want
    if want is not None and tz is not None and event_id and subject != "" and dataschema != "":
        assert got == want  # a plain value of a checked shape is written by the fast path


def test_a_value_the_sdk_refuses_is_still_refused() -> None:
    # the direct path must not accept what the SDK's validation refuses (an empty subject)
    good = EventAttributes(
        id="e-1", source="/parties/police", type="uk.csp.test.v1", time=dt.datetime.now(dt.UTC)
    )
    wire.to_headers(good.model_copy(update={"subject": "case-1"}))  # the shape is now known
    with pytest.raises(CloudEventValidationError, match="subject"):
        wire.to_headers(good.model_copy(update={"subject": ""}))


_ATTRS = EventAttributes(
    id="e-1",
    source="/parties/police",
    type="uk.csp.test.v1",
    time=dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC),
    datacontenttype=wire.JSON,
)


def test_a_sealed_record_is_labelled_as_sealed_with_its_payload_type_beside() -> None:
    headers = dict(wire.to_headers(_ATTRS))
    assert headers["content-type"] == b"application/vnd.uk-csp.hub.sealed.v2"
    assert headers["ce_hubcontenttype"] == b"application/json"
    decoded = {k: v.decode() for k, v in headers.items()}
    assert wire.attributes_from_headers(decoded).datacontenttype == wire.JSON


def test_the_sdk_reads_a_sealed_record_as_opaque_sealed_data() -> None:
    value = bytes(range(255, 215, -1))  # stands for nonce || ciphertext (not UTF-8, as a rule)
    message = ce_kafka.KafkaMessage(headers=dict(wire.to_headers(_ATTRS)), key=None, value=value)
    event = ce_kafka.from_binary(message, JSONFormat())
    assert event.get_attributes()["datacontenttype"] == wire.SEALED
    assert event.get_extension("hubcontenttype") == wire.JSON
    assert event.get_data() == value


def _v1(**extra: str) -> dict[str, str]:
    headers = {
        "ce_specversion": "1.0",
        "ce_id": "e-1",
        "ce_source": "/parties/police",
        "ce_type": "uk.csp.test.v1",
        "ce_time": "2026-11-23T12:00:00Z",
    }
    headers.update(extra)
    return headers


@pytest.mark.parametrize(
    ("headers", "payload"),
    [
        (_v1(), wire.AVRO),  # v1 without content-type: Avro
        (_v1(**{"content-type": "application/avro"}), wire.AVRO),  # v1
        (_v1(**{"content-type": "application/json"}), wire.JSON),  # v1 delivery
        (_v1(**{"content-type": wire.SEALED, "ce_hubcontenttype": "application/avro"}), wire.AVRO),
    ],
    ids=["v1-default", "v1-avro", "v1-json", "v2"],
)
def test_readers_accept_envelope_v1_and_v2(headers: dict[str, str], payload: str) -> None:
    assert wire.payload_type(headers) == payload
    assert wire.attributes_from_headers(headers).datacontenttype == payload


@pytest.mark.parametrize(
    ("headers", "reason", "match"),
    [
        (_v1(**{"content-type": wire.SEALED}), "missing_attribute", "ce_hubcontenttype"),
        (
            _v1(**{"content-type": wire.SEALED, "ce_hubcontenttype": ""}),
            "missing_attribute",
            "ce_hubcontenttype",
        ),
        (
            _v1(**{"content-type": "application/vnd.uk-csp.hub.sealed.v3"}),
            "bad_attribute",
            "envelope version",
        ),
        (
            _v1(**{"content-type": "application/avro", "ce_hubcontenttype": "application/avro"}),
            "bad_attribute",
            "only envelope v2",
        ),
    ],
    ids=["v2-without-payload-type", "v2-empty-payload-type", "unknown-version", "v1-with-v2-ext"],
)
def test_an_inconsistent_envelope_label_is_refused(
    headers: dict[str, str], reason: str, match: str
) -> None:
    with pytest.raises(wire.HeaderError, match=match) as caught:
        wire.attributes_from_headers(headers)
    assert caught.value.reason == reason


_HEADER_NAMES = st.sampled_from(
    ["ce_id", "CE_ID", "ce_source", "content-type", "ce_x", "hub-undecodable", "Hub-Undecodable"]
)
_HEADER_VALUES = (
    st.none()
    | st.binary(max_size=12)
    | st.text(max_size=12).map(str.encode)
    | st.just(b"x" * 4097)
    | st.just(b"caf\xc3\xa9")
    | st.just(b"a\nb")
)


def _decoded(decode: Any, headers: Iterable[tuple[str, bytes | None]]) -> object:
    try:
        return decode(headers)
    except wire.HeaderError as exc:
        return (exc.reason, str(exc))


@given(headers=st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=6))
def test_decode_headers_answers_as_the_checks_one_header_at_a_time(
    headers: list[tuple[str, bytes | None]],
) -> None:
    # the first pass over the whole must give the headers, or the first header's error, that
    # checking each header in turn gives
    want = _decoded(wire._decoded_one_by_one, headers)
    assert _decoded(wire.decode_headers, headers) == want
    assert _decoded(wire.decode_headers, iter(headers)) == want  # any iterable, read once
