"""Health in MARAC, the NHS CP-IS way: flag-only notices to urgent care, and access notices back.

NHS Child Protection Information Sharing (shared/domain.md) shares a flag with unscheduled-care
settings (A&E, minor injuries, out-of-hours), not with scheduled care, and when such a setting
accesses the flag it tells the lead agency who accessed it, where and when. The reference
protocol says the same with roles: parties with ``health-urgent-care`` receive the flag-only
notice (rule ``marac-flag-health-urgent-care``), ``health-scheduled-care`` receives nothing
unless a rule names it, and a ``uk.csp.marac.access.v1`` published by an urgent-care setting
reaches the MARAC coordinator (rule ``marac-access-notification``), audited like any delivery.

What the protocol cannot say is checked here: only a party that holds the case's flag (the
audit log, or this router's own recent deliveries, says it was delivered one) may report
viewing it, so the coordinator is never told of a view that cannot have happened.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["ACCESS_TYPE", "check_access"]

ACCESS_TYPE = "uk.csp.marac.access.v1"


def check_access(publisher: str, case: str | None, holders: Collection[str]) -> str | None:
    """Why an access notice from ``publisher`` is refused, or ``None`` if it may be routed.

    Args:
        publisher: the setting that says it viewed the flag.
        case: the case reference the notice names.
        holders: the parties that were delivered an event of the case.
    """
    if case is None:
        return "an access notice must name the case_ref of the flag viewed"
    if publisher not in holders:
        return (
            f"{publisher} reported viewing the MARAC flag of case {case}, which the hub never "
            f"delivered to {publisher}: only a setting that holds a flag can view it"
        )
    return None
