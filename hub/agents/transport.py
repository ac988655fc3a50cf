"""faust's Kafka transport with the hub's fetch wait (``hub.broker.fetch``).

faust 0.15 builds its worker consumer with ``fetch_max_wait_ms=1500`` and no setting to
change it. On the embedded broker that is up to 1.5 s on every event before the router even
sees it (``hub.broker.fetch``). ``HubApp`` is ``faust.App`` with this transport; nothing
else differs, except that building the transport installs the hub's decode guard
(``hub.broker.decode_guard``): a record aiokafka cannot decode reaches the router marked, to
be quarantined, instead of crashing the worker's fetcher. The guard is process-wide, so it
covers the audit sink's consumer in the same worker too.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver

from hub.broker import decode_guard
from hub.broker.fetch import FETCH_WAIT_MS

__all__ = ["HubApp"]


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its fetcher at start(); faust passed 1500 to the constructor
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(driver.Transport):
    Consumer = _Consumer


class HubApp(faust.App):
    """``faust.App`` whose consumer waits at most ``FETCH_WAIT_MS`` for a fetch."""

    def _new_transport(self) -> Any:
        decode_guard.install()  # before the consumer's first fetch
        return _Transport(self.conf.broker_consumer, self)
