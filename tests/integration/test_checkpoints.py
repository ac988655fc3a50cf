"""Signed checkpoints reach every party, sealed to it, and match the log the hub keeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.agents.sink import CHECKPOINT_TYPE
from hub.audit.checkpoint import log_signer
from hub.audit.log import AuditLog
from hub.broker import EmbeddedBroker
from hub.errors import AuditIntegrityError
from hub.models import Delivery
from tests.conftest import RunningHub, start_hub, unique
from tests.factories import MARAC_RAISED, marac_flag

pytestmark = pytest.mark.integration


@pytest.fixture
def busy_hub(tmp_path: Path) -> Iterator[RunningHub]:
    """A hub that signs a checkpoint every 8 records (each MARAC flag makes 8 or more).

    Its own broker: the shared hub keeps the default checkpoint settings, and two hubs on
    one broker would share its topics and consumer groups (tests/conftest.py).
    """
    with EmbeddedBroker() as broker:
        running = start_hub(
            broker.bootstrap, tmp_path / "data", checkpoint_every=8, checkpoint_interval=3600
        )
        try:
            yield running
        finally:
            running.supervisor.stop()


def _checkpoints(ds: list[Delivery]) -> list[Delivery]:
    return [d for d in ds if d.type == CHECKPOINT_TYPE]


def test_every_party_gets_checkpoints_that_verify(busy_hub: RunningHub) -> None:
    hub = busy_hub
    for _ in range(3):
        event_id = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC")))
        hub.wait_records(event_id, at_least=8)

    verifier = log_signer(hub.settings).verifier()
    sizes: dict[str, list[int]] = {}
    # a party that receives nothing under the protocol still gets the log's checkpoints
    for party in ("west-mercia-police", "hw-icb", "pubwatch.redditch.crown-inn"):
        got = _checkpoints(
            hub.deliveries(party, until=lambda ds: len(_checkpoints(ds)) >= 3, timeout=60)
        )
        assert len(got) >= 3, party
        for delivery in got:
            assert delivery.source == "/parties/hub"
            assert delivery.recipient == party
            checkpoint = verifier.open_checkpoint(delivery.data["checkpoint"])
            assert checkpoint.size == delivery.data["size"]
            assert checkpoint.origin == delivery.data["origin"]
        # checkpoints carry no key, so they spread over the topic's partitions: order by size
        sizes[party] = sorted(d.data["size"] for d in got)
    # every party sees the same, growing sequence of tree heads (one read later than another
    # may already hold a newer head, so compare the common prefix)
    shortest = min(len(s) for s in sizes.values())
    assert len({tuple(s[:shortest]) for s in sizes.values()}) == 1
    sequence = max(sizes.values(), key=len)
    assert len(set(sequence)) == len(sequence)  # each tree head once

    # and each head is the root of the log the hub holds at that size
    with hub.store() as store:
        log = AuditLog(store, signer=log_signer(hub.settings))
        delivered = _checkpoints(hub.deliveries("west-mercia-police"))
        for delivery in delivered:
            checkpoint = verifier.open_checkpoint(delivery.data["checkpoint"])
            assert log.root(checkpoint.size) == checkpoint.root_hash


def test_a_forged_checkpoint_does_not_verify(busy_hub: RunningHub) -> None:
    hub = busy_hub
    event_id = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC")))
    hub.wait_records(event_id, at_least=8)
    got = _checkpoints(hub.deliveries("wrs", until=lambda ds: bool(_checkpoints(ds)), timeout=60))
    assert got
    note: str = got[0].data["checkpoint"]
    body, _, signature = note.partition("\n\n")
    size = int(body.splitlines()[1])
    forged = body.replace(f"\n{size}\n", f"\n{size + 1}\n", 1) + "\n\n" + signature
    with pytest.raises(AuditIntegrityError):
        log_signer(hub.settings).verifier().open_checkpoint(forged)
