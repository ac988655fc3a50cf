"""``python -m hub.webhooks``: the dispatcher process ``hub up`` starts when webhooks exist."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from hub.errors import ConfigError
from hub.log import configure_logging, get_logger
from hub.private import enter_private
from hub.settings import HubSettings
from hub.webhooks.dispatcher import run_dispatchers


async def _main(settings: HubSettings) -> None:
    if not settings.kafka_bootstrap:
        raise ConfigError("webhooks: HUB_KAFKA_BOOTSTRAP must name the broker")
    task = asyncio.ensure_future(run_dispatchers(settings, bootstrap=settings.kafka_bootstrap))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)  # finish cleanly: consumers leave the group
    with contextlib.suppress(asyncio.CancelledError):
        await task
    get_logger("webhooks").info("webhook_dispatchers_stopped")


def main() -> None:
    """Run until SIGTERM."""
    settings = HubSettings()
    enter_private(settings)  # umask 0077, data dir 0700 and its files 0600 (hub.private)
    configure_logging(settings.log_level)
    asyncio.run(_main(settings))


if __name__ == "__main__":
    main()
