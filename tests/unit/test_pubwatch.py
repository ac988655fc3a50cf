"""The ban register and the early-review check, without a hub."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hub.policies import durations
from hub.policies.model import PubwatchPolicy
from hub.workflows.bans import BAN_TYPE, EXPIRED_TYPE, UPDATED_TYPE, BanRegister, check_ban_update
from hub.workflows.pubwatch import expiry_id, plan_expiries
from tests.factories import pubwatch_ban, pubwatch_ban_expired, pubwatch_ban_updated

POLICY = PubwatchPolicy(early_review_after="P6M")
START = dt.date(2026, 11, 20)
T0 = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)


@pytest.fixture
def register(tmp_path: Path) -> BanRegister:
    reg = BanRegister(tmp_path / "workflows.sqlite3")
    reg.record(BAN_TYPE, pubwatch_ban("PW-1"), publisher="pubwatch.a", at=T0, event_id="e1")
    return reg


def test_early_review_before_six_months_is_refused_with_the_date_it_may_happen(
    register: BanRegister,
) -> None:
    earliest = durations.add(START, "P6M")
    day_before = earliest - dt.timedelta(days=1)
    data = pubwatch_ban_updated("PW-1", reviewed_on=day_before.isoformat())
    problems = check_ban_update(data, POLICY, known=register.ban("PW-1"), today=day_before)
    assert len(problems) == 1
    assert f"not before {earliest}" in problems[0]
    assert (
        check_ban_update(
            pubwatch_ban_updated("PW-1", reviewed_on=earliest.isoformat()),
            POLICY,
            known=register.ban("PW-1"),
            today=earliest,
        )
        == []
    )


def test_early_review_counts_from_the_start_the_hub_shared(register: BanRegister) -> None:
    today = durations.add(START, "P3M")
    moved = pubwatch_ban_updated("PW-1", ban_start="2026-01-01", reviewed_on=today.isoformat())
    assert check_ban_update(moved, POLICY, known=register.ban("PW-1"), today=today)


def test_early_review_never_extends_but_a_correction_may(register: BanRegister) -> None:
    today = durations.add(START, "P7M")
    longer = {"ban_end": "2028-01-01", "reviewed_on": today.isoformat()}
    problems = check_ban_update(
        pubwatch_ban_updated("PW-1", **longer), POLICY, known=register.ban("PW-1"), today=today
    )
    assert ["never extends" in p for p in problems] == [True]
    correction = pubwatch_ban_updated("PW-1", review="correction", **longer)
    assert check_ban_update(correction, POLICY, known=register.ban("PW-1"), today=today) == []


def test_register_follows_the_lifecycle_and_withdraws_the_photo(register: BanRegister) -> None:
    ban = register.ban("PW-1")
    assert ban is not None
    assert (ban.publisher, ban.photo_ref, ban.status) == (
        "pubwatch.a",
        "photo:pw-redditch-0042",
        "active",
    )
    later = T0 + dt.timedelta(days=200)
    update = pubwatch_ban_updated("PW-1", ban_end="2027-06-30")
    register.record(UPDATED_TYPE, update, publisher="pubwatch.b", at=later, event_id="e2")
    register.record(BAN_TYPE, pubwatch_ban("PW-1"), publisher="x", at=T0, event_id="e1")  # replay
    ban = register.ban("PW-1")
    assert ban is not None
    assert (ban.ban_end, ban.publisher) == (dt.date(2027, 6, 30), "pubwatch.a")
    register.record(
        EXPIRED_TYPE,
        pubwatch_ban_expired("PW-1"),
        publisher="hub",
        at=later + dt.timedelta(days=60),
        event_id="e3",
    )
    ban = register.ban("PW-1")
    assert ban is not None
    assert (ban.status, ban.photo_ref) == ("expired", None)


def test_expiry_is_planned_the_day_after_ban_end_and_sent_once(register: BanRegister) -> None:
    ban = register.ban("PW-1")
    assert ban is not None
    assert plan_expiries(register, today=ban.ban_end) == []
    due = plan_expiries(register, today=ban.ban_end + dt.timedelta(days=1))
    assert [p.event_id for p in due] == [expiry_id(ban)]
    assert due[0].data["photo_ref"] == ban.photo_ref
    assert "subject" not in due[0].data
    assert register.mark_sent(due[0].event_id, "PW-1", T0)
    assert not register.mark_sent(due[0].event_id, "PW-1", T0)
    assert plan_expiries(register, today=ban.ban_end + dt.timedelta(days=2)) == []
