"""A router worker process: ``python -m hub.agents.worker``.

``hub up`` starts one or more of these with ``HUB_KAFKA_BOOTSTRAP`` pointing at the broker;
they join one consumer group and share the partitions. SIGTERM/SIGINT stop them cleanly.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import NoReturn

import faust

from hub.agents.allocator import limit_arenas
from hub.agents.app import create_app
from hub.broker.topics import all_topics, ensure_topics
from hub.errors import ConfigError, HubError
from hub.log import configure_logging, get_logger, stdlib_logging_config
from hub.policies.loader import load_protocol
from hub.private import enter_private
from hub.settings import HubSettings

_log = get_logger("worker")


def main() -> None:
    """Run one worker until signalled."""
    settings = HubSettings()
    configure_logging(settings.log_level)
    # before any thread starts (the topic check below already resolves names in one)
    arenas = limit_arenas(settings.malloc_arenas)
    _log.info("malloc_arenas", limit=settings.malloc_arenas if arenas else "default")
    try:
        enter_private(settings)  # umask 0077, data dir 0700 and its files 0600 (hub.private)
        if not settings.kafka_bootstrap:
            raise ConfigError("worker: HUB_KAFKA_BOOTSTRAP must name the broker")
        protocol = load_protocol(settings.protocol)
        asyncio.run(
            ensure_topics(
                settings.kafka_bootstrap,
                all_topics(protocol.party_ids),
                partitions=settings.partitions,
                security=settings.kafka_security,
            )
        )
        app = create_app(settings, protocol=protocol, bootstrap=settings.kafka_bootstrap)
    except HubError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from None
    worker = build_worker(app, settings)
    profile = os.environ.get("HUB_PROFILE_FILE")
    if profile:
        _profiled(worker, Path(profile))
    worker.execute_from_commandline()  # runs until signalled, then exits the process


def build_worker(app: faust.App, settings: HubSettings) -> faust.Worker:
    """A faust worker that logs like the hub (JSON lines) and has no terminal spinner.

    faust's spinner, kept whenever the level is WARNING or above, sets the root logger to
    DEBUG so it can spin on every record: every library debug call then builds a log record
    only for the handler to drop it (about 6% of a worker's time under load, by py-spy).
    """
    worker = _Worker(
        app,
        loglevel=settings.log_level.lower(),
        quiet=True,
        redirect_stdouts=False,
        logging_config=stdlib_logging_config(settings.log_level),  # JSON lines, like ours
    )
    worker.spinner = None  # a service, not a terminal
    return worker


class _Worker(faust.Worker):
    """``faust.Worker`` that closes its event loop a tenth of a second after stopping.

    mode's worker, once every service has stopped and every task is gathered, runs the loop
    one more second (``_sentinel_task``) before closing it: a second added to every stop of
    a worker (``hub up`` stopping, a restart, each test's hub). By then the drain, the
    commit and the producer's flush are done; a tenth of a second still lets the callbacks
    that closing sockets scheduled run before the loop closes.
    """

    async def _sentinel_task(self) -> None:
        await asyncio.sleep(0.1)


def _profiled(worker: faust.Worker, path: Path) -> NoReturn:
    """Run the worker under pyinstrument and save the session as it exits (``make bench``).

    A benchmark aid, never on in production: sampling all threads (the consumer thread, the
    audit sink's store writes) costs a little on every event.
    """
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    try:
        worker.execute_from_commandline()
    finally:
        session = profiler.stop()
        path.parent.mkdir(parents=True, exist_ok=True)
        session.save(str(path))


if __name__ == "__main__":
    main()
