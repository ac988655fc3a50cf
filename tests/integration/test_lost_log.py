"""A committed offset past the end of a partition's log (the broker lost it) is read from 0.

``hub.broker.lost_log``: after the embedded broker restarts empty, a worker acknowledging
what it fetched before commits offsets the new log never reached. Kafka answers a fetch from
there with ``OFFSET_OUT_OF_RANGE`` and the consumer starts again from the earliest offset;
Tansu answers with nothing, and the events published after the restart, below that offset,
were never routed. Here the group's committed offsets are put past the log's end directly
(as the restarted broker was left), and the events published after must all be decided.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from hub.agents.sink_worker import SINK_GROUP
from hub.broker import EmbeddedBroker, topics
from tests.conftest import start_hub, unique, wait_for
from tests.factories import MARAC_RAISED, marac_flag

pytestmark = pytest.mark.integration

PUBLISHER = "marac.north-worcs"
PAST_THE_END = 1000


def _commit_past_the_end(bootstrap: str, group: str, topic: str) -> bool:
    """Commit ``PAST_THE_END`` for every partition of ``topic`` in ``group``; False: refused.

    As a member of the group (the embedded broker takes commits from members only), which
    it joins once the killed worker's session has expired, and leaves again.
    """

    async def run() -> bool:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            for _ in range(100):  # the join completes within the killed member's session
                if set(consumer.assignment()) == set(tps):
                    break
                await asyncio.sleep(0.1)
            await consumer.commit({tp: OffsetAndMetadata(PAST_THE_END, "") for tp in tps})
            return all([await consumer.committed(tp) == PAST_THE_END for tp in tps])
        except KafkaError:
            return False
        finally:
            await consumer.stop()

    return asyncio.run(run())


def test_events_below_a_committed_offset_past_the_end_are_routed(tmp_path: Path) -> None:
    with EmbeddedBroker() as broker:
        hub = start_hub(broker.bootstrap, tmp_path / "data")
        try:
            warm = hub.publish(PUBLISHER, MARAC_RAISED, marac_flag(unique("MARAC")))
            wait_for(lambda: hub.decided([warm]) == 1, timeout=60, what="the warm event")
            hub.supervisor.kill_worker(0)
            wait_for(
                lambda: _commit_past_the_end(
                    broker.bootstrap, "hub-router", topics.inbound(PUBLISHER)
                ),
                timeout=60,
                what="the group, its worker gone, to take offsets past the log's end",
            )
            ids = [
                hub.publish(PUBLISHER, MARAC_RAISED, marac_flag(unique("MARAC"))) for _ in range(4)
            ]
            hub.supervisor.start_worker()
            hub.supervisor.wait_ready(timeout=90)
            wait_for(
                lambda: hub.decided(ids) == len(ids),
                timeout=60,
                what="the events below the committed offsets to be routed",
            )
            assert '"event": "log_lost_under_position"' in hub.supervisor.worker_log.read_text()
        finally:
            hub.supervisor.stop()


def test_audit_messages_below_a_committed_offset_past_the_end_are_stored(
    tmp_path: Path,
) -> None:
    """The audit sink's group: without the rewind, the store never got these records (the
    outbox's re-sends land below the committed offset too) and delivery stayed paused."""
    with EmbeddedBroker() as broker:
        hub = start_hub(broker.bootstrap, tmp_path / "data", audit_sink="process")
        try:
            warm = hub.publish(PUBLISHER, MARAC_RAISED, marac_flag(unique("MARAC")))
            wait_for(lambda: hub.decided([warm]) == 1, timeout=60, what="the warm event")
            hub.supervisor.kill_sink()
            wait_for(
                lambda: _commit_past_the_end(broker.bootstrap, SINK_GROUP, topics.AUDIT),
                timeout=60,
                what="the sink's group, its member gone, to take offsets past the log's end",
            )
            ids = [
                hub.publish(PUBLISHER, MARAC_RAISED, marac_flag(unique("MARAC"))) for _ in range(4)
            ]
            hub.supervisor.start_sink()
            wait_for(
                lambda: hub.decided(ids) == len(ids),
                timeout=60,
                what="the audit records below the committed offsets to be stored",
            )
            assert '"event": "log_lost_under_position"' in hub.supervisor.worker_log.read_text()
        finally:
            hub.supervisor.stop()
