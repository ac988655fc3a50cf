"""``wire.to_headers`` writes exactly what the CloudEvents SDK's Kafka binding writes."""

from __future__ import annotations

import datetime as dt

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


def test_a_value_the_sdk_refuses_is_still_refused() -> None:
    # the direct path must not accept what the SDK's validation refuses (an empty subject)
    good = EventAttributes(
        id="e-1", source="/parties/police", type="uk.csp.test.v1", time=dt.datetime.now(dt.UTC)
    )
    wire.to_headers(good.model_copy(update={"subject": "case-1"}))  # the shape is now known
    with pytest.raises(CloudEventValidationError, match="subject"):
        wire.to_headers(good.model_copy(update={"subject": ""}))
