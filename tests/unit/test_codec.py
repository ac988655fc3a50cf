"""The Avro codec: every payload has exactly one reading, and bad input fails as a HubError.

Payloads cross trust boundaries between partner agencies, so decoding must never accept a
truncated, padded or mislabelled payload, never let an out-of-range value through just because
Avro itself cannot express the range, and never crash with anything but EventValidationError
(the hub reports HubErrors to the sender; anything else would kill a worker).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import fastavro.utils
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.errors import EventValidationError, SchemaError
from hub.schemas import codec
from hub.schemas.codec import SchemaRegistry, to_jsonable
from tests import factories
from tests.factories import (
    AGREEMENT_ALERT,
    BAN,
    BAN_EXPIRED,
    BAN_UPDATED,
    MARAC_ACCESS,
    MARAC_ALERT,
    MARAC_EXPIRED,
    MARAC_OBSERVATION,
    MARAC_RAISED,
    MARAC_REFERRED,
    MARAC_REVIEWED,
    MARAC_UPDATED,
    MARAC_WITHDRAWN,
    RETAIL_EXCLUSION,
    RETAIL_EXPIRED,
    SOCJAG,
    SOCJAG_SANITISED,
    STRATEGIC_ALERT,
    STRATEGIC_DATASET,
    STRATEGIC_SUBMISSION,
    agreement_alert,
    marac_access,
    marac_alert,
    marac_expired,
    marac_flag,
    marac_observation,
    marac_referred,
    marac_reviewed,
    marac_withdrawn,
    pubwatch_ban,
    pubwatch_ban_expired,
    pubwatch_ban_updated,
    retail_exclusion,
    retail_exclusion_expired,
    socjag_legacy,
    socjag_sanitised,
    strategic_alert,
    strategic_dataset,
    strategic_submission,
)

ACK = "uk.csp.delivery.ack.v1"
REGISTRY = SchemaRegistry()

#: One valid payload per event type, every optional field filled so a round trip shows all.
SAMPLES: dict[str, dict[str, Any]] = {
    MARAC_RAISED: marac_flag("MARAC-2026-000101", rationale="DASH 17 with escalating threats."),
    MARAC_UPDATED: marac_flag(
        "MARAC-2026-000101", risk_level="medium", change_reason="review", rationale="Reviewed."
    ),
    MARAC_WITHDRAWN: marac_withdrawn("MARAC-2026-000101"),
    MARAC_REVIEWED: marac_reviewed("MARAC-2026-000101"),
    MARAC_EXPIRED: marac_expired("MARAC-2026-000101"),
    MARAC_OBSERVATION: marac_observation("MARAC-2026-000101"),
    MARAC_REFERRED: marac_referred("MARAC-2026-000101"),
    MARAC_ALERT: marac_alert("MARAC-2026-000101"),
    MARAC_ACCESS: marac_access("MARAC-2026-000101"),
    SOCJAG: socjag_legacy(
        "SJ-2026-000007",
        handling_code="C",
        share_with=["wmp", "redditch-bc"],
        requirements=["secure-storage", "not-for-court"],
    ),
    SOCJAG_SANITISED: socjag_sanitised("SJ-2026-000007", "0b7c3f0e-2f1a-4d8e-9a55-3c1c7c1d2e10"),
    BAN: pubwatch_ban("PW-REDDITCH-0042"),
    BAN_UPDATED: pubwatch_ban_updated("PW-REDDITCH-0042"),
    BAN_EXPIRED: pubwatch_ban_expired("PW-REDDITCH-0042"),
    RETAIL_EXCLUSION: retail_exclusion("BCRP-REDDITCH-0007"),
    RETAIL_EXPIRED: retail_exclusion_expired("BCRP-REDDITCH-0007"),
    AGREEMENT_ALERT: agreement_alert("NW-CSP-ISA-MARAC-2025"),
    STRATEGIC_SUBMISSION: strategic_submission(),
    STRATEGIC_DATASET: strategic_dataset(),
    STRATEGIC_ALERT: strategic_alert(),
    "uk.csp.marac.transfer.receipt.v1": {
        "case_ref": "MARAC-2026-000101",
        "transfer_event_id": "0b7c3f0e-2f1a-4d8e-9a55-3c1c7c1d2e10",
        "state": "received",
        "receiver": "swcsp-hub",
        "coordinator": "marac.south-worcs",
        "audit_record": "5f0c1b2a-3d4e-4f60-8a9b-0c1d2e3f4a5b",
        "received_at": "2026-11-20T10:15:30.250000Z",
    },
    "uk.csp.marac.transfer.ownership.v1": {
        "case_ref": "MARAC-2026-000101",
        "previous_owner": "nwcsp-hub",
        "transfer_event_id": "0b7c3f0e-2f1a-4d8e-9a55-3c1c7c1d2e10",
        "new_case_ref": "MARAC-SW-2026-0042",
        "taken_on": "2026-12-03",
    },
    "uk.csp.marac.transfer.withdraw.v1": {
        "case_ref": "MARAC-2026-000101",
        "new_owner": "swcsp-hub",
        "taken_on": "2026-12-03",
        "instruction": "Withdraw this MARAC flag from your systems.",
    },
    "uk.csp.marac.transfer.proof.v1": {
        "transfer_event_id": "0b7c3f0e-2f1a-4d8e-9a55-3c1c7c1d2e10",
        "sender": "swcsp-hub",
        "audit_record": "5f0c1b2a-3d4e-4f60-8a9b-0c1d2e3f4a5b",
        "record": '{"decision":"delivered","record_id":"5f0c1b2a-3d4e-4f60-8a9b-0c1d2e3f4a5b"}',
        "leaf_index": 41,
        "tree_size": 42,
        "inclusion_proof": ["pW0Kq8yHZ1QwYbqv5n3mH8r1m0y5Jm4d8m0o4b0xk3Q="],
        "checkpoint": "south-worcestershire-csp.hub/audit\n42\nAAAA\n\n",
        "peer": "nwcsp-hub",
    },
    factories.ASB_APPLICATION: factories.asb_application(
        "ASB-2026-0001",
        applicant_kind="councillor",
        representative={"name": "Cllr A Example", "role": "ward councillor"},
    ),
    factories.ASB_ACKNOWLEDGED: {
        "case_ref": "ASB-2026-0001",
        "district": "bromsgrove",
        "acknowledged_on": "2026-04-09",
    },
    factories.ASB_COMPLAINTS: factories.asb_complaints(
        "ASB-2026-0001", [("WMP-1", "2026-03-01", "2026-02-27", "CP-1")]
    ),
    factories.ASB_THRESHOLD: factories.asb_threshold("ASB-2026-0001"),
    factories.ASB_OUTCOME: factories.asb_outcome("ASB-2026-0001", appeal_ref="AP-1"),
    factories.ASB_ACTION: factories.asb_action("ASB-2026-0001", note="Patrols booked."),
    factories.ASB_APPEAL: factories.asb_appeal("ASB-2026-0001"),
    factories.ASB_ALERT: factories.asb_alert("ASB-2026-0001", ["rp.bdht"]),
    ACK: {
        "acknowledged_event_id": "0b7c3f0e-2f1a-4d8e-9a55-3c1c7c1d2e10",
        "acknowledged_type": BAN,
        "received_at": "2026-11-20T10:15:30.250000Z",
        "status": "actioned",
        "note": "Added to the door team briefing.",
    },
}

#: Values that satisfy each ``hub_pattern`` in the schemas; a new pattern must be added here.
PATTERN_EXAMPLES: dict[str, list[str]] = {
    r"^[A-Za-z0-9][A-Za-z0-9\-/:.]{1,63}$": ["MARAC-2026-000101", "SJ/7", "a1:b.c"],
    r"^[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}$": ["B97 4HJ", "DY10 1AB", "WR12AA", "SW1A 1AA"],
    r"^[a-z0-9-]+$": ["redditch", "wyre-forest", "scheme-2"],
    r"^(OFFICIAL|OFFICIAL-SENSITIVE)$": ["OFFICIAL", "OFFICIAL-SENSITIVE"],
    r"^(3x5x2|5x5x5)$": ["3x5x2", "5x5x5"],
    r"^[0-9]{4}Q[1-4]$": ["2026Q3", "2027Q1"],
    r"^(?:[A-Z]{1,2}[0-9][A-Z0-9]?|[EW]05[0-9]{6})$": ["B97", "DY10", "E05007870", "W1A"],
    r"^(?:[A-Z]{1,2}[0-9][A-Z0-9]?|[EW]05[0-9]{6}|TOTAL)$": ["B97", "E05007870", "TOTAL"],
    r"^[a-z0-9]+(?:-[a-z0-9]+)*(?:\.[a-z0-9]+(?:-[a-z0-9]+)*)*$": ["hwfrs", "wmp.crime-data"],
    r"^[0-9a-f]{64}$": ["0" * 64, "ab" * 32],
    r"^[a-z0-9_-]+$": ["redditch", "wyre_forest"],
    r"^[a-z_]+$": ["council_asb", "total"],
    r"^[A-Z]{1,2}[0-9][0-9A-Z]?$": ["B61", "DY10", "W1A"],
}


def _encoded(event_type: str) -> bytes:
    return REGISTRY.encode(event_type, SAMPLES[event_type])


def _raw_write(event_type: str, value: dict[str, Any]) -> bytes:
    """Encode with plain fastavro, bypassing the hub's checks, as a careless sender would."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, REGISTRY.schema(event_type), value)
    return buf.getvalue()


def _conform(schema: Any, value: Any) -> Any:
    """Bend a random record from ``generate_many`` into the hub's extra constraints.

    fastavro only knows Avro types, so its random strings never look like postcodes and its
    ints are rarely a 3x5x2 grade; replacing just the offending values keeps the rest random.
    """
    if isinstance(schema, list):
        if value is None:
            return None
        branch = next(b for b in schema if b != "null")
        return _conform(branch, value)
    if not isinstance(schema, dict):
        return value
    value = _fix_props(schema, value)
    kind = schema["type"]
    if kind == "record":
        out = {}
        for field in schema["fields"]:
            name = field["name"]
            out[name] = _fix_props(field, _conform(field["type"], value[name]))
        return out
    if kind == "array":
        return [_conform(schema["items"], item) for item in value]
    if isinstance(kind, dict | list):
        return _conform(kind, value)
    return value


def _fix_props(props: dict[str, Any], value: Any) -> Any:
    pattern = props.get("hub_pattern")
    if pattern is not None and isinstance(value, str):
        examples = PATTERN_EXAMPLES[pattern]  # KeyError: add the new pattern to the table
        if not re.fullmatch(pattern, value):
            return examples[sum(map(ord, value)) % len(examples)]
    low, high = props.get("hub_min"), props.get("hub_max")
    if isinstance(value, int) and low is not None and high is not None:
        return low + (value - low) % (high - low + 1)
    return value


def _random_records(event_type: str, count: int, seed: int) -> Iterator[dict[str, Any]]:
    """Seeded ``generate_many`` records for ``event_type``, conformed to the hub constraints."""
    state = random.getstate()  # generate_many draws from the global generator
    random.seed(seed)
    try:
        records = list(fastavro.utils.generate_many(REGISTRY.raw(event_type), count))
    finally:
        random.setstate(state)
    for record in records:
        yield _conform(REGISTRY.raw(event_type), record)


def test_every_type_has_a_sample() -> None:
    """A new schema must come with a sample here, or none of these tests would cover it."""
    assert set(SAMPLES) == set(REGISTRY.types)


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_round_trip_sample(event_type: str) -> None:
    decoded = REGISTRY.decode(event_type, _encoded(event_type))
    assert to_jsonable(decoded) == SAMPLES[event_type]


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_round_trip_random_records(event_type: str) -> None:
    """Random valid records survive bytes -> JSON form -> the very same bytes."""
    for record in _random_records(event_type, 40, seed=7):
        payload = REGISTRY.encode(event_type, record)
        decoded = REGISTRY.decode(event_type, payload)
        assert REGISTRY.encode(event_type, to_jsonable(decoded)) == payload


def test_optional_fields_default_when_left_out() -> None:
    payload = dict(SAMPLES[MARAC_RAISED])
    del payload["notes"], payload["dash_score"]
    decoded = REGISTRY.decode(MARAC_RAISED, REGISTRY.encode(MARAC_RAISED, payload))
    assert decoded["notes"] is None
    assert decoded["dash_score"] is None


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_truncated_payload_never_reads_as_the_original(event_type: str) -> None:
    payload = _encoded(event_type)
    original = REGISTRY.decode(event_type, payload)
    for cut in range(len(payload)):
        try:
            decoded = REGISTRY.decode(event_type, payload[:cut])
        except EventValidationError:
            continue
        assert decoded != original, f"a {cut}-byte prefix decoded as the whole payload"


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
@pytest.mark.parametrize("garbage", [b"\x00", b"\x02x", b"junk" * 10])
def test_trailing_bytes_rejected(event_type: str, garbage: bytes) -> None:
    with pytest.raises(EventValidationError, match="trailing bytes"):
        REGISTRY.decode(event_type, _encoded(event_type) + garbage)


@pytest.mark.parametrize(
    ("written_as", "read_as"), [(w, r) for w in sorted(SAMPLES) for r in sorted(SAMPLES) if w != r]
)
def test_payload_of_another_type_rejected(written_as: str, read_as: str) -> None:
    """A mislabelled payload must fail, not be read as some other event's fields."""
    with pytest.raises(EventValidationError):
        REGISTRY.decode(read_as, _encoded(written_as))


@pytest.mark.parametrize("grade", [0, 4, -1, 2**31 - 1])
def test_out_of_range_source_grade_rejected_on_decode(grade: int) -> None:
    value = REGISTRY.decode(SOCJAG, _encoded(SOCJAG)) | {"source_grade": grade}
    with pytest.raises(EventValidationError, match=r"source_grade: expected 1\.\.3"):
        REGISTRY.decode(SOCJAG, _raw_write(SOCJAG, value))


def test_out_of_range_dash_score_rejected_on_decode() -> None:
    """The range sits on the non-null branch of a union; it must still be enforced."""
    value = REGISTRY.decode(MARAC_RAISED, _encoded(MARAC_RAISED)) | {"dash_score": 25}
    with pytest.raises(EventValidationError, match=r"dash_score: expected 0\.\.24"):
        REGISTRY.decode(MARAC_RAISED, _raw_write(MARAC_RAISED, value))


@pytest.mark.parametrize(
    ("event_type", "override", "field"),
    [
        (SOCJAG, {"source_grade": 5}, "/source_grade"),
        (MARAC_RAISED, {"dash_score": -1}, "/dash_score"),
        (MARAC_RAISED, {"case_ref": "-leading-dash"}, "/case_ref"),
        (SOCJAG, {"classification": "SECRET"}, "/classification"),
        (SOCJAG, {"subject_refs": ["SUBJ-1", "bad ref"]}, "/subject_refs/1"),
        (BAN, {"scheme": "Redditch Town"}, "/scheme"),
    ],
)
def test_constraint_violations_rejected_on_encode(
    event_type: str, override: dict[str, Any], field: str
) -> None:
    with pytest.raises(EventValidationError, match=f"field {field}: expected"):
        REGISTRY.encode(event_type, SAMPLES[event_type] | override)


@pytest.mark.parametrize("postcode", ["not a postcode", "b97 4hj", "B97 4HJ\n", "", "12345"])
def test_bad_postcode_rejected(postcode: str) -> None:
    """The pattern sits on the field, not its type; both encode and decode enforce it."""
    payload = marac_flag("MARAC-2026-000101", address={"postcode": postcode})
    with pytest.raises(EventValidationError, match=r"field /address/postcode"):
        REGISTRY.encode(MARAC_RAISED, payload)
    value = REGISTRY.decode(MARAC_RAISED, _encoded(MARAC_RAISED))
    value["address"]["postcode"] = postcode
    with pytest.raises(EventValidationError, match=r"field address\.postcode"):
        REGISTRY.decode(MARAC_RAISED, _raw_write(MARAC_RAISED, value))


@pytest.mark.parametrize("postcode", ["B97 4HJ", "B974HJ", "DY10 1AB", "SW1A 1AA"])
def test_good_postcodes_accepted(postcode: str) -> None:
    payload = marac_flag("MARAC-2026-000101", address={"postcode": postcode})
    decoded = REGISTRY.decode(MARAC_RAISED, REGISTRY.encode(MARAC_RAISED, payload))
    assert decoded["address"]["postcode"] == postcode


def test_pattern_error_does_not_echo_the_value() -> None:
    """Error messages reach logs and senders; payload values may be confidential."""
    with pytest.raises(EventValidationError) as caught:
        REGISTRY.encode(MARAC_RAISED, marac_flag("MARAC-1", address={"postcode": "Jane Doe"}))
    assert "Jane Doe" not in str(caught.value)


def test_schema_mismatch_names_the_field_not_the_value() -> None:
    with pytest.raises(EventValidationError) as caught:
        REGISTRY.encode(MARAC_RAISED, marac_flag("MARAC-1", risk_level="Jane Doe at No 14"))
    message = str(caught.value)
    assert "risk_level" in message
    assert "standard, medium, high" in message
    assert "Jane Doe" not in message


@pytest.mark.parametrize(
    ("override", "name"),
    [
        ({"victim_name": "Jane"}, "victim_name"),
        ({"address": {"flat": "2"}}, "flat"),
        ({"contact": {"mobile": "07700 900000"}}, "mobile"),
    ],
)
def test_unknown_field_rejected_naming_it(override: dict[str, Any], name: str) -> None:
    """Avro would silently drop an unknown field: a typo'd or smuggled field must fail."""
    with pytest.raises(EventValidationError, match=f"unexpected field.*'{name}'"):
        REGISTRY.encode(MARAC_RAISED, marac_flag("MARAC-2026-000101", **override))


def test_missing_required_field_rejected_naming_it() -> None:
    payload = dict(SAMPLES[MARAC_RAISED])
    del payload["case_ref"]
    with pytest.raises(EventValidationError, match=r"case_ref: expected .*got nothing"):
        REGISTRY.encode(MARAC_RAISED, payload)


@pytest.mark.parametrize("date", ["2026-13-01", "19/11/2026", "", "2026-02-30", "tomorrow"])
def test_bad_date_rejected(date: str) -> None:
    with pytest.raises(EventValidationError, match="expected a date YYYY-MM-DD"):
        REGISTRY.encode(MARAC_RAISED, marac_flag("MARAC-2026-000101", marac_date=date))


@pytest.mark.parametrize("stamp", ["yesterday", "2026-11-20 25:00", ""])
def test_bad_timestamp_rejected(stamp: str) -> None:
    with pytest.raises(EventValidationError, match="expected an ISO 8601 timestamp"):
        REGISTRY.encode(ACK, SAMPLES[ACK] | {"received_at": stamp})


def _nested_dict(depth: int) -> dict[str, Any]:
    top: dict[str, Any] = {}
    node = top
    for _ in range(depth):
        node["x"] = {}
        node = node["x"]
    return top


def _nested_list(depth: int) -> list[Any]:
    top: list[Any] = []
    for _ in range(depth):
        top = [top]
    return top


@pytest.mark.parametrize(
    "override",
    [
        {"notes": _nested_dict(5000)},
        {"markers": _nested_list(5000)},
        {"address": _nested_dict(5000)},
        {"contact": {"name": _nested_list(5000)}},
        {"dash_score": _nested_dict(40)},
    ],
    ids=["dict-in-string", "list-in-array", "dict-as-record", "list-in-record", "shallow"],
)
def test_deep_nesting_rejected_cleanly(override: dict[str, Any]) -> None:
    """A hostile payload nested thousands deep must fail as invalid, not as RecursionError."""
    with pytest.raises(EventValidationError):
        REGISTRY.encode(MARAC_RAISED, marac_flag("MARAC-2026-000101", **override))


def test_self_referencing_payload_rejected() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(EventValidationError, match="nests deeper"):
        REGISTRY.encode(MARAC_RAISED, marac_flag("MARAC-2026-000101", markers=loop))


def test_unknown_event_type_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="unknown event type"):
        REGISTRY.encode("uk.csp.nope.v1", {})
    with pytest.raises(SchemaError, match="unknown event type"):
        REGISTRY.decode("uk.csp.nope.v1", b"")


def test_field_paths_of_raised() -> None:
    """Policies select on these paths; a path that is not in the schema must not appear."""
    assert REGISTRY.field_paths(MARAC_RAISED) == {
        "case_ref",
        "subject_ref",
        "address",
        "address.line1",
        "address.town",
        "address.postcode",
        "address.district",
        "risk_level",
        "referral_reason",
        "dash_score",
        "marac_date",
        "review_date",
        "contact",
        "contact.name",
        "contact.phone",
        "contact.email",
        "markers",
        "notes",
        "rationale",
    }
    assert "district" not in REGISTRY.field_paths(MARAC_RAISED)
    assert "address.flat" not in REGISTRY.field_paths(MARAC_RAISED)


def test_field_paths_follow_unions_and_arrays() -> None:
    paths = REGISTRY.field_paths(SOCJAG)
    assert {"location.district", "handling_conditions.share_with"} <= paths
    assert "handling_conditions.share_with.items" not in paths


# --- properties: whatever arrives, the only failure is EventValidationError -------------------

_TYPES = st.sampled_from(sorted(SAMPLES))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def _accept_or_reject(event_type: str, payload: bytes) -> None:
    try:
        decoded = REGISTRY.decode(event_type, payload)
    except EventValidationError:
        return
    # Whatever decode accepts, encode must accept back: no value escapes the hub's checks.
    REGISTRY.encode(event_type, to_jsonable(decoded))


@settings(max_examples=300, deadline=None)
@given(event_type=_TYPES, payload=st.binary(max_size=300))
def test_decode_random_bytes_only_raises_validation_error(event_type: str, payload: bytes) -> None:
    _accept_or_reject(event_type, payload)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_type=_TYPES, data=st.data())
def test_decode_mutated_payload_only_raises_validation_error(
    event_type: str, data: st.DataObject
) -> None:
    """Near-valid bytes reach much deeper into the decoder than random ones do."""
    payload = bytearray(_encoded(event_type))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(payload)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert" or at == len(payload):
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=9))
        elif action == "flip":
            payload[at] = data.draw(st.integers(0, 255))
        else:
            del payload[at]
    _accept_or_reject(event_type, bytes(payload))


@settings(max_examples=300, deadline=None)
@given(event_type=_TYPES, payload=st.dictionaries(st.text(max_size=12), _JSON, max_size=6))
def test_encode_random_dict_only_raises_validation_error(
    event_type: str, payload: dict[str, Any]
) -> None:
    try:
        REGISTRY.encode(event_type, payload)
    except EventValidationError:
        return


@settings(max_examples=300, deadline=None)
@given(event_type=_TYPES, data=st.data())
def test_encode_sample_with_one_field_replaced(event_type: str, data: st.DataObject) -> None:
    """One wrong field in an otherwise valid payload fails cleanly; if accepted, it round-trips."""
    payload = dict(SAMPLES[event_type])
    key = data.draw(st.sampled_from(sorted(payload)))
    payload[key] = data.draw(_JSON)
    try:
        encoded = REGISTRY.encode(event_type, payload)
    except EventValidationError:
        return
    decoded = REGISTRY.decode(event_type, encoded)
    assert REGISTRY.encode(event_type, to_jsonable(decoded)) == encoded


@pytest.mark.parametrize("days", [-800_000, 3_000_000, 10**12])
def test_a_date_given_as_days_beyond_any_calendar_year_is_refused(days: int) -> None:
    # Avro writes any int, but the reader cannot turn it into a date: accepted, it made an
    # event the hub could not decode (found by the property test above)
    payload = dict(SAMPLES["uk.csp.marac.flag.reviewed.v1"], reviewed_on=days)
    with pytest.raises(EventValidationError, match="outside the years 1 to 9999"):
        REGISTRY.encode("uk.csp.marac.flag.reviewed.v1", payload)


def test_a_date_given_as_days_in_range_round_trips() -> None:
    payload = dict(SAMPLES["uk.csp.marac.flag.reviewed.v1"], reviewed_on=20_000)
    decoded = REGISTRY.decode(
        "uk.csp.marac.flag.reviewed.v1",
        REGISTRY.encode("uk.csp.marac.flag.reviewed.v1", payload),
    )
    assert decoded["reviewed_on"] == dt.date(2024, 10, 4)  # day 20,000 of the Unix epoch


# -- constraint checks compiled once per schema ------------------------------------------------


def _verdict(check: Any, value: Any) -> str | None:
    """The error a constraint check raises for ``value`` (its message), or None."""
    try:
        check(value)
    except EventValidationError as exc:
        return str(exc)
    return None


def _perturbed(value: Any, rng: random.Random) -> Any:
    """``value`` with some ints and strings swapped for ones a constraint may refuse."""
    if isinstance(value, dict):
        return {k: _perturbed(v, rng) for k, v in value.items()}
    if isinstance(value, list):
        return [_perturbed(v, rng) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and rng.random() < 0.3:
        return rng.randint(-3, 8)
    if isinstance(value, str) and rng.random() < 0.1:
        return rng.choice(["", "lower case", "B97 4HJ", "3x5x2"])
    return value


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_compiled_constraints_raise_what_the_schema_walk_raises(event_type: str) -> None:
    raw = REGISTRY.raw(event_type)
    compiled = codec._constraints(raw, event_type)

    def walk(value: Any) -> None:
        codec._check_constraints(raw, value, event_type, path="", named={})

    state = random.getstate()  # generate_many draws from the global generator
    random.seed(11)
    try:
        unconformed = list(fastavro.utils.generate_many(raw, 100))
    finally:
        random.setstate(state)
    rng = random.Random(12)
    conformed = list(_random_records(event_type, 100, seed=13))
    sample = REGISTRY.decode(event_type, _encoded(event_type))
    values = [sample, *unconformed, *conformed, *(_perturbed(v, rng) for v in conformed * 3)]
    verdicts = [(_verdict(walk, v), _verdict(compiled, v)) for v in values]
    assert all(by_walk == by_compiled for by_walk, by_compiled in verdicts)
    if event_type != ACK:  # every other type has constraints: some values broke them
        assert any(by_walk is not None for by_walk, _ in verdicts)


def _write_schema(directory: Path, schema: dict[str, Any]) -> SchemaRegistry:
    directory.mkdir(exist_ok=True)
    (directory / "uk.csp.test.v1.avsc").write_text(json.dumps(schema))
    return SchemaRegistry(directory)


def test_a_schema_naming_a_type_by_name_is_still_checked(tmp_path: Path) -> None:
    grade = {"type": "int", "hub_min": 1, "hub_max": 3}
    registry = _write_schema(
        tmp_path,
        {
            "type": "record",
            "name": "Pair",
            "fields": [
                {
                    "name": "first",
                    "type": {
                        "type": "record",
                        "name": "G",
                        "fields": [{"name": "g", "type": grade}],
                    },
                },
                {"name": "second", "type": "G"},
            ],
        },
    )
    assert registry.encode("uk.csp.test.v1", {"first": {"g": 2}, "second": {"g": 3}})
    with pytest.raises(EventValidationError, match=r"field /second/g: expected 1\.\.3, got 4"):
        registry.encode("uk.csp.test.v1", {"first": {"g": 2}, "second": {"g": 4}})


def test_a_schema_nested_past_the_depth_limit_keeps_the_limit() -> None:
    # no schema of the hub nests so deep; one that did keeps the walk's limit and its error
    schema: Any = {"type": "int", "hub_min": 0}
    for _ in range(40):
        schema = {"type": "array", "items": schema}
    raw = {"type": "record", "name": "Deep", "fields": [{"name": "v", "type": schema}]}
    value: Any = 1
    for _ in range(40):
        value = [value]
    with pytest.raises(EventValidationError, match="payload nests too deeply"):
        codec._constraints(raw, "uk.csp.test.v1")({"v": value})


def test_a_bad_hub_pattern_fails_when_the_schemas_load(tmp_path: Path) -> None:
    raw = {
        "type": "record",
        "name": "Bad",
        "fields": [{"name": "ref", "type": "string", "hub_pattern": "^(unclosed$"}],
    }
    with pytest.raises(SchemaError, match="bad hub_pattern"):
        _write_schema(tmp_path, raw)


@pytest.mark.parametrize(
    ("payload", "pointer"),
    [
        (marac_flag("MARAC-1", risk_level="extreme"), "/risk_level"),
        (marac_flag("MARAC-1", address={"district": "atlantis"}), "/address/district"),
        (marac_flag("MARAC-1", address={"postcode": "nope"}), "/address/postcode"),
        (marac_flag("MARAC-1", marac_date="soon"), "/marac_date"),
        (marac_flag("MARAC-1", address={"flat": "2"}), "/address"),
        (marac_flag("MARAC-1", dash_score=99), "/dash_score"),
    ],
)
def test_encode_errors_name_the_json_path_the_publisher_wrote(
    payload: dict[str, Any], pointer: str
) -> None:
    """The publisher wrote JSON: the error says /risk_level, never the Avro record's name."""
    with pytest.raises(EventValidationError) as caught:
        REGISTRY.encode(MARAC_RAISED, payload)
    message = str(caught.value)
    assert message.startswith(f"{MARAC_RAISED}: ")
    assert f"field {pointer}: " in message
    assert "uk.csp.marac." not in message.removeprefix(f"{MARAC_RAISED}: ")
    assert "FlagRaisedV1" not in message


def _to_jsonable_walk(value: Any) -> Any:
    """``to_jsonable`` as it was before its shortcut for plain values: the reference."""
    if isinstance(value, dict):
        return {k: _to_jsonable_walk(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable_walk(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


_DECODED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.binary(max_size=5)
    | st.dates()
    | st.datetimes(timezones=st.just(dt.UTC)),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(value=_DECODED)
def test_to_jsonable_is_the_walk(value: Any) -> None:
    got = to_jsonable(value)
    assert got == _to_jsonable_walk(value)
    assert json.dumps(got, default=repr) == json.dumps(_to_jsonable_walk(value), default=repr)
