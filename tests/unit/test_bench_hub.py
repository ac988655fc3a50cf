"""The hub benchmark's harness: which processes it meters, how it reads the floor, its order.

No hub runs here: the throughput, latency and floor runs are stand-ins, so these check what
``bench hub`` does with the figures (interleaving, medians, ratios, rows), never speed.
"""

from __future__ import annotations

import importlib
import json
import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from bench import hub_e2e
from bench._harness import Benchmark, Measured
from bench.hub_e2e import (
    BENCHMARK,
    _Floor,
    _floor_from_file,
    _floor_ratios,
    _floor_rows,
    _floor_variant,
    _hub_rows,
    _process_groups,
    _soak_rows,
    _whole_hub,
)


class _Proc:
    def __init__(self, pid: int) -> None:
        self.pid = pid


def _floor_measurements(a_rate: float = 800.0, b_rate: float = 2000.0) -> list[dict[str, Any]]:
    """What bench/floor.py records today (plus its ratios to an older hub record)."""
    return [
        {
            "operation": "floor",
            "variant": "crypto",
            "events": 5000,
            "events_per_s": a_rate,
            "cpu_ms_per_event": {"worker": 1.0, "broker": 0.25, "bench": 0.1},
            "hub_over_floor_cpu": 5.0,
        },
        {
            "operation": "floor",
            "variant": "plain",
            "events": 5000,
            "events_per_s": b_rate,
            "cpu_ms_per_event": {"worker": 0.4, "broker": 0.1, "bench": 0.1},
        },
    ]


def test_defaults_are_issue_16s_targets_and_quick_stays_small() -> None:
    params = BENCHMARK.parameters()
    assert params["rates"] == [500, 1000]
    assert params["latency_s"] == 10
    assert params["soak_s"] == 30 * 60
    assert params["workers"] == [1, 2]
    assert params["floor"] is True
    assert params["rounds"] >= 2
    quick = BENCHMARK.parameters(quick=True)
    assert quick["soak_s"] == 0
    assert quick["rounds"] == 1
    assert quick["profile"] is False
    assert "rate" not in params  # one explicit list of rates now


def test_process_groups_take_whatever_the_supervisor_reports() -> None:
    sink_task = types.SimpleNamespace(workers=[_Proc(11), _Proc(12)], webhooks=None)
    groups = _process_groups(sink_task, broker_pid=5)
    assert groups["workers"] == [11, 12]
    assert groups["sink"] == []  # a task in each worker: its CPU is theirs
    assert groups["webhooks"] == []
    assert groups["broker"] == [5]
    assert groups["bench"] == [os.getpid()]

    one_sink = types.SimpleNamespace(workers=[_Proc(11)], webhooks=_Proc(30), sink=_Proc(20))
    assert _process_groups(one_sink, broker_pid=5)["sink"] == [20]
    assert _process_groups(one_sink, broker_pid=5)["webhooks"] == [30]

    many = types.SimpleNamespace(workers=[_Proc(11)], sinks={"a": _Proc(21), "b": _Proc(22)})
    assert _process_groups(many, broker_pid=5)["sink"] == [21, 22]

    both = types.SimpleNamespace(workers=[], sink=_Proc(20), sinks=[_Proc(20), 23])
    assert _process_groups(both, broker_pid=5)["sink"] == [20, 23]  # each process once


def test_whole_hub_cpu_is_every_hub_process_but_not_the_bench() -> None:
    cpu = {"workers": 1.5, "sink": 0.25, "webhooks": 0.0, "broker": 0.5, "bench": 9.0}
    assert _whole_hub(cpu) == 2.25
    assert _whole_hub({"workers": 1.0, "broker": 0.5}) == 1.5  # no sink group: none counted


@pytest.mark.parametrize(
    ("a_name", "b_name"),
    [("crypto", "plain"), ("(a) with crypto", "(b) without crypto"), ("a", "b")],
)
def test_floor_variants_are_read_whatever_they_are_called(a_name: str, b_name: str) -> None:
    measured = _floor_measurements()
    measured[0]["variant"], measured[1]["variant"] = a_name, b_name
    measured.reverse()  # (b) listed first
    a = _floor_variant(measured, "a")
    b = _floor_variant(measured, "b")
    assert a is not None
    assert b is not None
    assert a["events_per_s"] == 800.0
    assert a["cpu_ms"] == 1.25  # worker + broker; the bench apart
    assert a["cpu_ms_per_event"] == {"worker": 1.0, "broker": 0.25}
    assert b["events_per_s"] == 2000.0


@pytest.mark.parametrize(
    "measurements",
    [
        None,
        "not a list",
        [],
        [{"variant": "crypto"}],  # no rate
        [{"variant": "crypto", "events_per_s": True}],
        [{"variant": "crypto", "events_per_s": 0}],
        [{"variant": "without crypto", "events_per_s": 10.0}],
        ["junk", 3],
    ],
)
def test_floor_a_is_none_when_the_record_has_no_usable_a(measurements: Any) -> None:
    assert _floor_variant(measurements, "a") is None


def test_floor_a_without_cpu_figures_still_gives_a_rate() -> None:
    a = _floor_variant([{"variant": "crypto", "events_per_s": 700, "cpu_ms_per_event": "?"}], "a")
    assert a is not None
    assert (a["events_per_s"], a["cpu_ms"]) == (700.0, None)


def test_floor_from_file_says_which_file_and_commit(tmp_path: Path) -> None:
    path = tmp_path / "floor.json"
    found, why = _floor_from_file(path)
    assert found is None
    assert "no floor record" in why
    path.write_text("{not json")
    assert _floor_from_file(path)[0] is None
    path.write_text(json.dumps({"benchmark": "floor", "measurements": [{"variant": "plain"}]}))
    assert "no floor (a)" in _floor_from_file(path)[1]
    record = {
        "benchmark": "floor",
        "started_at": "2026-12-04T10:00:00+00:00",
        "quick": True,
        "machine": {"git_commit": "0123456789abcdef", "git_dirty": True},
        "measurements": _floor_measurements(),
    }
    path.write_text(json.dumps(record))
    found, note = _floor_from_file(path)
    assert found is not None
    assert found["events_per_s"] == 800.0
    assert str(path) in note
    assert "0123456789 with uncommitted changes" in note
    assert "2026-12-04T10:00:00+00:00" in note
    assert "quick" in note


def test_each_round_is_set_against_the_floors_on_either_side() -> None:
    floors = [
        {"round": r, "a": {"events_per_s": rate, "cpu_ms": cpu}}
        for r, rate, cpu in ((0, 800.0, 1.0), (1, 600.0, 1.5), (2, 1000.0, None))
    ]
    hub = [
        {"round": 0, "events_per_s": 350.0, "whole_hub": 5.0},
        {"round": 1, "events_per_s": 400.0, "whole_hub": 4.5},
    ]
    first, second = _floor_ratios(hub, floors)
    assert first["floor_events_per_s"] == 700.0  # mean of the floors before and after
    assert first["throughput_ratio"] == 0.5
    assert first["floor_cpu_ms_per_event"] == 1.25
    assert first["cpu_multiple"] == 4.0
    assert second["floor_events_per_s"] == 800.0
    assert second["cpu_multiple"] == 3.0  # the floor after it had no CPU figure
    recorded = [{"round": None, "a": {"events_per_s": 500.0, "cpu_ms": 2.0}}]
    (only,) = _floor_ratios(hub[:1], recorded)
    assert (only["throughput_ratio"], only["cpu_multiple"]) == (0.7, 2.5)
    assert _floor_ratios(hub, []) == []


def _hub_run(rate: float, whole: float, *, sink: int = 1) -> dict[str, Any]:
    workers = whole - 0.75 - (0.25 if sink else 0.0)
    cpu = {"workers": workers, "sink": 0.25 if sink else 0.0, "webhooks": 0.0, "broker": 0.75}
    return {
        "events": 3000,
        "events_per_s": rate,
        "cpu_ms_per_event": {**cpu, "bench": 0.5},
        "whole_hub_cpu_ms_per_event": whole,
        "processes": {"workers": 1, "sink": sink, "webhooks": 0, "broker": 1, "bench": 1},
        "machine_busy_cpus": 1.5,
    }


def _row(rows: list[list[Any]], start: str, workers: Any = None) -> list[Any]:
    found = [r for r in rows if r[0].startswith(start) and (workers is None or r[1] == workers)]
    assert len(found) == 1, (start, workers, rows)
    return found[0]


def test_hub_rows_give_medians_cpu_by_process_and_the_scaling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bench.hub_e2e.usable_cpus", lambda: 2)
    runs = {
        1: [_hub_run(300.0, 3.0), _hub_run(200.0, 5.0), _hub_run(250.0, 4.0)],
        2: [_hub_run(400.0, 3.5), _hub_run(500.0, 3.0), _hub_run(450.0, 4.5)],
    }
    summary, rows = _hub_rows(runs, faust_rate=1000.0)
    one = _row(rows, "hub throughput", 1)
    assert one[3] == 250
    assert one[5] == 0.25  # ratio to bare faust batched
    assert "median of 3 rounds" in one[0]
    assert "700" in one[0]  # the target beside the one-worker figure
    # CPU figures from the round with the median whole-hub figure: they add up to it
    whole = _row(rows, "whole-hub CPU per event", 1)
    assert whole[3] == 4.0
    by_process = [_row(rows, f"CPU per event: {p}", 1)[3] for p in ("workers", "audit", "broker")]
    assert sum(by_process) == pytest.approx(whole[3])
    scaling = _row(rows, "scaling: 2 workers / 1 worker")
    assert scaling[3] == pytest.approx(450 / 250)
    assert summary["scaling_2_over_1"] == round(450 / 250, 3)
    # the machine's ceiling: 2 CPUs over every process's CPU per event in the two-worker
    # median round (whole hub 3.5 ms and the bench's 0.5 ms), over one worker's median
    ceiling = _row(rows, "scaling ceiling of this machine")
    assert ceiling[3] == pytest.approx(2 * 1000 / 4.0 / 250)
    assert "500 events/s" in ceiling[0]
    assert summary["scaling_2_over_1_ceiling"] == round(2 * 1000 / 4.0 / 250, 3)
    assert _row(rows, "machine CPUs busy", 2)[3] == 1.5
    assert summary["by_workers"]["1"]["events_per_s_median"] == 250.0


def test_hub_rows_say_when_the_sink_is_a_task_in_the_workers() -> None:
    _summary, rows = _hub_rows({1: [_hub_run(300.0, 3.0, sink=0)]}, faust_rate=1000.0)
    sink = _row(rows, "CPU per event: audit sink")
    assert sink[3] is None
    assert "task in each worker" in sink[0]
    assert not [r for r in rows if r[0].startswith("scaling")]  # no two-worker run


def test_floor_rows_report_the_floor_and_the_hubs_ratios_to_it() -> None:
    floors = [
        {"round": r, "a": _floor_variant(_floor_measurements(rate), "a"), "b": None}
        for r, rate in ((0, 800.0), (1, 600.0))
    ]
    ratios = [{"throughput_ratio": 0.5, "cpu_multiple": 4.0}]
    rows = _floor_rows(floors, ratios, 1000.0, in_run=True)
    a = _row(rows, "floor (a) with crypto, 2 runs in this run")
    assert a[3] == 700.0
    assert _row(rows, "floor (a) with crypto: CPU per event")[3] == 1.25
    assert _row(rows, "hub / floor (a): one-worker events/s")[3] == 0.5
    assert _row(rows, "hub / floor (a): whole-hub CPU")[3] == 4.0
    assert not [r for r in rows if r[0].startswith("floor (b)")]


def test_soak_rows_keep_the_old_rows_and_add_the_growth_in_mib() -> None:
    soak = {
        "rate": 100.0,
        "duration_s": 1800.0,
        "events": 150000,
        "rss_first_tenth_kib": 100 * 1024,
        "rss_middle_kib": 103 * 1024,
        "rss_last_tenth_kib": 106 * 1024,
        "rss_growth_kib": 6 * 1024,
        "anon_first_tenth_kib": 70 * 1024,
        "anon_last_tenth_kib": 75 * 1024,
        "rate_first_tenth": 99.0,
        "rate_last_tenth": 90.0,
        "worker_cpu_ms_per_event_first_tenth": 3.0,
        "worker_cpu_ms_per_event_last_tenth": 3.0,
        "broker_cpu_ms_per_event_first_tenth": 1.0,
        "broker_cpu_ms_per_event_last_tenth": 2.0,
        "broker_rss_first_kib": 1024,
        "broker_rss_last_kib": 2048,
        "bytes_per_event_second_half": {"rss": 1.0, "anon": 1.0, "file": 0.0, "shmem": 0.0},
    }
    rows = _soak_rows(soak)
    growth = _row(rows, "soak worker RSS growth")
    assert (growth[3], growth[4]) == (6.0, "MiB")
    assert "30 min" in growth[0]
    for kept in ("soak RSS first tenth", "soak RSS at half time", "soak RSS last tenth"):
        _row(rows, kept)
    _row(rows, "soak rate reached")
    _row(rows, "soak RSS growth per event")


def _fake_floor(log: list[str], *, fail: bool = False) -> Benchmark:
    def run(params: Mapping[str, Any]) -> Measured:
        log.append(f"floor {params['events']}")
        if fail:
            raise TimeoutError("floor: 0 of 5 output records before the deadline")
        return Measured(measurements=_floor_measurements(), columns=[], rows=[])

    return Benchmark(name="floor", summary="", run=run, defaults={"events": 5000, "other": 1})


def test_floor_runs_with_the_hubs_event_count_and_stops_after_a_failure() -> None:
    log: list[str] = []
    floor = _Floor({**BENCHMARK.defaults, "floor": False, "floor_events": 7})
    assert floor.problems == ["floor off in this run's parameters"]
    floor.problems.clear()
    floor.benchmark = _fake_floor(log)
    floor.measure(0)
    assert log == ["floor 7"]
    assert floor.runs[0]["round"] == 0
    assert floor.runs[0]["a"]["events_per_s"] == 800.0
    assert floor.runs[0]["b"]["events_per_s"] == 2000.0
    floor.benchmark = _fake_floor(log, fail=True)
    floor.measure(1)
    floor.measure(2)  # skipped: the floor is broken
    assert log == ["floor 7", "floor 7"]
    assert len(floor.runs) == 1
    assert "TimeoutError" in floor.problems[0]


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hub's runs replaced by stand-ins that log their order."""
    log: list[str] = []
    baselines = {"faust batched": 1000.0, "raw aiokafka": 50000.0}
    monkeypatch.setattr(hub_e2e, "_baselines", lambda params: (baselines, [], []))

    def throughput(params: Mapping[str, Any], workers: int, profile: Path | None) -> dict[str, Any]:
        log.append(f"hub {workers}" + (" profiled" if profile else ""))
        run = _hub_run(200.0 * workers, 4.0)
        return {
            **run,
            "elapsed_s": 3000 / run["events_per_s"],
            "deliveries": 12000,
            "latencies": [],
        }

    def latency(params: Mapping[str, Any], rate: float) -> tuple[dict[str, Any], dict[str, Any]]:
        log.append(f"latency {rate:g}")
        hub = {"events": int(rate), "deliveries": int(rate) * 4, "latencies": [0.01, 0.02]}
        floor = {"events": int(rate), "deliveries": int(rate) * 4, "latencies": [0.005, 0.01]}
        return hub, floor

    monkeypatch.setattr(hub_e2e, "_throughput", throughput)
    monkeypatch.setattr(hub_e2e, "_latency", latency)
    return log


def test_run_interleaves_floor_and_hub_rounds(
    stand_ins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("bench.floor")
    fake.BENCHMARK = _fake_floor(stand_ins)  # type: ignore[attr-defined]
    real_import = importlib.import_module
    monkeypatch.setattr(
        importlib,
        "import_module",
        lambda name: fake if name == "bench.floor" else real_import(name),
    )
    params = {**BENCHMARK.defaults, "rounds": 2, "profile": False, "soak_s": 0}
    measured = hub_e2e.run(params)
    assert stand_ins == [
        "floor 5000",
        "hub 1",
        "hub 2",
        "floor 5000",
        "hub 1",
        "hub 2",
        "floor 5000",
        "latency 500",
        "latency 1000",
    ]
    rows = measured.rows
    assert _row(rows, "hub / floor (a): one-worker events/s")[3] == 0.25  # 200 / 800
    assert _row(rows, "hub / floor (a): whole-hub CPU")[3] == 3.2  # 4.0 / 1.25
    assert _row(rows, "scaling: 2 workers / 1 worker")[3] == 2.0
    for q in (50, 95, 99):
        _row(rows, f"latency p{q} at 500/s")
        _row(rows, f"latency p{q} at 1000/s")
        assert _row(rows, f"latency floor p{q} at 500/s (broker only)")[3] > 0
    assert _row(rows, "latency p50 at 500/s")[5] == 2.0  # 10 ms over the floor's 5 ms
    over = next(m for m in measured.measurements if m["operation"] == "hub over floor")
    assert over["source"] == "this run"
    assert [r["round"] for r in over["by_round"]] == [0, 1]
    assert any("measured in this run" in n for n in measured.notes)
    assert all(len(row) == len(measured.columns) for row in rows)


def test_run_reads_the_recorded_floor_when_bench_floor_is_missing(
    stand_ins: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def missing(name: str) -> Any:
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    recorded = tmp_path / "floor.json"
    recorded.write_text(
        json.dumps(
            {
                "benchmark": "floor",
                "started_at": "2026-12-04T10:00:00+00:00",
                "machine": {"git_commit": "feedfacecafebeef", "git_dirty": False},
                "measurements": _floor_measurements(a_rate=400.0),
            }
        )
    )
    params = {
        **BENCHMARK.parameters(quick=True),
        "workers": [1],
        "floor_results": str(recorded),
    }
    measured = hub_e2e.run(params)
    assert stand_ins == ["hub 1", "latency 50"]
    assert _row(measured.rows, "hub / floor (a): one-worker events/s")[3] == 0.5
    note = next(n for n in measured.notes if n.startswith("Floor (a)"))
    assert str(recorded) in note
    assert "feedfacec" in note
    assert "not importable" in note

    recorded.unlink()
    measured = hub_e2e.run(params)
    assert not [r for r in measured.rows if r[0].startswith("hub / floor")]
    assert any(n.startswith("No floor (a)") for n in measured.notes)


@pytest.mark.parametrize("empty", ["workers", "rates"])
def test_run_refuses_no_workers_or_no_rates(empty: str) -> None:
    with pytest.raises(ValueError, match=empty):
        hub_e2e.run({**BENCHMARK.defaults, empty: []})


def test_the_floor_bench_reads_the_hub_record_as_the_whole_hub() -> None:
    """``bench floor`` sets the hub's record beside it: the CPU it sums is the whole hub's."""
    floor = pytest.importorskip("bench.floor")
    got = {**_hub_run(250.0, 4.0), "elapsed_s": 12.0, "deliveries": 12000, "latencies": []}
    record = hub_e2e._throughput_record(
        got, workers=1, round_=0, baselines={"faust batched": 1000.0, "raw aiokafka": 5e4}
    )
    a = _floor_measurements()[0]
    ratios = floor.hub_ratios({"measurements": [record]}, a)
    assert ratios["hub_events_per_s"] == 250.0
    assert ratios["hub_over_floor_cpu"] == round(4.0 / 1.25, 2)  # not the bench, not twice
