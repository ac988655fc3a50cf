"""What the hub knew about its broker's inbound topics, and what a broker loss cost.

The embedded broker (``hub.broker.embedded``) keeps everything in memory: when its process
dies, every record on it goes too, decided or not. ``hub up`` restarts it on the same port
(``hub.agents.supervisor``) and then says what was lost, from two views kept while it ran:

- its own (``BrokerWatch``): once a second, each ``hub.in.*`` partition's end offset and the
  router group's committed offset, as the broker reported them;
- each worker's (``WorkerSnapshot``, written once a second by ``hub.agents.health``): the
  same two offsets as the worker saw them, the offsets its router had decided but not yet
  committed, and the events its router had fetched and not yet decided, by id.

For each partition, the offsets from the committed one up to the end one existed and were
never committed. Those a worker had decided, or whose decision is in the audit store, were
not lost; the rest are (``count_losses``). They are logged (``events_lost``, one line per
partition: its range and count, and the ids that can be listed) and counted for the
``hub_events_lost`` metric (``LostTotals``, a file in the data dir the workers read).

What can be listed by id, honestly: only events a router had fetched and not decided when
its last snapshot was written (at most a second before the broker died). Events still in the
fetcher's buffers, or published after the last look, were never read by the hub: their
offsets are counted, their ids were never known, and only their publishers can tell which
they were (each publisher holds the broker's acknowledgement of every event it published).
An event a worker had decided (every output acknowledged by the broker) counts as decided
even if the audit sink had not stored its records when the broker died: getting those
records into the store is the router's audit path's job, not this count's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.broker.security import KafkaSecurity
from hub.broker.topics import INBOUND_PREFIX
from hub.log import get_logger

__all__ = [
    "ROUTER_GROUP",
    "BrokerWatch",
    "LostTotals",
    "PartitionLoss",
    "PartitionView",
    "WorkerSnapshot",
    "count_losses",
    "lost_path",
    "read_snapshots",
    "snapshot_path",
    "view_path",
    "write_json",
]

_log = get_logger("broker_watch")

#: the router workers' consumer group (``hub.agents.app.create_app``'s app id)
ROUTER_GROUP = "hub-router"
#: how long one look at the broker may take before it counts as no answer
PROBE_TIMEOUT_S = 2.0


def snapshot_path(data_dir: Path, pid: int) -> Path:
    """Where worker ``pid`` writes its ``WorkerSnapshot`` once a second."""
    return data_dir / "workers" / f"{pid}.offsets.json"


def lost_path(data_dir: Path) -> Path:
    """The ``LostTotals`` file (events lost with the broker, per inbound topic)."""
    return data_dir / "events-lost.json"


def view_path(data_dir: Path) -> Path:
    """Where ``BrokerWatch`` writes its last look at the broker."""
    return data_dir / "broker-view.json"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (a reader never sees half a file), mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, separators=(",", ":"))
    os.replace(tmp, path)


@dataclass(frozen=True)
class PartitionView:
    """One inbound partition as last seen: its end offset and the router's committed one."""

    end: int
    committed: int


@dataclass
class WorkerSnapshot:
    """A worker's view of the partitions it owns, written by ``hub.agents.health``.

    Keys are ``topic/partition``. ``decided`` holds offsets the router acked (every output on
    the broker) above the committed offset; ``fetched`` the events it held undecided, as
    ``offset -> (source, id)`` (the id is empty for a record whose headers it cannot read).
    """

    views: dict[str, PartitionView] = field(default_factory=dict)
    decided: dict[str, list[int]] = field(default_factory=dict)
    fetched: dict[str, dict[int, tuple[str, str]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The file format (offsets as JSON lists)."""
        return {
            "views": {k: [v.end, v.committed] for k, v in self.views.items()},
            "decided": {k: _ranges(v) for k, v in self.decided.items() if v},
            "fetched": {
                k: [[o, s, i] for o, (s, i) in sorted(v.items())]
                for k, v in self.fetched.items()
                if v
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerSnapshot:
        """Parse the file format."""
        return cls(
            views={k: PartitionView(int(e), int(c)) for k, (e, c) in data["views"].items()},
            decided={
                k: [o for a, b in v for o in range(int(a), int(b) + 1)]
                for k, v in data.get("decided", {}).items()
            },
            fetched={
                k: {int(o): (str(s), str(i)) for o, s, i in v}
                for k, v in data.get("fetched", {}).items()
            },
        )


def _grown(
    old: Mapping[str, PartitionView], new: Mapping[str, PartitionView]
) -> dict[str, PartitionView]:
    """``new``, each offset no lower than in ``old`` (offsets only grow on one broker)."""
    out = dict(new)
    for key, was in old.items():
        now = out.get(key)
        out[key] = (
            was
            if now is None
            else PartitionView(max(now.end, was.end), max(now.committed, was.committed))
        )
    return out


def _ranges(offsets: Iterable[int]) -> list[list[int]]:
    """Sorted offsets as inclusive ``[first, last]`` runs (a busy second is a few runs)."""
    out: list[list[int]] = []
    for offset in sorted(set(offsets)):
        if out and out[-1][1] == offset - 1:
            out[-1][1] = offset
        else:
            out.append([offset, offset])
    return out


def read_snapshots(directory: Path, *, remove: bool = False) -> list[WorkerSnapshot]:
    """Every worker snapshot in ``directory`` (``*.offsets.json``); unreadable ones skipped."""
    found: list[WorkerSnapshot] = []
    for path in sorted(directory.glob("*.offsets.json")) if directory.exists() else ():
        try:
            found.append(WorkerSnapshot.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _log.warning("worker_snapshot_unreadable", path=str(path), error=repr(exc))
        if remove:
            path.unlink(missing_ok=True)
    return found


@dataclass(frozen=True)
class PartitionLoss:
    """Offsets of one partition known to have existed and never decided."""

    topic: str
    partition: int
    first: int
    last: int
    count: int
    #: ``(offset, source, id)`` of the lost events the hub had fetched (the rest: unlisted)
    listed: tuple[tuple[int, str, str], ...]

    @property
    def unlisted(self) -> int:
        """Lost events whose ids the hub never read."""
        return self.count - len(self.listed)


def count_losses(
    broker: Mapping[str, PartitionView],
    snapshots: Sequence[WorkerSnapshot],
    *,
    decided: Callable[[str, str], bool],
) -> list[PartitionLoss]:
    """Per inbound partition, what existed beyond the committed offset and was not decided.

    Args:
        broker: the supervisor's last look at the broker (``BrokerWatch.last``).
        snapshots: the workers' last snapshots.
        decided: whether the audit store holds a decision about ``(source, id)``.
    """
    keys = set(broker).union(*(s.views for s in snapshots))
    losses: list[PartitionLoss] = []
    for key in sorted(keys):
        views = [broker[key]] if key in broker else []
        views += [s.views[key] for s in snapshots if key in s.views]
        end = max(v.end for v in views)
        committed = max(v.committed for v in views)
        if end <= committed:
            continue
        done = {o for s in snapshots for o in s.decided.get(key, ())}
        fetched: dict[int, tuple[str, str]] = {}
        for snapshot in snapshots:
            fetched.update(snapshot.fetched.get(key, {}))
        listed: list[tuple[int, str, str]] = []
        lost = 0
        for offset in range(committed, end):
            if offset in done:
                continue
            event = fetched.get(offset)
            if event is not None and event[1] and decided(*event):
                continue
            lost += 1
            if event is not None:
                listed.append((offset, *event))
        if lost:
            topic, _, partition = key.rpartition("/")
            losses.append(
                PartitionLoss(topic, int(partition), committed, end - 1, lost, tuple(listed))
            )
    return losses


class LostTotals:
    """Events lost with the broker, per inbound topic, over the life of the data dir.

    ``hub up`` adds to it after a broker restart; each worker reads it for the
    ``hub_events_lost`` metric, so the count survives the workers restarted with the broker.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._cached: dict[str, int] = {}

    def read(self) -> dict[str, int]:
        """The totals (read again only when the file changed)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                self._cached = {
                    str(k): int(v) for k, v in json.loads(self.path.read_text()).items()
                }
            except (OSError, ValueError, AttributeError):
                return self._cached
            self._stamp = stamp
        return dict(self._cached)

    def add(self, losses: Iterable[PartitionLoss]) -> dict[str, int]:
        """Add these losses; returns the new totals."""
        totals = self.read()
        for loss in losses:
            totals[loss.topic] = totals.get(loss.topic, 0) + loss.count
        write_json(self.path, totals)
        return totals


class BrokerWatch:
    """``hub up``'s own look at the broker, once a second, on a thread of its own.

    Reads each ``hub.in.*`` partition's end offset and the router group's committed offset
    (``last``) and writes them to ``path`` for operators. A look that fails (the broker
    is gone) keeps the previous one: the last view before a loss is what the loss is
    counted from. Within one broker's life both offsets only grow, so each is kept at the
    highest seen: Tansu 0.6 answers 0 for the committed offsets of a group whose members have
    all timed out (a worker frozen or dead), which is the broker forgetting, not the router
    going back.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        path: Path,
        security: KafkaSecurity | None = None,
        interval: float = 1.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.path = path
        self.security = security or KafkaSecurity()
        self.interval = interval
        self._last: dict[str, PartitionView] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="hub-broker-watch", daemon=True)

    @property
    def last(self) -> dict[str, PartitionView]:
        """The last view the broker gave (``topic/partition`` keys)."""
        with self._lock:
            return dict(self._last)

    def start(self) -> None:
        """Start looking."""
        self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> dict[str, PartitionView]:
        """Stop looking; returns the last view."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        return self.last

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.admin import AIOKafkaAdminClient

        kafka = self.security.client_kwargs()
        # in the router's group only to read its committed offsets: it never subscribes, so
        # it never joins (aiokafka's admin OffsetFetch is a version Tansu 0.6 cannot answer)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=ROUTER_GROUP,
            enable_auto_commit=False,
            **kafka,
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **kafka)
        try:
            await asyncio.wait_for(asyncio.gather(consumer.start(), admin.start()), 10.0)
            while not self._stop.is_set():
                try:
                    view = await asyncio.wait_for(self._look(consumer, admin), PROBE_TIMEOUT_S)
                except Exception as exc:  # no answer: keep the last view
                    _log.debug("broker_look_failed", error=repr(exc))
                else:
                    with self._lock:
                        self._last = _grown(self._last, view)
                        view = dict(self._last)
                    with contextlib.suppress(OSError):
                        write_json(self.path, {k: [v.end, v.committed] for k, v in view.items()})
                await asyncio.to_thread(self._stop.wait, self.interval)
        except Exception as exc:  # the hub runs on; the next restart starts a new watch
            _log.warning("broker_watch_failed", error=repr(exc))
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 5.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(admin.close(), 5.0)

    async def _look(self, consumer: Any, admin: Any) -> dict[str, PartitionView]:
        from aiokafka import TopicPartition

        described = await admin.describe_topics(None)  # one metadata request, every topic
        tps = [
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if t["topic"].startswith(INBOUND_PREFIX)
            for p in t["partitions"]
        ]
        ends = await consumer.end_offsets(tps) if tps else {}
        # every partition in one OffsetFetch (``consumer.committed`` asks one at a time)
        offsets = await consumer._coordinator.fetch_committed_offsets(tps) if tps else {}
        committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
        return {
            f"{tp.topic}/{tp.partition}": PartitionView(int(end), int(committed.get(tp, 0)))
            for tp, end in ends.items()
        }
