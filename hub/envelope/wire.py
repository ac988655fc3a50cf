"""Events on the wire: CloudEvents 1.0 in Kafka binary mode (``ce_*`` headers).

Every record's value is sealed (``nonce || AES-256-GCM ciphertext``, ``hub.envelope.sealing``),
so envelope v2 labels it as what it is: ``content-type: application/vnd.uk-csp.hub.sealed.v2``
(``SEALED``), with the sealed payload's own media type in the extension attribute
``ce_hubcontenttype``. Inbound events seal schemaless Avro (``application/avro``); deliveries
seal the minimised payload as canonical JSON (``application/json``), because a minimised
record is no longer the full schema (removed fields are absent, not null). Envelope v1 put
the payload's type in ``content-type`` itself, so a CloudEvents SDK took the ciphertext for
Avro or JSON; readers still accept it, writers write v2 only (``docs/envelope.md``).

Hub extension attributes (besides those of ``hub.envelope.sealing``):

- ``ce_hubcontenttype`` (v2) media type of the sealed payload
- ``ce_hubprotocol``   content hash of the protocol that decided the delivery
- ``ce_hubrecipient``  the party the delivery is for
- ``ce_hubrule``       the rule that permits it
- ``ce_hubfields``     comma-separated list of the disclosed field paths

The mapping of attributes to headers is the cloudevents SDK's; this module adds the checks
a hostile publisher needs: duplicate headers, non-UTF-8 values, missing attributes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from hub.broker.decode_guard import UNDECODABLE
from hub.canonical import canonical_json
from hub.errors import EventError
from hub.models import EventAttributes, QuarantineReason

__all__ = [
    "AVRO",
    "ENVELOPE_VERSION",
    "INNER_TYPE",
    "JSON",
    "SEALED",
    "HeaderError",
    "WireMessage",
    "attribute_texts",
    "attributes_from_headers",
    "canonical_json",
    "decode_headers",
    "new_event_id",
    "payload_type",
    "source_for",
    "to_headers",
]

AVRO = "application/avro"
JSON = "application/json"
#: the version of the envelope this hub writes; it reads 1 and 2 (``docs/envelope.md``)
ENVELOPE_VERSION = 2
#: envelope v2's ``content-type``: the value is a sealed hub envelope, whatever it holds. A
#: vendor-tree type (RFC 6838 s3.2) with no structured-syntax suffix, since nonce || AES-GCM
#: ciphertext has no syntax a generic parser could use; the version is in the name, so a
#: reader that does not know a later envelope refuses it rather than misreading it.
SEALED = "application/vnd.uk-csp.hub.sealed.v2"
_SEALED_FAMILY = "application/vnd.uk-csp.hub.sealed"
#: envelope v2's extension attribute naming the media type of the sealed payload
INNER_TYPE = "hubcontenttype"
_INNER_HEADER = f"ce_{INNER_TYPE}"
_REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")
_MAX_HEADER_BYTES = 4096
#: control characters (C0), refused in any header value: header injection into logs and tools
_CONTROL = re.compile(r"[\x00-\x1f]")
_FORMAT = JSONFormat()


class HeaderError(EventError):
    """Headers do not carry valid CloudEvents attributes; ``reason`` says which kind."""

    def __init__(self, message: str, reason: QuarantineReason) -> None:
        super().__init__(message)
        self.reason = reason.value


@dataclass(frozen=True)
class WireMessage:
    """A Kafka record ready to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def new_event_id() -> str:
    """A unique, time-sortable event id: a UUIDv7 (RFC 9562) string."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def source_for(party: str) -> str:
    """The ``ce_source`` of a party."""
    return f"/parties/{party}"


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def to_headers(
    attributes: EventAttributes,
    extensions: Mapping[str, str] | None = None,
) -> list[tuple[str, bytes]]:
    """Kafka binary-mode headers of a sealed record (envelope v2; the SDK's mapping).

    ``attributes.datacontenttype`` is the sealed payload's type: it goes in
    ``ce_hubcontenttype``, and ``content-type`` says ``SEALED``, which the value is.
    """
    attrs: dict[str, Any] = {
        "specversion": attributes.specversion,
        "id": attributes.id,
        "source": attributes.source,
        "type": attributes.type,
        "time": attributes.time,
        "datacontenttype": SEALED,
    }
    if attributes.subject is not None:
        attrs["subject"] = attributes.subject
    if attributes.dataschema is not None:
        attrs["dataschema"] = attributes.dataschema
    for name, value in (extensions or {}).items():
        attrs[name] = value
    attrs[INNER_TYPE] = attributes.datacontenttype
    shape = frozenset(attrs)
    if shape not in _CHECKED_SHAPES or not _plainly_valid(attrs):
        # the SDK's own event and binding, once per set of attribute names (it checks the
        # names: extension naming rules, required attributes) and for any value it would
        # refuse, so its error is the one raised; it is also the reference mapping
        event = CloudEvent(attributes=attrs, data=None)
        message = ce_kafka.to_binary(event, _FORMAT, key_mapper=lambda _e: None)
        _CHECKED_SHAPES.add(shape)
        return sorted(message.headers.items())
    # the same mapping written out (about a third of the cost of sealing a delivery when the
    # SDK built and re-validated an event per delivery); ``tests/unit/test_wire.py`` holds it
    # to the SDK's output. The values are already valid: ``EventAttributes`` checked them.
    return sorted(
        (_header_name(k), _header_text(v).encode()) for k, v in attrs.items() if v is not None
    )


#: attribute-name sets the SDK has accepted (a handful: one per kind of record the hub writes)
_CHECKED_SHAPES: set[frozenset[str]] = set()
#: ``to_headers``' attribute-name set without extensions, by (subject given, dataschema given)
_BARE_SHAPES = {
    (subject, schema): frozenset(
        ("specversion", "id", "source", "type", "time", "datacontenttype", INNER_TYPE)
        + (("subject",) if subject else ())
        + (("dataschema",) if schema else ())
    )
    for subject in (False, True)
    for schema in (False, True)
}


def attribute_texts(attributes: EventAttributes) -> dict[str, str] | None:
    """``to_headers(attributes)`` (no extensions) as text, header name to value, unsorted.

    For a sealer writing one event to many recipients, which needs the text (for the signed
    JSON) as well as the bytes: the mapping ``to_headers`` writes out, without its sort, its
    bytes or its generator. None where only ``to_headers`` can say: an attribute-name set
    the SDK has not checked yet, or a value it may refuse (``_plainly_valid``'s conditions).
    ``tests/unit/test_wire.py`` holds the two to each other.
    """
    subject, schema, time = attributes.subject, attributes.dataschema, attributes.time
    if (
        _BARE_SHAPES[subject is not None, schema is not None] not in _CHECKED_SHAPES
        or time.tzinfo is None
        or not (attributes.id and attributes.source and attributes.type)
        or subject == ""
        or schema == ""
    ):
        return None
    texts = {
        "ce_specversion": attributes.specversion,
        "ce_id": attributes.id,
        "ce_source": attributes.source,
        "ce_type": attributes.type,
        "ce_time": _header_text(time),
        "content-type": SEALED,
        _INNER_HEADER: attributes.datacontenttype,
    }
    if subject is not None:
        texts["ce_subject"] = subject
    if schema is not None:
        texts["ce_dataschema"] = schema
    return texts


#: the attributes whose values the SDK requires to be non-empty
_NON_EMPTY = ("id", "source", "type", "subject", "datacontenttype", "dataschema")


def _plainly_valid(attrs: Mapping[str, Any]) -> bool:
    """Whether the SDK would accept these values (it checks names apart, once per shape)."""
    time_ok = isinstance(attrs["time"], dt.datetime) and attrs["time"].tzinfo is not None
    return time_ok and all(attrs[k] for k in _NON_EMPTY if k in attrs)


def _header_name(attribute: str) -> str:
    """CloudEvents Kafka binding: ``datacontenttype`` is ``content-type``, the rest ``ce_*``."""
    return "content-type" if attribute == "datacontenttype" else f"ce_{attribute}"


def _header_text(value: Any) -> str:
    """A header value as the binding writes it (a UTC time ends in ``Z``)."""
    if isinstance(value, dt.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return str(value)


def decode_headers(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Headers as a dict, refusing duplicates, oversized and non-UTF-8 values.

    A record the Kafka client could not decode arrives marked by ``hub.broker.decode_guard``
    (its first header is ``hub-undecodable``): refused as ``undecodable_record``.

    A duplicated ``ce_source`` would let a publisher show one value to one reader and another
    to the next, so the hub refuses any duplicated header outright.
    """
    items = list(headers or ())
    # Every record the router reads: a first pass decodes without the per-header checks'
    # branches, then checks the whole (no header twice, none undecodable, no control
    # character anywhere). Anything it would refuse goes through the checks one header at a
    # time (``_decoded_one_by_one``), so the error is the one they raise.
    out: dict[str, str] = {}
    for name, raw in items:
        if raw is None or len(raw) > _MAX_HEADER_BYTES:
            return _decoded_one_by_one(items)
        try:
            out[name.lower()] = raw.decode("utf-8")
        except (AttributeError, UnicodeDecodeError):  # not UTF-8 (or not bytes)
            return _decoded_one_by_one(items)
    if len(out) != len(items) or UNDECODABLE in out or _CONTROL.search("".join(out.values())):
        return _decoded_one_by_one(items)
    return out


def _decoded_one_by_one(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """``decode_headers`` checking each header in turn: the first to fail raises."""
    out: dict[str, str] = {}
    for name, raw in headers:
        lname = name.lower()
        if lname == UNDECODABLE:  # the Kafka client could not decode it (hub.broker.decode_guard)
            detail = (raw or b"").decode("ascii", "backslashreplace")
            raise HeaderError(
                f"the Kafka client could not decode this record: {detail}",
                QuarantineReason.UNDECODABLE_RECORD,
            )
        if lname in out:
            raise HeaderError(
                f"header {name!r} appears more than once", QuarantineReason.BAD_ATTRIBUTE
            )
        raw = raw or b""
        if len(raw) > _MAX_HEADER_BYTES:
            raise HeaderError(
                f"header {name!r}: expected at most {_MAX_HEADER_BYTES} bytes, got {len(raw)}",
                QuarantineReason.BAD_ATTRIBUTE,
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HeaderError(
                f"header {name!r}: not UTF-8", QuarantineReason.BAD_ATTRIBUTE
            ) from exc
        if _CONTROL.search(text):
            raise HeaderError(
                f"header {name!r}: control characters are not allowed",
                QuarantineReason.BAD_ATTRIBUTE,
            )
        out[lname] = text
    return out


def payload_type(headers: Mapping[str, str]) -> str:
    """The sealed payload's media type: ``ce_hubcontenttype`` (v2) or ``content-type`` (v1).

    Envelope v1 (no ``ce_hubcontenttype``) wrote the payload's type as ``content-type``
    (absent: Avro); v2 writes ``SEALED`` there and the payload's type in the extension.
    """
    content_type = headers.get("content-type", AVRO)
    inner = headers.get(_INNER_HEADER)
    if content_type == SEALED:
        if not inner:
            raise HeaderError(
                f"{_INNER_HEADER}: expected the sealed payload's media type "
                f"(content-type {SEALED} is envelope v2), got none",
                QuarantineReason.MISSING_ATTRIBUTE,
            )
        return inner
    if content_type.startswith(_SEALED_FAMILY):
        raise HeaderError(
            f"content-type: expected {SEALED} (envelope v2) or a v1 payload type, "
            f"got {content_type!r} (an envelope version this hub does not read)",
            QuarantineReason.BAD_ATTRIBUTE,
        )
    if inner is not None:
        raise HeaderError(
            f"{_INNER_HEADER}: only envelope v2 carries it: expected content-type {SEALED}, "
            f"got {content_type!r}",
            QuarantineReason.BAD_ATTRIBUTE,
        )
    return content_type


def attributes_from_headers(headers: Mapping[str, str]) -> EventAttributes:
    """Validated CloudEvents attributes from decoded headers (envelope v1 or v2).

    ``datacontenttype`` is the sealed payload's type either way (``payload_type``).
    """
    missing = [h for h in _REQUIRED if h not in headers]
    if missing:
        raise HeaderError(
            f"missing CloudEvents header(s): {', '.join(missing)}",
            QuarantineReason.MISSING_ATTRIBUTE,
        )
    if headers["ce_specversion"] != "1.0":
        raise HeaderError(
            f"ce_specversion: expected 1.0, got {headers['ce_specversion']!r}",
            QuarantineReason.BAD_ATTRIBUTE,
        )
    datacontenttype = payload_type(headers)
    try:
        return EventAttributes(
            id=headers["ce_id"],
            source=headers["ce_source"],
            type=headers["ce_type"],
            time=dt.datetime.fromisoformat(headers["ce_time"].replace("Z", "+00:00")),
            subject=headers.get("ce_subject"),
            datacontenttype=datacontenttype,
            dataschema=headers.get("ce_dataschema"),
        )
    except (ValueError, ValidationError) as exc:
        detail = exc.errors()[0] if isinstance(exc, ValidationError) else None
        where = f"ce_{detail['loc'][0]}" if detail else "ce_time"
        message = detail["msg"] if detail else "expected an RFC 3339 timestamp"
        raise HeaderError(f"{where}: {message}", QuarantineReason.BAD_ATTRIBUTE) from exc


def header_list(headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> list[tuple[str, bytes]]:
    """Encode string headers for a Kafka producer."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(k, v.encode()) for k, v in items]
