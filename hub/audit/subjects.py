"""Which references in an event name a person or a case, per event type.

The audit record keeps subjects only as pseudonyms; this module says which payload values
to pseudonymise, so a subject access request or a Domestic Homicide Review chronology can
find every record about a person or a case. It is lenient by design: a payload missing a
field yields no reference rather than an error, because the audit must still be written
for events that were rejected as malformed.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["case_ref", "person_ref", "subject_refs"]

_VERSION = re.compile(r"\.v[0-9]+$")
_FAMILIES_KEPT = 1024
#: an intelligence item and its sanitised versions share the item reference, so one case
#: pseudonym (and ``hub audit chronology --case``) links them
_SOCJAG = ("uk.csp.socjag.intel", "uk.csp.socjag.intel.sanitised")
#: exclusion schemes' notices, which name a person: Pub Watch bans, retail exclusions
_EXCLUSIONS = ("uk.csp.pubwatch.ban", "uk.csp.retail.exclusion")
#: ASB Case Reviews: every event of a review is filed by ``case_ref``; the applicant by the
#: pseudonymous ``applicant_ref`` (never the name the application carries)
_ASB = "uk.csp.asb.review."


@functools.lru_cache(maxsize=_FAMILIES_KEPT)
def _family(event_type: str) -> str:
    """``uk.csp.marac.flag.raised.v1`` -> ``uk.csp.marac.flag.raised``.

    Kept per type: the router asks several times per event (its case, its subjects), and a
    hub has a few dozen types; bounded, since a rejected event's type is the publisher's.
    """
    return _VERSION.sub("", event_type)


def _is_marac(family: str) -> bool:
    """Every MARAC event (flags, observations, referrals, alerts) is filed by ``case_ref``."""
    return family.startswith("uk.csp.marac.")


def person_ref(name: str, date_of_birth: dt.date | str) -> str:
    """The reference of a person known by name and date of birth: ``name|YYYY-MM-DD``.

    Pub Watch bans name a person rather than an agency reference, so the name is case
    folded and its whitespace collapsed to give one reference however it was typed.
    """
    if isinstance(date_of_birth, dt.datetime):
        date_of_birth = date_of_birth.date()
    dob = date_of_birth.isoformat() if isinstance(date_of_birth, dt.date) else date_of_birth
    return " ".join(name.split()).casefold() + "|" + dob.strip()


def subject_refs(event_type: str, data: Mapping[str, Any]) -> list[str]:
    """The subject references in an event's payload, in payload order, without repeats.

    Args:
        event_type: the CloudEvents type, e.g. ``uk.csp.socjag.intel.v1``.
        data: the decoded payload (dates as ``datetime.date`` or ISO strings).

    Returns:
        References to pseudonymise; empty for types that name nobody (acknowledgements)
        and for unknown types.
    """
    family = _family(event_type)
    refs: list[str] = []
    if _is_marac(family):
        refs = _strings([data.get("subject_ref")])
    elif family.startswith(_ASB):
        refs = _strings([data.get("applicant_ref")])
    elif family in _SOCJAG:
        value = data.get("subject_refs")
        refs = _strings(value if isinstance(value, list | tuple) else [])
    elif family in _EXCLUSIONS:
        person = data.get("subject")
        if isinstance(person, Mapping):
            name, dob = person.get("name"), person.get("date_of_birth")
            if isinstance(name, str) and isinstance(dob, dt.date | str) and name.strip():
                refs = [person_ref(name, dob)]
    return list(dict.fromkeys(refs))


def case_ref(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The case reference in an event's payload, or ``None`` if the type has none."""
    family = _family(event_type)
    if _is_marac(family) or family.startswith(_ASB):
        key = "case_ref"
    elif family in _SOCJAG:
        key = "intel_ref"
    elif family.startswith(_EXCLUSIONS):
        key = "ban_ref"  # a ban or exclusion and its lifecycle (updated, expired) are one case
    else:
        return None
    found = _strings([data.get(key)])
    return found[0] if found else None


def _strings(values: Any) -> list[str]:
    return [v for v in values if isinstance(v, str) and v.strip()]
