"""The protocol's s17A section: who submits what, to whom the dataset goes, and the checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.policies.check import check_protocol
from hub.policies.loader import load_protocol
from hub.policies.model import StrategicDistrict, StrategicPolicy
from hub.schemas.codec import SchemaRegistry
from hub.settings import default_protocol_path

REGISTRY = SchemaRegistry()
TODAY = dt.date(2026, 11, 23)


def test_the_reference_protocol_names_submitters_analysts_and_areas() -> None:
    strategic = load_protocol(default_protocol_path()).strategic
    assert strategic is not None
    assert strategic.threshold == 5
    assert strategic.analysts == "nwcsp.analysts"
    assert strategic.submitters["hwfrs"] == ("fire_deliberate_fires", "fire_assaults_on_staff")
    assert strategic.district_of("B97") == "redditch"
    assert strategic.district_of("DY10") == "wyre_forest"
    assert strategic.district_of("E05007807") == "bromsgrove"
    assert strategic.district_of("WR1") is None


def test_a_submitter_category_must_be_declared() -> None:
    with pytest.raises(ValidationError, match="not declared in categories"):
        StrategicPolicy(
            analysts="a",
            categories={"council_asb": "ASB"},
            submitters={"c": ("council_x",)},
            first_period="2026Q3",
        )


@pytest.mark.parametrize("code", ["B97 4HJ", "b97", "Redditch"])
def test_a_district_lists_outward_or_ward_codes_only(code: str) -> None:
    with pytest.raises(ValidationError, match="outward codes"):
        StrategicDistrict(name="Redditch", outward_codes=(code,))


def _mutated(tmp_path: Path, old: str, new: str) -> Path:
    text = default_protocol_path().read_text()
    assert old in text
    path = tmp_path / "protocol.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_check_refuses_an_unknown_analysts_party(tmp_path: Path) -> None:
    path = _mutated(tmp_path, "  analysts: nwcsp.analysts", "  analysts: nwcsp.analyst")
    report = check_protocol(path, REGISTRY, today=TODAY)
    assert [f.code for f in report.errors] == ["unknown-party"]
    assert "nwcsp.analyst" in report.errors[0].message


def test_check_refuses_a_category_the_schema_cannot_carry(tmp_path: Path) -> None:
    path = _mutated(
        tmp_path,
        "    council_asb: Anti-social behaviour reported to the council",
        "    council_asb: Anti-social behaviour reported to the council\n"
        "    council_burglary: Burglaries",
    )
    report = check_protocol(path, REGISTRY, today=TODAY)
    assert [f.code for f in report.errors] == ["unknown-category"]


def test_check_warns_when_no_rule_delivers_the_dataset(tmp_path: Path) -> None:
    path = _mutated(
        tmp_path,
        "    events: [uk.csp.strategic.dataset.v1]",
        "    events: [uk.csp.strategic.alert.v1]",
    )
    report = check_protocol(path, REGISTRY, today=TODAY)
    assert "dataset-undelivered" in {f.code for f in report.warnings}


def test_check_warns_about_a_submitter_no_rule_lets_submit(tmp_path: Path) -> None:
    path = _mutated(
        tmp_path,
        "    hw-icb: [health_assault_admissions]",
        "    hw-icb: [health_assault_admissions]\n    probation: [council_asb]",
    )
    report = check_protocol(path, REGISTRY, today=TODAY)
    assert report.errors == []
    assert [f.code for f in report.warnings] == ["submitter-not-permitted"]
    assert "no rule lets probation publish" in report.warnings[0].message
