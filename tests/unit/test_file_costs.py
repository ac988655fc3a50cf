"""tests/file_costs.json, which orders the test files for the xdist workers (tests/conftest.py).

A file renamed or removed would silently lose its place at the front; a log the refresh
script misreads would silently empty the table.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

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


class _Item:
    """What the ordering reads of a collected test: its file and the fixtures it uses."""

    def __init__(self, path: str, *fixtures: str) -> None:
        self.path = ROOT / path
        self.fixturenames = list(fixtures)


def test_the_shared_hubs_files_come_first_together_then_the_costliest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests import conftest

    # this session's own list stays as collected (its shared hub stops by it)
    monkeypatch.setattr(conftest, "_SHARED_HUB_FILES", set())

    class Config:
        rootpath = ROOT

    costly = "tests/scenarios/test_marac_loops.py"  # costed, no shared hub
    items = [
        _Item("tests/unit/test_nothing_costed.py"),
        _Item(costly, "tmp_path"),
        _Item("tests/integration/test_routing.py", "hub"),
        _Item("tests/integration/test_cli.py", "tmp_path"),  # the file's other tests use it
        _Item("tests/integration/test_cli.py", "hub", "tmp_path"),
        _Item(costly),
    ]
    conftest.pytest_collection_modifyitems(None, Config(), items)  # type: ignore[arg-type]
    order = [item.path.relative_to(ROOT).as_posix() for item in items]
    assert order == [
        "tests/integration/test_cli.py",  # the costliest of the shared hub's files
        "tests/integration/test_cli.py",
        "tests/integration/test_routing.py",
        costly,
        costly,
        "tests/unit/test_nothing_costed.py",
    ]
    assert conftest._SHARED_HUB_FILES == {
        ROOT / "tests/integration/test_cli.py",
        ROOT / "tests/integration/test_routing.py",
    }
