"""Released schemas stay FULL compatible: old and new producers and consumers keep talking.

tests/schema_lock/ holds the schema of every released event type. Partner systems upgrade on
their own timetable, so a current schema must read what the released one wrote (backward) and
write what the released one can read (forward). Relocking is a deliberate release step
(scripts/lock_schemas.py), never a side effect of a test run.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.schemas.compat import check_compatible, check_lock

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "hub" / "schemas"
LOCK = ROOT / "tests" / "schema_lock"
SCRIPT = ROOT / "scripts" / "lock_schemas.py"
LOCKED = sorted(p.name.removesuffix(".avsc") for p in LOCK.glob("*.avsc"))

#: A small schema with every kind of change the checker must judge.
BASE: dict[str, Any] = {
    "type": "record",
    "name": "ThingV1",
    "namespace": "uk.csp.test",
    "fields": [
        {"name": "ref", "type": {"type": "string", "hub_pattern": "^[A-Z]+$"}},
        {"name": "count", "type": "int"},
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["red", "blue"]}},
        {
            "name": "place",
            "type": {
                "type": "record",
                "name": "Place",
                "fields": [
                    {
                        "name": "district",
                        "type": {
                            "type": "enum",
                            "name": "District",
                            "symbols": ["a", "b", "c", "d", "e", "f"],
                        },
                    },
                ],
            },
        },
        {"name": "seen_on", "type": {"type": "int", "logicalType": "date"}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}


def _changed(path: list[Any], value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """BASE with the item at ``path`` (keys and list indexes) replaced or deleted."""
    new = copy.deepcopy(BASE)
    node: Any = new
    for step in path[:-1]:
        node = node[step]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return new


def test_lock_exists_for_the_released_types() -> None:
    """The first release locked these; losing the lock would silently disable the check."""
    assert {
        "uk.csp.delivery.ack.v1",
        "uk.csp.marac.flag.raised.v1",
        "uk.csp.marac.flag.updated.v1",
        "uk.csp.marac.flag.withdrawn.v1",
        "uk.csp.pubwatch.ban.v1",
        "uk.csp.socjag.intel.v1",
    } <= set(LOCKED)


@pytest.mark.parametrize("event_type", LOCKED)
def test_current_schema_is_full_compatible_with_lock(event_type: str) -> None:
    current = SCHEMAS / f"{event_type}.avsc"
    if not current.is_file():
        pytest.fail(
            f"{event_type} is released (tests/schema_lock/) but hub/schemas/{current.name} is "
            "gone; consumers still expect it. Restore it, or retire it with "
            "scripts/lock_schemas.py --force-breaking."
        )
    locked = json.loads((LOCK / current.name).read_text())
    problems = check_compatible(locked, json.loads(current.read_text()), samples=50)
    assert not problems, (
        f"{event_type} is not FULL compatible with its released schema; add a new versioned "
        "type instead:\n" + "\n".join(problems)
    )


# --- the checker itself -------------------------------------------------------------------------


def test_identical_schema_is_compatible() -> None:
    assert check_compatible(BASE, copy.deepcopy(BASE)) == []


def test_adding_optional_field_with_default_is_compatible() -> None:
    new = copy.deepcopy(BASE)
    new["fields"].append({"name": "extra", "type": ["null", "string"], "default": None})
    assert check_compatible(BASE, new) == []


def test_docs_and_hub_constraints_do_not_matter_to_avro() -> None:
    new = _changed(["fields", 0, "type", "hub_pattern"], "^[A-Z0-9]+$")
    new["fields"][1]["doc"] = "How many."
    assert check_compatible(BASE, new) == []


def test_removing_field_without_default_is_reported() -> None:
    """Old readers need the field and have no default for it: forward compatibility breaks."""
    problems = check_compatible(BASE, _changed(["fields", 1], delete=True))
    assert problems
    assert all(p.startswith("forward:") for p in problems)
    assert any("count" in p for p in problems)


def test_changing_int_to_string_is_reported() -> None:
    problems = check_compatible(BASE, _changed(["fields", 1, "type"], "string"))
    assert any(p.startswith("backward:") for p in problems)
    assert any(p.startswith("forward:") for p in problems)


def test_adding_required_field_without_default_is_reported() -> None:
    """New readers need a value old writers never sent: backward compatibility breaks."""
    new = copy.deepcopy(BASE)
    new["fields"].append({"name": "extra", "type": "string"})
    problems = check_compatible(BASE, new)
    assert problems
    assert all(p.startswith("backward:") for p in problems)
    assert any("extra" in p for p in problems)


def test_removing_enum_symbol_is_reported() -> None:
    problems = check_compatible(BASE, _changed(["fields", 2, "type", "symbols"], ["red"]))
    assert any(p.startswith("backward:") and "blue" in p for p in problems)


@pytest.mark.parametrize("symbol", ["a", "c", "f"])
def test_removing_any_nested_enum_symbol_is_reported_deterministically(symbol: str) -> None:
    """Not left to chance: the samples use every symbol, even with few random records."""
    symbols = [s for s in ["a", "b", "c", "d", "e", "f"] if s != symbol]
    new = _changed(["fields", 3, "type", "fields", 0, "type", "symbols"], symbols)
    problems = check_compatible(BASE, new, samples=0)
    assert any(p.startswith("backward:") and symbol in p for p in problems)


def test_adding_enum_symbol_breaks_forward() -> None:
    """Old readers cannot name a symbol they never heard of (no enum default)."""
    problems = check_compatible(
        BASE, _changed(["fields", 2, "type", "symbols"], ["red", "blue", "green"])
    )
    assert problems
    assert all(p.startswith("forward:") for p in problems)


def test_removing_union_branch_is_reported() -> None:
    """Old data holding null has no branch to land in once the field is a plain string."""
    problems = check_compatible(BASE, _changed(["fields", 5], {"name": "note", "type": "string"}))
    assert any(p.startswith("backward:") for p in problems)


def test_renaming_record_is_reported() -> None:
    assert check_compatible(BASE, _changed(["name"], "ThingRenamedV1"))


def test_unparseable_schema_is_reported() -> None:
    problems = check_compatible(BASE, _changed(["fields", 1, "type"], "integer"))
    assert problems
    assert "cannot be parsed" in problems[0]


def test_check_compatible_leaves_global_random_alone() -> None:
    """Sampling is seeded privately, so it neither depends on nor disturbs other tests."""
    random.seed(123)
    expected = random.random()
    random.seed(123)
    check_compatible(BASE, BASE)
    assert random.random() == expected


# --- the lock as a whole ----------------------------------------------------------------------


def _write(directory: Path, name: str, schema: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.avsc").write_text(json.dumps(schema, indent=2) + "\n")


def test_check_lock_allows_new_unlocked_type(tmp_path: Path) -> None:
    _write(tmp_path / "schemas", "uk.csp.test.thing.v1", BASE)
    _write(tmp_path / "lock", "uk.csp.test.thing.v1", BASE)
    _write(tmp_path / "schemas", "uk.csp.test.brand_new.v1", _changed(["name"], "NewV1"))
    assert check_lock(tmp_path / "schemas", tmp_path / "lock") == {}


def test_check_lock_reports_removed_schema(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    _write(tmp_path / "lock", "uk.csp.test.thing.v1", BASE)
    found = check_lock(tmp_path / "schemas", tmp_path / "lock")
    assert list(found) == ["uk.csp.test.thing.v1"]
    assert "removed" in found["uk.csp.test.thing.v1"][0]


def test_check_lock_reports_incompatible_schema(tmp_path: Path) -> None:
    _write(tmp_path / "schemas", "uk.csp.test.thing.v1", _changed(["fields", 1], delete=True))
    _write(tmp_path / "lock", "uk.csp.test.thing.v1", BASE)
    assert list(check_lock(tmp_path / "schemas", tmp_path / "lock")) == ["uk.csp.test.thing.v1"]


def test_repository_lock_is_clean() -> None:
    """The same check as the per-type test, through the helper the release script uses."""
    assert check_lock(SCHEMAS, LOCK) == {}


# --- scripts/lock_schemas.py --------------------------------------------------------------------


def _lock(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--schemas",
            str(tmp_path / "schemas"),
            "--lock",
            str(tmp_path / "lock"),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )


def test_script_locks_new_and_compatible_schemas(tmp_path: Path) -> None:
    _write(tmp_path / "schemas", "uk.csp.test.thing.v1", BASE)
    first = _lock(tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "lock" / "uk.csp.test.thing.v1.avsc").read_text() == (
        tmp_path / "schemas" / "uk.csp.test.thing.v1.avsc"
    ).read_text()

    grown = copy.deepcopy(BASE)
    grown["fields"].append({"name": "extra", "type": ["null", "int"], "default": None})
    _write(tmp_path / "schemas", "uk.csp.test.thing.v1", grown)
    second = _lock(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "locked uk.csp.test.thing.v1.avsc" in second.stdout
    assert json.loads((tmp_path / "lock" / "uk.csp.test.thing.v1.avsc").read_text()) == grown


def test_script_refuses_incompatible_change_without_force(tmp_path: Path) -> None:
    _write(tmp_path / "lock", "uk.csp.test.thing.v1", BASE)
    _write(tmp_path / "schemas", "uk.csp.test.thing.v1", _changed(["fields", 1, "type"], "string"))
    _write(tmp_path / "schemas", "uk.csp.test.other.v1", _changed(["name"], "OtherV1"))
    before = (tmp_path / "lock" / "uk.csp.test.thing.v1.avsc").read_text()

    refused = _lock(tmp_path)
    assert refused.returncode == 1
    assert "not compatible" in refused.stderr
    assert "--force-breaking" in refused.stderr
    assert (tmp_path / "lock" / "uk.csp.test.thing.v1.avsc").read_text() == before
    assert not (tmp_path / "lock" / "uk.csp.test.other.v1.avsc").exists(), "all or nothing"

    forced = _lock(tmp_path, "--force-breaking")
    assert forced.returncode == 0, forced.stderr
    locked = json.loads((tmp_path / "lock" / "uk.csp.test.thing.v1.avsc").read_text())
    assert locked["fields"][1]["type"] == "string"
    assert (tmp_path / "lock" / "uk.csp.test.other.v1.avsc").exists()


def test_script_refuses_to_drop_removed_schema_without_force(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    _write(tmp_path / "lock", "uk.csp.test.thing.v1", BASE)
    refused = _lock(tmp_path)
    assert refused.returncode == 1
    assert (tmp_path / "lock" / "uk.csp.test.thing.v1.avsc").exists()
    forced = _lock(tmp_path, "--force-breaking")
    assert forced.returncode == 0, forced.stderr
    assert not (tmp_path / "lock" / "uk.csp.test.thing.v1.avsc").exists()


def test_script_run_on_the_repository_changes_nothing(tmp_path: Path) -> None:
    """A relock of the repository would succeed (run on a copy: tests never relock)."""
    shutil.copytree(SCHEMAS, tmp_path / "schemas", ignore=shutil.ignore_patterns("*.py", "__*"))
    shutil.copytree(LOCK, tmp_path / "lock")
    result = _lock(tmp_path)
    assert result.returncode == 0, result.stderr
