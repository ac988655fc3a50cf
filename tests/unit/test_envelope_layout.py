"""``seal_record``'s cached layouts never stand in for headers they do not write.

A layout is kept for the last (attributes object, extension names) and reused for the next
delivery that matches it; the header order is kept per (attribute header names, extension
names). Whatever those keys cannot tell apart, the bytes must still be those of
the reference construction (``wire.to_headers``, ``context_aad``, ``crypto.signing_input``,
``reference`` in ``test_envelope_shared``), the second time as the first.
"""

from __future__ import annotations

import datetime as dt

import pytest

from hub.envelope import wire
from hub.models import EventAttributes
from tests.unit.test_envelope_shared import T0, data_key, reference, seal

EXTENSIONS = {"hubprotocol": "sha256:ab", "hubrule": "r-1", "hubfields": "a,b"}


def _same_as_reference(attrs: EventAttributes, extensions: dict[str, str]) -> None:
    dk = data_key("agency-01", 1)
    for _ in range(2):  # the first seal may take the reference path; the second a layout
        got = seal(attrs, dk, key=b"CASE-1", plaintext=b"{}", extensions=extensions, escrowed=None)
        want = reference(
            attrs, key=b"CASE-1", plaintext=b"{}", dk=dk, extensions=extensions, escrowed=None
        )
        assert got == want


def test_the_same_instant_written_with_another_offset_keeps_its_own_time() -> None:
    # equal datetimes (one instant) hash alike, yet ``ce_time`` writes each one's offset
    for when in (T0, T0.astimezone(dt.timezone(dt.timedelta(hours=1)))):
        _same_as_reference(_intel("ev-offset", when), EXTENSIONS)


@pytest.mark.parametrize("name", ["hubx\n", "hubrule"])
def test_an_extension_name_json_escapes_is_signed_as_the_reference_signs_it(name: str) -> None:
    # the SDK's name check (``^[a-z0-9]+$``) lets a trailing newline through; JSON escapes it
    _same_as_reference(_intel("ev-name", T0), {**EXTENSIONS, name: "v"})


def _intel(event_id: str, when: dt.datetime) -> EventAttributes:
    """A delivery's attributes: SOCJAG intelligence from the police, at ``when``."""
    return EventAttributes(
        id=event_id,
        source="/parties/west-mercia-police",
        type="uk.csp.socjag.intel.v1",
        time=when,
        datacontenttype=wire.JSON,
    )


def test_one_attributes_object_sealed_with_other_extension_names_is_written_afresh() -> None:
    # the last layout is reused by identity of the (frozen) attributes: only with the same
    # extension names; an escrow header, or none, is another layout of the same event
    attrs = _intel("ev-identity", T0)
    for extensions in (EXTENSIONS, {**EXTENSIONS, "hubescrow": "e"}, EXTENSIONS):
        _same_as_reference(attrs, extensions)
