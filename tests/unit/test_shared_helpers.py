"""One home for each helper the hub used to write several times (issue 19)."""

from __future__ import annotations

import datetime as dt

from hub.clock import utc

_PLUS_ONE = dt.timezone(dt.timedelta(hours=1))


def test_utc_takes_a_naive_time_as_utc_and_converts_an_aware_one() -> None:
    naive = dt.datetime(2026, 11, 23, 12, 0)
    assert utc(naive) == dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
    assert utc(naive).tzinfo is dt.UTC
    summer = dt.datetime(2026, 6, 1, 13, 0, tzinfo=_PLUS_ONE)
    assert utc(summer) == dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    assert utc(summer).tzinfo is dt.UTC
