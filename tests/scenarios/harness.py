"""What every scenario test needs: a hub on its own broker whose clock the test moves.

Scenario modules subclass :class:`TimedHub` with the moves of their workflow and build their
module fixture with :func:`timed_hub`, so the clock file, the CLI environment and the wait
for a delivery are written once.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hub.broker import EmbeddedBroker
from hub.clock import FileClock
from hub.models import Delivery
from tests.conftest import RunningHub, start_hub

__all__ = ["AUDIT_READER", "HUB", "TimedHub", "timed_hub"]

HUB = Path(sys.executable).parent / "hub"
#: who reads the audit log and why: `hub audit query|sar|chronology|recipients` show personal
#: data, so each names its operator, purpose and reason (DPA 2018 s62)
AUDIT_READER = (
    "--operator", "Scenario Officer", "--purpose", "assurance", "--reason", "scenario test run",
)  # fmt: skip


class TimedHub:
    """A running hub and the clock it reads; the CLI runs against both."""

    def __init__(self, hub: RunningHub, clock: FileClock) -> None:
        self.hub = hub
        self.clock = clock

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``hub ARGS`` as an operator would type it, at the hub's time."""
        return subprocess.run(
            [str(HUB), *args],
            env={**os.environ, **self.hub.env(), "HUB_KAFKA_BOOTSTRAP": self.hub.bootstrap,
                 "HUB_CLOCK_FILE": str(self.clock.path)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip

    def at(self, day: dt.date) -> None:
        """Move the hub's clock to 09:00 on ``day``."""
        self.clock.set(dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC))

    def today(self) -> dt.date:
        """The hub's date."""
        return self.clock().date()

    def received(self, party: str, event_id: str, *, timeout: float = 60.0) -> Delivery:
        """The delivery of ``event_id`` on the party's topic, once it is there."""
        found = self.hub.deliveries(
            party, until=lambda ds: event_id in {d.id for d in ds}, timeout=timeout
        )
        return next(d for d in found if d.id == event_id)


@contextmanager
def timed_hub(
    root: Path, start: dt.datetime, **settings: object
) -> Iterator[tuple[RunningHub, FileClock]]:
    """A hub on its own embedded broker with its clock at ``start`` and no periodic sweeps."""
    clock = FileClock(root / "clock")
    clock.set(start)
    with EmbeddedBroker() as broker:
        running = start_hub(
            broker.bootstrap,
            root / "data",
            clock_file=clock.path,
            workflow_interval=0,
            **settings,
        )
        try:
            yield running, clock
        finally:
            running.supervisor.stop()
