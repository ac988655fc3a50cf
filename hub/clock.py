"""The hub's notion of "now": the system clock, or a clock file for drills and tests.

Partnership rules run on calendar time: agreements lapse at their review date, flags come up
for review, acknowledgements become overdue, bans end. A tabletop exercise (or a scenario
test) must be able to play those months in minutes, across every hub process, without
touching the system clock. ``HUB_CLOCK_FILE`` names a file holding one ISO 8601 timestamp;
every process reads it whenever it asks for the time, so one write moves the whole hub.
Unset (the default, and the only sane production setting) means the system clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from hub.errors import ConfigError

__all__ = ["Clock", "FileClock", "clock_for", "system_clock", "utc"]

Clock = Callable[[], dt.datetime]


def utc(value: dt.datetime) -> dt.datetime:
    """``value`` as an aware UTC datetime; a naive one is taken to be UTC already.

    The one conversion every reader of stored times uses (SQLite hands back naive ones,
    PostgreSQL's TIMESTAMPTZ must never apply a session zone, a clock file may name a zone).
    """
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def system_clock() -> dt.datetime:
    """Now, in UTC."""
    return dt.datetime.now(dt.UTC)


class FileClock:
    """Reads "now" from a file on every call; the file is the single source of time."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> dt.datetime:
        """The time in the file (UTC when it names no zone)."""
        try:
            text = self.path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"clock file {self.path}: cannot read it: {exc}") from exc
        try:
            now = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise ConfigError(
                f"clock file {self.path}: expected an ISO 8601 timestamp, got {text[:40]!r}"
            ) from exc
        return now if now.tzinfo else now.replace(tzinfo=dt.UTC)

    def set(self, now: dt.datetime) -> None:
        """Move the hub's clock (atomically, so no reader sees half a timestamp)."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(now.isoformat())
        tmp.replace(self.path)

    def advance(self, by: dt.timedelta) -> dt.datetime:
        """Move the clock forward and return the new time."""
        now = self() + by
        self.set(now)
        return now


def clock_for(clock_file: Path | None) -> Clock:
    """The system clock, or a :class:`FileClock` when a clock file is configured."""
    return system_clock if clock_file is None else FileClock(clock_file)
