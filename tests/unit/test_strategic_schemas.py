"""s17A submissions are depersonalised by their schema: anything personal is refused, clearly.

Crime and Disorder (Prescribed Information) Regulations 2007: counts by "general postcode
address" (the outward code only) or ward, for a quarter. A full postcode, a name, a date of
birth or free text must never get in, and the publisher must read why, at the right place.
"""

from __future__ import annotations

from typing import Any

import pytest

from hub.errors import EventValidationError
from hub.schemas import SchemaRegistry, to_jsonable
from tests.factories import STRATEGIC_SUBMISSION, strategic_submission

REGISTRY = SchemaRegistry()


def _refusal(data: dict[str, Any]) -> str:
    with pytest.raises(EventValidationError) as caught:
        REGISTRY.encode(STRATEGIC_SUBMISSION, data)
    return str(caught.value)


def test_counts_by_outward_code_and_ward_are_accepted() -> None:
    data = strategic_submission(counts={"B97": 12, "DY10": 0, "W1A": 1, "E05007870": 3})
    decoded = REGISTRY.decode(STRATEGIC_SUBMISSION, REGISTRY.encode(STRATEGIC_SUBMISSION, data))
    assert to_jsonable(decoded) == data


@pytest.mark.parametrize("postcode", ["B97 4HJ", "B974HJ", "DY10 1AB", "WR1 2AA"])
def test_a_full_postcode_is_refused_naming_the_outward_code(postcode: str) -> None:
    message = _refusal(strategic_submission(counts={"B97": 2, postcode: 1}))
    assert message.startswith(f"{STRATEGIC_SUBMISSION}: field /counts/1/area: ")
    assert "outward code only" in message
    assert "a full postcode" in message
    assert postcode not in message  # the refused value is never echoed


@pytest.mark.parametrize(
    ("where", "extra", "pointer"),
    [
        ("payload", {"name": "Jane Doe"}, "'name'"),
        ("payload", {"date_of_birth": "1990-01-01"}, "'date_of_birth'"),
        ("payload", {"notes": "seen at the Crown on Friday"}, "'notes'"),
        ("row", {"name": "Jane Doe"}, "field /counts/0: unexpected field(s) 'name'"),
        ("row", {"dob": "1990-01-01"}, "field /counts/0: unexpected field(s) 'dob'"),
    ],
)
def test_a_name_a_date_of_birth_or_free_text_is_refused(
    where: str, extra: dict[str, Any], pointer: str
) -> None:
    data = strategic_submission(counts={"B97": 2})
    if where == "payload":
        data.update(extra)
    else:
        data["counts"][0].update(extra)
    message = _refusal(data)
    assert pointer in message
    assert "depersonalised" in message
    assert "Jane" not in message


@pytest.mark.parametrize("value", ["Jane Doe", "1990-01-01", "near the station", "b97"])
def test_personal_or_free_text_in_the_area_is_refused(value: str) -> None:
    message = _refusal(strategic_submission(counts={value: 1}))
    assert "field /counts/0/area" in message
    assert value not in message


@pytest.mark.parametrize("period", ["2026-07", "2026Q5", "Q3 2026", "2026q3"])
def test_the_period_is_a_quarter(period: str) -> None:
    assert "field /period: expected an information period (a quarter) written like 2026Q3" in (
        _refusal(strategic_submission(period=period, submission_id="WMP-1"))
    )


def test_an_unknown_category_and_a_negative_count_are_refused() -> None:
    assert "field /category" in _refusal(strategic_submission(category="burglary_victims"))
    assert "field /counts/0/count: expected 0..1000000, got -1" in _refusal(
        strategic_submission(counts={"B97": -1})
    )
