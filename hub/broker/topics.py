"""Topic names and creation. Kafka is the contract between agencies and the hub.

``hub.in.<party>``: what a party publishes (only it may write, only the hub reads);
``hub.in.hub``: the hub's own workflow events (flag expiries, coordinator alerts), routed by
the protocol like any party's;
``hub.out.<party>``: what the hub delivers to it; ``hub.quarantine``: rejected input with
reasons; ``hub.audit``: one record per decision, sunk to the audit store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from hub.broker.security import KafkaSecurity
from hub.errors import BrokerError

__all__ = [
    "AUDIT",
    "HUB_INBOUND",
    "INBOUND_PREFIX",
    "OUTBOUND_PREFIX",
    "QUARANTINE",
    "all_topics",
    "deadletter",
    "ensure_topics",
    "federation_group",
    "inbound",
    "outbound",
    "owner_of",
]

INBOUND_PREFIX = "hub.in."
OUTBOUND_PREFIX = "hub.out."
QUARANTINE = "hub.quarantine"
AUDIT = "hub.audit"
#: the hub publishes its workflow events here, signed with its own key (party id "hub")
HUB_INBOUND = "hub.in.hub"


def inbound(party: str) -> str:
    """Topic a party publishes to."""
    return f"{INBOUND_PREFIX}{party}"


def deadletter(party: str) -> str:
    """Deliveries a party's webhook never accepted (the sealed originals, for replay)."""
    return f"hub.deadletter.{party}"


def outbound(party: str) -> str:
    """Topic the hub delivers a party's events to."""
    return f"{OUTBOUND_PREFIX}{party}"


def federation_group(peer: str) -> str:
    """The consumer group of the federation link to ``peer`` (its offsets are its progress)."""
    return f"hub-federation-{peer}"


def owner_of(topic: str) -> str | None:
    """The party that owns an inbound topic (only it may publish there)."""
    return topic.removeprefix(INBOUND_PREFIX) if topic.startswith(INBOUND_PREFIX) else None


def all_topics(parties: Iterable[str]) -> list[str]:
    """Every topic a hub for these parties uses."""
    names = [QUARANTINE, AUDIT, HUB_INBOUND]
    for party in parties:
        names += [inbound(party), outbound(party)]
    return names


async def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    *,
    partitions: int,
    security: KafkaSecurity | None = None,
) -> None:
    """Create missing topics with ``partitions`` partitions (existing ones are left alone)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=10000,
        **(security or KafkaSecurity()).client_kwargs(),
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [n for n in dict.fromkeys(names) if n not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in wanted]
                )
    except TopicAlreadyExistsError:
        pass
    except Exception as exc:
        raise BrokerError(f"broker at {bootstrap}: cannot create hub topics: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
