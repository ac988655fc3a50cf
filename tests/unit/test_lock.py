"""The lock holds what pyproject.toml asks for: run `make lock` after changing dependencies.

uv.lock must have been resolved from the current requirements (uv records them), and the pip
files CI and the image install from (requirements/*.txt) must pin exactly uv.lock's versions,
each inside the range pyproject.toml allows. Read from the files only: no network, no uv.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
STALE = "stale lock: run `make lock` and commit uv.lock and requirements/"

Wanted = set[tuple[str, frozenset[str], str, str]]


def _wanted(requirements: list[str]) -> Wanted:
    out: Wanted = set()
    for text in requirements:
        req = Requirement(text)
        spec = str(SpecifierSet(str(req.specifier)))  # one spelling for either side
        out.add((canonicalize_name(req.name), frozenset(req.extras), spec, str(req.marker or "")))
    return out


def _locked(group: str | None) -> Wanted:
    hub = next(p for p in LOCK["package"] if p["name"] == "hub")
    out: Wanted = set()
    marker = f"extra == '{group}'" if group else ""
    for dep in hub["metadata"]["requires-dist"]:
        if dep.get("marker", "") != marker:
            continue
        spec = str(SpecifierSet(dep.get("specifier", "")))
        out.add((canonicalize_name(dep["name"]), frozenset(dep.get("extras", [])), spec, ""))
    return out


def _pins(name: str) -> dict[str, str]:
    """Package -> pinned version in one exported file."""
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            package, _, rest = line.partition("==")
            pins[canonicalize_name(package)] = rest.split()[0].rstrip(";")
    return pins


def test_uv_lock_was_resolved_from_the_current_requirements() -> None:
    project = PYPROJECT["project"]
    assert _locked(None) == _wanted(project["dependencies"]), STALE
    for extra, requirements in project["optional-dependencies"].items():
        assert _locked(extra) == _wanted(requirements), f"[{extra}]: {STALE}"


@pytest.mark.parametrize("name", ["hub.txt", "embedded.txt", "postgres.txt", "dev.txt", "uv.txt"])
def test_exported_files_pin_uv_locks_versions(name: str) -> None:
    versions: dict[str, set[str]] = {}
    for package in LOCK["package"]:
        versions.setdefault(canonicalize_name(package["name"]), set()).add(package["version"])
    pins = _pins(name)
    assert pins, f"requirements/{name} pins nothing"
    for package, version in pins.items():
        assert version in versions.get(package, set()), f"{package}=={version}: {STALE}"


def test_direct_dependencies_are_pinned_inside_their_ranges() -> None:
    project = PYPROJECT["project"]
    base = _pins("hub.txt")
    groups = {"hub.txt": (project["dependencies"], base)}
    for extra in ("embedded", "postgres"):
        groups[f"{extra}.txt"] = (project["optional-dependencies"][extra], _pins(f"{extra}.txt"))
    groups["dev.txt"] = (project["optional-dependencies"]["dev"], _pins("dev.txt"))
    for name, (requirements, pins) in groups.items():
        for text in requirements:
            req = Requirement(text)
            package = canonicalize_name(req.name)
            if package == "hub":
                continue  # the dev extra pulls the others: their packages are checked there
            assert package in pins, f"{package} missing from requirements/{name}: {STALE}"
            assert req.specifier.contains(pins[package], prereleases=True), (
                f"{package}=={pins[package]} outside {req.specifier}: {STALE}"
            )
    # the image's extras add to hub.txt, never re-pin what it has
    for extra in ("embedded", "postgres"):
        assert not set(_pins(f"{extra}.txt")) & set(base)


def test_uv_is_installed_as_dev_txt_pins_it() -> None:
    """`make venv` installs uv from uv.txt, then dev.txt with it: the same pin and hashes."""

    def entry(name: str) -> list[str]:
        lines = (ROOT / "requirements" / name).read_text().splitlines()
        start = next(n for n, line in enumerate(lines) if line.startswith("uv=="))
        end = next(
            (n for n in range(start + 1, len(lines)) if not lines[n][:1].isspace()), len(lines)
        )
        return lines[start:end]

    assert entry("uv.txt") == entry("dev.txt"), STALE
    assert list(_pins("uv.txt")) == ["uv"], "requirements/uv.txt pins uv alone"
