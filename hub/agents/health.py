"""A worker's own look at its broker: readiness, consumer lag, and what it holds undecided.

Why its own: faust's view goes stale when the broker dies. ``Consumer.highwater`` is the end
offset of the last fetch response, kept as it was, so lag measured against it said 0 with the
broker dead, and nothing in faust's state turns ``/readyz`` red. So once a second (the ops
task in ``hub.agents.app``) ``WorkerHealth.refresh``:

- asks the broker itself, on a connection of its own with a short deadline, for the end
  offsets of the inbound partitions the worker owns (or for metadata while it owns none):
  an answer means the broker is reachable, and lag is that end offset minus the router's
  committed offset;
- checks that the router's consumer still knows its group coordinator (aiokafka forgets it
  when heartbeats fail): without one nothing is fetched or committed;
- writes the worker's snapshot for ``hub up`` (``hub.broker.watch.WorkerSnapshot``): per
  partition the end and committed offsets, the offsets decided but not yet committed, and
  the events fetched and not yet decided, by id, so that a broker loss can be accounted
  for even when this worker dies with the broker.

It reads faust's consumer bookkeeping (``_committed_offset``, ``_acked``,
``_unacked_messages``, the aiokafka consumer under ``_thread``): faust 0.15 exposes none of
it publicly. A layout that changes makes the checks fail (not ready), never pass.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.broker.security import KafkaSecurity
from hub.broker.topics import INBOUND_PREFIX
from hub.broker.watch import (
    PROBE_TIMEOUT_S,
    LostTotals,
    PartitionView,
    WorkerSnapshot,
    write_json,
)
from hub.log import get_logger

__all__ = ["HealthView", "WorkerHealth"]

_log = get_logger("health")


@dataclass(frozen=True)
class HealthView:
    """One refresh: what ``OpsState.tick`` needs from the broker side."""

    partitions: int
    consumer_lag: Mapping[str, int]
    broker_reachable: bool
    coordinator_known: bool
    events_lost: Mapping[str, int] = field(default_factory=dict)


class WorkerHealth:
    """The worker's broker probe and snapshot writer (one per worker process)."""

    def __init__(
        self,
        *,
        bootstrap: str,
        snapshot_path: Path,
        lost_path: Path,
        security: KafkaSecurity | None = None,
        timeout: float = PROBE_TIMEOUT_S,
    ) -> None:
        self.bootstrap = bootstrap
        self.snapshot_path = snapshot_path
        self.lost = LostTotals(lost_path)
        self.security = security or KafkaSecurity()
        self.timeout = timeout
        self._probe: Any = None
        self._ends: dict[Any, int] = {}
        self._lag: dict[str, int] = {}

    async def refresh(self, consumer: Any) -> HealthView:
        """Look at the broker and the router's consumer; write the snapshot."""
        owned = _owned(consumer)
        reachable = await self._look(owned)
        committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
        if reachable:  # lag against what the broker holds now, not a stale highwater
            lag: dict[str, int] = {}
            for tp in owned:
                if tp in self._ends:
                    done = committed.get(tp) or 0
                    lag[tp.topic] = lag.get(tp.topic, 0) + max(0, self._ends[tp] - done)
            self._lag = lag
        self._write_snapshot(consumer, owned, committed)
        return HealthView(
            partitions=len(owned),
            consumer_lag=dict(self._lag),
            broker_reachable=reachable,
            coordinator_known=_coordinator_known(consumer),
            events_lost=self.lost.read(),
        )

    async def close(self) -> None:
        """Close the probe's connection."""
        if self._probe is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._probe.stop(), self.timeout)
            self._probe = None

    async def _look(self, owned: list[Any]) -> bool:
        """Whether the broker answered within the deadline (end offsets kept when it did)."""
        try:
            if self._probe is None:
                from aiokafka import AIOKafkaConsumer

                probe = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap,
                    enable_auto_commit=False,
                    request_timeout_ms=int(self.timeout * 1000) + 1000,
                    **self.security.client_kwargs(),
                )
                try:
                    await asyncio.wait_for(probe.start(), self.timeout)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(probe.stop(), self.timeout)
                    raise
                self._probe = probe
            if owned:
                ends = await asyncio.wait_for(self._probe.end_offsets(owned), self.timeout)
                self._ends.update({tp: int(end) for tp, end in ends.items()})
            else:
                await asyncio.wait_for(self._probe.topics(), self.timeout)
        except Exception as exc:  # no answer in time: the broker is not there for us
            _log.debug("broker_probe_failed", error=repr(exc))
            return False
        return True

    def _write_snapshot(
        self, consumer: Any, owned: list[Any], committed: Mapping[Any, int | None]
    ) -> None:
        snapshot = WorkerSnapshot()
        acked: Mapping[Any, list[int]] = getattr(consumer, "_acked", {})
        for tp in owned:
            key = f"{tp.topic}/{tp.partition}"
            done = committed.get(tp) or 0
            end = max(self._ends.get(tp, 0), done)
            snapshot.views[key] = PartitionView(end, done)
            snapshot.decided[key] = [o for o in acked.get(tp, ()) if o >= done]
        for message in list(getattr(consumer, "_unacked_messages", ())):
            key = f"{message.tp.topic}/{message.tp.partition}"
            if key in snapshot.views and not getattr(message, "acked", False):
                snapshot.fetched.setdefault(key, {})[int(message.offset)] = _identity(message)
        try:
            self.snapshot_path.parent.mkdir(parents=True, exist_ok=True)
            write_json(self.snapshot_path, snapshot.to_json())
        except OSError as exc:  # the next second tries again
            _log.warning("worker_snapshot_failed", error=str(exc))


def _owned(consumer: Any) -> list[Any]:
    """The inbound partitions this worker's router owns (none before it is assigned)."""
    try:
        assignment = consumer.assignment()
    except Exception:  # not started, or between generations: nothing owned
        return []
    return sorted(
        (tp for tp in assignment if tp.topic.startswith(INBOUND_PREFIX)),
        key=lambda tp: (tp.topic, tp.partition),
    )


def _coordinator_known(consumer: Any) -> bool:
    """Whether the router's aiokafka consumer knows its group coordinator."""
    try:
        coordinator = consumer._thread._consumer._coordinator
    except AttributeError:  # not started yet (or faust's layout changed: not ready)
        return False
    return getattr(coordinator, "coordinator_id", None) is not None


def _identity(message: Any) -> tuple[str, str]:
    """``(ce_source, ce_id)`` of a fetched record, as far as its headers can be read."""
    found = {"ce_source": "", "ce_id": ""}
    headers = message.headers or ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name in found and value:
            found[name] = bytes(value)[:200].decode("utf-8", "replace")
    return found["ce_source"], found["ce_id"]
