"""The audit-at-scale benchmark: a quick run measures every operation with positive numbers.

Speed is never asserted: only that each operation is there, labelled, and measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bench

RECORDS = 600
OPERATIONS = {
    "append",
    "checkpoint",
    "load",
    "subject access",
    "subject query",
    "event recipients",
    "verify",
    "size on disk",
}


def _run(results: Path, **overrides: Any) -> dict[str, Any]:
    path = bench.run_benchmark(
        bench.load("audit"),
        results_dir=results,
        quick=True,
        overrides={"records": RECORDS, "batch": 100, "checkpoint_every": 200, **overrides},
    )
    assert sorted(p.name for p in results.iterdir()) == ["audit.json"]  # no .tmp left
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def _check(record: dict[str, Any], backend: str) -> dict[str, dict[str, Any]]:
    """The backend's measurements by operation, after the checks common to every backend."""
    measured = {m["operation"]: m for m in record["measurements"] if m["backend"] == backend}
    assert OPERATIONS <= set(measured)
    append = measured["append"]
    assert append["records"] == RECORDS
    assert append["batches"] == RECORDS // 100
    assert append["records_per_s"] > 0
    assert append["batch"]["median_us"] > 0
    assert measured["checkpoint"]["checkpoints"] == RECORDS // 200
    assert measured["load"]["seconds"] > 0
    for operation in ("subject access", "subject query", "event recipients"):
        m = measured[operation]
        assert m["n"] >= 1
        assert 0 < m["min_us"] <= m["median_us"] <= m["p95_us"]
    assert measured["subject access"]["records_per_subject_mean"] > 0
    assert measured["event recipients"]["recipients_mean"] > 0
    verify = measured["verify"]
    assert verify["records"] == RECORDS
    assert verify["checkpoints_checked"] == RECORDS // 200
    assert verify["seconds"] > 0
    size = measured["size on disk"]
    assert size["bytes"] > size["empty_bytes"] >= 0
    assert size["bytes_per_record"] > 0
    rows = [row for row in record["table"]["rows"] if row[0] == backend]
    assert rows
    assert all(len(row) == len(record["table"]["columns"]) for row in rows)
    return measured


def test_audit_bench_sqlite(tmp_path: Path) -> None:
    record = _run(tmp_path, backends=["sqlite"])
    assert record["benchmark"] == "audit"
    assert record["parameters"]["backends"] == ["sqlite"]
    measured = _check(record, "sqlite")
    assert {m["backend"] for m in record["measurements"]} == {"sqlite"}
    # the SQLite floor: the same rows again, every one of them, SQLite alone
    for operation in ("floor: the store's tables", "floor: bare log"):
        floor = measured[operation]
        assert floor["records"] == RECORDS
        assert floor["records_per_s"] > 0
        assert floor["store_ratio"] == pytest.approx(
            measured["append"]["records_per_s"] / floor["records_per_s"], rel=0.01
        )
    assert record["notes"]


def test_audit_bench_postgres(tmp_path: Path, postgres_url: str) -> None:
    record = _run(tmp_path, backends=["postgresql"], postgres_url=postgres_url)
    measured = _check(record, "postgresql")
    assert measured["vacuum analyze"]["seconds"] >= 0


def test_audit_bench_refuses_an_unknown_backend() -> None:
    benchmark = bench.load("audit")
    with pytest.raises(ValueError, match="backends"):
        benchmark.run(benchmark.parameters(quick=True, overrides={"backends": ["oracle"]}))
