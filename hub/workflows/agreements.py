"""Information sharing agreements that are lapsing or lapsed, and who is told.

An agreement past its review date stops being relied on: the engine suspends every rule that
names it from the next day (``Agreement.suspended_on``). ``hub policy check`` warns 30 days
ahead, but a warning is read only by whoever runs it. Here the hub tells the partnership's IG
officers itself, as the protocol's ``governance`` section says:

- ``agreement_states``: each agreement in force, its days to review and whether it is due
  (within the largest notice) or suspended. The console's banner and the
  ``hub_agreement_*`` metrics read it, so both clear when the protocol names a new review
  date (the agreement was renewed).
- ``plan_alerts``: the alert due now for each agreement (``review_due`` at each notice, 30
  and 7 days by default; ``suspended`` from the day after the review date) that was not sent.
  Ids derive from the agreement, its review date and the stage; once an alert is sent, the
  earlier stages count as sent too, so a hub that was down for the 30-day notice sends the
  7-day one, not both, and never a stale one after a later one.
- ``sweep_agreements``: publishes them as the hub's own signed events on ``hub.in.hub``, so
  the protocol routes them (to the IG role), audits and encrypts them like any other event;
  the register remembers what was sent (``workflows.sqlite3``), so a sweep run twice, or
  after a restart, sends nothing twice. Shared by ``hub policy sweep`` and the hub's timer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.clock import clock_for
from hub.errors import ProtocolError
from hub.log import get_logger
from hub.policies.loader import load_protocol
from hub.policies.model import Agreement, Protocol
from hub.settings import HubSettings
from hub.state import open_agreement_alerts
from hub.workflows.sqlite_state import SQLiteState

__all__ = [
    "ALERT_TYPE",
    "AgreementAlerts",
    "AgreementGauges",
    "AgreementState",
    "PlannedAlert",
    "agreement_states",
    "plan_alerts",
    "sweep_agreements",
]

ALERT_TYPE = "uk.csp.hub.agreement.alert.v1"
_NS = uuid.UUID("0c3c0f7e-5d8a-4f0b-9a61-2e7b4d9c1a55")
_log = get_logger("agreements")

State = Literal["ok", "due", "suspended"]

_DDL = (
    """CREATE TABLE IF NOT EXISTS agreement_alerts (
        alert_id TEXT PRIMARY KEY,
        agreement_id TEXT NOT NULL,
        review_date TEXT NOT NULL,
        stage TEXT NOT NULL,
        sent_at TEXT NOT NULL
    )""",
)


@dataclass(frozen=True)
class AgreementState:
    """One agreement in force, as of one day."""

    agreement: Agreement
    days_left: int
    state: State
    rules: tuple[str, ...]

    @property
    def suspended_from(self) -> dt.date:
        """The first day the rules relying on it are suspended."""
        return self.agreement.review_date + dt.timedelta(days=1)

    def to_json(self) -> dict[str, Any]:
        """As ``hub policy agreements --json`` prints it."""
        return {
            "agreement_id": self.agreement.id,
            "title": self.agreement.title,
            "review_date": self.agreement.review_date.isoformat(),
            "suspended_from": self.suspended_from.isoformat(),
            "days_left": self.days_left,
            "state": self.state,
            "rules": list(self.rules),
        }


def _notice(protocol: Protocol) -> tuple[int, ...]:
    return protocol.governance.review_notice_days if protocol.governance else (30, 7)


def agreement_states(protocol: Protocol, today: dt.date) -> list[AgreementState]:
    """Every agreement in force, by review date (soonest first).

    An agreement declared not in force is left out: no rule relies on it, nothing lapses.
    """
    horizon = max(_notice(protocol))
    states = []
    for agreement in protocol.agreements:
        if not agreement.in_force:
            continue
        days = (agreement.review_date - today).days
        state: State = (
            "suspended" if agreement.suspended_on(today) else "due" if days <= horizon else "ok"
        )
        rules = tuple(r.id for r in protocol.rules if r.agreement == agreement.id)
        states.append(AgreementState(agreement, days, state, rules))
    return sorted(states, key=lambda s: (s.agreement.review_date, s.agreement.id))


# -- alerts ----------------------------------------------------------------------------------


class AgreementAlerts(SQLiteState):
    """Which agreement alerts were sent: a table in the workflow registers' file."""

    label = "agreement alert register"
    ddl = _DDL

    def mark_sent(self, alert: PlannedAlert, at: dt.datetime) -> None:
        """Record an alert, and the earlier stages it supersedes, as sent."""
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO agreement_alerts VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    (alert_id, alert.agreement_id, alert.review_date.isoformat(), stage,
                     at.isoformat())
                    for alert_id, stage in alert.settles
                ],
            )  # fmt: skip

    def sent(self, alert_id: str) -> bool:
        """Whether this alert (or a later one that superseded it) was sent."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM agreement_alerts WHERE alert_id = ?", (alert_id,)
            ).fetchone()
        return row is not None

    def sent_for(self, agreement_id: str, review_date: dt.date) -> list[str]:
        """The stages settled for one agreement and review date, in the order settled."""
        with self._read() as conn:
            rows = conn.execute(
                """SELECT stage FROM agreement_alerts WHERE agreement_id = ? AND review_date = ?
                   ORDER BY sent_at, stage""",
                (agreement_id, review_date.isoformat()),
            ).fetchall()
        return [str(r[0]) for r in rows]


@dataclass(frozen=True)
class PlannedAlert:
    """One alert the hub will publish, and the stages (id, name) it settles."""

    event_id: str
    agreement_id: str
    review_date: dt.date
    stage: str
    data: dict[str, Any]
    settles: tuple[tuple[str, str], ...]


def _alert_id(agreement: Agreement, stage: str) -> str:
    return str(uuid.uuid5(_NS, f"{agreement.id}/{agreement.review_date.isoformat()}/{stage}"))


def _stages(protocol: Protocol) -> list[str]:
    """Stage names, least urgent first: ``due-30d``, ``due-7d``, ``suspended``."""
    return [f"due-{days}d" for days in _notice(protocol)] + ["suspended"]


def _current(protocol: Protocol, state: AgreementState) -> str | None:
    if state.state == "suspended":
        return "suspended"
    within = [days for days in _notice(protocol) if state.days_left <= days]
    return f"due-{min(within)}d" if within else None


def plan_alerts(
    protocol: Protocol, register: AgreementAlerts, *, today: dt.date
) -> list[PlannedAlert]:
    """The alert due now for each agreement in force, unless it (or a later one) was sent."""
    stages = _stages(protocol)
    plan = []
    for state in agreement_states(protocol, today):
        stage = _current(protocol, state)
        if stage is None:
            continue
        agreement = state.agreement
        alert_id = _alert_id(agreement, stage)
        if register.sent(alert_id):
            continue
        earlier = stages[: stages.index(stage) + 1]
        rules = ", ".join(state.rules) or "(none)"
        if stage == "suspended":
            detail = (
                f"Agreement {agreement.id} passed its review date {agreement.review_date}: "
                f"rules {rules} are suspended, and from {state.suspended_from} the hub "
                "withholds what they would share. Review it and set a new review_date in the "
                "protocol to resume."
            )
        else:
            detail = (
                f"Agreement {agreement.id} is due for review on {agreement.review_date} "
                f"({state.days_left} days): rules {rules} are suspended from "
                f"{state.suspended_from} unless the protocol names a new review date."
            )
        plan.append(
            PlannedAlert(
                event_id=alert_id,
                agreement_id=agreement.id,
                review_date=agreement.review_date,
                stage=stage,
                data={
                    "alert_id": alert_id,
                    "stage": "suspended" if stage == "suspended" else "review_due",
                    "agreement_id": agreement.id,
                    "title": agreement.title,
                    "review_date": agreement.review_date.isoformat(),
                    "suspended_from": state.suspended_from.isoformat(),
                    "days_left": state.days_left,
                    "rules": list(state.rules),
                    "protocol_id": protocol.protocol.id,
                    "detail": detail,
                },
                settles=tuple((_alert_id(agreement, s), s) for s in earlier),
            )
        )
    return plan


def sweep_agreements(settings: HubSettings, *, dry_run: bool = False) -> dict[str, Any]:
    """Plan and (unless ``dry_run``) publish the agreement alerts due now; what was done.

    Shared by ``hub policy sweep`` and the running hub's timer (``HUB_WORKFLOW_INTERVAL``).
    """
    protocol = load_protocol(settings.protocol)
    if protocol.governance is None:
        raise ProtocolError(
            f"protocol {protocol.protocol.id} has no 'governance:' section naming the IG role: "
            "agreement alerts are off"
        )
    now = clock_for(settings.clock_file)()
    with open_agreement_alerts(settings) as register:
        plan = plan_alerts(protocol, register, today=now.date())
        sent = 0
        if not dry_run and plan:
            sent = asyncio.run(_publish(settings, plan, register, now))
    return {
        "now": now.isoformat(),
        "planned": [
            {"event_id": p.event_id, "agreement_id": p.agreement_id, "stage": p.stage} for p in plan
        ],
        "published": sent,
    }


async def _publish(
    settings: HubSettings, plan: list[PlannedAlert], register: AgreementAlerts, now: dt.datetime
) -> int:
    from hub.workflows.context import hub_publisher  # the client side: not for the console

    async with hub_publisher(settings) as client:
        for item in plan:
            await client.publish(
                ALERT_TYPE, item.data, key=item.agreement_id, event_id=item.event_id
            )
            register.mark_sent(item, now)
            _log.info("agreement_alert_published", event_id=item.event_id, stage=item.stage)
    return len(plan)


# -- metrics ---------------------------------------------------------------------------------


class AgreementGauges(Collector):
    """``hub_agreement_review_days`` and ``hub_agreement_suspended``, worked out at scrape time.

    One series per agreement in force (bounded by the protocol). Read from the protocol and
    the hub's clock, so they change the day they should and clear when an agreement is
    renewed, whatever the sweep has done.
    """

    def __init__(self, protocol: Callable[[], Protocol], clock: Callable[[], dt.datetime]) -> None:
        self._protocol = protocol
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        """The two gauges, one sample per agreement."""
        days = GaugeMetricFamily(
            "hub_agreement_review_days",
            "days until an information sharing agreement's review date (negative: past it)",
            labels=["agreement"],
        )
        suspended = GaugeMetricFamily(
            "hub_agreement_suspended",
            "1 while the rules relying on an agreement are suspended (past its review date)",
            labels=["agreement"],
        )
        for state in agreement_states(self._protocol(), self._clock().date()):
            days.add_metric([state.agreement.id], state.days_left)
            suspended.add_metric([state.agreement.id], float(state.state == "suspended"))
        yield days
        yield suspended
