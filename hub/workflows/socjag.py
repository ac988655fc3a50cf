"""SOCJAG intelligence checks, made before an item is shared with anyone (shared/domain.md).

- Grading: the police grade on 3x5x2. Older items graded on 5x5x5 are accepted only when the
  protocol says so (``socjag.accept_5x5x5``), must carry their original grades
  (``legacy_grading``) and are marked on every delivery and audit record; a 5x5x5 handling
  code 4 (originating agency only) or 5 (no further dissemination: refer to the originator)
  forbids sharing at all, so such an item is refused whatever the protocol says.
- Handling code C travels with its conditions (``handling_conditions``); coded requirements
  must be ones the protocol declares, or no recipient could be judged able to meet them.
  Conditions on a handling code P item would be dropped by the P rules, so they are refused
  rather than silently lost.
- A sanitised version names the original item's event id; every audit record of it says so,
  which links the two (they also share the item reference, hence the case pseudonym).

Pure: the router supplies the payload and the protocol's ``socjag`` section.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.policies.model import SocjagPolicy

__all__ = ["INTEL", "SANITISED", "IntelCheck", "check_intel"]

INTEL = "uk.csp.socjag.intel.v1"
SANITISED = "uk.csp.socjag.intel.sanitised.v1"
#: 5x5x5 handling codes that forbid dissemination outside the originating agency (NIM 2005)
_NO_DISSEMINATION = {4: "originating agency only", 5: "no further dissemination"}


@dataclass(frozen=True)
class IntelCheck:
    """The verdict: problems (empty = may be routed) and marks for every audit record."""

    problems: tuple[str, ...] = ()
    marks: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        """No problem found."""
        return not self.problems


def check_intel(
    event_type: str, data: Mapping[str, Any], policy: SocjagPolicy | None
) -> IntelCheck | None:
    """Check a SOCJAG payload; ``None`` for any other event type."""
    if event_type == SANITISED:
        origin = data.get("sanitised_from")
        return IntelCheck(
            marks=(f"sanitised version of event {origin} (intel {data.get('intel_ref')})",)
        )
    if event_type != INTEL:
        return None
    problems = _grading_problems(data, policy) + _handling_problems(data, policy)
    marks: tuple[str, ...] = ()
    legacy = data.get("legacy_grading")
    if data.get("grading_system") == "5x5x5" and isinstance(legacy, Mapping):
        marks = (
            f"graded 5x5x5 (legacy): source {legacy.get('source_evaluation')}, intelligence "
            f"{legacy.get('intelligence_evaluation')}, handling {legacy.get('handling_code')}",
        )
    return IntelCheck(problems=tuple(problems), marks=marks)


def _grading_problems(data: Mapping[str, Any], policy: SocjagPolicy | None) -> list[str]:
    system = data.get("grading_system", "3x5x2")
    legacy = data.get("legacy_grading")
    if system != "5x5x5":
        if legacy is not None:
            return [
                "legacy_grading is only for items graded 5x5x5: remove it or set grading_system"
            ]
        return []
    problems: list[str] = []
    if policy is None or not policy.accept_5x5x5:
        problems.append(
            "graded 5x5x5, which this protocol does not accept (socjag.accept_5x5x5 is not "
            "set): regrade the item on 3x5x2 and republish"
        )
    if not isinstance(legacy, Mapping):
        problems.append("graded 5x5x5 without legacy_grading: send the original 5x5x5 grades")
    else:
        code = legacy.get("handling_code")
        if code in _NO_DISSEMINATION:
            problems.append(
                f"5x5x5 handling code {code} ({_NO_DISSEMINATION[code]}) forbids sharing it: "
                "refer to the originator"
            )
    return problems


def _handling_problems(data: Mapping[str, Any], policy: SocjagPolicy | None) -> list[str]:
    conditions = data.get("handling_conditions")
    if data.get("handling_code") == "P":
        if conditions is not None:
            return [
                "handling code P with handling_conditions: P rules do not carry conditions, so "
                "they would be lost; use handling code C"
            ]
        return []
    if not isinstance(conditions, Mapping):
        return ["handling code C without handling_conditions: attach the conditions"]
    declared = policy.handling_requirements if policy is not None else {}
    unknown = [r for r in conditions.get("requirements") or () if r not in declared]
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        return [
            f"handling requirements {', '.join(map(str, unknown))} are not declared in the "
            f"protocol (socjag.handling_requirements: {known})"
        ]
    return []
