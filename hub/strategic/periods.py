"""Information periods: calendar quarters, each due by the end of the next.

Crime and Disorder (Prescribed Information) Regulations 2007: information is prescribed for
quarterly information periods, and each period's information must be disclosed before the
end of the following one (so 2026Q3, July to September, is due by 31 December 2026).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from hub.strategic import StrategicError

__all__ = ["Quarter"]

_QUARTER = re.compile(r"^([0-9]{4})Q([1-4])$")


@dataclass(frozen=True, order=True, slots=True)
class Quarter:
    """One information period, written ``2026Q3``."""

    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """``2026Q3`` as a Quarter; anything else is a ``StrategicError`` saying what to write."""
        found = _QUARTER.fullmatch(text.strip())
        if found is None:
            raise StrategicError(
                f"information period: expected a quarter like 2026Q3, got {text!r}"
            )
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def of(cls, day: dt.date) -> Quarter:
        """The quarter ``day`` falls in."""
        return cls(day.year, (day.month - 1) // 3 + 1)

    def __str__(self) -> str:
        return f"{self.year}Q{self.number}"

    @property
    def start(self) -> dt.date:
        """Its first day."""
        return dt.date(self.year, 3 * self.number - 2, 1)

    @property
    def end(self) -> dt.date:
        """Its last day."""
        return self.next.start - dt.timedelta(days=1)

    @property
    def next(self) -> Quarter:
        """The quarter after it."""
        return (
            Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)
        )

    @property
    def previous(self) -> Quarter:
        """The quarter before it."""
        return (
            Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)
        )

    @property
    def due(self) -> dt.date:
        """The last day its information may be disclosed: the end of the next quarter."""
        return self.next.end

    def last(self, count: int) -> tuple[Quarter, ...]:
        """``count`` quarters ending with this one, oldest first (the console's trend)."""
        out = [self]
        while len(out) < count:
            out.append(out[-1].previous)
        return tuple(reversed(out))
