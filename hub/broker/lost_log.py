"""A consumer positioned past the end of its partition's log: the broker lost records.

Why: a consumer reads from its position (after a rebalance, its group's committed offset).
If the broker lost the partition's records (the embedded Tansu keeps them in memory, so a
broker restart loses every one; on Kafka, an unclean leader election), the committed offset
can lie beyond the new log's end: a worker acknowledging events it had fetched before the
restart commits their old offsets to the restarted broker. Apache Kafka answers a fetch from
there with ``OFFSET_OUT_OF_RANGE`` and aiokafka resets the position to the earliest offset
(the hub's ``auto_offset_reset="earliest"``). Tansu 0.6 answers it with no records and no
error, so the consumer waited there for good, and the records written after the restart
below that offset were never read: events published after a broker restart were never
routed (``tests/integration/test_restart.py`` saw it about once in ten runs).

What: ``LostLogWatch`` compares each assigned partition's position with the high watermark
of the last fetch answer (exact on both brokers, unlike Tansu's ListOffsets: see
``hub.broker.offsets``). A position above it for the grace period is a lost log: the caller
seeks the partition back to its start, as Kafka's answer would have, and logs it. Everything
after is read again; the hub's ids are deterministic and its stores idempotent, so nothing is
lost or doubled, and nothing valid is skipped.

When: only where the broker is Tansu. ``HubSettings.lost_log_grace`` unset means 1 s
(``GRACE_S``) with the embedded broker ``hub up`` starts, and no watch with Kafka: Kafka's
own answer covers a lost log there, and a new Kafka leader's high watermark can trail its
log for up to ``replica.lag.time.max.ms`` (30 s by default; a fetch between the two is
answered empty, without error), so a watch could take a healthy partition for a lost one
and read its whole history again. A hub on a Tansu it did not start (the tests' brokers)
sets the grace itself; an SDK client watches only with ``HUB_LOST_LOG_GRACE`` set.

Users, each a long-running consumer that commits offsets in a group, where a record skipped
is a delivery lost (each says why reading again is safe for it):

- the router workers' fetch loop (``hub.agents.transport._Consumer``, through faust's
  consumer thread, dropping faust's offset bookkeeping of the partition as a revoke does);
- the audit sink (``hub.agents.sink.run_audit_sink``: the store keeps each record once);
- the SDK's ``HubClient.deliveries`` (a recipient's group on ``hub.out.<party>``: the inbox
  skips ids it holds; a read without ``follow`` does not stop while past the end,
  ``beyond_the_end``);
- the webhook dispatcher (``hub.webhooks.dispatcher``, group ``hub-webhook.<party>``: a
  delivery posted again keeps its ``webhook-id``, which receivers drop);
- the federation link (``hub.federation.link.run_link``, group ``link_group(peer)``: its
  event-id log skips what was forwarded already).

The raw aiokafka loops share ``rewind_lost_logs``, called on every turn of the loop.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hub.errors import ConfigError

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

__all__ = [
    "CHECK_EVERY_S",
    "GRACE_ENV",
    "GRACE_S",
    "Beyond",
    "LostLogWatch",
    "beyond_the_end",
    "default_grace",
    "offsets_of",
    "rewind_lost_logs",
]

#: the grace with the embedded broker ``hub up`` starts, when none is set: short, because
#: Tansu has no replicas (its high watermark is its log's end, and aiokafka takes it only from
#: an answer at the consumer's position) and because a new log that grows past the stale
#: position within the grace hides the loss (its records below that position are never read)
GRACE_S = 1.0
#: the environment variable that sets it (``HubSettings.lost_log_grace`` for the hub's own
#: processes; ``hub up`` passes it on; an SDK client reads it itself)
GRACE_ENV = "HUB_LOST_LOG_GRACE"


def default_grace() -> float | None:
    """``HUB_LOST_LOG_GRACE`` if set, else None: no watch (an SDK client's default).

    Raises:
        ConfigError: the variable is set but not a number of seconds above 0.
    """
    text = os.environ.get(GRACE_ENV)
    if text is None or not text.strip():
        return None
    try:
        grace = float(text)
    except ValueError:
        grace = -1.0
    if not grace > 0:
        raise ConfigError(f"{GRACE_ENV}: expected seconds above 0, got {text!r}")
    return grace


#: how often an idle consumer looks (the check reads in-memory state only)
CHECK_EVERY_S = 1.0


@dataclass(frozen=True)
class Beyond:
    """A partition whose position lies beyond its log's end."""

    position: int
    high_watermark: int


class LostLogWatch:
    """Which partitions have stayed positioned past their log's end for the grace period."""

    def __init__(
        self,
        *,
        grace: float | None = None,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``grace`` None: the watch is off; ``every`` defaults to a second, or the grace if less.

        Off, it never looks and finds nothing. Off is the default on Kafka, which answers a
        fetch past a log's end with ``OFFSET_OUT_OF_RANGE`` itself, and where a new leader's
        high watermark can trail its log for up to ``replica.lag.time.max.ms`` (30 s): a
        watch there could take a healthy partition for a lost one and read its whole history
        again.
        """
        self._grace = grace
        self._every = every if every is not None else min(CHECK_EVERY_S, grace or CHECK_EVERY_S)
        self._clock = clock
        self._since: dict[Any, float] = {}
        self._last = clock()

    @property
    def on(self) -> bool:
        """Whether the watch looks at all (a grace was given)."""
        return self._grace is not None

    def due(self) -> bool:
        """Whether a look is due (at most one every ``every`` seconds; never when off)."""
        return self._grace is not None and self._clock() - self._last >= self._every

    def observe(self, offsets: Mapping[Any, tuple[int | None, int | None]]) -> dict[Any, Beyond]:
        """The partitions past their log's end for ``grace`` seconds now; forget the rest.

        ``offsets`` maps each assigned partition to (position, high watermark), either None
        while unknown (no position yet, no fetch answered since the assignment).
        """
        now = self._clock()
        self._last = now
        if self._grace is None:
            return {}
        beyond = _beyond(offsets)
        self._since = {tp: self._since.get(tp, now) for tp in beyond}
        return {tp: b for tp, b in beyond.items() if now - self._since[tp] >= self._grace}

    def rewound(self, tps: Iterable[Any]) -> None:
        """The caller sought these back to their start: watch them afresh."""
        for tp in tps:
            self._since.pop(tp, None)


def offsets_of(consumer: Any) -> dict[Any, tuple[int | None, int | None]]:
    """(position, high watermark) of each partition assigned to an ``AIOKafkaConsumer``.

    Read from its subscription state, without a request: ``position()`` would wait for a
    partition whose position is being reset, and this runs on every idle look.
    """
    subscription = consumer._subscription  # aiokafka 0.14: SubscriptionState
    assignment = subscription.subscription.assignment if subscription.subscription else None
    out: dict[Any, tuple[int | None, int | None]] = {}
    for tp in consumer.assignment():
        state = assignment.state_value(tp) if assignment is not None else None
        if state is None:
            continue
        position = state.position if state.has_valid_position else None
        out[tp] = (position, state.highwater)
    return out


def _beyond(offsets: Mapping[Any, tuple[int | None, int | None]]) -> dict[Any, Beyond]:
    return {
        tp: Beyond(position, high)
        for tp, (position, high) in offsets.items()
        if position is not None and high is not None and position > high
    }


def beyond_the_end(consumer: Any) -> dict[Any, Beyond]:
    """The partitions of an ``AIOKafkaConsumer`` positioned past their log's end now.

    No grace: for a reader that stops once it has reached the end (``HubClient.deliveries``
    without ``follow``): a position past the end is not the end, it must wait for the
    watch to rewind it (or, on Kafka, for the fetch's ``OFFSET_OUT_OF_RANGE`` reset).
    """
    return _beyond(offsets_of(consumer))


def rewind_lost_logs(
    consumer: Any, watch: LostLogWatch, *, log: FilteringBoundLogger
) -> dict[Any, Beyond]:
    """Seek each partition of an ``AIOKafkaConsumer`` found past its log's end back to 0.

    For a raw aiokafka fetch loop, called on every turn, busy or idle: it looks only when
    ``watch`` says a look is due (once a second), from the consumer's in-memory state. What
    it finds is logged by topic, partition and offsets (never a record) and returned; the
    messages written since the broker lost the log are read from the start, so the caller's
    handling must be idempotent (each user's docstring says how it is).
    """
    if not watch.due():
        return {}
    lost = watch.observe(offsets_of(consumer))
    for tp, beyond in lost.items():
        log.error(
            "log_lost_under_position",
            topic=tp.topic,
            partition=tp.partition,
            position=beyond.position,
            high_watermark=beyond.high_watermark,
        )
        consumer.seek(tp, 0)
    watch.rewound(lost)
    return lost
