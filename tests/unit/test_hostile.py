"""Hostile input, fuzzed: the router and the policy engine never raise on what they are fed.

A worker survives bad input because ``Router.route`` turns every failure into a quarantine
with a specific reason and a ``rejected`` audit record (``internal_error`` would mean an
unexpected exception: a bug). These properties feed it random headers and bytes, valid
envelopes around random or mutated Avro, and mutated valid records; and feed ``evaluate``
payloads of the wrong shape (wrong types, deep nesting, huge strings) from any party.
The broker-level corpus is ``tests/integration/test_bad_input.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.agents.routing import RouteResult
from hub.envelope import wire
from hub.envelope.party import PartyEnvelope
from hub.errors import EventError
from hub.keys.file_store import FileKeyStore
from hub.keys.model import KeySuite
from hub.keys.store import ensure_dev_keys
from hub.models import AuditDecision, Decision, EventAttributes, Origin, QuarantineReason
from hub.policies.engine import evaluate
from tests.factories import MARAC_RAISED, marac_flag
from tests.unit.test_router import FIXED, KEYS, PROTOCOL, REGISTRY, make_router, never_seen

PARTY = "redditch-bc.housing-repairs"
ORIGIN = Origin(topic=f"hub.in.{PARTY}", partition=0, offset=7)
VALID = REGISTRY.encode(MARAC_RAISED, marac_flag("MARAC-FUZZ-0001"))
HEADER_NAMES = [
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_subject",
    "content-type",
    "ce_hubsigkid",
    "ce_hubsig",
    "ce_hubkid",
    "ce_hubenc",
    "x-other",
]
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module", autouse=True)
def _keys(tmp_path_factory: pytest.TempPathFactory) -> None:
    store = FileKeyStore(tmp_path_factory.mktemp("keys"))
    extra = [KeySuite(s) for s in PROTOCOL.crypto.suites[1:]]
    ensure_dev_keys(store, PROTOCOL.party_ids, extra_suites=extra)
    KEYS[0] = store  # make_router (shared with test_router) reads the store from here


def _sealed(plaintext: bytes, *, event_type: str = MARAC_RAISED) -> tuple[bytes, list[Any]]:
    attrs = EventAttributes(
        id=wire.new_event_id(),
        source=wire.source_for(PARTY),
        type=event_type,
        time=FIXED,
        subject="CASE-1",
        datacontenttype=wire.AVRO,
    )
    record = PartyEnvelope(PARTY, store=KEYS[0]).seal(
        attrs, key=b"CASE-1", plaintext=plaintext, recipient="hub"
    )
    return record.value, list(record.headers)


def _route(key: bytes | None, value: bytes, headers: list[Any]) -> RouteResult:
    result = make_router().route(
        origin=ORIGIN, key=key, value=value, headers=headers, seen=never_seen
    )
    assert result.audit, "every record ends with at least one audit record"
    if result.quarantined is not None:
        assert result.quarantined is not QuarantineReason.INTERNAL_ERROR, result.audit[0].reason
        assert [r.decision for r in result.audit] == [AuditDecision.REJECTED]
        assert result.audit[0].reason.startswith(f"{result.quarantined.value}: ")
        kept = [m for m in result.messages if m.topic == "hub.quarantine"]
        assert len(kept) == 1
        assert kept[0].value == value  # kept whole for replay
    return result


@FUZZ
@given(
    key=st.one_of(st.none(), st.binary(max_size=40)),
    value=st.binary(max_size=600),
    headers=st.lists(
        st.tuples(st.sampled_from(HEADER_NAMES) | st.text(max_size=10), st.binary(max_size=80)),
        max_size=12,
    ),
)
def test_random_records_are_quarantined_never_raised(
    key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    result = _route(key, value, headers)
    assert result.quarantined is not None


@FUZZ
@given(plaintext=st.binary(max_size=400))
def test_signed_random_payloads_are_malformed_never_raised(plaintext: bytes) -> None:
    """Past the signature, the decoder is the only guard: random bytes must fail cleanly."""
    value, headers = _sealed(plaintext)
    result = _route(b"CASE-1", value, headers)
    assert result.quarantined in {
        QuarantineReason.MALFORMED_PAYLOAD,
        QuarantineReason.SCHEMA_INVALID,
        QuarantineReason.POLICY_REJECTED,
        None,  # random bytes that happen to be a valid, permitted record
    }


@FUZZ
@given(data=st.data())
def test_signed_mutated_avro_is_quarantined_or_routed_never_raised(data: st.DataObject) -> None:
    """Flip, cut or grow a valid encoding (truncated Avro, huge length prefixes, bad UTF-8)."""
    payload = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(payload) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "huge_length"]))
        if action == "flip":
            payload[where] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del payload[where:]
            if not payload:
                break
        elif action == "insert":
            payload[where:where] = data.draw(st.binary(min_size=1, max_size=8))
        else:  # a zig-zag varint claiming gigabytes
            payload[where:where] = b"\xfe\xff\xff\xff\x7f"
    value, headers = _sealed(bytes(payload))
    _route(b"CASE-1", value, headers)


@FUZZ
@given(data=st.data())
def test_mutated_valid_records_are_quarantined_never_raised(data: st.DataObject) -> None:
    """Tamper with one header of a valid record, or with its ciphertext."""
    value, headers = _sealed(VALID)
    index = data.draw(st.integers(0, len(headers)))
    if index == len(headers):
        at = data.draw(st.integers(0, len(value) - 1))
        value = value[:at] + bytes([value[at] ^ 0xFF]) + value[at + 1 :]
    else:
        name, _ = headers[index]
        headers[index] = (name, data.draw(st.binary(max_size=120)))
    result = _route(b"CASE-1", value, headers)
    assert result.quarantined is not None or result.delivered + result.withheld > 0


# -- the policy engine -------------------------------------------------------------------

_LEAF = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.binary(max_size=10)
)
_ANY = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
_FIELDS = sorted(REGISTRY.field_paths(MARAC_RAISED) | {"risk_level", "subject_ref", "dob"})


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


@settings(max_examples=300, deadline=None)
@given(
    event_type=st.sampled_from([*REGISTRY.types, "uk.csp.unknown.v1"]),
    publisher=st.sampled_from([*PROTOCOL.party_ids, "nobody", ""]),
    base=st.dictionaries(st.sampled_from(_FIELDS), _ANY, max_size=8),
    extra=st.dictionaries(st.text(max_size=8), _ANY, max_size=4),
)
def test_evaluate_returns_a_decision_for_any_payload(
    event_type: str, publisher: str, base: dict[str, Any], extra: dict[str, Any]
) -> None:
    """Wrong types where rules compare values: a Decision (maybe deny), never an exception."""
    data = {**extra, **base}
    try:
        decision = evaluate(
            PROTOCOL,
            event_id="e-fuzz",
            event_type=event_type,
            publisher=publisher,
            data=data,
            today=dt.date(2026, 11, 23),
        )
    except EventError:  # the documented failure for a payload the engine cannot judge
        return
    assert isinstance(decision, Decision)
    assert decision.rejected or decision.recipients


@pytest.mark.parametrize(
    "data",
    [
        {**marac_flag("MARAC-1"), "risk_level": {"nested": _deep(5000)}},
        {**marac_flag("MARAC-1"), "subject_ref": "S" * 5_000_000},
        {**marac_flag("MARAC-1"), "risk_level": ["high"] * 10_000},
        {**marac_flag("MARAC-1"), "address": "not a record"},
    ],
    ids=["deep_nesting", "huge_string", "huge_list", "wrong_type"],
)
def test_evaluate_hostile_shapes(data: dict[str, Any]) -> None:
    try:
        decision = evaluate(
            PROTOCOL,
            event_id="e-hostile",
            event_type=MARAC_RAISED,
            publisher="marac.north-worcs",
            data=data,
        )
    except EventError:
        return
    assert decision.rejected or decision.recipients
