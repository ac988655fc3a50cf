"""The process plug-in protocol (``hub.processes.base``): registry, stores, effects."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hub.models import QuarantineReason
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


def test_a_refusal_carries_its_reason_and_a_detail_cut_to_the_limit() -> None:
    refusal = Refusal(QuarantineReason.POLICY_REJECTED, "x" * 5000)
    assert refusal.reason is QuarantineReason.POLICY_REJECTED
    assert len(refusal.detail) == 2000
    assert refusal.detail.endswith("...")
