"""Encryption, signatures and shredding through the running hub on the real broker."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.client import HubClient
from hub.envelope.crypto import CryptoError
from hub.envelope.escrow import open_escrowed
from hub.envelope.party import PartyEnvelope
from hub.errors import CaseShreddedError
from hub.keys.cases import CaseKeys
from hub.keys.expiry import add_duration
from hub.models import AuditDecision
from tests.conftest import RunningHub, unique, wait_for
from tests.factories import BAN, MARAC_RAISED, marac_flag, pubwatch_ban

pytestmark = pytest.mark.integration

HUB = os.path.join(os.path.dirname(sys.executable), "hub")
DEPT = "redditch-bc.housing-repairs"


def raw_deliveries(hub: RunningHub, party: str, event_id: str) -> list[Any]:
    async def scan() -> list[Any]:
        consumer = AIOKafkaConsumer(
            f"hub.out.{party}",
            bootstrap_servers=hub.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=2000)
            return [
                r
                for rs in batches.values()
                for r in rs
                if dict(r.headers).get("ce_id") == event_id.encode()
            ]
        finally:
            await consumer.stop()

    return wait_for(lambda: asyncio.run(scan()), what=f"delivery of {event_id} to {party}")


def headers_of(record: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


def test_broker_sees_only_ciphertext_and_another_party_cannot_read(hub: RunningHub) -> None:
    flag = marac_flag(unique("MARAC"))
    event_id = hub.publish("marac.north-worcs", MARAC_RAISED, flag)
    record = raw_deliveries(hub, DEPT, event_id)[0]
    for secret in (flag["address"]["line1"], flag["contact"]["email"], flag["subject_ref"]):
        assert secret.encode() not in record.value
    mine = PartyEnvelope(DEPT, store=hub.keys).open(
        headers_of(record), key=record.key, value=record.value, expected_signer="hub"
    )
    assert b"Church Green East" in mine.plaintext
    thief = PartyEnvelope("bromsgrove-dc.housing", store=hub.keys)
    with pytest.raises(CryptoError) as err:
        thief.open(headers_of(record), key=record.key, value=record.value, expected_signer="hub")
    assert err.value.reason == "not_for_recipient"


def test_rotated_recipient_key_old_deliveries_still_open(hub: RunningHub) -> None:
    party = "redditch-bc.neighbourhood-tenancy"
    before = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC")))
    old = raw_deliveries(hub, party, before)[0]
    old_kid = headers_of(old)["ce_hubkid"]
    rotated = hub.keys.rotate(party)
    marac_key = rotated.encryption_for(hub.supervisor.protocol.crypto.suite_for(MARAC_RAISED))
    assert marac_key.key_id != old_kid

    def sealed_to_the_new_key() -> Any:
        # the worker re-reads the key directory at most RECHECK_S (50 ms) after a change by
        # another process: an event it routes within that window may still go to the old key
        after = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC")))
        record = raw_deliveries(hub, party, after)[0]
        return record if headers_of(record)["ce_hubkid"] == marac_key.key_id else None

    new = wait_for(sealed_to_the_new_key, timeout=30, what="a delivery sealed to the new key")
    envelope = PartyEnvelope(party, store=hub.keys)
    for record in (old, new):
        envelope.open(headers_of(record), key=record.key, value=record.value, expected_signer="hub")


def test_shred_makes_hub_side_copies_unreadable_and_is_audited(hub: RunningHub) -> None:
    case = unique("MARAC")
    event_id = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(case))
    record = raw_deliveries(hub, DEPT, event_id)[0]
    disclosed = wait_for(
        lambda: {r.record_id for r in hub.records(event_id) if r.decision == "delivered"},
        what=f"disclosure records of {event_id}",
    )
    cases = CaseKeys(
        hub.settings.keys_dir, pseudonymise=Pseudonymiser(load_pseudonym_key(hub.settings)).case
    )
    assert b"Church Green East" in open_escrowed(
        cases, case, headers_of(record), key=record.key, value=record.value
    )
    env = {**os.environ, **hub.env()}
    held = subprocess.run(
        [HUB, "holds", "add", "--case", case, "--reason", "DHR", "--by", "ig-officer"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert held.returncode == 0, held.stderr
    refused = subprocess.run(
        [HUB, "keys", "shred", "--case", case, "--yes"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "hold" in refused.stderr
    subprocess.run(
        [HUB, "holds", "lift", "--case", case, "--by", "ig-officer"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    shredded = subprocess.run(
        [HUB, "keys", "shred", "--case", case, "--yes"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert shredded.returncode == 0, shredded.stderr
    with pytest.raises(CaseShreddedError):
        open_escrowed(cases, case, headers_of(record), key=record.key, value=record.value)
    pseudonym = Pseudonymiser(load_pseudonym_key(hub.settings)).case(case)
    with hub.store() as store:
        actions = [
            r.decision
            for r in store.query(case_pseudonym=pseudonym)
            if r.event_id.startswith("case-action:")
        ]
        delivered = {
            r.record_id
            for r in store.query(event_id=event_id)
            if r.decision == AuditDecision.DELIVERED
        }
    assert actions == [AuditDecision.HOLD_PLACED, AuditDecision.HOLD_LIFTED, AuditDecision.SHREDDED]
    assert delivered >= disclosed, "the disclosure records remain after shredding"


@pytest.mark.parametrize(
    ("publisher", "event_type", "make", "recipient"),
    [
        ("marac.north-worcs", MARAC_RAISED, lambda ref: marac_flag(ref), DEPT),
        (
            "pubwatch.redditch.crown-inn",
            BAN,
            lambda ref: pubwatch_ban(ref),
            "pubwatch.redditch.rising-sun",
        ),
    ],
    ids=["marac-mlkem768-x25519", "ban-x25519"],
)
def test_each_event_type_travels_under_its_protocol_suite(
    hub: RunningHub, publisher: str, event_type: str, make: Any, recipient: str
) -> None:
    crypto = hub.supervisor.protocol.crypto
    suite = crypto.suite_for(event_type)

    async def publish() -> str:
        # the publisher seals to the hub with the protocol's suite for the type, too
        async with HubClient(
            publisher, bootstrap=hub.bootstrap, keys=hub.keys, crypto=crypto
        ) as client:
            return await client.publish(event_type, make(unique("REF")))

    event_id = asyncio.run(publish())
    record = raw_deliveries(hub, recipient, event_id)[0]
    headers = headers_of(record)
    assert headers["ce_hubsuite"] == suite
    assert headers["ce_hubkid"] == hub.keys.active(recipient).encryption_for(suite).key_id
    opened = PartyEnvelope(recipient, store=hub.keys).open(
        headers, key=record.key, value=record.value, expected_signer="hub"
    )
    assert opened.plaintext
    delivered = [r for r in hub.wait_records(event_id) if r.decision == AuditDecision.DELIVERED]
    assert recipient in {r.recipient for r in delivered}


def test_expiry_judges_real_disclosures_by_their_rule_retention(hub: RunningHub) -> None:
    case = unique("MARAC")
    event_id = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(case))
    delivered = wait_for(
        lambda: [r for r in hub.records(event_id) if r.decision == AuditDecision.DELIVERED],
        what=f"disclosures of {event_id}",
    )
    rules = {r.id: r for r in hub.supervisor.protocol.rules}
    expected = max(add_duration(r.time, rules[r.rule or ""].retention or "") for r in delivered)
    pseudonym = Pseudonymiser(load_pseudonym_key(hub.settings)).case(case)
    env = {**os.environ, **hub.env()}

    def judge(now: dt.datetime) -> dict[str, Any]:
        # --dry-run: the session hub's other cases must keep their keys
        out = subprocess.run(
            [HUB, "keys", "expire", "--now", now.isoformat(), "--dry-run", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        rows: dict[str, dict[str, Any]] = {
            row["case"]: row for row in map(json.loads, out.splitlines())
        }
        return rows[pseudonym]

    assert judge(expected - dt.timedelta(seconds=1))["status"] == "due_later"
    due = judge(expected)
    assert due["status"] == "expired"
    assert dt.datetime.fromisoformat(due["expires_at"]) == expected
    assert case not in json.dumps(due)
