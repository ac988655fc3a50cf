"""The one check before linking to a peer hub (issue 20).

``hub up``, ``hub federation link`` and the link process under the supervisor all ask it,
so all three refuse alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hub.errors import ConfigError

if TYPE_CHECKING:
    from hub.policies.model import Protocol

__all__ = ["peer_hub_id"]


def peer_hub_id(protocol: Protocol, peer: str, *, path: Path | str, source: str) -> str:
    """The id ``peer``'s protocol knows this hub by (``protocol.hub_id``), to link to it.

    ``source`` names what asked (``HUB_FEDERATION_LINKS``, ``--peer``), ``path`` the
    protocol file, so the error says which setting to change.

    Raises:
        ConfigError: ``peer`` is not a party of kind peer-hub of the protocol, or the
            protocol names no ``hub_id``.
    """
    if not protocol.is_peer(peer):
        peers = ", ".join(p.id for p in protocol.peers) or "none"
        raise ConfigError(
            f"{source}: {peer} is not a peer-hub party of {path}: expected a party of kind "
            f"peer-hub (peers: {peers})"
        )
    hub_id = protocol.protocol.hub_id
    if hub_id is None:
        raise ConfigError(
            f"{source}: {path} names no protocol.hub_id (this hub's id in its peers' "
            f"protocols), so it cannot link to peer {peer}: expected one, got none"
        )
    return hub_id
