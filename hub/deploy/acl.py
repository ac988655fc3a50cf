"""Least-privilege Kafka ACLs derived from the protocol (``hub acl``).

Kafka is the contract between agencies and the hub (``hub.broker.topics``), so the protocol
fixes who may touch which topic:

- a party writes only its own ``hub.in.<party>`` and reads only its own ``hub.out.<party>``,
  with its own consumer groups (``hub-consumer.<party>``, the SDK's default, and any group
  starting ``hub-consumer.<party>:``);
- only the hub principal reads ``hub.in.*`` and writes ``hub.out.*``, ``hub.audit`` and
  ``hub.quarantine``; it also writes ``hub.in.hub`` (its own workflow events) and owns its
  faust internals (topics and groups prefixed ``hub-router``);
- a peer hub (``peer-hub``, issue 20) is no reader here. This hub's own ``hub federation
  link`` reads ``hub.out.<peer>`` with the hub's credentials (group
  ``hub-federation-<peer>``) and writes to the peer's *own* cluster; the peer's link, with
  the account this cluster gives it, only writes ``hub.in.<peer>``: it never reads a topic
  or joins a group here.

Nothing here is a wildcard: each protocol topic is a literal resource, so adding a party means
regenerating (``make deploy-manifests``), and a party's rights can never cover another's.
Kafka allows nothing without an ACL (``allow.everyone.if.no.acl.found=false``), and Read or
Write implies Describe, so the entries below are the whole grant (Kafka docs, "Authorization
and ACLs": operation implications).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from hub.broker import topics
from hub.errors import ProtocolError
from hub.policies.model import HUB, Protocol

__all__ = [
    "CONSUMER_GROUP_PREFIX",
    "HUB_GROUP_PREFIX",
    "HUB_LEADER_TOPIC",
    "HUB_PRINCIPAL",
    "INGRESS_PRINCIPAL",
    "AclEntry",
    "Operation",
    "PatternType",
    "ResourceType",
    "allows",
    "consumer_group",
    "derive_acls",
    "principals",
]

#: the hub's Kafka user (the reserved party id of its own workflow events)
HUB_PRINCIPAL = HUB.id
#: the HTTP ingress publishes for the parties it serves (and reads nothing)
INGRESS_PRINCIPAL = "ingress"
#: ``hub.client.HubClient``'s default group is ``hub-consumer.<party>``
CONSUMER_GROUP_PREFIX = "hub-consumer."
#: party ids never contain ``:``, so ``hub-consumer.<a>:`` can never match another party's
#: groups (``hub-consumer.<a>`` as a bare prefix would match ``<a>.<department>``'s)
PARTY_GROUP_SEPARATOR = ":"
#: faust app id ``hub-router``: its group and ``hub-router-audit-sink``
HUB_GROUP_PREFIX = "hub-router"
#: faust's name for it: ``<app id>-__assignor-__leader``
HUB_LEADER_TOPIC = "hub-router-__assignor-__leader"


class ResourceType(StrEnum):
    """Kafka resource types used here."""

    TOPIC = "topic"
    GROUP = "group"
    CLUSTER = "cluster"


class PatternType(StrEnum):
    """How a resource name matches (Kafka ``--resource-pattern-type``)."""

    LITERAL = "literal"
    PREFIXED = "prefixed"


class Operation(StrEnum):
    """Kafka ACL operations used here (names as ``kafka-acls`` and Strimzi spell them)."""

    READ = "Read"
    WRITE = "Write"
    CREATE = "Create"
    DESCRIBE = "Describe"
    DESCRIBE_CONFIGS = "DescribeConfigs"


class AclEntry(BaseModel):
    """One Allow ACL: ``principal`` may ``operation`` on the resource, from any host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    principal: str
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType = PatternType.LITERAL
    operation: Operation
    permission: Literal["Allow"] = "Allow"
    host: str = "*"

    def covers(self, resource_type: ResourceType, name: str) -> bool:
        """Whether this entry's resource pattern matches a concrete resource."""
        if resource_type is not self.resource_type:
            return False
        if self.pattern_type is PatternType.PREFIXED:
            return name.startswith(self.resource_name)
        return name == self.resource_name


# Kafka: Read, Write (and Delete, Alter) imply Describe; nothing else is implied.
_IMPLIES: dict[Operation, frozenset[Operation]] = {
    Operation.READ: frozenset({Operation.READ, Operation.DESCRIBE}),
    Operation.WRITE: frozenset({Operation.WRITE, Operation.DESCRIBE}),
    Operation.CREATE: frozenset({Operation.CREATE}),
    Operation.DESCRIBE: frozenset({Operation.DESCRIBE}),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.DESCRIBE_CONFIGS}),
}


def allows(
    entries: list[AclEntry],
    *,
    principal: str,
    operation: Operation,
    resource_type: ResourceType,
    name: str,
) -> bool:
    """Kafka's answer for a request, given only these Allow entries (default deny)."""
    return any(
        e.principal == principal
        and operation in _IMPLIES[e.operation]
        and e.covers(resource_type, name)
        for e in entries
    )


def consumer_group(party: str) -> str:
    """The party's default consumer group (``hub.client.HubClient``)."""
    return f"{CONSUMER_GROUP_PREFIX}{party}"


def _grant(
    principal: str,
    resource_type: ResourceType,
    name: str,
    *operations: Operation,
    pattern: PatternType = PatternType.LITERAL,
) -> list[AclEntry]:
    return [
        AclEntry(
            principal=principal,
            resource_type=resource_type,
            resource_name=name,
            pattern_type=pattern,
            operation=op,
        )
        for op in operations
    ]


def derive_acls(protocol: Protocol, *, ingress_for: Sequence[str] = ()) -> list[AclEntry]:
    """Every ACL a hub for this protocol needs, and nothing more (parties first, then the hub).

    ``ingress_for`` names the parties the HTTP ingress publishes for (``hub ingress``): its
    own principal, ``ingress``, may then write those parties' inbound topics and nothing else.

    Raises:
        ProtocolError: a party id is the hub's or the ingress's principal, or ``ingress_for``
            names a party the protocol does not declare.
    """
    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    read, write = Operation.READ, Operation.WRITE
    parties = list(dict.fromkeys(protocol.party_ids))
    if HUB_PRINCIPAL in parties:
        raise ProtocolError(
            f"party id {HUB_PRINCIPAL!r}: reserved for the hub's own Kafka user, "
            "expected another id"
        )
    if ingress_for and INGRESS_PRINCIPAL in parties:
        raise ProtocolError(
            f"party id {INGRESS_PRINCIPAL!r}: reserved for the HTTP ingress's Kafka user"
        )
    unknown = [p for p in ingress_for if p not in parties]
    if unknown:
        raise ProtocolError(
            f"--ingress-for: expected parties of the protocol, got {', '.join(unknown)}"
        )
    entries: list[AclEntry] = []
    peers = [p for p in parties if protocol.is_peer(p)]
    for party in parties:
        entries += _grant(party, topic, topics.inbound(party), write)
        if party in peers:
            continue  # its link writes here; this hub's link reads hub.out.<peer> (below)
        entries += _grant(party, topic, topics.outbound(party), read)
        entries += _grant(party, group, consumer_group(party), read)
        entries += _grant(
            party,
            group,
            consumer_group(party) + PARTY_GROUP_SEPARATOR,
            read,
            pattern=PatternType.PREFIXED,
        )
    hub = HUB_PRINCIPAL
    for party in parties:
        entries += _grant(hub, topic, topics.inbound(party), read)
    entries += _grant(hub, topic, topics.HUB_INBOUND, read, write)
    for party in parties:
        entries += _grant(hub, topic, topics.outbound(party), write)
    for peer in peers:
        # hub federation link (hub.federation.link): reads what the router sealed to the peer
        entries += _grant(hub, topic, topics.outbound(peer), read)
        entries += _grant(hub, group, topics.federation_group(peer), read)
    entries += _grant(hub, topic, topics.AUDIT, read, write)
    entries += _grant(hub, topic, topics.QUARANTINE, write)
    # faust creates its one internal topic itself (the hub has no tables, so no changelog or
    # repartition topics): the leader topic, by its literal name, not the ``hub-router-``
    # prefix, so the hub cannot create or write any other topic of that name
    entries += _grant(
        hub,
        topic,
        HUB_LEADER_TOPIC,
        read,
        write,
        Operation.CREATE,
        Operation.DESCRIBE_CONFIGS,
    )
    entries += _grant(hub, group, HUB_GROUP_PREFIX, read, pattern=PatternType.PREFIXED)
    for party in dict.fromkeys(ingress_for):
        entries += _grant(INGRESS_PRINCIPAL, topic, topics.inbound(party), write)
    return entries


def principals(entries: list[AclEntry]) -> list[str]:
    """Kafka users the entries name, in first-seen order (each needs SCRAM credentials)."""
    return list(dict.fromkeys(e.principal for e in entries))
