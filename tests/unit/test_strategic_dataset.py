"""The partnership dataset for one period: sums by district and area, suppressed, exported."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import sys
from pathlib import Path

import pytest

from hub.policies.loader import load_protocol
from hub.policies.model import StrategicPolicy
from hub.schemas import SchemaRegistry
from hub.settings import default_protocol_path
from hub.strategic import StrategicError
from hub.strategic.dataset import Submission, build_dataset, level_of
from hub.strategic.export import export_dataset
from hub.strategic.periods import Quarter
from hub.strategic.suppression import recoverable

POLICY = load_protocol(default_protocol_path()).strategic
assert POLICY is not None


def _policy() -> StrategicPolicy:
    assert POLICY is not None
    return POLICY


SUBMISSIONS = [
    Submission(
        "west-mercia-police",
        "2026Q3",
        "police_recorded_crime",
        {"B96": 40, "B97": 3, "B98": 25, "B60": 31, "B61": 12, "DY10": 50},
    ),
    Submission(
        "west-mercia-police",
        "2026Q3",
        "police_incidents",
        {"B96": 60, "B97": 41, "B98": 30, "B60": 2, "DY10": 70, "DY11": 9},
    ),
    Submission(
        "redditch-bc.community-safety",
        "2026Q3",
        "council_asb",
        {"E05007866": 14, "E05007867": 2, "E05007868": 22, "E05007869": 9},
    ),
    Submission("west-mercia-police", "2026Q2", "police_recorded_crime", {"B97": 1}),
]


def test_quarters_are_due_by_the_end_of_the_next() -> None:
    q3 = Quarter.parse("2026Q3")
    assert (q3.start, q3.end, q3.due) == (
        dt.date(2026, 7, 1),
        dt.date(2026, 9, 30),
        dt.date(2026, 12, 31),
    )
    assert Quarter.parse("2026Q4").due == dt.date(2027, 3, 31)
    assert Quarter.of(dt.date(2026, 12, 4)) == Quarter(2026, 4)
    assert [str(q) for q in Quarter.parse("2027Q1").last(3)] == ["2026Q3", "2026Q4", "2027Q1"]
    with pytest.raises(StrategicError, match="expected a quarter like 2026Q3, got '2026-09'"):
        Quarter.parse("2026-09")


def test_levels() -> None:
    assert level_of("E05007866") == "ward"
    assert level_of("B97") == "outward_code"
    assert level_of("DY10") == "outward_code"


def test_the_dataset_sums_one_period_by_district_and_area() -> None:
    dataset = build_dataset(_policy(), "2026Q3", SUBMISSIONS)
    cells = {(c.district, c.area, c.category): c.count for c in dataset.cells}
    assert cells[("redditch", "B96", "police_recorded_crime")] == 40
    assert cells[("wyre_forest", "DY10", "police_incidents")] == 70
    assert cells[("redditch", "E05007866", "council_asb")] == 14
    # outward codes and wards are separate tables: no ward row in the outward-code table
    assert ("redditch", "E05007866", "police_recorded_crime") not in cells
    # the 2026Q2 submission is not in the 2026Q3 dataset
    assert dataset.submitters == ("redditch-bc.community-safety", "west-mercia-police")
    assert "hwfrs" in dataset.missing
    assert "west-mercia-police" not in dataset.missing


def test_small_cells_are_hidden_with_enough_others_that_none_is_recoverable() -> None:
    dataset = build_dataset(_policy(), "2026Q3", SUBMISSIONS)
    cells = {(c.district, c.level, c.area, c.category): c.count for c in dataset.cells}
    assert cells[("redditch", "outward_code", "B97", "police_recorded_crime")] is None
    assert cells[("redditch", "ward", "E05007867", "council_asb")] is None
    for cell in dataset.cells:
        assert cell.count is None or cell.count >= dataset.threshold
    # per table: as a mask over the table with its totals, no hidden cell is recoverable
    tables: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
    for c in dataset.cells:
        tables.setdefault((c.district, c.level), []).append((c.area, c.category, c.count is None))
    for entries in tables.values():
        areas = list(dict.fromkeys(a for a, _, _ in entries))
        categories = list(dict.fromkeys(k for _, k, _ in entries))
        hidden = {(a, k): h for a, k, h in entries}
        mask = [[hidden[(a, k)] for k in categories] for a in areas]
        assert recoverable(mask) == []
    assert sum(dataset.suppressed.values()) == sum(c.count is None for c in dataset.cells)


def test_the_digest_is_the_csv_bytes_and_the_event_validates() -> None:
    dataset = build_dataset(_policy(), "2026Q3", SUBMISSIONS)
    assert dataset.sha256 == hashlib.sha256(dataset.csv_bytes()).hexdigest()
    rows = list(csv.DictReader(io.StringIO(dataset.csv_bytes().decode())))
    assert len(rows) == len(dataset.cells)
    hidden = [r for r in rows if r["status"] == "suppressed"]
    assert hidden
    assert all(r["count"] == "" for r in hidden)
    event = dataset.as_event(built_at=dt.datetime(2027, 1, 5, 9, tzinfo=dt.UTC))
    SchemaRegistry().encode("uk.csp.strategic.dataset.v1", event)
    assert event["release_id"] == f"S17A-2026Q3-{dataset.sha256[:12]}"
    # the same submissions in another order: the same bytes
    again = build_dataset(_policy(), "2026Q3", list(reversed(SUBMISSIONS)))
    assert again.sha256 == dataset.sha256


def test_an_area_no_district_lists_is_released_as_unassigned() -> None:
    dataset = build_dataset(
        _policy(), "2026Q3", [Submission("hwfrs", "2026Q3", "fire_deliberate_fires", {"WR1": 8})]
    )
    assert {c.district for c in dataset.cells if c.area == "WR1"} == {"unassigned"}


def test_export_writes_csv_with_the_digest_and_parquet_with_the_same_rows(tmp_path: Path) -> None:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]  # no stubs

    dataset = build_dataset(_policy(), "2026Q3", SUBMISSIONS)
    files = export_dataset(dataset, tmp_path)
    assert files["csv"].name == "s17a-2026Q3.csv"
    assert hashlib.sha256(files["csv"].read_bytes()).hexdigest() == dataset.sha256
    table = pq.read_table(files["parquet"])
    assert table.num_rows == len(dataset.cells)
    assert table.column("count").to_pylist() == [c.count for c in dataset.cells]
    assert table.schema.metadata[b"s17a.csv_sha256"] == dataset.sha256.encode()


def test_parquet_without_the_extra_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in sys.modules if n == "pyarrow" or n.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    dataset = build_dataset(_policy(), "2026Q3", SUBMISSIONS)
    with pytest.raises(StrategicError, match=r"\[strategic\] extra"):
        export_dataset(dataset, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    assert export_dataset(dataset, tmp_path, parquet=False)["csv"].exists()


def test_charts_without_the_extra_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.strategic.chart import trend_svg, trends

    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    released = {"2026Q3": build_dataset(_policy(), "2026Q3", SUBMISSIONS)}
    [redditch, *_] = trends(_policy(), released, end=Quarter.parse("2026Q3"))
    assert redditch.released == (False,) * 7 + (True,)
    assert redditch.series["police_recorded_crime"][:-1] == (None,) * 7
    assert redditch.series["police_recorded_crime"][-1] == 68  # B96 + B98 + the hidden B97
    with pytest.raises(StrategicError, match=r"\[strategic\] extra"):
        trend_svg(redditch)
