"""Scenario: an agreement lapses and the IG officers are told, by the running hub, each time once.

The hub's own timer (``HUB_WORKFLOW_INTERVAL``, one second here) sweeps the agreements; the test
moves the hub's clock file to 30 days, 7 days and one day past the Pub Watch agreement's
review date and waits for each alert on the IG officers' topic. Each is audited under the
protocol's rule for the IG role, sent once however often the timer runs, and a sweep from a
fresh process (``hub policy sweep``, as after a restart) finds nothing left to send. The
worker's metrics say how many days are left and, at the end, that the agreement is suspended.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.broker import EmbeddedBroker
from hub.broker.embedded import free_port
from hub.clock import FileClock
from hub.models import AuditDecision, Delivery
from hub.policies.loader import load_protocol
from hub.settings import default_protocol_path
from tests.conftest import start_hub, wait_for
from tests.factories import AGREEMENT_ALERT
from tests.integration.test_operations import http_get, metric_samples
from tests.scenarios.harness import TimedHub

pytestmark = pytest.mark.integration

AGREEMENT = "REDDITCH-PUBWATCH-DSA-2025"
REVIEW = next(a for a in load_protocol(default_protocol_path()).agreements if a.id == AGREEMENT)
IG = "nwcsp.information-governance"


class AlertedHub(TimedHub):
    metrics_url: str

    def alerts(self, *, at_least: int) -> list[Delivery]:
        """The IG officers' alerts about the agreement, once there are ``at_least``."""

        def about(found: list[Delivery]) -> list[Delivery]:
            return [
                d for d in found
                if d.type == AGREEMENT_ALERT and d.data["agreement_id"] == AGREEMENT
            ]  # fmt: skip

        found = self.hub.deliveries(IG, timeout=90.0, until=lambda ds: len(about(ds)) >= at_least)
        return about(found)

    def gauge(self, name: str) -> float | None:
        _, body = http_get(f"{self.metrics_url}/metrics")
        values = [
            v for labels, v in metric_samples(body.decode(), name)
            if labels.get("agreement") == AGREEMENT
        ]  # fmt: skip
        return values[0] if values else None


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertedHub]:
    root: Path = tmp_path_factory.mktemp("agreement-alerts")
    clock = FileClock(root / "clock")
    clock.set(dt.datetime.combine(REVIEW.review_date, dt.time(9), tzinfo=dt.UTC)
              - dt.timedelta(days=31))  # fmt: skip
    port = free_port()
    with EmbeddedBroker() as broker:
        running = start_hub(
            broker.bootstrap,
            root / "data",
            clock_file=clock.path,
            workflow_interval=1.0,
            metrics_port=port,
        )
        try:
            scenario = AlertedHub(running, clock)
            scenario.metrics_url = f"http://127.0.0.1:{port}"
            yield scenario
        finally:
            running.supervisor.stop()


def test_ig_officers_are_alerted_at_30_and_7_days_and_on_suspension_once_each(
    scenario: AlertedHub,
) -> None:
    dry = scenario.cli("policy", "sweep", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["planned"] == []  # 31 days ahead: nothing due
    wait_for(lambda: scenario.gauge("hub_agreement_review_days") == 31, what="the metric")

    expected: list[str] = []
    for offset, stage, days in ((-30, "review_due", 30), (-7, "review_due", 7),
                                (1, "suspended", -1)):  # fmt: skip
        scenario.at(REVIEW.review_date + dt.timedelta(days=offset))
        alerts = scenario.alerts(at_least=len(expected) + 1)
        latest = alerts[-1]
        assert (latest.data["stage"], latest.data["days_left"]) == (stage, days)
        assert latest.from_hub
        expected.append(latest.id)
        records = scenario.hub.wait_records(latest.id, at_least=1, timeout=60.0)
        delivered = [r for r in records if r.decision == AuditDecision.DELIVERED]
        assert [(r.recipient, r.rule) for r in delivered] == [(IG, "agreement-alerts-to-ig")]
        # a sweep from a fresh process (a restart) finds this one sent already
        again = scenario.cli("policy", "sweep", "--json")
        assert again.returncode == 0, again.stderr
        assert not [
            p for p in json.loads(again.stdout)["planned"] if p["agreement_id"] == AGREEMENT
        ]
    assert "suspended" in latest.data["detail"]
    assert "pubwatch-ban-scheme-members" in latest.data["rules"]

    # the timer ran many times meanwhile: each alert reached the IG officers once
    assert [d.id for d in scenario.alerts(at_least=3)] == expected

    status = scenario.cli("policy", "agreements", "--json")
    assert status.returncode == 1, status.stderr  # something to act on
    mine = next(
        a for a in json.loads(status.stdout)["agreements"] if a["agreement_id"] == AGREEMENT
    )
    assert mine["state"] == "suspended"
    assert mine["alerts_sent"] == ["due-30d", "due-7d", "suspended"]
    assert scenario.gauge("hub_agreement_suspended") == 1
    assert scenario.gauge("hub_agreement_review_days") == -1
