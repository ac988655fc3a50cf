"""A record's stored row from its attributes is the row ``model_dump`` gives, byte for byte.

Issue 16: the stores build a record's canonical bytes and packed row in one pass over its
attribute values (``hub.audit.packing.record_parts``) instead of dumping it to a dict and
encoding each value. The canonical bytes are the Merkle leaf and the packed row is on disk,
so both must stay exactly what the dump, ``canonical_values`` and ``pack_values`` give; the
odd values (times on a whole second, other offsets, naive times, escapes) take the dump.
"""

from __future__ import annotations

import datetime as dt
import enum
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.audit import packing
from hub.audit.packing import (
    FIELDS,
    SharedValues,
    pack_values,
    record_parts,
    unpack,
)
from hub.audit.sqlite import _pack, _prepare, canonical_bytes, dumped_parts
from hub.models import AuditBatch, AuditDecision, AuditRecord

_TEXT = st.text(max_size=12) | st.sampled_from(["rule-a", "UK GDPR Art 6(1)(e)", 'é"\\\x00\n'])
_OPTIONAL = st.none() | _TEXT
_ZONES = st.sampled_from(
    [
        None,
        dt.UTC,
        dt.timezone(dt.timedelta(0)),
        dt.timezone(dt.timedelta(hours=1)),
        dt.timezone(dt.timedelta(hours=-5, minutes=-30)),
        dt.timezone(dt.timedelta(seconds=30)),
    ]
)
_TIMES = st.builds(
    lambda moment, zone, whole: moment.replace(
        tzinfo=zone, microsecond=0 if whole else moment.microsecond
    ),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    _ZONES,
    st.booleans(),
)
_RECORDS = st.builds(
    AuditRecord,
    record_id=_TEXT,
    time=_TIMES,
    event_id=_TEXT,
    event_type=_OPTIONAL,
    event_time=st.none() | _TIMES,
    publisher=_OPTIONAL,
    recipient=_OPTIONAL,
    decision=st.sampled_from(list(AuditDecision)),
    rule=_OPTIONAL,
    reason=_TEXT,
    lawful_basis=_OPTIONAL,
    condition=_OPTIONAL,
    purpose=_OPTIONAL,
    gateway=_OPTIONAL,
    protocol_hash=_OPTIONAL,
    fields=st.lists(_TEXT, max_size=3).map(tuple),
    payload_sha256=_OPTIONAL,
    case_pseudonym=_OPTIONAL,
    subject_pseudonyms=st.lists(_TEXT, max_size=3).map(tuple),
    origin=_OPTIONAL,
    ack_event_id=_OPTIONAL,
)


def _dumped_row(
    record: AuditRecord, shared: SharedValues
) -> tuple[tuple[object, ...], bytes, bytes]:
    """The row as the stores built it before issue 16's one pass: dump, values, pack."""
    columns, canonical, values = dumped_parts(record)
    assert values is not None
    return columns, canonical, pack_values(canonical, values, columns, shared)


def _check(record: AuditRecord) -> None:
    old_shared, new_shared = SharedValues(), SharedValues()
    old_shared.learn([(1, b'"rule-a"'), (2, b"null")])
    new_shared.learn([(1, b'"rule-a"'), (2, b"null")])
    columns, canonical, packed = _dumped_row(record, old_shared)
    new_columns, new_canonical, prepared = _prepare(record)
    assert new_columns == columns
    assert new_canonical == canonical == canonical_bytes(record)
    assert _pack(new_canonical, prepared, new_columns, new_shared) == packed
    assert new_shared.new_rows() == old_shared.new_rows()
    new_shared.commit()
    assert unpack(packed, columns, new_shared) == canonical
    dumped = record.model_dump(mode="json")
    if dumped["gateway"] is None:
        del dumped["gateway"]
    assert canonical == json.dumps(dumped, sort_keys=True, separators=(",", ":")).encode()


@settings(max_examples=300, deadline=None)
@given(_RECORDS)
def test_a_record_built_from_its_attributes_is_the_dumped_record(record: AuditRecord) -> None:
    _check(record)


@settings(max_examples=100, deadline=None)
@given(_RECORDS)
def test_a_record_read_back_from_a_message_is_the_dumped_record(record: AuditRecord) -> None:
    """The sink's records: parsed from JSON (pydantic's ``TzInfo``, not ``datetime.UTC``)."""
    (parsed,) = AuditBatch.model_validate_json(
        AuditBatch(records=(record,)).model_dump_json()
    ).records
    _check(parsed)


def test_an_instant_seen_in_another_zone_keeps_that_zone() -> None:
    """Equal instants in two zones compare equal: the remembered text is not the other's."""
    utc = dt.datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=dt.UTC)
    base = {"record_id": "r", "event_id": "e", "decision": "delivered", "reason": "x"}
    first = AuditRecord(time=utc, **base)
    second = AuditRecord(time=utc.astimezone(dt.timezone(dt.timedelta(hours=1))), **base)
    _check(first)
    _check(second)
    assert canonical_bytes(first) != canonical_bytes(second)


def test_a_prepared_record_packed_twice_packs_the_same() -> None:
    """A retried transaction packs the record again: its parts are not the first packing's."""
    record = AuditRecord(
        record_id="r",
        time=dt.datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=dt.UTC),
        event_id="e",
        decision="delivered",
        reason="x",
        rule="rule-a",
        purpose="a purpose not seen before",
    )
    columns, canonical, prepared = _prepare(record)
    shared = SharedValues()
    shared.learn([(1, b'"rule-a"')])
    first = _pack(canonical, prepared, columns, shared)
    shared.discard()  # the transaction rolled back
    assert _pack(canonical, prepared, columns, shared) == first
    assert shared.new_rows() == [(2, b'"a purpose not seen before"')]


class _Time(dt.datetime):
    pass


class _Text(str):
    pass


class _Colour(enum.StrEnum):
    RED = 're"d'


def test_record_parts_writes_by_type_as_the_isinstance_checks_did() -> None:
    """``record_parts`` picks a writer by a value's type (kept per type): same answers.

    A ``datetime`` subclass is written as a ``datetime``, a ``str`` enum as its value; a
    tuple holding anything but exact ``str`` (a subclass, a number) or a value of another
    type is not written (the record is dumped instead), also once the kept writers are full.
    """
    moment = dt.datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=dt.UTC)
    attrs = AuditRecord(record_id="r", time=moment, event_id="e", decision="delivered",
                        reason="x").__dict__  # fmt: skip
    time_at = FIELDS.index("time")
    plain = record_parts(attrs)
    assert plain is not None
    sub = record_parts({**attrs, "time": _Time(2026, 1, 5, 8, 0, 0, 123456, tzinfo=dt.UTC)})
    assert sub == plain
    assert plain[time_at] == '"2026-01-05T08:00:00.123456Z"'
    coloured = record_parts({**attrs, "reason": _Colour.RED})
    assert coloured is not None
    assert coloured[FIELDS.index("reason")] == '"re\\"d"'
    assert record_parts({**attrs, "fields": ("a", _Text("b"))}) is None
    assert record_parts({**attrs, "fields": ("a", 1)}) is None
    assert record_parts({**attrs, "fields": ("a", "b")}) is not None
    others = [type(f"_Kind{i}", (), {}) for i in range(2 * packing._PART_WRITERS_KEPT)]
    for kind in others:
        assert record_parts({**attrs, "reason": kind()}) is None
        assert record_parts({**attrs, "reason": 7}) is None
    assert len(packing._PART_WRITERS) <= packing._PART_WRITERS_KEPT
    assert record_parts({**attrs, "time": _Time(2026, 1, 5, 8, 0, 0, 123456, tzinfo=dt.UTC)}) == (
        plain
    )
