"""`hub consume` as a department reads it: its events by case in publish order, and the
hub's audit checkpoints verified quietly (issue 18).

Deliveries are written to the party's ``hub.out`` topic here, sealed and signed as the hub
seals them (the hub's own keys), on chosen partitions and in a chosen order: the scrambles a
real hub makes under load (each publisher's topic routed on its own, partitions read in turn)
become deterministic.

On a broker of its own, with no hub running: the topic needs three partitions, and the
session hub's topics have one (``TEST_HUB_SETTINGS``). What ``hub consume`` reads of a data
dir (the keys, the audit log's signing key) is made here as ``hub up`` makes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.audit.checkpoint import Checkpoint, NoteSigner, load_log_key, log_signer
from hub.broker import EmbeddedBroker, topics
from hub.client.checkpoints import CHECKPOINT_TYPE
from hub.envelope import wire
from hub.envelope.party import PartyEnvelope
from hub.keys.file_store import FileKeyStore
from hub.keys.model import KeySuite
from hub.keys.store import ensure_dev_keys
from hub.models import EventAttributes
from hub.policies.loader import load_protocol
from hub.settings import HubSettings
from tests.conftest import TEST_HUB_SETTINGS, unique
from tests.integration.test_cli import run_hub

pytestmark = pytest.mark.integration

#: a department that other tests rarely deliver to, so its reads here stay small
PARTY = "wyre-forest-dc.housing"
T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
VERIFIED = re.compile(r"verified (\d+) signed audit checkpoints?")
#: partitions of hub.out.PARTY: events of one case on several, read in turn
PARTITIONS = 3


@dataclass
class Outbox:
    """hub.out.PARTY on a broker, and a hub data dir with the keys: what a delivery needs."""

    settings: HubSettings
    keys: FileKeyStore

    @property
    def bootstrap(self) -> str:
        assert self.settings.kafka_bootstrap is not None
        return self.settings.kafka_bootstrap

    def env(self) -> dict[str, str]:
        return {
            "HUB_DATA_DIR": str(self.settings.data_dir),
            "HUB_KAFKA_BOOTSTRAP": self.bootstrap,
            "HUB_PROTOCOL": str(self.settings.protocol),
        }


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outbox]:
    with EmbeddedBroker() as broker:
        settings = HubSettings(
            data_dir=tmp_path_factory.mktemp("view"),
            kafka_bootstrap=broker.bootstrap,
            **TEST_HUB_SETTINGS,
        )
        protocol = load_protocol(settings.protocol)
        keys = FileKeyStore(settings.keys_dir)
        ensure_dev_keys(
            keys,
            [PARTY],
            suite=KeySuite(protocol.crypto.suite),
            extra_suites=[KeySuite(s) for s in protocol.crypto.suites[1:]],
        )
        load_log_key(settings, create=True)  # as the audit sink makes it when a hub starts
        asyncio.run(
            topics.ensure_topics(broker.bootstrap, [topics.outbound(PARTY)], partitions=PARTITIONS)
        )
        yield Outbox(settings, keys)


def deliver(outbox: Outbox, items: list[tuple[int, str | None, EventAttributes, bytes]]) -> None:
    """Write (partition, key, attributes, plaintext) to hub.out.PARTY as the hub would."""
    envelope = PartyEnvelope("hub", store=outbox.keys)

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=outbox.bootstrap, acks="all")
        await producer.start()
        try:
            for partition, key, attrs, plaintext in items:
                key_bytes = key.encode() if key else None
                sealed = envelope.seal(attrs, key=key_bytes, plaintext=plaintext, recipient=PARTY)
                await producer.send_and_wait(
                    topics.outbound(PARTY),
                    key=key_bytes,
                    value=sealed.value,
                    headers=sealed.headers,
                    partition=partition,
                )
        finally:
            await producer.stop()

    asyncio.run(run())


def event(case: str, minutes: int) -> tuple[str, EventAttributes, bytes]:
    attrs = EventAttributes(
        id=str(uuid.uuid4()),
        source="/parties/marac.north-worcs",
        type="uk.csp.marac.flag.updated.v1",
        time=T0 + dt.timedelta(minutes=minutes),
        subject=case,
        datacontenttype=wire.JSON,
    )
    return attrs.id, attrs, json.dumps({"case_ref": case, "n": minutes}).encode()


def checkpoint(signer: NoteSigner, size: int) -> tuple[EventAttributes, bytes]:
    note = signer.sign(Checkpoint(signer.name, size, bytes(32)).body())
    attrs = EventAttributes(
        id=str(uuid.uuid4()),
        source="/parties/hub",
        type=CHECKPOINT_TYPE,
        time=dt.datetime.now(dt.UTC),
        subject=None,
        datacontenttype=wire.JSON,
    )
    body = {"origin": signer.name, "size": size, "checkpoint": note}
    return attrs, json.dumps(body).encode()


def consume(outbox: Outbox, *args: str) -> Any:
    return run_hub("consume", "--as", PARTY, "--no-ack", *args, env=outbox.env())


def test_events_come_by_case_in_publish_order(outbox: Outbox) -> None:
    a, b = unique("MARAC-A"), unique("MARAC-B")
    a2, a2_attrs, a2_data = event(a, 2)
    b1, b1_attrs, b1_data = event(b, 1)
    a0, a0_attrs, a0_data = event(a, 0)
    b3, b3_attrs, b3_data = event(b, 3)
    # partition 0 holds A's later event before its first; B is split over two partitions
    deliver(
        outbox,
        [
            (0, a, a2_attrs, a2_data),
            (0, b, b1_attrs, b1_data),
            (0, a, a0_attrs, a0_data),
            (1, b, b3_attrs, b3_data),
        ],
    )
    result = consume(outbox)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    ids = [m[1] for line in lines if (m := re.search(r" id=(\S+) ", line))]
    mine = [i for i in ids if i in {a0, a2, b1, b3}]
    assert mine == [a0, a2, b1, b3]
    # each case under its own heading, A's first (its first event was published first)
    headed = [line for line in lines if line in (f"== case {a}", f"== case {b}")]
    assert headed == [f"== case {a}", f"== case {b}"]
    assert lines.index(f"== case {a}") < lines.index(next(x for x in lines if a0 in x))
    assert lines.index(f"== case {b}") > lines.index(next(x for x in lines if a2 in x))


def test_checkpoints_are_verified_quietly_and_shown_on_request(outbox: Outbox) -> None:
    signer = log_signer(outbox.settings)
    case = unique("MARAC-C")
    first_id, first_attrs, first_data = event(case, 0)
    cp1, cp1_data = checkpoint(signer, 10)
    cp2, cp2_data = checkpoint(signer, 11)
    deliver(
        outbox,
        [(0, None, cp1, cp1_data), (1, case, first_attrs, first_data), (2, None, cp2, cp2_data)],
    )
    quiet = consume(outbox, "--json")
    assert quiet.returncode == 0, quiet.stderr
    shown = [json.loads(line) for line in quiet.stdout.splitlines()]
    assert first_id in {d["id"] for d in shown}
    assert all(d["type"] != CHECKPOINT_TYPE for d in shown), shown
    counted = VERIFIED.search(quiet.stderr)
    assert counted is not None, quiet.stderr
    assert int(counted[1]) >= 2
    assert "--notices shows them" in quiet.stderr

    cp3, cp3_data = checkpoint(signer, 12)
    deliver(outbox, [(0, None, cp3, cp3_data)])
    loud = consume(outbox, "--json", "--notices")
    assert loud.returncode == 0, loud.stderr
    notes = [json.loads(line) for line in loud.stdout.splitlines()]
    assert cp3.id in {d["id"] for d in notes if d["type"] == CHECKPOINT_TYPE}


def test_a_checkpoint_that_does_not_verify_is_an_error(outbox: Outbox) -> None:
    real = log_signer(outbox.settings)
    forger = NoteSigner(real.name, Ed25519PrivateKey.generate())
    forged, forged_data = checkpoint(forger, 99)
    deliver(outbox, [(0, None, forged, forged_data)])
    result = consume(outbox, "--json")
    assert result.returncode == 5, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert f"warning: audit checkpoint failed: checkpoint {forged.id}:" in result.stderr
