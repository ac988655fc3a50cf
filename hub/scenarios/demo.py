"""The demo: play seeded North Worcestershire traffic through a running hub, live summary.

Every party of the protocol runs a consumer that acknowledges what it receives, as agency
systems would; publishers publish at a steady rate; the summary is read from the audit store,
so what it prints is what the hub recorded, not what the demo hoped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from hub.agents.sink import CHECKPOINT_TYPE
from hub.audit.store import AuditStore
from hub.broker.security import KafkaSecurity
from hub.client import HubClient
from hub.errors import HubError
from hub.keys.store import KeyStore
from hub.policies.model import Protocol
from hub.scenarios.asb import asb_case
from hub.scenarios.north_worcs import Scenario
from hub.scenarios.strategic import quarter_submissions

__all__ = ["DemoSummary", "earlier_runs_note", "run_demo"]

REJECTED_NOTICE = "uk.csp.hub.rejected.v1"


@dataclass
class DemoSummary:
    """Counts of one demo run, as recorded by the hub's audit store."""

    published: int = 0
    expected_rejections: int = 0
    decided: int = 0
    received: Counter[str] = field(default_factory=Counter)
    notices: int = 0
    checkpoints: int = 0
    audit: dict[str, int] = field(default_factory=dict)

    def line(self, elapsed: float, total: int) -> str:
        """One line of the live summary."""
        a = self.audit
        return (
            f"[{elapsed:5.1f}s] published {self.published}/{total}  "
            f"decided {self.decided}  delivered {a.get('delivered', 0)}  "
            f"withheld {a.get('withheld', 0)}  quarantined {a.get('rejected', 0)}  "
            f"acknowledged {a.get('acknowledged', 0)}"
        )


def earlier_runs_note(records: int) -> str | None:
    """What to tell a user whose data dir already holds a run (None: it holds none).

    The registers persist with the audit store, and the scenario's case, flag and ban
    references come from its seed: run again over the same data dir, the events that raise
    them again are refused (a flag already raised, a ban already in force), as they should
    be. Said before the run, so the refusals are not a surprise.
    """
    if records <= 0:
        return None
    return (
        f"note: this hub's audit store already holds {records} records from earlier runs; "
        "the scenario's flags, bans and cases are registered there, so events that raise "
        "them again are refused (already raised, already in force). The counts below are "
        "this run's. For a fresh run, point HUB_DATA_DIR at a new directory."
    )


def _since(now: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Per-decision counts of this run: the store's now, less what it held at the start."""
    return {decision: n - before.get(decision, 0) for decision, n in now.items()}


async def _consume(client: HubClient, summary: DemoSummary, stop: asyncio.Event) -> None:
    """Follow one party's deliveries and acknowledge each, until told to stop."""
    async for delivery in client.deliveries(follow=True, poll_timeout=0.5):
        if delivery.type == REJECTED_NOTICE:
            summary.notices += 1
        elif delivery.type == CHECKPOINT_TYPE:
            summary.checkpoints += 1
        elif delivery.wants_ack:
            summary.received[client.party] += 1
            await client.acknowledge(delivery)
        if stop.is_set():
            return


async def run_demo(
    *,
    bootstrap: str,
    protocol: Protocol,
    store: AuditStore,
    keys: KeyStore,
    events: int,
    rate: float,
    seed: int,
    report: Callable[[str], None],
    settle_timeout: float = 60.0,
    security: KafkaSecurity | None = None,
) -> DemoSummary:
    """Publish ``events`` scenario events at ``rate`` per second and report as they route."""
    summary = DemoSummary()
    stop = asyncio.Event()
    # a peer hub's deliveries are carried by `hub federation link`, never read here
    clients = {
        p: HubClient(p, bootstrap=bootstrap, keys=keys, security=security)
        for p in protocol.party_ids
        if not protocol.is_peer(p)
    }
    consumers = [asyncio.create_task(_consume(c, summary, stop)) for c in clients.values()]
    pending: set[str] = set()
    # then one ASB Case Review application and its answers (the hub's sweep decides it)
    asb = list(asb_case(seed=seed, start=dt.datetime.now(dt.UTC).date())) if protocol.asb else []
    # and the last quarter's s17A submissions (one partner late: `hub strategic status`)
    s17a = (
        list(
            quarter_submissions(protocol.strategic, seed=seed, today=dt.datetime.now(dt.UTC).date())
        )
        if protocol.strategic
        else []
    )
    total = events + len(asb) + len(s17a)
    at_start = store.counts()
    note = earlier_runs_note(sum(at_start.values()))
    if note is not None:
        report(note)
    started = time.monotonic()
    last_report = 0.0

    def refresh() -> None:
        nonlocal last_report
        for event_id in list(pending):
            if store.has_event(event_id):
                pending.discard(event_id)
                summary.decided += 1
        summary.audit = _since(store.counts(), at_start)
        now = time.monotonic() - started
        if now - last_report >= 2.0:
            last_report = now
            report(summary.line(now, total))

    try:
        for item in itertools.chain(Scenario(seed=seed).events(events), asb, s17a):
            publisher = clients[item.publisher]
            try:
                event_id = await publisher.publish(
                    item.event_type, item.data, key=item.key, subject=item.subject
                )
            except HubError as exc:
                report(f"publish refused by the SDK: {exc}")
                continue
            summary.published += 1
            summary.expected_rejections += item.expect == "rejected"
            pending.add(event_id)
            refresh()
            await asyncio.sleep(1.0 / rate)
        deadline = time.monotonic() + settle_timeout
        while pending and time.monotonic() < deadline:
            refresh()
            await asyncio.sleep(0.5)
        # give recipients a moment to acknowledge what they were just given
        acks_deadline = time.monotonic() + 10
        while time.monotonic() < acks_deadline:
            before = store.counts().get("acknowledged", 0)
            await asyncio.sleep(1.0)
            if store.counts().get("acknowledged", 0) == before:
                break
        last_report = -10.0
        refresh()
    finally:
        stop.set()
        for task in consumers:
            task.cancel()
        for task in consumers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for client in clients.values():
            await client.close()
    return summary
