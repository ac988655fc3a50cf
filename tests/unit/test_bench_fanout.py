"""The fan-out benchmark: a quick run routes every event to every recipient, numbers positive.

Speed is never asserted: only the shape of the record, that deliveries are events x N (so a
protocol that withheld would fail), and that every number measured is positive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bench
from bench.fanout import COLUMNS, _against_target, protocol_yaml, write_protocol
from hub.schemas import SchemaRegistry

RECIPIENTS = [1, 4]
EVENTS = 12


def test_quick_run_delivers_every_event_to_every_recipient(tmp_path: Path) -> None:
    path = bench.run_benchmark(
        bench.load("fanout"),
        results_dir=tmp_path,
        quick=True,
        overrides={"recipients": RECIPIENTS, "events": EVENTS, "warmup": 2},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fanout.json"]  # no .tmp left
    record: dict[str, Any] = json.loads(path.read_text())
    assert record["benchmark"] == "fanout"
    assert record["parameters"]["recipients"] == RECIPIENTS
    assert record["table"]["columns"] == COLUMNS
    assert [row[0] for row in record["table"]["rows"]] == RECIPIENTS
    assert all(len(row) == len(COLUMNS) for row in record["table"]["rows"])
    measured = record["measurements"]
    assert [m["recipients"] for m in measured] == RECIPIENTS
    for m in measured:
        n = m["recipients"]
        assert m["events"] == EVENTS
        assert m["deliveries"] == EVENTS * n
        assert m["events_per_s"] > 0
        assert m["deliveries_per_s"] > 0
        assert m["seconds"] > 0
        assert m["cpu_seconds"] > 0
        assert m["cpu_us_per_event"] > 0
        assert m["median_us_per_recipient"] > 0
        assert m["group_sync_ms"] >= 0
        # floor (a)'s work for the same N in the same rounds, and the route's ratio to it
        assert len(m["floor_cpu_us_per_event_by_round"]) == len(m["cpu_us_per_event_by_round"])
        assert m["floor_cpu_us_per_event"] == min(m["floor_cpu_us_per_event_by_round"]) > 0
        assert m["route_over_floor"] == pytest.approx(
            m["cpu_us_per_event"] / m["floor_cpu_us_per_event"], rel=0.01
        )
        for stats in (m["per_event"], m["audit_json"]):
            assert stats["n"] == EVENTS
            assert 0 < stats["min_us"] <= stats["median_us"] <= stats["p95_us"]
    notes = " ".join(record["notes"])
    assert "no broker" in notes.lower()
    assert "no audit store write" in notes.lower()


def test_synthetic_protocol_passes_policy_check(tmp_path: Path) -> None:
    protocol = write_protocol(tmp_path / "p.yaml", 3, SchemaRegistry())
    assert len(protocol.parties) == 4
    assert len(protocol.rules) == 1


def test_protocol_check_failure_is_loud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(n: int, *, today: Any) -> str:
        return protocol_yaml(n, today=today).replace("    lawful_basis:", "    purpose_x:")

    monkeypatch.setattr("bench.fanout.protocol_yaml", broken)
    with pytest.raises(RuntimeError, match="hub policy check"):
        write_protocol(tmp_path / "p.yaml", 2, SchemaRegistry())


def test_each_recipient_count_is_held_to_issue_16s_line() -> None:
    """250 us per event plus 60 per recipient: N=1 may cost 310, N=4 490."""
    said = _against_target(
        [{"recipients": 1, "cpu_us_per_event": 298.4}, {"recipients": 4, "cpu_us_per_event": 518}]
    )
    assert "N=1 298 of 310 µs (within)" in said
    assert "N=4 518 of 490 µs (over)" in said
