"""ISO 8601 durations as the protocol writes them (P12M, P2D, PT48H), applied by the calendar.

Retention, grace periods and acknowledgement limits are written by people who think in months
("12 months from the last referral"), so months and years move by the calendar
(``dateutil.relativedelta``: 31 January + P1M is 28 or 29 February), never by a fixed number
of days.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TypeVar

from dateutil.relativedelta import relativedelta

from hub.errors import ProtocolError

__all__ = ["add", "is_duration", "parse", "subtract"]

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)

When = TypeVar("When", dt.date, dt.datetime)


def parse(text: str) -> relativedelta:
    """The duration as a calendar delta.

    Raises:
        ProtocolError: ``text`` is not an ISO 8601 duration (``P12M``, ``P2D``, ``PT48H``...).
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ProtocolError(
            f"expected an ISO 8601 duration such as P12M, P14D or PT48H, got {text!r}"
        )
    n = {k: int(v or 0) for k, v in match.groupdict().items()}
    return relativedelta(
        years=n["years"],
        months=n["months"],
        weeks=n["weeks"],
        days=n["days"],
        hours=n["hours"],
        minutes=n["minutes"],
        seconds=n["seconds"],
    )


def is_duration(text: str) -> bool:
    """Whether ``text`` is an ISO 8601 duration ``parse`` takes."""
    return _DURATION.fullmatch(text) is not None


def add(when: When, text: str) -> When:
    """``when`` plus the duration."""
    result: When = when + parse(text)
    return result


def subtract(when: When, text: str) -> When:
    """``when`` minus the duration."""
    result: When = when - parse(text)
    return result
