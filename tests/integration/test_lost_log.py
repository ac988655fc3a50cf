"""A committed offset past the end of a partition's log (the broker lost it) is read from 0.

``hub.broker.lost_log``: after the embedded broker restarts empty, a worker acknowledging
what it fetched before commits offsets the new log never reached. Kafka answers a fetch from
there with ``OFFSET_OUT_OF_RANGE`` and the consumer starts again from the earliest offset;
Tansu answers with nothing, and the events published after the restart, below that offset,
were never routed. Here the group's committed offsets are put past the log's end directly
(as the restarted broker was left), and the events published after must all be handled: by
each consumer group that commits, the router's, the audit sink's, a recipient's own (the
SDK), the webhook dispatcher's and the federation link's.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from structlog.testing import capture_logs

from hub.agents.sink_worker import SINK_GROUP
from hub.broker import EmbeddedBroker, topics
from hub.broker.lost_log import GRACE_ENV
from hub.client import HubClient
from hub.federation.link import link_group
from hub.settings import HubSettings, default_protocol_path
from hub.webhooks import WebhookConfig
from tests.conftest import RunningHub, event_ids_on, start_hub, unique, wait_for
from tests.factories import MARAC_RAISED, marac_flag
from tests.integration.test_federation import SOUTH_PROTOCOL, _export, _hub_keys, _pin

pytestmark = pytest.mark.integration

PUBLISHER = "marac.north-worcs"
#: a recipient of the publisher's flags (``hub.out.west-mercia-police``)
RECIPIENT = "west-mercia-police"
PAST_THE_END = 1000
#: past the end of a topic of the session's shared hub, whatever the tests before wrote
FAR_PAST_THE_END = 10**9
_LOST_FIELDS = {"topic", "partition", "position", "high_watermark"}


def _commit_all_past_the_end(bootstrap: str, groups: dict[str, str]) -> set[str]:
    """Commit ``PAST_THE_END`` for every partition of each group's topic; the groups that took it.

    As a member of each group (the embedded broker takes commits from members only), which
    it joins once the killed member's session has expired, and leaves again; the groups are
    joined at once, so their waits overlap.
    """

    async def one(group: str, topic: str) -> bool:
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

    async def run() -> set[str]:
        took = await asyncio.gather(*(one(g, t) for g, t in groups.items()))
        return {group for group, ok in zip(groups, took, strict=True) if ok}

    return asyncio.run(run())


def _commit_assigned_past_the_end(bootstrap: str, group: str, topic: str) -> None:
    """Commit ``FAR_PAST_THE_END`` for every partition of ``topic`` in ``group``, assigned.

    As ``HubClient.deliveries`` commits: its consumer assigns its partitions itself and joins
    no group, and the embedded broker takes such commits at once.
    """

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            assert tps, f"{topic}: no partitions"
            consumer.assign(tps)
            await consumer.commit({tp: OffsetAndMetadata(FAR_PAST_THE_END, "") for tp in tps})
            assert [await consumer.committed(tp) for tp in tps] == [FAR_PAST_THE_END] * len(tps)
        finally:
            await consumer.stop()

    asyncio.run(run())


def _read_until(hub: RunningHub, group: str, ids: list[str], *, follow: bool) -> set[str]:
    """The ids of ``ids`` that ``RECIPIENT``'s ``deliveries`` in ``group`` yields.

    Without ``follow`` (``hub consume``'s read, in publish order): what one read to the end
    yields. With it (a recipient's service loop): read until every id came, for at most 60 s.
    """

    async def run() -> set[str]:
        seen: set[str] = set()
        async with HubClient(
            RECIPIENT, bootstrap=hub.bootstrap, keys=hub.keys, group_id=group
        ) as client:
            deliveries = client.deliveries(follow=follow, ordered=not follow, poll_timeout=0.2)
            try:
                async with asyncio.timeout(60):
                    async for delivery in deliveries:
                        seen.add(delivery.id)
                        if follow and set(ids) <= seen:
                            break
            except TimeoutError:
                pass  # the caller's assertion names what never came
            finally:
                await deliveries.aclose()
        return seen & set(ids)

    return asyncio.run(run())


@pytest.mark.parametrize("follow", [False, True], ids=["read-to-the-end", "follow"])
def test_deliveries_below_a_committed_offset_past_the_end_reach_the_recipient(
    hub: RunningHub, follow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recipient's own group (``HubClient.deliveries``): without the rewind a read to the
    end stopped at once with nothing (its position was already past the end offset), and a
    following one waited for good."""
    monkeypatch.setenv(GRACE_ENV, "0.5")  # the rewind's wait, not what is tested
    group = unique("test-lost-log")
    _commit_assigned_past_the_end(hub.bootstrap, group, topics.outbound(RECIPIENT))
    ids = [hub.publish(PUBLISHER, MARAC_RAISED, marac_flag(unique("MARAC"))) for _ in range(3)]
    wait_for(
        lambda: set(ids) <= set(event_ids_on(hub.bootstrap, topics.outbound(RECIPIENT))),
        timeout=60,
        what=f"the events on {topics.outbound(RECIPIENT)}",
    )
    with capture_logs() as logs:
        assert _read_until(hub, group, ids, follow=follow) == set(ids)
    lost = [e for e in logs if e["event"] == "log_lost_under_position"]
    assert lost, "the rewind was not logged"
    # by topic, partition and offsets only: nothing of a record
    assert set(lost[0]) == {"event", "log_level", "component", *_LOST_FIELDS}
    assert lost[0]["topic"] == topics.outbound(RECIPIENT)
    assert lost[0]["position"] == FAR_PAST_THE_END


class _Endpoint:
    """A webhook endpoint that accepts every POST and keeps its ``webhook-id`` (event id)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.ids.add(self.headers["webhook-id"])
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def endpoint() -> Iterator[_Endpoint]:
    served = _Endpoint()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()
    thread.join(timeout=10)


def test_every_group_of_a_hub_reads_again_below_offsets_past_the_end(
    tmp_path: Path, endpoint: _Endpoint
) -> None:
    """The hub's own groups, as a broker that restarted empty leaves them all at once: the
    router's (``hub-router``), the audit sink's, the webhook dispatcher's and the federation
    link's. Without the rewind, the router routed none of the events below its committed
    offsets, the store never got their records (the outbox's re-sends land below the sink's
    offsets too, so delivery stayed paused), and neither the dispatcher nor the link passed
    on anything. The peer is a broker alone: the link's work ends on its ``hub.in.<hub_id>``.
    """
    data_dir = tmp_path / "north"
    WebhookConfig(data_dir / "webhooks.json").add(RECIPIENT, endpoint.url)
    north_keys = _hub_keys(HubSettings(data_dir=data_dir).keys_dir, default_protocol_path())
    _pin(north_keys, "swcsp-hub", _export(_hub_keys(tmp_path / "south-keys", SOUTH_PROTOCOL)))
    inbound = topics.inbound("nwcsp-hub")  # the North as the South's protocol names it

    def flag() -> str:
        return hub.publish(PUBLISHER, MARAC_RAISED, marac_flag(unique("MARAC")))

    def transfer() -> str:
        case = unique("MARAC-LOST")
        moved = marac_flag(case, district="wychavon")  # now in the South's area
        return hub.publish(PUBLISHER, MARAC_RAISED, moved, key=case)

    with EmbeddedBroker() as broker, EmbeddedBroker() as peer_broker:
        asyncio.run(topics.ensure_topics(peer_broker.bootstrap, [inbound], partitions=1))
        hub = start_hub(
            broker.bootstrap,
            data_dir,
            audit_sink="process",
            federation_links=f"swcsp-hub={peer_broker.bootstrap}",
            lost_log_grace=0.5,  # the rewind's wait, not what is tested
        )
        try:
            warm, warm_transfer = flag(), transfer()
            wait_for(lambda: warm in endpoint.ids, timeout=60, what="the warm event's POST")
            wait_for(
                lambda: warm_transfer in event_ids_on(peer_broker.bootstrap, inbound),
                timeout=60,
                what="the warm transfer at the peer's broker",
            )
            dispatcher, link = hub.supervisor.webhooks, hub.supervisor.links["swcsp-hub"]
            assert dispatcher is not None
            hub.supervisor.kill_worker(0)
            hub.supervisor.kill_sink()
            for proc in (dispatcher, link):
                proc.kill()
                proc.wait(timeout=30)
            groups = {
                "hub-router": topics.inbound(PUBLISHER),
                SINK_GROUP: topics.AUDIT,
                f"hub-webhook.{RECIPIENT}": topics.outbound(RECIPIENT),
                link_group("swcsp-hub"): topics.outbound("swcsp-hub"),
            }

            def all_taken() -> bool:  # each group at once: their members' sessions end together
                taken = _commit_all_past_the_end(broker.bootstrap, groups)
                for group in taken:
                    del groups[group]
                return not groups

            wait_for(
                all_taken,
                timeout=60,
                what=f"groups {sorted(groups)}, their members gone, to take offsets past the end",
            )
            ids = [flag() for _ in range(3)]
            moved = [transfer() for _ in range(3)]
            hub.supervisor.start_sink()
            hub.supervisor.start_worker()
            assert hub.supervisor.heal()  # the dispatcher and the link, restarted
            wait_for(
                lambda: hub.decided(ids + moved) == len(ids + moved),
                timeout=60,
                what="the events routed and their audit records stored",
            )
            wait_for(lambda: set(ids) <= endpoint.ids, timeout=60, what="the events' POSTs")
            wait_for(
                lambda: set(moved) <= set(event_ids_on(peer_broker.bootstrap, inbound)),
                timeout=60,
                what="the transfers at the peer's broker",
            )
            rewound = {
                json.loads(line)["topic"]
                for line in hub.supervisor.worker_log.read_text().splitlines()
                if '"event": "log_lost_under_position"' in line
            }
            assert rewound == {
                topics.inbound(PUBLISHER),
                topics.AUDIT,
                topics.outbound(RECIPIENT),
                topics.outbound("swcsp-hub"),
            }
        finally:
            hub.supervisor.stop()
