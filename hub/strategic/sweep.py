"""The s17A sweep: alert late submitters and release each period's dataset once it is due.

Published as the hub's own signed events on ``hub.in.hub`` (``hub_publisher``), so the
protocol routes them (alerts to the analysts and the submitter, the dataset to the analysts),
encrypts and audits them like any other event; the s17A process checks the dataset's digest
and puts it on the release's audit records. Shared by ``hub strategic sweep|release`` and the
running hub's timer (``HUB_WORKFLOW_INTERVAL``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from hub.clock import clock_for
from hub.errors import ProtocolError
from hub.log import get_logger
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol, StrategicPolicy
from hub.settings import HubSettings
from hub.strategic import StrategicError
from hub.strategic.dataset import Dataset, build_dataset
from hub.strategic.periods import Quarter
from hub.strategic.register import Release, StrategicRegister
from hub.strategic.status import ALERT_TYPE, PlannedAlert, plan_alerts, tracked_periods

__all__ = ["DATASET_TYPE", "build_release", "release_period", "sweep_strategic"]

DATASET_TYPE = "uk.csp.strategic.dataset.v1"
_NS = uuid.UUID("a4c2e9d1-6b7f-4e30-9c85-1f2d3e4a5b6c")
_log = get_logger("strategic")


def policy_of(protocol: Protocol) -> StrategicPolicy:
    """The protocol's ``strategic`` section, or a ``ProtocolError`` saying it is missing."""
    if protocol.strategic is None:
        raise ProtocolError(
            f"protocol {protocol.protocol.id} has no 'strategic:' section: s17A submissions "
            "and the Strategic Assessment dataset are off"
        )
    return protocol.strategic


def open_register(settings: HubSettings) -> StrategicRegister:
    """The hub's s17A register (``workflows.sqlite3`` in the data dir, or ``HUB_STATE_URL``)."""
    from hub.state import open_strategic_register

    return open_strategic_register(settings)


def build_release(settings: HubSettings, period: str) -> Dataset:
    """The dataset of ``period`` from the submissions the hub kept."""
    quarter = Quarter.parse(period)
    policy = policy_of(load_protocol(settings.protocol))
    with open_register(settings) as register:
        submissions = register.submissions(str(quarter))
    if not submissions:
        raise StrategicError(
            f"period {quarter}: expected submissions kept by the hub, found none "
            "(partners publish uk.csp.strategic.submission.v1)"
        )
    return build_dataset(policy, quarter, submissions)


def release_period(
    settings: HubSettings, period: str, *, supersede: bool = False
) -> dict[str, Any]:
    """Publish the dataset of ``period`` to the analysts now; what was released.

    A period already released with other figures (a late or corrected submission since) is
    released again only with ``supersede``: each release is suppressed on its own, but the
    difference between two releases of one period can give away small numbers (the late
    submitter's counts per area, from the row totals), so a second release is a decision.
    """
    dataset = build_release(settings, period)
    now = clock_for(settings.clock_file)()
    with open_register(settings) as register:
        earlier = register.releases(dataset.period)
        same = [r for r in earlier if r.sha256 == dataset.sha256]
        if same:
            raise StrategicError(
                f"period {dataset.period}: this dataset (sha256 {dataset.sha256[:12]}...) was "
                f"released already as {same[0].release_id}; nothing changed since"
            )
        if earlier and not supersede:
            raise StrategicError(
                f"period {dataset.period}: released already as {earlier[-1].release_id}, with "
                "other figures; two releases of one period can be subtracted from each other "
                "to reveal small numbers: release again only after review, with --supersede"
            )
        release = asyncio.run(_publish(settings, [], [dataset], register, now))[1][0]
    return _release_json(release, dataset)


def sweep_strategic(settings: HubSettings, *, dry_run: bool = False) -> dict[str, Any]:
    """Alert late (and soon due) submitters; release each past-due period not yet released."""
    protocol = load_protocol(settings.protocol)
    policy = policy_of(protocol)
    now = clock_for(settings.clock_file)()
    today = now.date()
    with open_register(settings) as register:
        submissions = register.submissions()
        plan = plan_alerts(policy, submissions, today=today, sent=register.alert_sent)
        released = {r.period for r in register.releases()}
        due = [
            build_dataset(policy, period, submissions)
            for period in tracked_periods(policy, today)
            if period.due < today
            and str(period) not in released
            and any(s.period == str(period) for s in submissions)
        ]
        sent, releases = 0, list[Release]()
        if not dry_run and (plan or due):
            sent, releases = asyncio.run(_publish(settings, plan, due, register, now))
    return {
        "now": now.isoformat(),
        "planned": [
            {"event_id": p.event_id, "kind": p.kind, "submitter": p.submitter, "period": p.period}
            for p in plan
        ]
        + [{"event_id": _release_event_id(d), "kind": "release", "period": d.period} for d in due],
        "published": sent + len(releases),
        "released": [_release_json(r, d) for r, d in zip(releases, due, strict=False)],
    }


def _release_event_id(dataset: Dataset) -> str:
    return str(uuid.uuid5(_NS, dataset.release_id()))


def _release_json(release: Release, dataset: Dataset) -> dict[str, Any]:
    return {
        "release_id": release.release_id,
        "period": release.period,
        "sha256": release.sha256,
        "event_id": release.event_id,
        "cells": len(dataset.cells),
        "suppressed": sum(c.count is None for c in dataset.cells),
        "missing": list(dataset.missing),
    }


async def _publish(
    settings: HubSettings,
    alerts: list[PlannedAlert],
    datasets: list[Dataset],
    register: StrategicRegister,
    now: dt.datetime,
) -> tuple[int, list[Release]]:
    from hub.workflows.context import hub_publisher  # the client side: not for the console

    releases = []
    async with hub_publisher(settings) as client:
        for alert in alerts:
            await client.publish(
                ALERT_TYPE, alert.data, key=alert.submitter, event_id=alert.event_id
            )
            register.mark_alert(
                alert.alert_id,
                submitter=alert.submitter,
                period=alert.period,
                kind=alert.kind,
                at=now,
            )
            _log.info("strategic_alert_published", event_id=alert.event_id, kind=alert.kind)
        for dataset in datasets:
            event_id = _release_event_id(dataset)
            await client.publish(
                DATASET_TYPE,
                dataset.as_event(built_at=now),
                key=f"S17A-{dataset.period}",
                event_id=event_id,
            )
            release = Release(
                release_id=dataset.release_id(),
                period=dataset.period,
                sha256=dataset.sha256,
                event_id=event_id,
                released_at=now.astimezone(dt.UTC).isoformat(),
                recipients=(),
            )
            register.record_release(release)  # published; routing adds the recipients
            register.keep_released_cells(
                release.release_id,
                period=dataset.period,
                threshold=dataset.threshold,
                cells=dataset.cells,
            )
            releases.append(release)
            _log.info("strategic_dataset_published", event_id=event_id, period=dataset.period)
    return len(alerts), releases
