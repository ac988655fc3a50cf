"""Scenario: a quarter's s17A submissions, a late partner, and the suppressed release.

Every responsible authority but the ICB submits its 2026Q3 counts through the SDK; the hub
keeps them and tells the analysts who submitted what, never the counts. A full postcode never
leaves the submitter (the schema refuses it), and a category a party does not submit is
refused by the hub, with why. After the period's due date (31 December 2026) the sweep alerts
the ICB and the analysts that it is late, and releases the dataset to the analysts: no
released cell is below the threshold, none can be recovered by subtraction from the released
totals (nor by any combination of them), the released figures are the true sums, and the
release's audit records carry the SHA-256 of the CSV `hub strategic export` writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.client import HubClient
from hub.errors import EventValidationError
from hub.models import AuditDecision, QuarantineReason
from hub.policies.loader import load_protocol
from hub.scenarios.strategic import quarter_submissions
from hub.settings import default_protocol_path
from hub.strategic.dataset import TOTAL_AREA, TOTAL_CATEGORY, level_of
from hub.strategic.register import StrategicRegister
from hub.strategic.suppression import recoverable
from tests.conftest import wait_for
from tests.factories import STRATEGIC_ALERT, STRATEGIC_DATASET, STRATEGIC_SUBMISSION
from tests.scenarios.harness import TimedHub, timed_hub
from tests.unit.test_strategic_suppression import _determined

pytestmark = pytest.mark.integration

_REF = load_protocol(default_protocol_path())
assert _REF.strategic is not None
POLICY = _REF.strategic
ANALYSTS = "nwcsp.analysts"
START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
SUBMISSIONS = list(quarter_submissions(POLICY, seed=11, today=START.date()))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TimedHub]:
    with timed_hub(tmp_path_factory.mktemp("strategic"), START) as (running, clock):
        yield TimedHub(running, clock)


def _submit_all(scenario: TimedHub) -> list[str]:
    async def run() -> list[str]:
        ids = []
        for item in SUBMISSIONS:
            async with HubClient(
                item.publisher, bootstrap=scenario.hub.bootstrap, keys=scenario.hub.keys
            ) as client:
                counts = {c["area"]: c["count"] for c in item.data["counts"]}
                ids.append(
                    await client.submit_counts(
                        period=item.data["period"], category=item.data["category"], counts=counts
                    )
                )
        return ids

    return asyncio.run(run())


def test_a_quarter_from_submissions_to_a_suppressed_audited_release(
    scenario: TimedHub, tmp_path: Path
) -> None:
    assert {s.publisher for s in SUBMISSIONS} == set(POLICY.submitters) - {"hw-icb"}
    ids = _submit_all(scenario)

    # a full postcode never leaves the submitter: the SDK encodes with the schema first
    async def full_postcode() -> None:
        async with HubClient(
            "hwfrs", bootstrap=scenario.hub.bootstrap, keys=scenario.hub.keys
        ) as client:
            await client.submit_counts(
                period="2026Q3", category="fire_deliberate_fires", counts={"B97 4HJ": 1}
            )

    with pytest.raises(EventValidationError, match="outward code only"):
        asyncio.run(full_postcode())
    # a category the party does not submit is refused by the hub, with why
    wrong = scenario.hub.publish(
        "hwfrs",
        STRATEGIC_SUBMISSION,
        {"submission_id": "HWFRS-X", "submitter": "hwfrs", "period": "2026Q3",
         "category": "council_asb", "counts": [{"area": "B97", "count": 9}]},
        key="S17A-2026Q3-hwfrs",
    )  # fmt: skip
    [refused] = scenario.hub.wait_records(wrong)
    assert refused.decision is AuditDecision.REJECTED
    assert refused.reason.startswith(QuarantineReason.POLICY_REJECTED.value)
    assert "category council_asb: expected one of hwfrs's categories" in refused.reason

    # each submission kept; the analysts hear who submitted what, never the counts
    for event_id in ids:
        [record] = scenario.hub.wait_records(event_id, timeout=60.0)
        assert (record.decision, record.recipient) == (AuditDecision.DELIVERED, ANALYSTS)
        assert record.rule == "strategic-submission-receipts"
        assert set(record.fields) == {"submission_id", "submitter", "period", "category"}
        assert "kept by the hub" in record.reason
    receipts = scenario.hub.deliveries(
        ANALYSTS,
        timeout=60.0,
        until=lambda ds: len([d for d in ds if d.type == STRATEGIC_SUBMISSION]) >= 13,
    )
    assert all("counts" not in d.data for d in receipts if d.type == STRATEGIC_SUBMISSION)

    status = scenario.cli("strategic", "status", "--period", "2026Q3", "--json")
    assert status.returncode == 0, status.stderr  # nobody late before 31 December
    states = {s["submitter"]: s["state"] for s in json.loads(status.stdout)["submitters"]}
    assert states["hw-icb"] == "open"
    assert {v for k, v in states.items() if k != "hw-icb"} == {"complete"}

    # after the due date: the ICB is late; the sweep alerts it and releases the dataset
    scenario.at(dt.date(2027, 1, 4))
    late = scenario.cli("strategic", "status", "--period", "2026Q3")
    assert late.returncode == 1
    assert "hw-icb" in late.stdout
    assert "LATE" in late.stdout
    swept = scenario.cli("strategic", "sweep", "--json")
    assert swept.returncode == 0, swept.stderr
    result = json.loads(swept.stdout)
    assert {(p["kind"], p.get("submitter")) for p in result["planned"]} == {
        ("submission_late", "hw-icb"),
        ("release", None),
    }
    [released] = result["released"]
    assert released["missing"] == ["hw-icb"]

    icb = scenario.hub.deliveries(
        "hw-icb", timeout=60.0, until=lambda ds: any(d.type == STRATEGIC_ALERT for d in ds)
    )
    [alert] = [d for d in icb if d.type == STRATEGIC_ALERT]
    assert alert.data["categories"] == ["health_assault_admissions"]
    assert alert.data["due_on"] == "2026-12-31"
    got = scenario.hub.deliveries(
        ANALYSTS,
        timeout=60.0,
        until=lambda ds: {STRATEGIC_ALERT, STRATEGIC_DATASET} <= {d.type for d in ds},
    )
    [dataset] = [d for d in got if d.type == STRATEGIC_DATASET]
    assert dataset.from_hub
    _assert_suppressed_and_true(dataset.data)

    # the release is audited with the dataset's digest: the CSV the export writes
    export = scenario.cli(
        "strategic", "export", "--period", "2026Q3", "--out", str(tmp_path), "--json"
    )
    assert export.returncode == 0, export.stderr
    digest = hashlib.sha256((tmp_path / "s17a-2026Q3.csv").read_bytes()).hexdigest()
    assert digest == dataset.data["sha256"] == released["sha256"]
    records = scenario.hub.wait_records(dataset.id)
    [delivered] = [r for r in records if r.decision is AuditDecision.DELIVERED]
    assert (delivered.recipient, delivered.rule) == (ANALYSTS, "strategic-dataset-to-analysts")
    assert f"sha256 {digest}" in delivered.reason
    assert "s17A" in (delivered.gateway or "")

    # routed and recorded; a second sweep has nothing left to do
    def recorded() -> list[str] | None:
        releases = json.loads(scenario.cli("strategic", "status", "--json").stdout)["releases"]
        return releases[0]["recipients"] if releases and releases[0]["recipients"] else None

    assert wait_for(recorded, timeout=30.0, what="the release recorded") == [ANALYSTS]
    # and what it carried, for the console's charts: the very cells, so the same digest
    with StrategicRegister(scenario.hub.settings.register_path) as register:
        assert register.released()["2026Q3"].sha256 == digest
    again = scenario.cli("strategic", "sweep", "--json")
    assert json.loads(again.stdout)["planned"] == []


def _assert_suppressed_and_true(data: dict[str, object]) -> None:
    """No released cell below the threshold, none recoverable, released = true sums."""
    cells = data["cells"]
    assert isinstance(cells, list)
    threshold = int(str(data["threshold"]))
    assert threshold == 5
    released = [c for c in cells if c["count"] is not None]
    hidden = [c for c in cells if c["count"] is None]
    assert hidden  # the seeded counts have small numbers
    assert all(c["count"] >= threshold for c in released)
    # the true table, from what was submitted
    true: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for item in SUBMISSIONS:
        for c in item.data["counts"]:
            district = POLICY.district_of(c["area"]) or "unassigned"
            key = (district, level_of(c["area"]))
            true[(*key, c["area"], item.data["category"])] += c["count"]
            true[(*key, c["area"], TOTAL_CATEGORY)] += c["count"]
            true[(*key, TOTAL_AREA, item.data["category"])] += c["count"]
            true[(*key, TOTAL_AREA, TOTAL_CATEGORY)] += c["count"]
    for c in released:
        assert c["count"] == true[(c["district"], c["level"], c["area"], c["category"])]
    # per table, with its totals: no line with one hidden cell (subtraction), and no hidden
    # cell fixed by any combination of rows and columns
    tables: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
    for c in cells:
        tables[(c["district"], c["level"])].append(c)
    for table in tables.values():
        areas = list(dict.fromkeys(str(c["area"]) for c in table))
        categories = list(dict.fromkeys(str(c["category"]) for c in table))
        assert areas[-1] == TOTAL_AREA
        assert categories[-1] == TOTAL_CATEGORY
        by = {(c["area"], c["category"]): c["count"] is None for c in table}
        mask = [[by[(a, k)] for k in categories] for a in areas]
        for line in [*mask, *zip(*mask, strict=True)]:
            assert sum(line) != 1, "a hidden cell recoverable by subtraction from its total"
        assert recoverable(mask) == []
        assert _determined(mask) == set()
