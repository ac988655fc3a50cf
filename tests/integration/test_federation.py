"""Federation end to end (issue 20): two partnership hubs, each on its own broker, linked.

Two embedded brokers of its own (not the session broker): two hubs on one broker would share
its topics and the router's consumer group, and the link's point is to cross from one
cluster to another. The North hub routes a flag whose address is now in Worcester to its
peer; ``hub.federation.link`` carries it to the South's broker; the South hub opens it as
an event from its peer and routes it by its own protocol.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.audit.checkpoint import log_origin
from hub.broker import EmbeddedBroker
from hub.broker.watch import ROUTER_GROUP
from hub.cli.main import app
from hub.client import HubClient
from hub.envelope import wire
from hub.envelope.party import PartyEnvelope
from hub.federation.link import ForwardedLog, LinkStats, run_link
from hub.federation.ownership import OWNERSHIP_TYPE, withdraw_id
from hub.federation.proofs import proof_id
from hub.federation.receipts import receipt_id
from hub.keys.file_store import DIRECTORY_FORMAT, FileKeyStore
from hub.keys.model import KeySuite
from hub.keys.peers import PeerPins, parse_export
from hub.keys.store import ensure_dev_keys
from hub.models import AuditDecision, EventAttributes
from hub.policies.loader import load_protocol
from hub.settings import HubSettings, default_protocol_path
from hub.state import open_proof_register
from tests.conftest import (
    TEST_HUB_SETTINGS,
    RunningHub,
    event_ids_on,
    start_hub,
    unique,
    wait_for,
)
from tests.factories import MARAC_RAISED, MARAC_UPDATED, marac_flag

pytestmark = pytest.mark.integration

SOUTH_PROTOCOL = default_protocol_path().with_name("south-worcestershire.yaml")


def _hub_keys(keys_dir: Path, protocol_path: Path) -> FileKeyStore:
    protocol = load_protocol(protocol_path)
    store = FileKeyStore(keys_dir)
    ensure_dev_keys(
        store,
        [],
        suite=KeySuite(protocol.crypto.suite),
        extra_suites=[KeySuite(s) for s in protocol.crypto.suites[1:]],
    )
    return store


def _export(store: FileKeyStore) -> str:
    """What `hub keys export --party hub` prints."""
    records = [r.model_dump(mode="json") for r in store.public("hub")]
    return json.dumps({"format": DIRECTORY_FORMAT, "keys": records})


def _pin(store: FileKeyStore, peer: str, export: str) -> None:
    """What `hub keys import --peer PEER` does."""
    records = parse_export(export, source=peer, directory_format=DIRECTORY_FORMAT)
    PeerPins(store.root).pin(peer, records)


class Link:
    """``run_link`` on a thread of its own, stopped at teardown."""

    def __init__(self, here: RunningHub, there: RunningHub, *, peer: str, hub_id: str) -> None:
        self.stats = LinkStats()
        self.error: BaseException | None = None
        self._here, self._there = here, there
        self._peer, self._hub_id = peer, hub_id
        self._path = here.settings.data_dir / "federation" / f"{peer}.sqlite3"
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        forwarded = ForwardedLog(self._path)  # SQLite: opened on the thread that uses it
        try:
            self._loop.run_until_complete(
                run_link(
                    peer=self._peer,
                    hub_id=self._hub_id,
                    bootstrap=self._here.bootstrap,
                    peer_bootstrap=self._there.bootstrap,
                    forwarded=forwarded,
                    stop=self._stop,
                    stats=self.stats,
                    session_timeout=TEST_HUB_SETTINGS["session_timeout"],
                )
            )
        except BaseException as exc:  # reported by stop(), in the test's thread
            self.error = exc
        finally:
            forwarded.close()
            self._loop.close()

    def stop(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningHub, RunningHub]]:
    north_dir = tmp_path_factory.mktemp("north")
    south_dir = tmp_path_factory.mktemp("south")
    north_keys = _hub_keys(HubSettings(data_dir=north_dir).keys_dir, default_protocol_path())
    south_keys = _hub_keys(HubSettings(data_dir=south_dir).keys_dir, SOUTH_PROTOCOL)
    _pin(north_keys, "swcsp-hub", _export(south_keys))
    _pin(south_keys, "nwcsp-hub", _export(north_keys))
    with EmbeddedBroker() as north_broker, EmbeddedBroker() as south_broker:
        north = start_hub(north_broker.bootstrap, north_dir)
        south = start_hub(south_broker.bootstrap, south_dir, protocol=SOUTH_PROTOCOL)
        try:
            _pin_log_keys(north, south)
            yield north, south
        finally:
            north.supervisor.stop()
            south.supervisor.stop()


def _pin_log_keys(north: RunningHub, south: RunningHub) -> None:
    """Each hub's `hub keys export --party hub`, taken once it ran, imported by the other:
    the export now carries the audit log's key, which `hub keys import --peer` pins."""
    runner = CliRunner()
    for here, there, peer in ((north, south, "nwcsp-hub"), (south, north, "swcsp-hub")):
        key_file = here.settings.data_dir / "keys" / "log-signing.key"
        wait_for(key_file.exists, what="the audit sink's log key")
        exported = runner.invoke(app, ["keys", "export", "--party", "hub"], env=here.env())
        assert exported.exit_code == 0, exported.output
        assert json.loads(exported.stdout)["log_key"].startswith(log_origin(here.settings))
        path = there.settings.data_dir / f"{peer}.export.json"
        path.write_text(exported.stdout, encoding="utf-8")
        imported = runner.invoke(
            app, ["keys", "import", str(path), "--peer", peer], env=there.env()
        )
        assert imported.exit_code == 0, imported.output
        assert "audit log key" in imported.stdout


@pytest.fixture
def links(hubs: tuple[RunningHub, RunningHub]) -> Iterator[tuple[Link, Link]]:
    """The North's link to the South and the South's back, in this process, for one test."""
    north, south = hubs
    out = Link(north, south, peer="swcsp-hub", hub_id="nwcsp-hub")
    back = Link(south, north, peer="nwcsp-hub", hub_id="swcsp-hub")
    try:
        yield out, back
    finally:
        out.stop()
        back.stop()


def test_a_transfer_reaches_the_new_coordinator_and_both_logs(
    hubs: tuple[RunningHub, RunningHub], links: tuple[Link, Link]
) -> None:
    north, south = hubs
    case = unique("MARAC-NW")
    event_id = north.publish(
        "marac.north-worcs", MARAC_RAISED, marac_flag(case, district="worcester"), key=case
    )
    wait_for(lambda: "swcsp-hub" in {r.recipient for r in north.records(event_id)}, what="sent")
    sent = {r.recipient: r for r in north.records(event_id)}
    assert sent["swcsp-hub"].decision is AuditDecision.DELIVERED
    assert sent["swcsp-hub"].rule == "marac-transfer-to-south"

    received = wait_for(
        lambda: {r.recipient: r for r in south.records(event_id)}.get("marac.south-worcs"),
        timeout=60,
        what="the South coordinator's delivery in the South's audit log",
    )
    assert received.decision is AuditDecision.DELIVERED
    assert received.publisher == "nwcsp-hub"
    assert received.rule == "marac-transfer-from-north"
    delivered = {
        r.recipient for r in south.records(event_id) if r.decision is AuditDecision.DELIVERED
    }
    # the South's own rules: its coordinator whole, the Worcester department the flag only
    assert delivered == {"marac.south-worcs", "worcester-cc.housing"}

    [delivery] = [
        d
        for d in south.deliveries(
            "marac.south-worcs", until=lambda got: any(d.id == event_id for d in got)
        )
        if d.id == event_id
    ]
    assert delivery.source == "/parties/nwcsp-hub"
    assert delivery.rule == "marac-transfer-from-north"

    # the South's signed receipt comes back over its link; the North's log holds it, and
    # `hub federation status` shows the transfer received
    receipt = wait_for(
        lambda: [r for r in north.records(receipt_id(event_id)) if r.publisher == "swcsp-hub"],
        timeout=60,
        what="the South's receipt in the North's audit log",
    )
    assert {r.recipient for r in receipt if r.decision is AuditDecision.DELIVERED} == {
        "marac.north-worcs"
    }
    result = CliRunner().invoke(app, ["federation", "status", "--json"], env=north.env())
    assert result.exit_code == 0, result.output
    rows = {row["event_id"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows[event_id]["state"] == "received"
    assert rows[event_id]["peer"] == "swcsp-hub"

    # the North's signed checkpoints (delivered to every party, the peer too) stay home: the
    # South refuses nothing from its peer
    out, _ = links
    wait_for(lambda: out.stats.checkpoints > 0, what="a checkpoint the link kept back")
    with south.store() as store:
        assert store.query(party="nwcsp-hub", decision=AuditDecision.REJECTED) == []

    # the South's coordinator acknowledges the transfer: the North hears of that too
    async def acknowledge() -> None:
        async with HubClient(
            "marac.south-worcs", bootstrap=south.bootstrap, keys=south.keys
        ) as client:
            await client.acknowledge(delivery)

    asyncio.run(acknowledge())
    wait_for(
        lambda: [
            r
            for r in north.records(receipt_id(event_id, "acknowledged"))
            if r.decision is AuditDecision.DELIVERED
        ],
        timeout=60,
        what="the South's acknowledged receipt in the North's log",
    )
    result = CliRunner().invoke(app, ["federation", "status", "--json"], env=north.env())
    rows = {row["event_id"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows[event_id]["state"] == "acknowledged"
    assert delivery.data["case_ref"] == case
    assert delivery.data["address"]["district"] == "worcester"


def test_either_ig_officer_proves_the_hand_over_with_the_other_hubs_checkpoint(
    hubs: tuple[RunningHub, RunningHub], links: tuple[Link, Link], tmp_path: Path
) -> None:
    north, south = hubs
    case = unique("MARAC-PROOF")
    event_id = north.publish(
        "marac.north-worcs", MARAC_RAISED, marac_flag(case, district="malvern_hills"), key=case
    )
    received = wait_for(
        lambda: {r.recipient: r for r in south.records(event_id)}.get("marac.south-worcs"),
        timeout=60,
        what="the South coordinator's delivery",
    )
    sent = {r.recipient: r for r in north.records(event_id)}["swcsp-hub"]

    # each audit sink proves its record of the hand-over to the other hub once a checkpoint
    # covers it; each router verifies the proof with the pinned log key and keeps it
    def kept(hub: RunningHub, peer: str) -> bool:
        with open_proof_register(hub.settings) as register:
            return bool(register.entries(peer, event_id))

    wait_for(
        lambda: kept(north, "swcsp-hub"), timeout=60, what="the South's proof kept by the North"
    )
    wait_for(
        lambda: kept(south, "nwcsp-hub"), timeout=60, what="the North's proof kept by the South"
    )

    # and the proofs' routing is audited on each side (kept when opened, audited once routed)
    def audited(hub: RunningHub, proof: str) -> bool:
        return {r.decision for r in hub.records(proof)} == {AuditDecision.DELIVERED}

    wait_for(lambda: audited(north, proof_id(received.record_id)), what="the North's audit")
    wait_for(lambda: audited(south, proof_id(sent.record_id)), what="the South's audit")

    # a proof is a disclosure of the sender's audit record: the sender's own log records its
    # delivery to the peer, under the proofs-to-peer rule (it is never sent unaudited)
    def disclosed(hub: RunningHub, proof: str, peer: str, rule: str) -> bool:
        return {(r.publisher, r.recipient, r.rule) for r in hub.records(proof)} == {
            ("hub", peer, rule)
        }

    wait_for(
        lambda: disclosed(
            north, proof_id(sent.record_id), "swcsp-hub", "marac-transfer-proofs-to-south"
        ),
        what="the North's record of its proof's delivery to the South",
    )
    wait_for(
        lambda: disclosed(
            south, proof_id(received.record_id), "nwcsp-hub", "marac-transfer-proofs-to-north"
        ),
        what="the South's record of its proof's delivery to the North",
    )

    runner = CliRunner()
    # the North's IG officer: the South's log holds its coordinator's delivery
    result = runner.invoke(
        app, ["audit", "proof", "--peer", "swcsp-hub", "--event", event_id], env=north.env()
    )
    assert result.exit_code == 0, result.output
    assert (
        f"swcsp-hub's log holds record {received.record_id}: event {event_id} delivered "
        "to marac.south-worcs from nwcsp-hub" in result.stdout
    )
    assert (
        f"this log holds record {sent.record_id}: event {event_id} delivered to swcsp-hub"
        in result.stdout
    )
    # the South's IG officer: the North's log holds the delivery to the South
    result = runner.invoke(
        app,
        ["audit", "proof", "--peer", "nwcsp-hub", "--event", event_id, "--json"],
        env=south.env(),
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert [p["record"]["record_id"] for p in answer["proven"]] == [sent.record_id]
    assert answer["proven"][0]["origin"] == log_origin(north.settings)
    assert received.record_id in {r["record_id"] for r in answer["here"][event_id]}

    # by hand: the South exports a bundle of every record of the event; the North checks it
    bundle_path = tmp_path / "south-bundle.json"
    result = runner.invoke(
        app,
        ["audit", "proof", "--event", event_id, "--export", str(bundle_path)],
        env=south.env(),
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        ["audit", "proof", "--peer", "swcsp-hub", "--bundle", str(bundle_path)],
        env=north.env(),
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("verified") == len(south.records(event_id))
    # a bundle edited after export does not verify: the record is the leaf's bytes
    document = json.loads(bundle_path.read_text())
    document["proofs"][0]["record"] = document["proofs"][0]["record"].replace(
        "delivered", "withheld"
    )
    bundle_path.write_text(json.dumps(document))
    result = runner.invoke(
        app,
        ["audit", "proof", "--peer", "swcsp-hub", "--bundle", str(bundle_path)],
        env=north.env(),
    )
    assert result.exit_code == 1
    assert "do not verify" in result.output
    # nor does the South's bundle under the North's own log key (another log)
    result = runner.invoke(
        app,
        ["audit", "proof", "--peer", "nwcsp-hub", "--bundle", str(bundle_path)],
        env=south.env(),
    )
    assert result.exit_code == 1


def test_once_the_new_area_takes_ownership_the_old_one_lets_go(
    hubs: tuple[RunningHub, RunningHub], links: tuple[Link, Link]
) -> None:
    north, south = hubs
    case = unique("MARAC-OWN")
    raised = north.publish("marac.north-worcs", MARAC_RAISED, marac_flag(case), key=case)
    moved = marac_flag(case, district="worcester")
    transfer = north.publish(
        "marac.north-worcs", MARAC_UPDATED, {**moved, "change_reason": "moved"}, key=case
    )
    wait_for(
        lambda: _coordinator_deliveries(south, [transfer])[transfer] == 1,
        timeout=60,
        what="the transfer at the South's coordinator",
    )
    holders = {
        r.recipient
        for r in north.records(raised)
        if r.decision is AuditDecision.DELIVERED and r.recipient is not None
    }
    assert "redditch-bc.community-safety" in holders  # a department of the old area holds it
    # the South's coordinator takes ownership: an explicit event, carried back over the link
    ownership = south.publish(
        "marac.south-worcs",
        OWNERSHIP_TYPE,
        {
            "case_ref": case,
            "previous_owner": "nwcsp-hub",
            "transfer_event_id": transfer,
            "new_case_ref": None,
            "taken_on": dt.date(2026, 12, 3),
        },
        key=case,
    )
    wait_for(
        lambda: any(
            r.recipient == "marac.north-worcs" and r.decision is AuditDecision.DELIVERED
            for r in north.records(ownership)
        ),
        timeout=60,
        what="the South's ownership delivered to the North's coordinator",
    )
    # the North's hub tells every holder of the flag to withdraw it, each delivery audited;
    # the South, which owns the case now, is not told
    notice = withdraw_id(ownership)
    wait_for(
        lambda: (
            holders - {"swcsp-hub"}
            <= {r.recipient for r in north.records(notice) if r.decision is AuditDecision.DELIVERED}
        ),
        timeout=60,
        what="the withdrawal notice delivered to every holder of the flag",
    )
    [to_peer] = [r for r in north.records(notice) if r.recipient == "swcsp-hub"]
    assert to_peer.decision is AuditDecision.WITHHELD
    assert "took ownership" in to_peer.reason
    # the old area's MARAC status: its flag ended (no more reviews or expiries), the
    # transfer owned by the South
    runner = CliRunner()
    result = runner.invoke(app, ["marac", "status", "--case", case, "--json"], env=north.env())
    [flag] = json.loads(result.stdout)["flags"]
    assert flag["status"] == "withdrawn"
    assert {"peer": "swcsp-hub", "event_id": transfer, "state": "owned"} in flag["transfers"]
    result = runner.invoke(app, ["marac", "status", "--case", case], env=north.env())
    assert f"transferred to swcsp-hub (event {transfer}): ownership taken by the peer" in (
        result.stdout
    )
    # later flag events of the case stop following it to the South
    later = north.publish(
        "marac.north-worcs", MARAC_UPDATED, {**moved, "change_reason": "other"}, key=case
    )
    record = wait_for(
        lambda: {r.recipient: r for r in north.records(later)}.get("swcsp-hub"),
        what="the later update's decision for the peer",
    )
    assert record.decision is AuditDecision.WITHHELD
    assert f"peer swcsp-hub took ownership of case {case}" in record.reason
    # both sides' federation status say so
    result = runner.invoke(app, ["federation", "status", "--json"], env=north.env())
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"peer": "swcsp-hub", "event_id": transfer, "state": "owned"}.items() <= next(
        r for r in rows if r.get("event_id") == transfer
    ).items()
    assert any(r.get("ownership_event_id") == ownership and r["state"] == "owned by peer"
               for r in rows)  # fmt: skip
    result = runner.invoke(app, ["federation", "status", "--json"], env=south.env())
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(
        r.get("ownership_event_id") == ownership and r["state"] == "ownership taken here"
        for r in rows
    )


def test_a_forged_transfer_from_a_third_hub_is_quarantined(
    hubs: tuple[RunningHub, RunningHub], tmp_path: Path
) -> None:
    _, south = hubs
    # a third hub pinned the South's published keys, so it can seal to the South; it signs
    # with its own key and writes where the North's link writes
    rogue = _hub_keys(tmp_path / "keys", default_protocol_path())
    _pin(rogue, "swcsp-hub", _export(south.keys))
    event_id = wire.new_event_id()
    attrs = EventAttributes(
        id=event_id,
        source=wire.source_for("marac.north-worcs"),
        type=MARAC_RAISED,
        time=dt.datetime.now(dt.UTC),
        datacontenttype=wire.JSON,
    )
    data = marac_flag(unique("MARAC-FORGED"), district="worcester")
    sealed = PartyEnvelope("hub", store=rogue).seal(
        attrs,
        key=b"CASE-FORGED",
        plaintext=wire.canonical_json(data),
        recipient="swcsp-hub",
        suite="mlkem768-x25519",
    )

    async def produce() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=south.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(
                "hub.in.nwcsp-hub", key=b"CASE-FORGED", value=sealed.value, headers=sealed.headers
            )
        finally:
            await producer.stop()

    asyncio.run(produce())
    [record] = south.wait_records(event_id)
    assert record.decision is AuditDecision.REJECTED
    assert "unknown" in record.reason
    assert record.recipient is None or record.recipient != "marac.south-worcs"


def _coordinator_deliveries(south: RunningHub, ids: list[str]) -> dict[str, int]:
    """Per event id, how many times the South's log says its coordinator was delivered it."""
    counts = dict.fromkeys(ids, 0)
    for event_id in ids:
        for record in south.records(event_id):
            if (
                record.recipient == "marac.south-worcs"
                and record.decision is AuditDecision.DELIVERED
            ):
                counts[event_id] += 1
    return counts


def _forwarded_count(north: RunningHub) -> int:
    log = ForwardedLog(north.settings.data_dir / "federation" / "swcsp-hub.sqlite3")
    try:
        return log.count()
    finally:
        log.close()


def _start_link(north: RunningHub, south: RunningHub) -> subprocess.Popen[str]:
    hub = Path(sys.executable).with_name("hub")
    return subprocess.Popen(
        [
            str(hub),
            "federation",
            "link",
            "--peer",
            "swcsp-hub",
            "--peer-bootstrap",
            south.bootstrap,
        ],
        env={**os.environ, **north.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


#: a link like `hub federation link`'s, which sends each batch in two halves and, once the
#: South's broker acknowledged the first, prints `cut SENT TOTAL` and hangs there: nothing of
#: the batch remembered in the forwarded log, no offset committed
_CUT_LINK = """
import asyncio, sys
from pathlib import Path
from hub.federation.link import ForwardedLog, run_link

async def hang(sent: int, total: int) -> None:
    print(f"cut {sent} {total}", flush=True)
    await asyncio.Event().wait()

asyncio.run(run_link(peer="swcsp-hub", hub_id="nwcsp-hub", bootstrap=sys.argv[1],
                     peer_bootstrap=sys.argv[2], forwarded=ForwardedLog(Path(sys.argv[3])),
                     between_halves=hang, session_timeout=float(sys.argv[4])))
"""


def _start_cut_link(north: RunningHub, south: RunningHub) -> subprocess.Popen[str]:
    forwarded = north.settings.data_dir / "federation" / "swcsp-hub.sqlite3"
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CUT_LINK,
            north.bootstrap,
            south.bootstrap,
            str(forwarded),
            str(TEST_HUB_SETTINGS["session_timeout"]),
        ],
        env={**os.environ, **north.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _inbound_at_south(south: RunningHub) -> Counter[str]:
    """Each event id on the South's hub.in.nwcsp-hub (the link's target), and how many times."""
    return _ids_on(south, "hub.in.nwcsp-hub")


def _ids_on(hub: RunningHub, topic: str) -> Counter[str]:
    """Each event id on ``topic`` of ``hub``'s broker, and how many messages carry it."""
    return Counter(event_ids_on(hub.bootstrap, topic))


def _routed_to_end(hub: RunningHub, topic: str) -> bool:
    """The router's group has committed ``topic`` up to its end: every message there decided."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from hub.broker.offsets import end_offsets

    async def behind() -> int:
        # the group's committed offsets only: this consumer joins nothing and commits nothing
        consumer = AIOKafkaConsumer(
            bootstrap_servers=hub.bootstrap, group_id=ROUTER_GROUP, enable_auto_commit=False
        )
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            consumer.assign(tps)
            ends = await end_offsets(consumer, tps)
            committed = [await consumer.committed(tp) or 0 for tp in tps]
            return sum(max(0, ends[tp] - done) for tp, done in zip(tps, committed, strict=True))
        finally:
            await consumer.stop()

    return asyncio.run(behind()) == 0


def _read_line(process: subprocess.Popen[str], prefix: str, *, timeout: float, what: str) -> str:
    """The process's first stdout line starting with ``prefix`` (its log lines skipped),
    waited for on a thread with a deadline."""
    found: list[str] = []
    stdout = process.stdout
    assert stdout is not None

    def read() -> None:
        for line in stdout:
            if line.startswith(prefix):
                found.append(line)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
    return found[0]


def test_a_link_killed_mid_stream_loses_nothing_and_repeats_nothing(
    hubs: tuple[RunningHub, RunningHub],
) -> None:
    north, south = hubs
    before = _inbound_at_south(south)
    ids = [
        north.publish(
            "marac.north-worcs",
            MARAC_RAISED,
            marac_flag(case := unique("MARAC-KILL"), district="wychavon"),
            key=case,
        )
        for _ in range(30)
    ]

    def sent(event_id: str) -> bool:
        return "swcsp-hub" in {r.recipient for r in north.records(event_id)}

    # all on hub.out.swcsp-hub before the link runs
    wait_for(lambda: all(sent(e) for e in ids), what="every transfer routed to the peer")
    forwarded_before = _forwarded_count(north)
    first = _start_cut_link(north, south)
    try:
        # the cut: half a batch acknowledged by the South's broker, not yet remembered or
        # committed; the link hangs there until killed
        line = _read_line(first, "cut ", timeout=60, what="the link to cut a batch in half")
    finally:
        first.send_signal(signal.SIGKILL)  # mid-batch: no commit, no goodbye
        first.communicate(timeout=30)
    _, half, total = line.split()
    assert 1 <= int(half) < int(total), line
    assert _forwarded_count(north) - forwarded_before == 0  # the half is not remembered
    crossed = _inbound_at_south(south) - before
    assert sum(crossed.values()) == int(half), crossed
    assert set(crossed.values()) == {1}, crossed
    more = [
        north.publish(
            "marac.north-worcs",
            MARAC_RAISED,
            marac_flag(case := unique("MARAC-KILL"), district="malvern_hills"),
            key=case,
        )
        for _ in range(5)
    ]
    again = _start_link(north, south)
    try:
        wait_for(
            lambda: all(_coordinator_deliveries(south, ids + more).values()),
            timeout=90,
            what="every transfer at the South after the restart",
        )
    finally:
        again.send_signal(signal.SIGTERM)
        out, _ = again.communicate(timeout=30)
    assert again.returncode == 0, out
    assert "link stopped" in out
    # nothing lost, nothing twice, as the coordinator sees it: each transfer once on its
    # topic, counted once the South's router decided everything the link carried (the audit
    # store keeps one record per id, so it cannot show a second delivery)
    wait_for(
        lambda: _routed_to_end(south, "hub.in.nwcsp-hub"),
        timeout=60,
        what="the South's router to decide everything the link carried",
    )
    on_topic = _ids_on(south, "hub.out.marac.south-worcs")
    counts = {e: on_topic[e] for e in ids + more}
    assert set(counts.values()) == {1}, counts
    # the cut half crossed twice (at least once), nothing else did, and the South routed
    # each transfer once (the proofs of the North's log cross the same link: not counted)
    crossed = _inbound_at_south(south) - before
    assert set(ids + more) <= set(crossed)
    assert sum(crossed.values()) - len(crossed) == int(half), crossed
    assert set(crossed.values()) <= {1, 2}
    refused = [
        r for e in ids + more for r in south.records(e) if r.decision is AuditDecision.REJECTED
    ]
    assert refused == []


def test_hub_up_starts_and_supervises_the_links_its_settings_name(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # one command per hub: HUB_FEDERATION_LINKS=PEER=HOST:PORT, and the supervisor runs the
    # link as one of its processes (started, restarted when it dies, stopped with the hub)
    north_dir, south_dir = tmp_path_factory.mktemp("north-up"), tmp_path_factory.mktemp("south-up")
    north_keys = _hub_keys(HubSettings(data_dir=north_dir).keys_dir, default_protocol_path())
    south_keys = _hub_keys(HubSettings(data_dir=south_dir).keys_dir, SOUTH_PROTOCOL)
    _pin(north_keys, "swcsp-hub", _export(south_keys))
    _pin(south_keys, "nwcsp-hub", _export(north_keys))
    with EmbeddedBroker() as north_broker, EmbeddedBroker() as south_broker:
        north = start_hub(
            north_broker.bootstrap,
            north_dir,
            federation_links=f"swcsp-hub={south_broker.bootstrap}",
        )
        try:
            south = start_hub(
                south_broker.bootstrap,
                south_dir,
                protocol=SOUTH_PROTOCOL,
                federation_links=f"nwcsp-hub={north_broker.bootstrap}",
            )
            try:
                _pin_log_keys(north, south)
                assert set(north.supervisor.links) == {"swcsp-hub"}
                assert set(south.supervisor.links) == {"nwcsp-hub"}

                def transfer() -> str:
                    case = unique("MARAC-UP")
                    flag = marac_flag(case, district="wychavon")
                    return north.publish("marac.north-worcs", MARAC_RAISED, flag, key=case)

                def at_south(event_id: str) -> bool:
                    return _coordinator_deliveries(south, [event_id])[event_id] == 1

                first = transfer()
                wait_for(lambda: at_south(first), timeout=60, what="the transfer at the South")
                # the South's link, started by its own hub up, carries the receipt home
                wait_for(
                    lambda: north.records(receipt_id(first)),
                    timeout=60,
                    what="the South's receipt in the North's log",
                )
                # a link that dies is restarted by the supervisor, and resumes
                link = north.supervisor.links["swcsp-hub"]
                link.send_signal(signal.SIGKILL)
                link.wait(timeout=30)
                said = north.supervisor.heal()
                assert any("federation link swcsp-hub" in line for line in said), said
                assert north.supervisor.links["swcsp-hub"].pid != link.pid
                assert north.supervisor.links["swcsp-hub"].poll() is None
                second = transfer()
                wait_for(lambda: at_south(second), timeout=60, what="a transfer after the restart")
                links = list(north.supervisor.links.values())
            finally:
                south.supervisor.stop()
        finally:
            north.supervisor.stop()
    assert north.supervisor.links == {}
    assert all(proc.returncode == 0 for proc in links)  # stopped on SIGTERM, cleanly
