"""Consume MARAC flags for ``redditch-bc.housing-repairs`` and acknowledge each.

```sh
python -m examples.housing_system --db housing.sqlite3            # until Ctrl-C
python -m examples.housing_system --db housing.sqlite3 --seconds 30
```

The bootstrap comes from ``--bootstrap``, else ``HUB_KAFKA_BOOTSTRAP``, else the running dev
hub's ``HUB_DATA_DIR/hub.json``; keys from ``HUB_DATA_DIR/keys`` (the dev hub makes them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from examples.housing_system.markers import FLAG_TYPES, MarkerAction, PropertyMarkers
from hub.client import HubClient
from hub.client.sdk import ACK_TYPE
from hub.errors import HubError
from hub.keys.file_store import FileKeyStore
from hub.models import Delivery

__all__ = ["PARTY", "consume", "main"]

PARTY = "redditch-bc.housing-repairs"


async def handle(client: HubClient, markers: PropertyMarkers, delivery: Delivery) -> None:
    """Put the flag on the property (or take it off), then tell the hub it was done."""
    if delivery.type in FLAG_TYPES:
        # Apply first, then acknowledge, then note the acknowledgement: a crash in between
        # re-delivers the event, which re-applies nothing (apply is idempotent by event id)
        # and acknowledges only if the hub was not told yet.
        action = markers.apply(delivery.id, delivery.type, delivery.data)
        if markers.acknowledged(delivery.id):
            return
        # "actioned": the marker is on (or off) the repairs system now, which is what the
        # MARAC coordinator's acknowledgement tracking wants to know.
        status = "received" if action is MarkerAction.NOTHING else "actioned"
        await client.acknowledge(delivery, status=status, note=f"property marker {action}")
        markers.mark_acknowledged(delivery.id)
        print(f"{delivery.type} {delivery.data.get('case_ref')}: marker {action}")
    elif not delivery.from_hub and delivery.type != ACK_TYPE:
        await client.acknowledge(delivery)  # received, not something this system acts on


async def consume(
    client: HubClient,
    markers: PropertyMarkers,
    *,
    seconds: float | None = None,
    until: Callable[[PropertyMarkers], bool] | None = None,
) -> int:
    """Handle deliveries until ``until(markers)`` holds, ``seconds`` pass, or forever.

    Returns how many deliveries were handled. The SDK commits each delivery's offset only
    when the next is asked for, and its inbox skips ids already handled, so a crash at any
    point neither loses a flag nor applies one twice.
    """
    handled = 0
    with contextlib.suppress(TimeoutError):
        async with (
            asyncio.timeout(seconds),
            contextlib.aclosing(client.deliveries(follow=True, poll_timeout=0.2)) as stream,
        ):
            async for delivery in stream:
                await handle(client, markers, delivery)
                handled += 1
                if until is not None and until(markers):
                    break
    return handled


def _bootstrap(data_dir: Path, given: str | None) -> str:
    if given:
        return given
    if os.environ.get("HUB_KAFKA_BOOTSTRAP"):
        return os.environ["HUB_KAFKA_BOOTSTRAP"]
    from hub.agents.supervisor import read_state  # dev convenience: the local hub's address
    from hub.settings import HubSettings

    return read_state(HubSettings(data_dir=data_dir)).bootstrap


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--db", type=Path, default=Path("housing.sqlite3"))
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers")
    parser.add_argument("--seconds", type=float, help="stop after this long")
    args = parser.parse_args(argv)
    data_dir = Path(os.environ.get("HUB_DATA_DIR", ".hub"))

    async def run() -> int:
        markers = PropertyMarkers(args.db)
        try:
            async with HubClient(
                PARTY,
                bootstrap=_bootstrap(data_dir, args.bootstrap),
                keys=FileKeyStore(data_dir / "keys"),
                inbox=args.db.with_suffix(".inbox.sqlite3"),
            ) as client:
                return await consume(client, markers, seconds=args.seconds)
        finally:
            markers.close()

    try:
        handled = asyncio.run(run())
    except HubError as exc:
        print(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"handled {handled} deliveries")
    return 0
