"""Pub Watch workflows: who holds each ban, and the expiry the hub sends at its end.

``ban_status`` answers the scheme's question from the ban register (period, status) and the
audit log (which parties were delivered the ban and its changes, and whether they have been
sent its expiry). ``plan_expiries`` finds the bans that have ended; ``sweep_bans`` publishes
their expiries as the hub's own signed events on ``hub.in.hub``, so the protocol routes them
(police licensing by rule, every holder by the Art 19 correction), minimises, encrypts and
audits them like any other event. Expiry ids are derived from the ban and its end, and the
register remembers what was sent, so a sweep run twice sends nothing twice.

A legal hold does not keep a ban in force: the scheme decided its period. It keeps the hub's
copy from being crypto-shredded at the end of retention (``hub keys expire``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from hub.audit.pseudonym import Pseudonymiser
from hub.audit.store import AuditStore
from hub.clock import clock_for
from hub.log import get_logger
from hub.models import AuditDecision
from hub.settings import HubSettings
from hub.state import open_ban_register
from hub.workflows.bans import (
    EXPIRED_TYPE,
    RETAIL_EXPIRED_TYPE,
    Ban,
    BanRegister,
    expired_type_for,
)
from hub.workflows.context import hub_publisher, workflow_context

__all__ = [
    "BanReport",
    "PlannedExpiry",
    "ban_status",
    "expiry_id",
    "open_status",
    "plan_expiries",
    "sweep_bans",
]

_NS = uuid.UUID("5b2e9a41-7c3d-4e8f-a1b2-9d0c6e4f7a31")
_ALL = 1_000_000
_log = get_logger("pubwatch")
_INSTRUCTION = (
    "The ban has ended: remove it from your records and delete the photo; the photo "
    "reference is withdrawn."
)


@dataclass(frozen=True)
class BanReport:
    """A ban, the parties that hold it, and those told of its end."""

    ban: Ban
    holders: tuple[str, ...]
    told_expired: tuple[str, ...]
    ended: bool

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (``hub pubwatch status --json``)."""
        ban = self.ban
        return {
            "ban_ref": ban.ban_ref,
            "scheme": ban.scheme,
            "status": ban.status,
            "incident_type": ban.incident_type,
            "ban_start": ban.ban_start.isoformat(),
            "ban_end": ban.ban_end.isoformat(),
            "ended": self.ended,
            "photo_withdrawn": ban.photo_ref is None,
            "holders": list(self.holders),
            "told_expired": list(self.told_expired),
        }


@dataclass(frozen=True)
class PlannedExpiry:
    """One expiry the hub will publish: a Pub Watch or a retail one, as the ban started."""

    event_id: str
    ban_ref: str
    data: dict[str, Any]
    event_type: str = EXPIRED_TYPE


def expiry_id(ban: Ban) -> str:
    """The expiry's event id: one per ban and end date, however often the sweep runs."""
    return str(uuid.uuid5(_NS, f"expired/{ban.ban_ref}/{ban.ban_end.isoformat()}"))


def ban_status(
    *,
    register: BanRegister,
    store: AuditStore,
    pseudonymiser: Pseudonymiser,
    today: dt.date,
    ban: str | None = None,
    include_closed: bool = False,
) -> list[BanReport]:
    """Per ban: its period and status, who holds it, who was told it ended."""
    if ban is not None:
        one = register.ban(ban)
        bans = [one] if one is not None else []
    else:
        bans = register.bans(status=None if include_closed else "active")
    reports = []
    for item in bans:
        records = store.query(
            case_pseudonym=pseudonymiser.case(item.ban_ref),
            decision=AuditDecision.DELIVERED,
            limit=_ALL,
        )
        holders = {item.publisher} | {str(r.recipient) for r in records if r.recipient}
        told = {
            str(r.recipient) for r in records if r.event_type in (EXPIRED_TYPE, RETAIL_EXPIRED_TYPE)
        }
        reports.append(
            BanReport(
                ban=item,
                holders=tuple(sorted(holders)),
                told_expired=tuple(sorted(told)),
                ended=item.ended(today),
            )
        )
    return reports


def plan_expiries(register: BanRegister, *, today: dt.date) -> list[PlannedExpiry]:
    """Every active ban that has ended and whose expiry was not sent yet."""
    plan = []
    for ban in register.bans(status="active"):
        if not ban.ended(today) or register.sent(expiry_id(ban)):
            continue
        event_type = expired_type_for(register.start_type(ban.ban_ref))
        data: dict[str, Any] = {
            "ban_ref": ban.ban_ref,
            "scheme": ban.scheme,
            "ban_end": ban.ban_end.isoformat(),
            "ended_on": today.isoformat(),
            "photo_ref": ban.photo_ref,
            "instruction": _INSTRUCTION,
        }
        if event_type == RETAIL_EXPIRED_TYPE:  # names the exclusion's first day too
            data["ban_start"] = ban.ban_start.isoformat()
        plan.append(PlannedExpiry(expiry_id(ban), ban.ban_ref, data, event_type))
    return plan


def sweep_bans(settings: HubSettings, *, dry_run: bool = False) -> dict[str, Any]:
    """Plan and (unless ``dry_run``) publish the expiries due now; returns what was done.

    Shared by ``hub pubwatch sweep`` and the running hub's timer.
    """
    now = clock_for(settings.clock_file)()
    with open_ban_register(settings) as register:
        plan = plan_expiries(register, today=now.date())
        sent = 0
        if not dry_run and plan:
            sent = asyncio.run(_publish(settings, plan, register, now))
    return {
        "now": now.isoformat(),
        "planned": [
            {"event_id": p.event_id, "ban_ref": p.ban_ref, "event_type": p.event_type} for p in plan
        ],
        "published": sent,
    }


async def _publish(
    settings: HubSettings, plan: list[PlannedExpiry], register: BanRegister, now: dt.datetime
) -> int:
    async with hub_publisher(settings) as client:
        for item in plan:
            await client.publish(
                item.event_type, item.data, key=item.ban_ref, event_id=item.event_id
            )
            register.mark_sent(item.event_id, item.ban_ref, now)
            _log.info("ban_expiry_published", event_id=item.event_id)
    return len(plan)


def open_status(
    settings: HubSettings, *, ban: str | None = None, include_closed: bool = False
) -> tuple[dt.datetime, list[BanReport]]:
    """``ban_status`` against the hub's data dir, as of the hub's clock."""
    with workflow_context(settings) as ctx, open_ban_register(settings) as register:
        reports = ban_status(
            register=register,
            store=ctx.store,
            pseudonymiser=ctx.pseudonymiser,
            today=ctx.now.date(),
            ban=ban,
            include_closed=include_closed or ban is not None,
        )
    return ctx.now, reports
