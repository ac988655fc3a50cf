"""One home for each helper the hub used to write several times (issue 19)."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.audit import retention
from hub.clock import utc
from hub.errors import AuditError, ProtocolError
from hub.keys import expiry
from hub.models import ACK_TYPE, Delivery
from hub.policies import durations

_PLUS_ONE = dt.timezone(dt.timedelta(hours=1))
_WHEN = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def test_utc_takes_a_naive_time_as_utc_and_converts_an_aware_one() -> None:
    naive = dt.datetime(2026, 11, 23, 12, 0)
    assert utc(naive) == dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    assert utc(naive).tzinfo is dt.UTC
    summer = dt.datetime(2026, 6, 1, 13, 0, tzinfo=_PLUS_ONE)
    assert utc(summer) == dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    assert utc(summer).tzinfo is dt.UTC


_GOOD = ["P6Y", "P12M", "P2Y6M", "P30D", "P1W", "PT12H", "P1DT2H30M5S", "PT48H"]
_BAD = ["6Y", "P", "PT", "P6y", "P1DT", "P1.5Y", "p1d", " P1D", "P1D "]


@pytest.mark.parametrize("text", _GOOD + _BAD)
def test_every_reader_of_a_duration_takes_the_same_grammar(text: str) -> None:
    taken = durations.is_duration(text)
    assert taken is (text in _GOOD)
    for apply, error in (
        (lambda: durations.parse(text), ProtocolError),
        (lambda: retention.check_duration(text), AuditError),
        (lambda: expiry.add_duration(_WHEN, text), ValueError),
    ):
        if taken:
            apply()
        else:
            with pytest.raises(error):
                apply()


@pytest.mark.parametrize(
    ("when", "text", "later", "earlier"),
    [
        # months by the calendar, the day clamped to the month's last
        (dt.datetime(2027, 1, 31, tzinfo=dt.UTC), "P1M", (2027, 2, 28), (2026, 12, 31)),
        (dt.datetime(2024, 2, 29, tzinfo=dt.UTC), "P1Y", (2025, 2, 28), (2023, 2, 28)),
        (dt.datetime(2030, 2, 28, tzinfo=dt.UTC), "P6Y", (2036, 2, 28), (2024, 2, 28)),
        (dt.datetime(2026, 3, 31, tzinfo=dt.UTC), "P1M2D", (2026, 5, 2), (2026, 2, 26)),
    ],
)
def test_durations_move_by_the_calendar_the_same_everywhere(
    when: dt.datetime, text: str, later: tuple[int, int, int], earlier: tuple[int, int, int]
) -> None:
    assert expiry.add_duration(when, text) == durations.add(when, text)
    assert expiry.add_duration(when, text).timetuple()[:3] == later
    assert retention.subtract_duration(when, text) == durations.subtract(when, text)
    assert retention.subtract_duration(when, text).timetuple()[:3] == earlier


def test_a_retention_reaching_before_year_one_is_an_audit_error() -> None:
    with pytest.raises(AuditError, match="reaches before year 1"):
        retention.subtract_duration(dt.datetime(5, 1, 1, tzinfo=dt.UTC), "P10Y")


def _delivery(source: str, event_type: str) -> Delivery:
    return Delivery(
        id="e-1",
        type=event_type,
        source=source,
        time=_WHEN,
        subject=None,
        recipient="marac.north-worcs",
        rule=None,
        protocol_hash=None,
        data={},
    )


def test_a_partys_disclosure_wants_an_acknowledgement_a_notice_or_a_receipt_does_not() -> None:
    assert _delivery("/parties/west-mercia-police", "uk.csp.marac.flag.raised.v1").wants_ack
    assert not _delivery("/parties/hub", "uk.csp.hub.rejected.v1").wants_ack
    assert not _delivery("/parties/west-mercia-police", ACK_TYPE).wants_ack


def test_one_home_for_canonical_json_and_the_audit_logs_ascii_escape() -> None:
    """The envelope's context and payload bytes come from ``hub.canonical``; the audit log's
    packing keeps its ASCII escape, which its stored Merkle leaves were hashed with."""
    from hub import canonical
    from hub.audit import packing
    from hub.envelope import crypto, wire

    value = {"b": "Café ✓", "a": [1, None, "x"], "when": "2026-12-04"}
    expected = '{"a":[1,null,"x"],"b":"Café ✓","when":"2026-12-04"}'.encode()
    assert canonical.canonical_json(value) == expected
    assert crypto.canonical_context(value) == expected
    assert wire.canonical_json(value) == expected
    assert packing._CANONICAL is canonical.CANONICAL_ASCII
    assert canonical.CANONICAL_ASCII.encode(value) == (
        '{"a":[1,null,"x"],"b":"Caf\\u00e9 \\u2713","when":"2026-12-04"}'
    )
