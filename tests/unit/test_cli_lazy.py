"""``hub CMD`` builds only the part of the app CMD needs (``hub.cli.main``).

Every ``hub`` command is a process of its own, and importing every command group (the
console's and the ingress API's FastAPI, the ACL renderer, the supervisor) cost each one
about 0.7 s of CPU it never used. These tests hold the two halves of the bargain: a known
first argument imports its group alone, and the commands it offers are exactly those the
whole app offers under that name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import typer

from hub.cli.main import _BY_COMMAND, build_app
from hub.processes import default_registry

#: groups ``hub audit``, ``hub policy`` and ``hub publish`` do not need
OTHER_GROUPS = ("hub.cli.ingress", "hub.cli.console", "hub.cli.acl")
#: what some group imports and those commands do not need
HEAVY = (*OTHER_GROUPS, "hub.web.server", "fastapi")

_PROBE = """
import json, sys
sys.argv = ["hub", *sys.argv[1:]]
from hub.cli.main import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("hub.", "fastapi")))),
      file=sys.stderr)
"""


def _modules_after(*args: str) -> set[str]:
    """The modules ``hub ARGS`` imported (run in a fresh interpreter)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(("args", "needed"), [
    (("audit", "--help"), "hub.cli.audit"),
    (("policy", "--help"), "hub.cli.policy"),
    (("publish", "--help"), "hub.cli.runtime"),
    (("marac", "--help"), "hub.cli.marac"),  # a process's group
])  # fmt: skip
def test_a_command_imports_its_own_group_and_not_the_others(
    args: tuple[str, ...], needed: str
) -> None:
    imported = _modules_after(*args)
    assert needed in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


@pytest.mark.parametrize("args", [("--help",), ("no-such-command",)])
def test_help_and_an_unknown_command_build_the_whole_app(args: tuple[str, ...]) -> None:
    assert set(OTHER_GROUPS) <= _modules_after(*args)


def _commands(app: typer.Typer, name: str) -> list[str]:
    """Every command path under ``name`` in ``app``, with its parameters, sorted."""
    found: list[str] = []

    def walk(cmd: Any, path: str) -> None:
        found.append(f"{path} {sorted(p.name or '' for p in cmd.params)} hidden={cmd.hidden}")
        for sub, child in getattr(cmd, "commands", {}).items():  # a group's commands
            walk(child, f"{path} {sub}")

    top = getattr(typer.main.get_command(app), "commands", {}).get(name)
    assert top is not None, f"hub {name}: no such command"
    walk(top, name)
    return sorted(found)


#: the processes' groups (``hub marac``...), named by the registry, not by ``_BY_COMMAND``
PROCESS_GROUPS = sorted(group.name for group in default_registry().cli())


def test_the_processes_have_groups() -> None:
    assert "marac" in PROCESS_GROUPS


@pytest.mark.parametrize("name", sorted(_BY_COMMAND) + PROCESS_GROUPS)
def test_a_command_built_alone_offers_what_the_whole_app_offers(name: str) -> None:
    assert _commands(build_app(name), name) == _commands(build_app(), name)
