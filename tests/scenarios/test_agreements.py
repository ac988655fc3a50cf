"""Scenario: the MARAC agreement lapses while the hub runs; sharing under it stops, audited.

Time is the hub's clock file (HUB_CLOCK_FILE), moved by the test: no waiting for months.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.agents.routing import SUSPENDED_TYPE
from hub.broker import EmbeddedBroker
from hub.clock import FileClock
from hub.models import AuditDecision
from hub.policies.loader import load_protocol
from hub.policies.model import Agreement
from hub.settings import default_protocol_path
from tests.conftest import RunningHub, start_hub, unique
from tests.factories import MARAC_RAISED, marac_flag

pytestmark = pytest.mark.integration


def _agreement(agreement_id: str) -> Agreement:
    found = load_protocol(default_protocol_path()).agreement(agreement_id)
    if found is None:
        raise LookupError(f"the reference protocol declares no agreement {agreement_id}")
    return found


AGREEMENT = _agreement("NW-CSP-ISA-MARAC-2025")
COORDINATOR = "marac.north-worcs"
POLICE = "west-mercia-police"
HUB = Path(sys.executable).parent / "hub"


@pytest.fixture
def timed_hub(tmp_path: Path) -> Iterator[tuple[RunningHub, FileClock]]:
    """Its own broker: the hub's clock is a file this test moves by months (HUB_CLOCK_FILE),
    and two hubs on one broker would share its topics and consumer groups (conftest.py)."""
    clock = FileClock(tmp_path / "clock")
    clock.set(dt.datetime.combine(AGREEMENT.review_date, dt.time(9), tzinfo=dt.UTC))
    with EmbeddedBroker() as broker:
        running = start_hub(broker.bootstrap, tmp_path / "data", clock_file=clock.path)
        try:
            yield running, clock
        finally:
            running.supervisor.stop()


def test_sharing_stops_the_day_after_the_agreement_review_date(
    timed_hub: tuple[RunningHub, FileClock],
) -> None:
    hub, clock = timed_hub
    before = hub.publish(COORDINATOR, MARAC_RAISED, marac_flag(unique("MARAC")))
    records = hub.wait_records(before, at_least=5)
    assert POLICE in {r.recipient for r in records if r.decision == AuditDecision.DELIVERED}

    clock.advance(dt.timedelta(days=1))
    after = hub.publish(COORDINATOR, MARAC_RAISED, marac_flag(unique("MARAC")))
    records = hub.wait_records(after, at_least=5)
    assert not [r for r in records if r.decision == AuditDecision.DELIVERED]
    withheld = {r.recipient: r for r in records if r.decision == AuditDecision.WITHHELD}
    assert POLICE in withheld
    assert AGREEMENT.id in (withheld[POLICE].reason or "")
    assert withheld[POLICE].rule == "marac-flag-full"

    # the publisher is told, naming the agreement; the police never see the event
    notices = hub.deliveries(
        COORDINATOR,
        until=lambda ds: any(d.type == SUSPENDED_TYPE and d.data["event_id"] == after for d in ds),
    )
    notice = next(d for d in notices if d.type == SUSPENDED_TYPE and d.data["event_id"] == after)
    assert notice.from_hub
    assert notice.data["agreements"] == [AGREEMENT.id]
    assert POLICE in notice.data["withheld_from"]
    police = hub.deliveries(POLICE, until=lambda ds: before in {d.id for d in ds})
    assert before in {d.id for d in police}
    assert after not in {d.id for d in police}


def test_publish_wait_reports_the_lapsed_agreement(
    timed_hub: tuple[RunningHub, FileClock], tmp_path: Path
) -> None:
    hub, clock = timed_hub
    clock.advance(dt.timedelta(days=2))
    data = tmp_path / "flag.json"
    data.write_text(json.dumps(marac_flag(unique("MARAC"))))
    result = subprocess.run(
        [
            str(HUB),
            "publish",
            "--as",
            COORDINATOR,
            "--type",
            MARAC_RAISED,
            "--data",
            str(data),
            "--timeout",
            "60",
        ],
        env={**os.environ, **hub.env(), "HUB_KAFKA_BOOTSTRAP": hub.bootstrap},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert f"information sharing agreement {AGREEMENT.id}" in result.stdout
    assert str(AGREEMENT.review_date) in result.stdout
