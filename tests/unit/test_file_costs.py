"""tests/file_costs.json, which orders the test files for the xdist workers (tests/conftest.py).

A file renamed or removed would silently lose its place at the front; a log the refresh
script misreads would silently empty the table.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("file_costs", ROOT / "scripts" / "file_costs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_costed_file_exists() -> None:
    files = json.loads((ROOT / "tests" / "file_costs.json").read_text())["files"]
    assert files, "no costs recorded"
    missing = sorted(f for f in files if not (ROOT / f).is_file())
    assert not missing, f"costed test files that no longer exist: {missing}"


def test_the_refresh_sums_each_files_phases_and_drops_the_cheap_ones() -> None:
    log = """
============================= slowest durations ==============================
60.00s call     tests/scenarios/test_a.py::test_one
5.50s setup    tests/scenarios/test_a.py::test_one
0.50s teardown tests/scenarios/test_a.py::test_one
9.00s call     tests/unit/test_b.py::test_two[x-1]
2.00s call     tests/unit/test_c.py::Class::test_three
70.00s call     tests/integration/test_d.py::test_four
"""
    assert _script().file_costs(log) == {
        "tests/integration/test_d.py": 70,
        "tests/scenarios/test_a.py": 66,
        "tests/unit/test_b.py": 9,
    }
