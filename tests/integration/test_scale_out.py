"""Scale out (issue 22): router workers on several "hosts" sharing one PostgreSQL.

Each host is a supervisor of its own (``hub up``: one router worker, one audit sink) with a
data dir of its own, on one embedded broker (its own: workers are added and killed) and one
throwaway PostgreSQL (``tests/postgres.py``) holding the audit log and every piece of shared
state (``HUB_STATE_URL``). What a host's data dir starts with is what a Kubernetes pod gets
from its Secret and nothing else: the hub's keys, the pseudonym key and the audit stream key
(``provision``). No host can see another's files, so any state a worker needed from another
would show up here as a wrong answer.

One run routes the seeded scenario on two hosts; a third host joins while the stream flows
(a rebalance in the middle of cases: partitions move to it with their cases half routed),
then one host's worker is killed with SIGKILL (its partitions move to the survivors after the
session timeout, mid-case again). Then:

- 0 events lost: every published event has its decision in the audit log;
- 0 delivered twice: each audited delivery once, and each recipient's view (its inbox,
  idempotent by event id) holds every event audited to it, once;
- the seen-event lookup is exact across workers: events published again under another key
  (so on another partition, owned by another worker) are quarantined as duplicates, not
  delivered again;
- the registers agree with a single worker's run of the same traffic (same ids, same hub
  clock): ``hub marac status --all --json`` prints the same document for both.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hub.audit.store import open_store
from hub.broker import EmbeddedBroker
from hub.cli.main import app
from hub.client import HubClient
from hub.models import AuditDecision, Delivery
from hub.scenarios.north_worcs import Scenario
from hub.settings import HubSettings
from hub.state import open_seen
from tests.conftest import RunningHub, event_ids_on_topics, start_hub, wait_for
from tests.postgres import PostgresServer

pytestmark = pytest.mark.integration

EVENTS = 90
SEED = 22
#: the hub's clock for both runs, so register times do not depend on when each ran
NOW = "2025-03-03T10:00:00+00:00"
#: ids of the scenario's events: the same in both runs
_NS = uuid.UUID("6f1c8a40-22aa-4a5e-9f00-000000000022")
#: the secrets a pod mounts; everything else in its data dir it makes itself
_SECRETS = ("keys", "pseudonym.key", "audit-stream.key")


def event_id(index: int) -> str:
    return str(uuid.uuid5(_NS, f"{SEED}/{index}"))


def provision(source: Path, target: Path) -> None:
    """A new host's data dir: the hub's secrets (as a Kubernetes Secret would mount them)."""
    target.mkdir(parents=True)
    for name in _SECRETS:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, target / name)
        elif path.exists():
            shutil.copy2(path, target / name)


class Hosts:
    """Hosts on one broker and one database; the first made the hub's secrets."""

    def __init__(self, broker: EmbeddedBroker, root: Path, url: str, clock: Path) -> None:
        self.broker = broker
        self.root = root
        self.overrides: dict[str, Any] = {
            "state_url": url,
            "audit_url": url,
            "clock_file": clock,
            "workflow_interval": 0,  # no sweep publishes anything of its own meanwhile
            "session_timeout": 6.0,  # a killed worker's partitions move within seconds
            # the hub's default, not the tests' 1: a case's topic is split over the workers
            # and a repeat under another key lands on another partition, another worker
            "partitions": 3,
        }
        self.running: list[RunningHub] = []

    def add(self) -> RunningHub:
        data_dir = self.root / f"host{len(self.running) + 1}"
        if self.running:
            provision(self.running[0].settings.data_dir, data_dir)
        hub = start_hub(self.broker.bootstrap, data_dir, **self.overrides)
        self.running.append(hub)
        for other in self.running:
            other.supervisor.wait_ready(timeout=120)
        return hub

    def stop(self) -> None:
        for hub in reversed(self.running):
            hub.supervisor.stop()


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[Any]:
    made: list[str] = []

    def make() -> str:
        made.append(postgres_server.create_database())
        return made[-1]

    yield make
    for url in made:
        postgres_server.drop_database(url)


def publish(hub: RunningHub, published: list[str], *, start: int = 0) -> None:
    """The seeded scenario, one event at a time, with fixed ids."""

    async def run() -> None:
        clients: dict[str, HubClient] = {}
        try:
            for index, item in enumerate(Scenario(seed=SEED).events(EVENTS)):
                if index < start:
                    continue
                client = clients.setdefault(
                    item.publisher,
                    HubClient(item.publisher, bootstrap=hub.bootstrap, keys=hub.keys),
                )
                published.append(
                    await client.publish(
                        item.event_type,
                        item.data,
                        key=item.key,
                        subject=item.subject,
                        event_id=event_id(index),
                    )
                )
                await asyncio.sleep(0.02)
        finally:
            for client in clients.values():
                await client.close()

    asyncio.run(run())


def decided(settings: HubSettings, ids: list[str]) -> int:
    with closing(open_store(settings)) as store:
        return sum(store.has_event(i) for i in ids)


def marac_status(settings: HubSettings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``hub marac status --all --json`` against one host's settings."""
    for name, value in (
        ("HUB_DATA_DIR", settings.data_dir),
        ("HUB_STATE_URL", settings.state_url),
        ("HUB_AUDIT_URL", settings.audit_url),
        ("HUB_CLOCK_FILE", settings.clock_file),
    ):
        monkeypatch.setenv(name, str(value))
    result = CliRunner().invoke(app, ["marac", "status", "--all", "--json"])
    # CliRunner reports an exception as exit code 1 too: that is a crash, not "overdue"
    assert not isinstance(result.exception, Exception), repr(result.exception)
    assert result.exit_code in (0, 1), result.output  # 1: some department overdue
    assert result.stdout, result.output  # an error message instead of the status
    status: dict[str, Any] = json.loads(result.stdout)
    assert status["flags"], "the scenario raises MARAC flags"
    return status


def _registers(status: dict[str, Any]) -> dict[str, Any]:
    """The status without the one wall-clock field: when a CP-IS view was published.

    A view's ``at`` is the access event's CloudEvents ``time``, which the publishing SDK
    stamps with its own clock at each run; everything else comes from the registers, the
    audit log and the hub's (fixed) clock.
    """
    flags = [
        {**flag, "viewed": [view["party"] for view in flag["viewed"]]} for flag in status["flags"]
    ]
    return {**status, "flags": flags}


def route_on_one_worker(
    root: Path, url: str, clock: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    with EmbeddedBroker() as broker:
        hosts = Hosts(broker, root, url, clock)
        try:
            hub = hosts.add()
            published: list[str] = []
            publish(hub, published)
            wait_for(
                lambda: decided(hub.settings, published) == EVENTS,
                timeout=120,
                what="every event decided by the single worker",
            )
            _delivered_once(hub, published, replays=1)  # no crash: exactly once on each topic
            return marac_status(hub.settings, monkeypatch)
        finally:
            hosts.stop()


def test_workers_on_three_hosts_share_state_in_postgres(
    tmp_path: Path, database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = tmp_path / "clock"
    clock.write_text(NOW)
    single = route_on_one_worker(tmp_path / "single", database(), clock, monkeypatch)

    url = database()
    with EmbeddedBroker() as broker:
        hosts = Hosts(broker, tmp_path / "multi", url, clock)
        try:
            first = hosts.add()
            hosts.add()
            published: list[str] = []
            publisher = threading.Thread(target=publish, args=(first, published))
            publisher.start()
            wait_for(
                lambda: decided(first.settings, list(published)) >= 20,
                timeout=90,
                what="20 events routed by two hosts",
            )
            hosts.add()  # a third host joins: partitions move in the middle of cases
            wait_for(
                lambda: decided(first.settings, list(published)) >= 45,
                timeout=90,
                what="45 events routed by three hosts",
            )
            # partitions moved mid-stream (the third host), nothing killed: each worker settled
            # what it had in flight before letting go (lifecycle.settle), so no copies
            _delivered_once(first, list(published), replays=1)
            assert hosts.running[1].supervisor.kill_worker(0) > 0  # SIGKILL, mid-stream
            publisher.join(timeout=180)
            assert len(published) == EVENTS
            wait_for(
                lambda: decided(first.settings, published) == EVENTS,
                timeout=180,
                what="every published event decided after the kill (0 lost)",
            )
            settings = first.settings
            delivered = _delivered_once(first, published, replays=2)
            _views_hold_each_once(first, delivered)
            _seen_is_exact_across_workers(first, published, delivered)
            multi = marac_status(settings, monkeypatch)
        finally:
            hosts.stop()

    for name, status in (("single", single), ("multi", multi)):  # for a diff when they differ
        (tmp_path / f"marac-status-{name}.json").write_text(json.dumps(status, indent=2))
    assert _registers(multi) == _registers(single)
    for host in (tmp_path / "multi").iterdir():  # no host kept state another one needed
        assert not (host / "workflows.sqlite3").exists()
        assert not (host / "seen-events.sqlite3").exists()
        assert not (host / "keys" / "cases").exists()


def _delivered_once(
    hub: RunningHub, published: list[str], *, replays: int = 1
) -> dict[str, set[str]]:
    """Recipient -> events audited as delivered to it, each on its topic, at most ``replays``.

    Counted on each recipient's ``hub.out.<party>``, what the party itself reads: the audit
    store keeps one record per (deterministic) id, so it cannot show a second delivery.
    ``replays`` 1 for a run without a crash, partitions moving or not (a worker settles what
    it has in flight before it lets a partition go: ``hub.agents.lifecycle.settle``); after
    a kill -9 an event the killed worker had produced but not committed is routed again by
    the next owner (at least once, the same ids, the inbox drops the copy): 2.
    """
    with closing(open_store(hub.settings)) as store:
        records = [r for i in published for r in store.query(event_id=i)]
    owed: dict[str, set[str]] = {}
    for r in records:
        if r.decision == AuditDecision.DELIVERED:
            assert r.recipient is not None
            owed.setdefault(r.recipient, set()).add(r.event_id)
    assert owed, "the scenario delivers to someone"

    def on_topics() -> dict[tuple[str, str], int] | None:
        counts: dict[tuple[str, str], int] = {}
        read = event_ids_on_topics(hub.bootstrap, [f"hub.out.{party}" for party in owed])
        for party, events in owed.items():
            found = read[f"hub.out.{party}"]
            counts |= {(event, party): found.get(event, 0) for event in events}
        # the audit record is written before the delivery is produced: wait for the last
        return counts if min(counts.values()) >= 1 else None

    counts = wait_for(on_topics, timeout=60, what="every audited delivery on its topic")
    over = {k: n for k, n in counts.items() if n > replays}
    assert not over, f"delivered more than {replays} time(s) to a recipient's topic: {over}"
    return owed


def _views_hold_each_once(hub: RunningHub, owed: dict[str, set[str]]) -> None:
    for party, events in sorted(owed.items()):

        def complete(ds: list[Delivery], e: set[str] = events) -> bool:
            return e <= {d.id for d in ds}

        view = hub.deliveries(party, until=complete)
        assert complete(view), f"{party}: an audited delivery is not on its topic"
        handled = _through_inbox(hub, party)
        ids = [i for i in handled if i in events]
        assert sorted(ids) == sorted(events), f"{party}: its view differs from its audit"


def _through_inbox(hub: RunningHub, party: str) -> list[str]:
    """What an idempotent consumer (with an inbox) handles: each event id once."""

    async def run() -> list[str]:
        seen: list[str] = []
        async with HubClient(
            party,
            bootstrap=hub.bootstrap,
            inbox=hub.settings.data_dir / f"inbox-{party}.sqlite3",
            group_id=f"scale-check-{party}",
            keys=hub.keys,
        ) as client:
            async for delivery in client.deliveries():
                seen.append(delivery.id)
        return seen

    return asyncio.run(run())


def _seen_is_exact_across_workers(
    hub: RunningHub, published: list[str], delivered: dict[str, set[str]]
) -> None:
    """Five events again, each under another key (another partition, another worker).

    The router audits a duplicate under ``duplicate:<origin>`` (the original keeps its own
    records), refused with ``duplicate_event_id``; the original gets no delivery more.
    """
    items = list(Scenario(seed=SEED).events(EVENTS))
    again = [(i, items[i]) for i in range(0, EVENTS, EVENTS // 5)][:5]
    origins: list[str] = []

    async def run() -> None:
        for index, item in again:
            async with HubClient(item.publisher, bootstrap=hub.bootstrap, keys=hub.keys) as c:
                message = c.build(
                    item.event_type,
                    item.data,
                    key=f"{item.key}-elsewhere",
                    subject=item.subject,
                    event_id=event_id(index),
                )
                origins.append(await c.send(message))

    with closing(open_store(hub.settings)) as store:
        before = {
            i: sum(r.decision == AuditDecision.DELIVERED for r in store.query(event_id=event_id(i)))
            for i, _ in again
        }
    asyncio.run(run())
    with open_seen(hub.settings) as seen:
        firsts = [seen.first(event_id(i)) or "" for i, _ in again]
    partition = [o.split("/")[1] for o in origins]
    assert any(f.split("/")[1:2] != [p] for f, p in zip(firsts, partition, strict=True)), (
        "at least one repeat must land on another partition than its original"
    )

    def refused() -> list[str] | None:
        with closing(open_store(hub.settings)) as store:
            reasons = [
                r.reason or ""
                for origin in origins
                for r in store.query(event_id=f"duplicate:{origin}")
                if r.decision == AuditDecision.REJECTED
            ]
        return reasons if len(reasons) == len(origins) else None

    reasons = wait_for(refused, timeout=60, what="the repeats refused as duplicates")
    assert all(reason.startswith("duplicate_event_id") for reason in reasons)
    with closing(open_store(hub.settings)) as store:
        for index, _ in again:
            records = store.query(event_id=event_id(index))
            deliveries = [r for r in records if r.decision == AuditDecision.DELIVERED]
            assert len(deliveries) == before[index]  # not one delivery more
    routed = {e for events in delivered.values() for e in events}
    with open_seen(hub.settings) as seen:  # every worker's claims, in one place
        assert all(seen.first(i) is not None for i in routed)
        assert seen.count() <= len(set(published))
