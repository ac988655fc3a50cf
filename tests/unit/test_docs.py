"""The documentation: the README's first commands, the site's command list against
`hub --help`, and the two generated pages (settings reference, benchmark tables) up to date.

`make docs` builds the site with `mkdocs build --strict` (broken links fail there);
`tests/e2e/test_docs_examples.py` runs every `hub ...` example against the demo's data.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import typer
from typer.main import get_command

import hub
from bench.page import END, START, load_results, render
from hub.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


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


def test_readme_is_short_and_links_into_the_site() -> None:
    assert len(README.splitlines()) <= 160, "the README is the front page: move detail to docs/"
    linked = set(re.findall(r"\]\((docs/[^)#]+)", README))
    assert linked, "the README links into the documentation site"
    for target in linked:
        assert (ROOT / target).is_file(), target


def test_cli_page_command_list_matches_cli_help() -> None:
    page = (DOCS / "reference" / "cli.md").read_text()
    block = page.split("```text", 1)[1].split("```")[0]
    listed = dict(re.findall(r"^hub (\w+)\s+(.+)$", block, flags=re.MULTILINE))
    assert listed == _commands(), (
        "docs/reference/cli.md lists other commands than `hub --help`: list each command "
        "with its help line there, and say in its table which page explains it"
    )


def test_settings_reference_is_generated_from_hub_settings() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "settings_reference.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    page = (DOCS / "operations" / "settings.md").read_text()
    for name in hub.settings.HubSettings.model_fields:
        assert f"`HUB_{name.upper()}`" in page


def test_benchmark_tables_are_rendered_from_the_recorded_results() -> None:
    page = (DOCS / "benchmarks.md").read_text()
    block = page.split(START, 1)[1].split(END, 1)[0]
    assert block.strip() == render(load_results(ROOT / "bench" / "results")).strip()
    assert START not in README  # `python -m bench` writes the docs page, never the README


def test_nothing_points_outside_the_repository() -> None:
    texts = {p: p.read_text() for p in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]}
    for path, text in texts.items():
        for outside in ("shared/", "DESIGN.md", "domain.md", "../shared"):
            assert outside not in text, f"{path.relative_to(ROOT)} cites {outside}"


def test_public_api_is_small_and_importable() -> None:
    assert sorted(hub.__all__) == ["AuditRecord", "Decision", "Delivery", "HubError"]
    for name in hub.__all__:
        assert getattr(hub, name) is not None
