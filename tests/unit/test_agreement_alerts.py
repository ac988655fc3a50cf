"""IG alerts for agreements lapsing or lapsed: when each is due, sent once, and cleared on renewal.

Pure planning against the reference protocol and a register in a temp dir; the scenario test
(tests/scenarios/test_agreement_alerts.py) sends them through a running hub.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hub.errors import ProtocolError
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol
from hub.settings import HubSettings, default_protocol_path
from hub.workflows.agreements import (
    AgreementAlerts,
    agreement_states,
    plan_alerts,
    sweep_agreements,
)

REF = load_protocol(default_protocol_path())
MARAC = "NW-CSP-ISA-MARAC-2025"
REVIEW = next(a for a in REF.agreements if a.id == MARAC).review_date
LINK = "REDDITCH-PUBWATCH-BCRP-LINK-2025"


def _marac_only() -> Protocol:
    return REF.model_copy(update={"agreements": tuple(a for a in REF.agreements if a.id == MARAC)})


def _day(offset: int) -> dt.date:
    return REVIEW + dt.timedelta(days=offset)


@pytest.fixture
def register(tmp_path: Path) -> AgreementAlerts:
    return AgreementAlerts(tmp_path / "workflows.sqlite3")


def _sweep(protocol: Protocol, register: AgreementAlerts, offset: int) -> list[str]:
    plan = plan_alerts(protocol, register, today=_day(offset))
    for alert in plan:
        register.mark_sent(alert, dt.datetime.combine(_day(offset), dt.time(9), tzinfo=dt.UTC))
    return [a.stage for a in plan]


def test_alerts_at_thirty_days_seven_days_and_suspension_each_once(
    register: AgreementAlerts,
) -> None:
    protocol = _marac_only()
    sent = {offset: _sweep(protocol, register, offset) for offset in range(-40, 5)}
    assert {k: v for k, v in sent.items() if v} == {
        -30: ["due-30d"],
        -7: ["due-7d"],
        1: ["suspended"],
    }
    assert register.sent_for(MARAC, REVIEW) == ["due-30d", "due-7d", "suspended"]


def test_a_hub_down_for_a_notice_sends_the_latest_stage_only(register: AgreementAlerts) -> None:
    protocol = _marac_only()
    assert _sweep(protocol, register, -3) == ["due-7d"]  # the 30-day notice was missed
    assert _sweep(protocol, register, -2) == []  # and is never sent late
    assert register.sent_for(MARAC, REVIEW) == ["due-30d", "due-7d"]
    assert _sweep(protocol, register, 10) == ["suspended"]


def test_the_alert_says_what_stops_and_when(register: AgreementAlerts) -> None:
    (alert,) = plan_alerts(_marac_only(), register, today=_day(-7))
    assert alert.data["stage"] == "review_due"
    assert alert.data["days_left"] == 7
    assert alert.data["suspended_from"] == _day(1).isoformat()
    assert "marac-flag-full" in alert.data["rules"]
    assert f"suspended from {_day(1)}" in alert.data["detail"]
    (suspended,) = plan_alerts(_marac_only(), register, today=_day(1))
    assert suspended.data["stage"] == "suspended"
    assert suspended.data["days_left"] == -1
    assert alert.event_id != suspended.event_id


def test_a_renewed_agreement_starts_a_new_cycle(register: AgreementAlerts) -> None:
    protocol = _marac_only()
    assert _sweep(protocol, register, 1) == ["suspended"]
    new_review = dt.date(REVIEW.year + 1, 9, 30)
    renewed = protocol.model_copy(
        update={
            "agreements": tuple(
                a.model_copy(update={"review_date": new_review}) for a in protocol.agreements
            )
        }
    )
    assert _sweep(renewed, register, 2) == []  # nothing due for a year
    assert [s.state for s in agreement_states(renewed, _day(2))] == ["ok"]
    assert _sweep(renewed, register, (new_review - REVIEW).days - 30) == ["due-30d"]


def test_an_agreement_not_in_force_never_lapses() -> None:
    link = next(a for a in REF.agreements if a.id == LINK)
    later = link.review_date + dt.timedelta(days=400)
    assert LINK not in {s.agreement.id for s in agreement_states(REF, later)}
    assert {s.state for s in agreement_states(REF, later)} == {"suspended"}


def test_sweep_refuses_a_protocol_without_an_ig_role(tmp_path: Path) -> None:
    text = default_protocol_path().read_text()
    section = "governance:\n  ig_role: ig-officer\n  review_notice_days: [30, 7]\n"
    assert text.count(section) == 1
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(text.replace(section, ""))
    settings = HubSettings(data_dir=tmp_path / "data", protocol=protocol)
    with pytest.raises(ProtocolError, match="no 'governance:' section naming the IG role"):
        sweep_agreements(settings)
