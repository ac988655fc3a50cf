"""Federation: transfers between partnership hubs (issue 20).

A peer hub is a party of kind ``peer-hub`` in the protocol (``hub.policies.model.PEER_KIND``)
with keys pinned from its export (``hub.keys.peers``). ``hub federation link``
(``hub.federation.link``) carries this hub's deliveries to a peer, unopened, to the peer's
broker; the peer's router opens them as the peer's inbound events
(``hub.federation.inbound``) and applies its own protocol.
"""

from hub.federation.inbound import TransferRefusedError, accepted_fields, open_transfer

__all__ = ["TransferRefusedError", "accepted_fields", "open_transfer"]
