"""The link to a peer hub: this hub's deliveries to the peer, carried to the peer's broker.

The router seals each delivery a rule addresses to a peer to the peer hub's pinned key and
signs it with this hub's key, on ``hub.out.<peer>`` like any party's. The link reads that
topic on this hub's broker and writes each record, byte for byte (key, value, headers), to
``hub.in.<hub_id>`` on the *peer's* broker, where the peer's router opens it as an event from
this hub (``hub.federation.inbound``). The two brokers may be different Kafka clusters.

- It never decrypts: it holds no key that could (the payload is sealed to the peer).
- At least once: the consumer's offsets are committed only after the peer's broker has
  acknowledged every record of the batch (``acks=all``); a link killed in between sends the
  batch again when restarted.
- Idempotent by event id: each record forwarded is remembered by its event (source and id,
  ``hub.models.event_key``) in ``<data_dir>/federation/<peer>.sqlite3`` once the peer's
  broker acknowledged it, and a record already forwarded is not sent again; one whose
  acknowledgement came just before a crash may still be sent twice, and the peer's router
  refuses the second copy as a duplicate event id (it never routes an event twice).
- A record on the topic not sealed to the peer (``ce_hubrecipient``) is not forwarded: it is
  logged by event id and skipped (nothing else writes there but this hub's router).
- Nor are this hub's signed audit checkpoints (``uk.csp.audit.checkpoint.v1``, which the
  audit sink delivers to every party): the peer's protocol has no rule for them. What the
  peer needs of this log travels as ``uk.csp.marac.transfer.proof.v1`` instead: the
  hand-over record, its inclusion proof and the checkpoint (``hub.federation.proofs``).
- A committed offset past the end of a partition's log (this hub's broker lost its records:
  ``hub.broker.lost_log``) is read from the start after the watch's grace period, as Kafka's
  ``OFFSET_OUT_OF_RANGE`` would do: on the embedded broker the link waited there for good
  and the deliveries below it never reached the peer. What is read again and was forwarded
  already is skipped by the event-id log above.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.broker import topics
from hub.broker.lost_log import LostLogWatch, rewind_lost_logs
from hub.broker.security import KafkaSecurity
from hub.errors import BrokerError
from hub.log import get_logger
from hub.models import event_key

__all__ = ["ForwardedLog", "LinkStats", "link_group", "run_link"]

_log = get_logger("federation")
_MAX_RECORDS = 500
#: the audit sink's checkpoint deliveries (``hub.agents.sink``): not carried to a peer
CHECKPOINT_TYPE = "uk.csp.audit.checkpoint.v1"


def link_group(peer: str) -> str:
    """The consumer group of the link to ``peer`` (its committed offsets are its progress)."""
    return topics.federation_group(peer)


class ForwardedLog:
    """Event keys already forwarded to a peer (SQLite; one file per peer)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS forwarded (event_key TEXT PRIMARY KEY, topic TEXT, "
            "partition INTEGER, offset INTEGER)"
        )

    def seen(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` were forwarded already."""
        wanted = list(keys)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT event_key FROM forwarded WHERE event_key IN ({marks})",  # noqa: S608 - placeholders only
                chunk,
            )
            found.update(row[0] for row in rows)
        return found

    def add(self, rows: Sequence[tuple[str, str, int, int]]) -> None:
        """Remember (event key, topic, partition, offset) of records the peer acknowledged."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR IGNORE INTO forwarded VALUES (?, ?, ?, ?)", rows)

    def count(self) -> int:
        """How many events were forwarded."""
        (n,) = self._db.execute("SELECT COUNT(*) FROM forwarded").fetchone()
        return int(n)

    def close(self) -> None:
        """Close the database."""
        self._db.close()


@dataclass
class LinkStats:
    """What the link did since it started."""

    forwarded: int = 0
    already_forwarded: int = 0
    not_for_peer: int = 0
    checkpoints: int = 0


def _header(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    for key, value in headers:
        if key == name and value is not None:
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None


async def run_link(
    *,
    peer: str,
    hub_id: str,
    bootstrap: str,
    peer_bootstrap: str,
    forwarded: ForwardedLog,
    security: KafkaSecurity | None = None,
    peer_security: KafkaSecurity | None = None,
    stop: asyncio.Event | None = None,
    stats: LinkStats | None = None,
    between_halves: Callable[[int, int], Awaitable[None]] | None = None,
    session_timeout: float = 10.0,
    lost_log_grace: float | None = None,
) -> LinkStats:
    """Carry ``hub.out.<peer>`` here to ``hub.in.<hub_id>`` on the peer's broker until ``stop``.

    Args:
        peer: the peer's party id in this hub's protocol.
        hub_id: this hub's party id in the peer's protocol (``protocol.hub_id``).
        bootstrap: this hub's broker.
        peer_bootstrap: the peer hub's broker.
        forwarded: the event keys already forwarded (``ForwardedLog``).
        security: this hub's Kafka client security.
        peer_security: the peer broker's Kafka client security.
        stop: set to stop after the batch in hand.
        stats: counters to update (a new one if None).
        between_halves: for fault tests: each batch of two or more records is sent in two
            halves, and this is awaited with (records sent, batch size) once the peer's
            broker acknowledged the first half, before anything is remembered or committed
            (a test kills the link there: the cut always falls inside a batch).
        session_timeout: seconds the consumer group on this hub's broker waits for a silent
            link before its partitions go to the next one (``HUB_SESSION_TIMEOUT``, as for
            the router workers; 10 s is aiokafka's default). A restarted link waits that
            long for them after a crash, and the embedded broker answers a join after half.
        lost_log_grace: seconds a partition may stay past its log's end before it is read
            again from its start (``HubSettings.lost_log_grace``; None: no watch).

    Raises:
        BrokerError: either broker could not be reached.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.errors import KafkaError

    stats = stats or LinkStats()
    stop = stop or asyncio.Event()
    source = topics.outbound(peer)
    target = topics.inbound(hub_id)
    # before the clients: a bad HUB_LOST_LOG_GRACE (ConfigError) must not leave them open
    watch = LostLogWatch(grace=lost_log_grace)
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=link_group(peer),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(session_timeout * 1000),
        # aiokafka's 3 s, or a third of a shorter session: a few beats per session
        heartbeat_interval_ms=int(min(3.0, session_timeout / 3) * 1000),
        **(security or KafkaSecurity()).client_kwargs(),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=peer_bootstrap,
        acks="all",
        # no idempotent producer: the embedded broker does not grant producer ids, and the
        # event-id log and the peer's duplicate check already keep an event from repeating
        **(peer_security or KafkaSecurity()).client_kwargs(),
    )
    try:
        await consumer.start()
        await producer.start()
    except KafkaError as exc:
        await consumer.stop()
        await producer.stop()
        raise BrokerError(
            f"federation link to {peer}: expected brokers at {bootstrap} and {peer_bootstrap}, "
            f"got {type(exc).__name__}: {exc}"
        ) from exc
    _log.info("link_started", peer=peer, source=source, target=target)
    try:
        while not stop.is_set():
            rewind_lost_logs(consumer, watch, log=_log)  # at most once a second, busy or idle
            batch = await consumer.getmany(timeout_ms=500, max_records=_MAX_RECORDS)
            records = [r for part in batch.values() for r in part]
            if not records:
                continue
            await _forward(
                records,
                producer,
                target=target,
                peer=peer,
                log=forwarded,
                stats=stats,
                between_halves=between_halves,
            )
            await consumer.commit()
    except KafkaError as exc:
        # offsets move only past what the peer's broker acknowledged: a restart resumes
        raise BrokerError(
            f"federation link to {peer}: expected both brokers to answer, got "
            f"{type(exc).__name__}: {exc}; restart the link: it resumes after the last "
            "batch the peer's broker acknowledged"
        ) from exc
    finally:
        try:
            await consumer.stop()
        finally:  # the producer is closed even when the consumer's stop fails or is cancelled
            await producer.stop()
        _log.info("link_stopped", peer=peer, forwarded=stats.forwarded)
    return stats


async def _forward(
    records: list[Any],
    producer: Any,
    *,
    target: str,
    peer: str,
    log: ForwardedLog,
    stats: LinkStats,
    between_halves: Callable[[int, int], Awaitable[None]] | None = None,
) -> None:
    """Send a batch to the peer's broker, wait for every acknowledgement, remember it."""
    keyed: list[tuple[str, Any]] = []
    for record in records:
        headers = list(record.headers or ())
        recipient = _header(headers, "ce_hubrecipient")
        source, event_id = _header(headers, "ce_source"), _header(headers, "ce_id")
        if recipient != peer or source is None or event_id is None:
            stats.not_for_peer += 1
            _log.warning(
                "link_skipped",
                peer=peer,
                event_id=event_id,
                recipient=recipient,
                offset=record.offset,
            )
            continue
        if _header(headers, "ce_type") == CHECKPOINT_TYPE:
            stats.checkpoints += 1
            continue
        keyed.append((event_key(source, event_id), record))
    done = log.seen(k for k, _ in keyed)
    fresh = [(k, r) for k, r in keyed if k not in done]
    stats.already_forwarded += len(keyed) - len(fresh)
    # one send per record, then wait for them all: the producer batches them per partition
    halves = (
        [fresh[: len(fresh) // 2], fresh[len(fresh) // 2 :]]
        if between_halves is not None and len(fresh) >= 2
        else [fresh]
    )
    for number, part in enumerate(halves):
        futures = [
            await producer.send(target, key=r.key, value=r.value, headers=list(r.headers or ()))
            for _, r in part
        ]
        await asyncio.gather(*futures)
        if between_halves is not None and number == 0 and len(halves) == 2:
            await between_halves(len(part), len(fresh))
    log.add([(k, r.topic, r.partition, r.offset) for k, r in fresh])
    stats.forwarded += len(fresh)
    if fresh:
        _log.info("link_forwarded", peer=peer, records=len(fresh))
