"""The process plug-in protocol (``hub.processes.base``): registry, stores, effects."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from hub.models import (
    ACK_TYPE,
    AuditDecision,
    EventAttributes,
    InboundEvent,
    QuarantineReason,
)
from hub.processes.acks import acknowledgement_records
from hub.processes.base import (
    BaseProcess,
    ProcessRegistry,
    Refusal,
    Stores,
    apply_effects,
)


class _Ledger:
    def __init__(self) -> None:
        self.rows: list[str] = []


@dataclass(frozen=True, slots=True)
class _Note:
    text: str

    def apply(self, stores: Stores) -> None:
        ledger = stores.get(_Ledger)
        if ledger is not None:
            ledger.rows.append(self.text)


class _Flags(BaseProcess):
    name = "flags"
    event_types = ("uk.csp.marac.flag.*",)


class _Access(BaseProcess):
    name = "access"
    event_types = ("uk.csp.health.access.v1", "uk.csp.marac.flag.raised.v1")


def test_the_processes_owning_a_type_are_found_by_exact_type_or_pattern_in_order() -> None:
    flags, access = _Flags(), _Access()
    registry = ProcessRegistry([flags, access])
    assert registry.for_type("uk.csp.marac.flag.raised.v1") == (flags, access)
    assert registry.for_type("uk.csp.marac.flag.updated.v1") == (flags,)
    assert registry.for_type("uk.csp.health.access.v1") == (access,)
    assert registry.for_type("uk.csp.pubwatch.ban.v1") == ()


def test_a_process_is_registered_once() -> None:
    registry = ProcessRegistry([_Flags()])
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(_Flags())


def test_effects_apply_in_order_to_their_register_and_skip_an_absent_one() -> None:
    ledger = _Ledger()
    apply_effects([_Note("a"), _Note("b")], Stores([ledger]))
    assert ledger.rows == ["a", "b"]
    apply_effects([_Note("c")], Stores())  # no register: nothing to write, no error
    assert ledger.rows == ["a", "b"]


def test_a_register_is_found_by_its_class_or_a_class_it_subclasses() -> None:
    class PostgresLedger(_Ledger):  # a backend's twin of a register
        pass

    twin = PostgresLedger()
    stores = Stores([twin])
    assert stores.get(_Ledger) is twin
    assert stores.get(PostgresLedger) is twin
    assert stores.get(_Ledger) is twin  # answered again from what was found
    assert Stores().get(_Ledger) is None


def test_a_refusal_carries_its_reason_and_a_detail_cut_to_the_limit() -> None:
    refusal = Refusal(QuarantineReason.POLICY_REJECTED, "x" * 5000)
    assert refusal.reason is QuarantineReason.POLICY_REJECTED
    assert len(refusal.detail) == 2000
    assert refusal.detail.endswith("...")


_T = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def _receipt(party: str, acked: str, acked_type: str | None = None) -> InboundEvent:
    return InboundEvent(
        attributes=EventAttributes(
            id="ack-1", source=f"/parties/{party}", type=ACK_TYPE, time=_T, subject=None
        ),
        key=None,
        data={"acknowledged_event_id": acked, "acknowledged_type": acked_type, "status": None},
    )


def test_a_receipt_for_no_delivery_to_its_party_is_refused_as_not_a_recipient() -> None:
    with pytest.raises(Refusal) as refused:
        acknowledgement_records(
            _receipt("redditch-bc", "e-1"), delivered_to=lambda _e, _p: {}, common={"time": _T}
        )
    assert refused.value.reason is QuarantineReason.NOT_A_RECIPIENT
    assert "only a recipient may acknowledge" in refused.value.detail


def test_a_receipt_is_recorded_against_the_publisher_and_type_the_hub_delivered() -> None:
    delivered = {"west-mercia-police": "uk.csp.marac.flag.raised.v1", "other": "uk.csp.x.v1"}
    (record,) = acknowledgement_records(
        _receipt("redditch-bc", "e-1", "uk.csp.marac.flag.raised.v1"),
        delivered_to=lambda _e, _p: dict(delivered),
        common={"time": _T},
    )
    assert record.decision is AuditDecision.ACKNOWLEDGED
    assert (record.event_id, record.publisher, record.recipient) == (
        "e-1",
        "west-mercia-police",
        "redditch-bc",
    )
    assert record.ack_event_id == "ack-1"
    assert record.reason == "redditch-bc acknowledged e-1 of west-mercia-police (received)"
