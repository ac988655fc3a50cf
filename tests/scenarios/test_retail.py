"""Scenario: the retail crime partnership publishes its own exclusions, segregated from pubs.

A shoplifter excluded by the Redditch business crime reduction partnership is shown to its
other members and to nobody else: Pub Watch members receive nothing while the linked-scheme
agreement is not in force (the audit names it for each pub), and at the exclusion's end the
retail holders, and only they, are told to delete the photo. Time is the hub's clock file.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from hub.models import AuditDecision
from hub.policies import durations
from tests.conftest import unique
from tests.factories import RETAIL_EXCLUSION, RETAIL_EXPIRED, retail_exclusion
from tests.scenarios.harness import TimedHub, timed_hub

pytestmark = pytest.mark.integration

KINGFISHER = "bcrp.redditch.kingfisher-retail"
TOWN_CENTRE = "bcrp.redditch.town-centre-retail"
PUBS = ("pubwatch.redditch.crown-inn", "pubwatch.redditch.rising-sun")
LICENSING = "west-mercia-police.licensing"
LINK = "REDDITCH-PUBWATCH-BCRP-LINK-2025"
START = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TimedHub]:
    with timed_hub(tmp_path_factory.mktemp("retail"), START) as (running, clock):
        yield TimedHub(running, clock)


def _cli_json(scenario: TimedHub, *args: str, codes: tuple[int, ...] = (0,)) -> Any:
    result = scenario.cli(*args, "--json")
    assert result.returncode in codes, result.stderr
    return json.loads(result.stdout)


def test_a_shoplifter_is_shown_to_retail_members_only_and_expires_there(
    scenario: TimedHub,
) -> None:
    scenario.at(START.date())
    ref = unique("BCRP")
    end = durations.add(START.date(), "P6M")
    data = retail_exclusion(ref, ban_start=START.date().isoformat(), ban_end=end.isoformat())
    event_id = scenario.hub.publish(KINGFISHER, RETAIL_EXCLUSION, data, key=ref)

    records = scenario.hub.wait_records(event_id, at_least=3, timeout=90.0)
    delivered = {r.recipient: r.rule for r in records if r.decision == AuditDecision.DELIVERED}
    assert delivered == {TOWN_CENTRE: "retail-exclusion-scheme-members"}
    withheld = {r.recipient: r for r in records if r.decision == AuditDecision.WITHHELD}
    assert set(withheld) == set(PUBS)  # audited, naming the agreement that is off
    for record in withheld.values():
        assert record.rule == "retail-exclusion-linked-pubs"
        assert LINK in (record.reason or "")
        assert "not in force" in (record.reason or "")
    assert LICENSING not in {r.recipient for r in records}

    member = scenario.received(TOWN_CENTRE, event_id)
    assert set(member.data) == {"ban_ref", "scheme", "subject", "ban_start", "ban_end"}
    assert member.data["subject"]["photo_ref"] == "photo:bcrp-redditch-0007"
    for pub in PUBS:  # the audit said withheld; nothing about this person is on a pub's feed
        assert all(d.data.get("ban_ref") != ref for d in scenario.hub.deliveries(pub))

    status = _cli_json(scenario, "pubwatch", "status", "--ban", ref)["bans"][0]
    assert status["holders"] == sorted([KINGFISHER, TOWN_CENTRE])

    scenario.at(end + dt.timedelta(days=1))
    swept = _cli_json(scenario, "pubwatch", "sweep")
    planned = [p for p in swept["planned"] if p["ban_ref"] == ref]
    assert [p["event_type"] for p in planned] == [RETAIL_EXPIRED]
    expiry = planned[0]["event_id"]
    records = scenario.hub.wait_records(expiry, at_least=2, timeout=90.0)
    assert {r.recipient: r.rule for r in records if r.decision == AuditDecision.DELIVERED} == {
        KINGFISHER: "retail-art19-holders",
        TOWN_CENTRE: "retail-art19-holders",
    }
    notice = scenario.received(TOWN_CENTRE, expiry)
    assert notice.type == RETAIL_EXPIRED
    assert notice.data["photo_ref"] == "photo:bcrp-redditch-0007"  # delete this photo
    assert notice.data["ban_start"] == START.date().isoformat()
    for pub in PUBS:
        assert all(d.data.get("ban_ref") != ref for d in scenario.hub.deliveries(pub))

    again = _cli_json(scenario, "pubwatch", "sweep")
    assert not [p for p in again["planned"] if p["ban_ref"] == ref]  # sent once
    status = _cli_json(scenario, "pubwatch", "status", "--ban", ref)["bans"][0]
    assert status["status"] == "expired"
    assert status["photo_withdrawn"]
    assert status["told_expired"] == sorted([KINGFISHER, TOWN_CENTRE])


def test_a_pub_cannot_publish_a_retail_exclusion(scenario: TimedHub) -> None:
    scenario.at(START.date())
    ref = unique("BCRP")
    event_id = scenario.hub.publish(PUBS[0], RETAIL_EXCLUSION, retail_exclusion(ref), key=ref)
    records = scenario.hub.wait_records(event_id, at_least=1, timeout=90.0)
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert "may not publish" in (records[0].reason or "")
