"""SafeLives MARAC referral criteria, checked before a raised flag is shared with anyone.

- Visible high risk: 14 or more ticks on the DASH risk checklist (``dash_threshold``).
- Professional judgement: below the threshold, with a written rationale; it can never lower
  a DASH-based level (a score at or over the threshold is always high risk).
- Potential escalation: with a rationale describing the incidents.
- Repeat: any further incident within 12 months (``repeat_window``) of the last referral,
  whatever the score and whatever the referral is labelled; after that it is a new referral
  and must meet the criteria again.

An update (``uk.csp.marac.flag.updated``) is held to the same DASH rule as a referral: a
score at or over the threshold is high risk, whatever the update says (``check_update``).

Pure: the caller says when the subject was last referred, so this is testable without a hub.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.policies import durations
from hub.policies.model import MaracPolicy

__all__ = ["ReferralCheck", "check_referral", "check_update"]


@dataclass(frozen=True)
class ReferralCheck:
    """The verdict: problems (empty = valid) and whether this is a repeat referral."""

    problems: tuple[str, ...]
    repeat: bool

    @property
    def valid(self) -> bool:
        """No problem found."""
        return not self.problems


def check_referral(
    data: Mapping[str, Any],
    policy: MaracPolicy,
    *,
    now: dt.datetime,
    last_referral: dt.datetime | None,
) -> ReferralCheck:
    """Check a ``uk.csp.marac.flag.raised`` payload against the SafeLives criteria."""
    threshold = policy.dash_threshold
    reason = str(data.get("referral_reason", ""))
    score = data.get("dash_score")
    rationale = str(data.get("rationale") or "").strip()
    repeat = last_referral is not None and durations.add(last_referral, policy.repeat_window) >= now
    problems = list(_dash_level(data, policy))
    # SafeLives: a further incident within the window is a repeat whatever its score, so a
    # low score only disqualifies a DASH referral that is not a repeat
    if reason == "dash" and not repeat and not (isinstance(score, int) and score >= threshold):
        got = "no dash_score" if score is None else f"dash_score {score}"
        problems.append(
            f"a DASH referral needs a score of {threshold} or more, got {got}: below that, "
            "refer on professional judgement with a written rationale"
        )
    if reason in ("professional_judgement", "escalation") and not rationale:
        problems.append(
            f"a {reason.replace('_', ' ')} referral needs a written rationale (field rationale)"
        )
    if reason == "repeat" and not repeat:
        last = f"last referral {last_referral:%Y-%m-%d}" if last_referral else "no earlier referral"
        problems.append(
            f"a repeat referral needs an earlier referral of this subject within "
            f"{policy.repeat_window} ({last}): after that it is a new referral and must meet "
            "the DASH or professional judgement criteria"
        )
    return ReferralCheck(problems=tuple(problems), repeat=repeat)


def check_update(data: Mapping[str, Any], policy: MaracPolicy) -> tuple[str, ...]:
    """Problems with a ``uk.csp.marac.flag.updated`` payload (empty = valid).

    SafeLives: professional judgement can raise a level but never lower a DASH-based one, so
    an update carrying a score at or over the threshold must keep the flag high risk.
    """
    return tuple(_dash_level(data, policy))


def _dash_level(data: Mapping[str, Any], policy: MaracPolicy) -> list[str]:
    score = data.get("dash_score")
    risk = data.get("risk_level")
    threshold = policy.dash_threshold
    if isinstance(score, int) and score >= threshold and risk != "high":
        return [
            f"a DASH score of {score} is visible high risk ({threshold} or more): risk_level "
            f"must be high, got {risk}; professional judgement cannot lower a DASH-based level"
        ]
    return []
