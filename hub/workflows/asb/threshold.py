"""The protocol's local threshold, applied to the relevant bodies' answers.

ASB, Crime and Policing Act 2014 s104(5): the relevant bodies decide whether the threshold
is met; Home Office statutory guidance lets each area set it. The reference protocol uses the
common pair (``asb.threshold``): three complaints in the six months before the application,
each reported within one month of the incident, or complaints from five different
complainants about the same problem in those six months. Every complaint the hub saw is named
in the reasons, with why it did or did not count, so the applicant can be told.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from hub.policies import durations
from hub.policies.model import AsbThreshold

__all__ = ["Complaint", "ThresholdResult", "assess"]

MetBy = Literal["complaints", "complainants"]


@dataclass(frozen=True)
class Complaint:
    """One complaint a relevant body holds, as it answered (no names: a complainant pseudonym)."""

    body: str
    reference: str
    reported_on: dt.date
    incident_on: dt.date
    complainant: str
    action_taken: str = ""

    @property
    def label(self) -> str:
        """How reasons name it: the body and its own reference."""
        return f"{self.body} {self.reference}"


@dataclass(frozen=True)
class ThresholdResult:
    """The decision and why."""

    met: bool
    met_by: MetBy | None
    considered: int
    qualifying: tuple[Complaint, ...]
    complainants: int
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The decision's figures as JSON-ready data."""
        return {
            "met": self.met,
            "met_by": self.met_by,
            "complaints_considered": self.considered,
            "qualifying_complaints": len(self.qualifying),
            "distinct_complainants": self.complainants,
            "reasons": list(self.reasons),
        }


def assess(
    complaints: Iterable[Complaint], policy: AsbThreshold, *, received_on: dt.date
) -> ThresholdResult:
    """Apply the threshold to every body's complaints for an application received on a day.

    A complaint answered twice (the same body and reference) counts once. Complaints reported
    after the application, or before the window, are outside the review.
    """
    unique: dict[tuple[str, str], Complaint] = {}
    for c in complaints:
        unique.setdefault((c.body, c.reference), c)
    start = durations.subtract(received_on, policy.window)
    reasons: list[str] = []
    in_window: list[Complaint] = []
    qualifying: list[Complaint] = []
    for c in sorted(unique.values(), key=lambda c: (c.reported_on, c.body, c.reference)):
        if not start <= c.reported_on <= received_on:
            reasons.append(
                f"{c.label} reported {c.reported_on}: outside the {policy.window} before the "
                f"application ({start} to {received_on}), not counted"
            )
            continue
        in_window.append(c)
        latest = durations.add(c.incident_on, policy.reported_within)
        if c.incident_on <= c.reported_on <= latest:
            qualifying.append(c)
            reasons.append(
                f"{c.label} reported {c.reported_on}, incident {c.incident_on}: qualifies "
                f"(reported within {policy.reported_within})"
            )
        else:
            reasons.append(
                f"{c.label} reported {c.reported_on}, incident {c.incident_on}: does not "
                f"qualify (not reported within {policy.reported_within} of the incident)"
            )
    complainants = len({c.complainant for c in in_window})
    met_by: MetBy | None = None
    if len(qualifying) >= policy.complaints:
        met_by = "complaints"
        reasons.append(
            f"threshold met: {len(qualifying)} qualifying complaints in the {policy.window} "
            f"before the application (the protocol asks for {policy.complaints})"
        )
    elif policy.distinct_complainants is not None and complainants >= policy.distinct_complainants:
        met_by = "complainants"
        reasons.append(
            f"threshold met: {complainants} different complainants about the same problem in "
            f"the {policy.window} before the application (the protocol asks for "
            f"{policy.distinct_complainants})"
        )
    else:
        second = (
            f", nor {policy.distinct_complainants} different complainants (found {complainants})"
            if policy.distinct_complainants is not None
            else ""
        )
        reasons.append(
            f"threshold not met: {len(qualifying)} qualifying complaints in the "
            f"{policy.window} before the application, fewer than {policy.complaints}{second}"
        )
    return ThresholdResult(
        met=met_by is not None,
        met_by=met_by,
        considered=len(unique),
        qualifying=tuple(qualifying),
        complainants=complainants,
        reasons=tuple(reasons),
    )
