"""``python -m hub.agents.sink_worker``: the audit sink in a process of its own.

``hub up`` starts one (``HUB_AUDIT_SINK=process``, the default) beside the router workers.
Routing and audit writing then no longer share one event loop and one interpreter lock: the
sink's decoding, store transactions and checkpoint signatures used to take about a quarter
of a router worker's time. Several sink processes (one per host of a hub, say) share
``hub.audit``'s partitions in one consumer group. Nothing about the guarantees changes: the
routers watch the store, not the sink (``hub.agents.audit_watch``), so a sink process that
dies, hangs or falls behind pauses delivery at the limit, and ``hub up`` restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from hub.agents.heap import freeze_heap
from hub.agents.sink import serve_audit_sink, sink_factory
from hub.audit.stream import load_audit_stream_key
from hub.envelope.crypto import DataKeyCache
from hub.envelope.party import PartyEnvelope
from hub.errors import ConfigError, HubError
from hub.keys.file_store import FileKeyStore
from hub.keys.model import HUB_PARTY
from hub.log import configure_logging, get_logger
from hub.policies.loader import load_protocol
from hub.private import enter_private
from hub.settings import HubSettings

__all__ = ["SINK_GROUP", "main"]

#: the sink's consumer group: the same one a worker's own sink task would join
SINK_GROUP = "hub-router-audit-sink"

_log = get_logger("audit-sink")


async def _main(settings: HubSettings) -> None:
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        raise ConfigError("audit sink: HUB_KAFKA_BOOTSTRAP must name the broker")
    protocol = load_protocol(settings.protocol)
    envelope = PartyEnvelope(
        HUB_PARTY,
        store=FileKeyStore(settings.keys_dir),
        cache=DataKeyCache(
            max_uses=protocol.crypto.max_data_key_uses,
            max_age=protocol.crypto.max_data_key_age_s,
        ),
    )

    make_sink = sink_factory(settings, parties=protocol.party_ids, envelope=envelope)
    freeze_heap()  # the start-up objects, out of the collector's way (hub.agents.heap)

    task = asyncio.ensure_future(
        serve_audit_sink(
            make_sink,
            bootstrap=bootstrap,
            group_id=SINK_GROUP,
            settings=settings,
            secret=load_audit_stream_key(settings),
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)  # leave the group cleanly: no rebalance wait
    _log.info("audit_sink_started")
    with contextlib.suppress(asyncio.CancelledError):
        await task
    _log.info("audit_sink_stopped")


def main() -> None:
    """Run until SIGTERM."""
    settings = HubSettings()
    enter_private(settings)  # umask 0077, data dir 0700 and its files 0600 (hub.private)
    configure_logging(settings.log_level)
    try:
        asyncio.run(_main(settings))
    except HubError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
