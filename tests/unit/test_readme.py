"""The README shows the two commands first and its command list matches `hub --help`."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from typer.main import get_command

import hub
from hub.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _commands() -> dict[str, str]:
    group = get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return {
        name: (cmd.get_short_help_str(limit=200) or "").strip()
        for name, cmd in group.commands.items()
    }


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    lines = [ln.split("#")[0].strip() for ln in first_block.strip().splitlines()[1:]]
    assert lines[:2] == ["make demo", "make test"]


def test_readme_command_list_matches_cli_help() -> None:
    block = README.split("## The command line", 1)[1].split("```")[1]
    listed = dict(re.findall(r"^hub (\w+)\s+(.+)$", block, flags=re.MULTILINE))
    assert listed == _commands()


def test_public_api_is_small_and_importable() -> None:
    assert sorted(hub.__all__) == ["AuditRecord", "Decision", "Delivery", "HubError"]
    for name in hub.__all__:
        assert getattr(hub, name) is not None
