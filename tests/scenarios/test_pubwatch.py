"""Scenario: Pub Watch and retail bans through their lifecycle, time moved by the test.

Each test asserts who received what and what the audit says. The hub's clock is a file
(HUB_CLOCK_FILE); the periodic sweep is off, so `hub pubwatch sweep` and `hub keys expire`
run exactly when the test says, months apart, without waiting.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.models import AuditDecision, AuditRecord
from hub.policies import durations
from hub.settings import default_protocol_path
from hub.workflows.bans import BanRegister
from tests.conftest import unique
from tests.factories import (
    BAN,
    BAN_EXPIRED,
    BAN_UPDATED,
    RETAIL_EXCLUSION,
    pubwatch_ban,
    pubwatch_ban_updated,
    retail_exclusion,
)
from tests.scenarios.harness import AUDIT_READER, TimedHub, timed_hub

pytestmark = pytest.mark.integration

CROWN, SUN = "pubwatch.redditch.crown-inn", "pubwatch.redditch.rising-sun"
RETAIL = "bcrp.redditch.kingfisher-retail"
LICENSING = "west-mercia-police.licensing"
ART19 = "pubwatch-art19-holders"
START = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


class Scenario(TimedHub):
    """A hub with a clock, and the moves a scenario makes on it."""

    def ban(self, ref: str, publisher: str = CROWN, **overrides: Any) -> tuple[str, set[str]]:
        """Publish a ban starting today; its event id and who was delivered it."""
        start = self.today()
        data = pubwatch_ban(ref, ban_start=start.isoformat(), **overrides)
        data.setdefault("ban_end", durations.add(start, "P12M").isoformat())
        event_id = self.hub.publish(publisher, BAN, data, key=ref)
        return event_id, self.delivered_to(event_id, at_least=len(self.parties()) - 1)

    def parties(self) -> set[str]:
        return {CROWN, SUN, RETAIL, LICENSING}

    def records(self, event_id: str, *, at_least: int = 1) -> list[AuditRecord]:
        # a generous deadline, as for deliveries: a full suite run shares the machine
        return self.hub.wait_records(event_id, at_least=at_least, timeout=90.0)

    def delivered_to(self, event_id: str, *, at_least: int = 1) -> set[str]:
        return set(self.rules(event_id, at_least=at_least))

    def rules(self, event_id: str, *, at_least: int = 1) -> dict[str, str]:
        return {
            str(r.recipient): str(r.rule)
            for r in self.records(event_id, at_least=at_least)
            if r.decision == AuditDecision.DELIVERED
        }

    def sweep(self) -> dict[str, Any]:
        result = self.cli("pubwatch", "sweep", "--json")
        assert result.returncode == 0, result.stderr
        swept: dict[str, Any] = json.loads(result.stdout)
        return swept

    def expiry_of(self, ref: str, swept: dict[str, Any]) -> str | None:
        return next((p["event_id"] for p in swept["planned"] if p["ban_ref"] == ref), None)

    def status(self, ref: str) -> tuple[int, dict[str, Any]]:
        result = self.cli("pubwatch", "status", "--ban", ref, "--json")
        assert result.returncode in (0, 1), result.stderr
        bans = json.loads(result.stdout)["bans"]
        assert len(bans) == 1, bans
        return result.returncode, bans[0]


def _scenario(root: Path, **settings: Any) -> Iterator[Scenario]:
    with timed_hub(root, START, **settings) as (running, clock):
        yield Scenario(running, clock)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    yield from _scenario(tmp_path_factory.mktemp("pubwatch"))


def test_night_time_ban_reaches_pubs_never_retail_and_expires_at_every_holder(
    scenario: Scenario,
) -> None:
    scenario.at(START.date())
    ref = unique("PW")
    event_id, holders = scenario.ban(ref, incident_type="violence")
    assert holders == {SUN, LICENSING}
    retail = [r for r in scenario.records(event_id, at_least=3) if r.recipient == RETAIL]
    assert [(r.decision, r.rule) for r in retail] == [
        (AuditDecision.WITHHELD, "night-time-bans-never-to-retail")
    ]
    member = scenario.received(SUN, event_id)
    assert member.data["subject"]["photo_ref"] == "photo:pw-redditch-0042"

    assert scenario.expiry_of(ref, scenario.sweep()) is None  # the ban runs
    code, status = scenario.status(ref)
    assert code == 0
    assert status["holders"] == sorted({CROWN} | holders)  # the publisher holds it too

    with BanRegister(scenario.hub.settings.register_path) as register:
        known = register.ban(ref)
        assert known is not None
    scenario.at(known.ban_end)
    assert scenario.expiry_of(ref, scenario.sweep()) is None  # its last day: still banned
    scenario.at(known.ban_end + dt.timedelta(days=1))
    code, status = scenario.status(ref)
    assert code == 1  # ended, expiry not yet sent
    expiry = scenario.expiry_of(ref, scenario.sweep())
    assert expiry is not None
    rules = scenario.rules(expiry, at_least=3)
    assert set(rules) == {CROWN, SUN, LICENSING}
    assert rules[CROWN] == rules[SUN] == ART19
    notice = scenario.received(SUN, expiry)
    assert notice.type == BAN_EXPIRED
    assert notice.data["photo_ref"] == "photo:pw-redditch-0042"  # delete this photo
    assert "subject" not in notice.data
    assert "delete the photo" in notice.data["instruction"]

    assert scenario.expiry_of(ref, scenario.sweep()) is None  # sent once
    code, status = scenario.status(ref)
    assert code == 0
    assert status["status"] == "expired"
    assert status["photo_withdrawn"]
    assert status["told_expired"] == sorted({CROWN} | holders)


def test_theft_ban_stays_with_the_pubs_while_the_schemes_are_not_linked(
    scenario: Scenario,
) -> None:
    scenario.at(START.date())
    event_id, _ = scenario.ban(unique("PW"), incident_type="theft")
    assert scenario.rules(event_id, at_least=4) == {
        SUN: "pubwatch-ban-scheme-members",  # the scheme's own ban, not a "linked" one
        LICENSING: "pubwatch-ban-police-licensing",
    }
    retail = [r for r in scenario.records(event_id, at_least=4) if r.recipient == RETAIL]
    assert [(r.decision, r.rule) for r in retail] == [
        (AuditDecision.WITHHELD, "pubwatch-theft-ban-retail")
    ]
    assert "REDDITCH-PUBWATCH-BCRP-LINK-2025" in (retail[0].reason or "")
    assert "not in force" in (retail[0].reason or "")


def test_early_review_refused_before_six_months_then_shortens_and_lifts(
    scenario: Scenario,
) -> None:
    scenario.at(START.date())
    ref = unique("PW")
    _, holders = scenario.ban(ref, incident_type="theft")
    start = scenario.today()
    end = durations.add(start, "P12M")

    def review(**overrides: Any) -> str:
        data = pubwatch_ban_updated(
            ref,
            ban_start=start.isoformat(),
            previous_ban_end=end.isoformat(),
            reviewed_on=scenario.today().isoformat(),
            **overrides,
        )
        return scenario.hub.publish(SUN, BAN_UPDATED, data, key=ref)

    scenario.at(durations.add(start, "P3M"))
    early = review(ban_end=durations.add(start, "P9M").isoformat())
    records = scenario.records(early)
    assert [r.decision for r in records] == [AuditDecision.REJECTED]
    assert "an early review needs P6M without incident" in (records[0].reason or "")
    assert f"not before {durations.add(start, 'P6M')}" in (records[0].reason or "")
    notices = scenario.hub.deliveries(
        SUN,
        timeout=60.0,
        until=lambda ds: any(d.data.get("rejected_event_id") == early for d in ds),
    )
    assert any(
        "P6M" in d.data["detail"] for d in notices if d.data.get("rejected_event_id") == early
    )

    scenario.at(durations.add(start, "P6M") + dt.timedelta(days=1))
    longer = review(ban_end=durations.add(end, "P1M").isoformat())
    assert "never extends it" in (scenario.records(longer)[0].reason or "")

    shortened = review(ban_end=durations.add(start, "P9M").isoformat())
    # SUN published the update; CROWN (which published the ban) holds it: Art 19
    rules = scenario.rules(shortened, at_least=2)
    assert set(rules) == {CROWN, LICENSING}
    assert rules[CROWN] == ART19
    update = scenario.received(CROWN, shortened)
    assert update.data["ban_end"] == durations.add(start, "P9M").isoformat()
    assert "subject" not in update.data
    assert holders | {CROWN} >= set(scenario.rules(shortened, at_least=2))

    lifted = review(ban_end=(scenario.today() - dt.timedelta(days=1)).isoformat())
    assert len(scenario.rules(lifted, at_least=2)) == 2
    expiry = scenario.expiry_of(ref, scenario.sweep())  # lifted: it ends at once
    assert expiry is not None
    assert set(scenario.rules(expiry, at_least=3)) == {CROWN, SUN, LICENSING}


def _expire(scenario: Scenario, now: dt.datetime) -> dict[str, dict[str, Any]]:
    result = scenario.cli("keys", "expire", "--now", now.isoformat(), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {item["case"]: item for item in lines}


def test_ban_data_is_shredded_after_retention_unless_held(scenario: Scenario) -> None:
    scenario.at(START.date())
    published = scenario.clock()
    kept, shredded = unique("PW"), unique("PW")
    six_months = durations.add(scenario.today(), "P6M").isoformat()
    for ref in (kept, shredded):
        scenario.ban(ref, incident_type="violence", ban_end=six_months)
    hold = scenario.cli("holds", "add", "--case", kept, "--reason", "claim 2028/3",
                        "--by", "ig.officer")  # fmt: skip
    assert hold.returncode == 0, hold.stderr
    scenario.at(dt.date.fromisoformat(six_months) + dt.timedelta(days=1))
    swept = scenario.sweep()
    for ref in (kept, shredded):  # a hold keeps data, it does not extend the ban
        expiry = scenario.expiry_of(ref, swept)
        assert expiry is not None
        assert set(scenario.rules(expiry, at_least=3)) == {CROWN, SUN, LICENSING}

    pseudonym = Pseudonymiser(load_pseudonym_key(scenario.hub.settings)).case
    retention_end = durations.add(published, "P12M")  # the ban's rules keep it P12M
    before = _expire(scenario, retention_end - dt.timedelta(days=1))
    assert before[pseudonym(shredded)]["status"] == "due_later"
    after = _expire(scenario, retention_end + dt.timedelta(hours=1))
    assert after[pseudonym(shredded)]["status"] == "expired"
    assert after[pseudonym(shredded)]["key_destroyed"]
    assert after[pseudonym(shredded)]["rule"] in {
        "pubwatch-ban-scheme-members", "pubwatch-ban-police-licensing"
    }  # fmt: skip
    assert after[pseudonym(kept)]["status"] == "held"

    audit = scenario.cli("audit", "query", "--case", shredded, "--json", *AUDIT_READER)
    assert audit.returncode == 0, audit.stderr
    decisions = [json.loads(line)["decision"] for line in audit.stdout.splitlines() if line]
    assert "shredded" in decisions


def test_linked_schemes_share_theft_bans_with_retail_once_the_link_is_in_force(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("linked")
    text = default_protocol_path().read_text()
    off = "    review_date: 2027-04-30\n    in_force: false\n"
    assert text.count(off) == 1
    protocol = root / "protocol.yaml"
    protocol.write_text(text.replace(off, "    review_date: 2027-04-30\n    in_force: true\n"))
    for scenario in _scenario(root, protocol=protocol):
        event_id, _ = scenario.ban(unique("PW"), incident_type="theft")
        rules = scenario.rules(event_id, at_least=4)
        assert rules[RETAIL] == "pubwatch-theft-ban-retail"
        assert rules[SUN] == "pubwatch-ban-scheme-members"
        night, _ = scenario.ban(unique("PW"), incident_type="violence")
        assert RETAIL not in scenario.rules(night, at_least=3)  # never linked for night-time
        ref = unique("BCRP")  # and the other way: a shoplifter is shown to the linked pubs
        shoplifter = scenario.hub.publish(RETAIL, RETAIL_EXCLUSION, retail_exclusion(ref), key=ref)
        assert scenario.rules(shoplifter, at_least=3) == {
            SUN: "retail-exclusion-linked-pubs",
            CROWN: "retail-exclusion-linked-pubs",
            "bcrp.redditch.town-centre-retail": "retail-exclusion-scheme-members",
        }
