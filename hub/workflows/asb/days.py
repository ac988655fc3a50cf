"""Working days in England and Wales: weekdays that are not bank holidays.

The ASB Case Review timescales are published in working days (e.g. acknowledgement within 10).
Bank holidays come from the ``holidays`` package: ``holidays.country_holidays("GB",
subdiv="ENG")`` (the same as ``holidays.UK(subdiv="ENG")``), England's list, which is also
Wales's (``subdiv="WLS"`` gives the same days: the Banking and Financial Dealings Act 1971
Sch 1 gives England and Wales one list; Scotland and Northern Ireland differ), substitute
days included (Boxing Day 2026 falls on a Saturday: Monday 28 December is the bank holiday).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays

__all__ = ["add_working_days", "bank_holidays", "is_working_day", "working_days_between"]


@lru_cache(maxsize=64)
def _year(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year))


def bank_holidays(year: int) -> frozenset[dt.date]:
    """England and Wales bank holidays of ``year``."""
    return _year(year)


def is_working_day(day: dt.date) -> bool:
    """Monday to Friday and not a bank holiday in England and Wales."""
    return day.weekday() < 5 and day not in _year(day.year)


def add_working_days(start: dt.date, days: int) -> dt.date:
    """The ``days``-th working day after ``start`` (``start`` itself is day 0).

    An application received on Wednesday 1 April 2026 is due an acknowledgement within 10
    working days: by Friday 17 April, Good Friday and Easter Monday skipped.
    """
    if days < 0:
        raise ValueError(f"working days: expected 0 or more, got {days}")
    day = start
    left = days
    while left:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            left -= 1
    return day


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days after ``start`` up to and including ``end`` (0 if ``end`` <= ``start``)."""
    count = 0
    day = start
    while day < end:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            count += 1
    return count
