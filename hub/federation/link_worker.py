"""One ``hub federation link`` under ``hub up``'s supervisor (issue 20).

``hub up`` starts one of these per peer in ``HUB_FEDERATION_LINKS`` (``PEER=HOST:PORT``),
with the hub's settings and ``HUB_LINK_PEER`` naming the peer; the supervisor restarts it
when it dies, like a worker (a link resumes after the last batch the peer's broker
acknowledged). It stops on SIGTERM after the batch in hand.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from pydantic import ValidationError

from hub.agents.supervisor import read_state
from hub.broker.security import KafkaSecurity
from hub.errors import ConfigError, HubError
from hub.federation.link import ForwardedLog, LinkStats, run_link
from hub.federation.peer import peer_hub_id
from hub.log import configure_logging, get_logger
from hub.policies.loader import load_protocol
from hub.settings import HubSettings

__all__ = ["LINK_PEER_ENV", "link_target", "main", "peer_security"]

#: the environment variable naming the peer this process links to
LINK_PEER_ENV = "HUB_LINK_PEER"
_log = get_logger("federation")


def link_target(settings: HubSettings, peer: str) -> tuple[str, str]:
    """The hub id the peer knows this hub by, and the peer's bootstrap, for a configured link.

    Raises:
        ConfigError: ``peer`` is not a peer hub of the protocol, not in
            ``HUB_FEDERATION_LINKS``, or the protocol names no ``hub_id``.
    """
    protocol = load_protocol(settings.protocol)
    hub_id = peer_hub_id(protocol, peer, path=settings.protocol, source="HUB_FEDERATION_LINKS")
    bootstrap = settings.federation_peers.get(peer)
    if bootstrap is None:
        raise ConfigError(f"HUB_FEDERATION_LINKS: expected an entry {peer}=HOST:PORT, got none")
    return hub_id, bootstrap


def peer_security(settings: HubSettings, peer: str) -> KafkaSecurity:
    """The Kafka security of the link to ``peer`` on its broker (``HUB_FEDERATION_SECURITY``).

    Raises:
        ConfigError: the file cannot be read, is not a JSON object of objects, or the
            peer's entry is not a valid security setting.
    """
    path = settings.federation_security
    if path is None:
        return KafkaSecurity()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"HUB_FEDERATION_SECURITY {path}: expected a readable JSON file, got {exc}"
        ) from exc
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise ConfigError(
            f"HUB_FEDERATION_SECURITY {path}: expected an object of peer ids to objects "
            '({"swcsp-hub": {"protocol": "SASL_SSL", ...}})'
        )
    entry = document.get(peer)
    if entry is None:
        return KafkaSecurity()
    try:
        return KafkaSecurity.model_validate(entry)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            f"HUB_FEDERATION_SECURITY {path}, peer {peer}: {first['msg']} "
            f"(at {'.'.join(map(str, first['loc'])) or 'the entry'})"
        ) from exc


async def _serve(settings: HubSettings, peer: str) -> LinkStats:
    hub_id, peer_bootstrap = link_target(settings, peer)
    remote = peer_security(settings, peer)
    bootstrap = settings.kafka_bootstrap or read_state(settings).bootstrap
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    forwarded = ForwardedLog(settings.data_dir / "federation" / f"{peer}.sqlite3")
    try:
        return await run_link(
            peer=peer,
            hub_id=hub_id,
            bootstrap=bootstrap,
            peer_bootstrap=peer_bootstrap,
            forwarded=forwarded,
            security=settings.kafka_security,
            peer_security=remote,
            stop=stop,
            session_timeout=settings.session_timeout,
            lost_log_grace=settings.lost_log_grace,
        )
    finally:
        forwarded.close()


def main() -> int:
    """Run the link named by ``HUB_LINK_PEER`` until SIGTERM; 1 on an error (logged)."""
    settings = HubSettings()
    configure_logging(settings.log_level)
    peer = os.environ.get(LINK_PEER_ENV, "")
    try:
        stats = asyncio.run(_serve(settings, peer))
    except HubError as exc:
        _log.error("link_failed", peer=peer, error=str(exc))
        return 1
    _log.info("link_exited", peer=peer, forwarded=stats.forwarded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
