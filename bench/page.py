"""Render the recorded results as Markdown into the benchmarks page, between two markers.

The page is ``docs/benchmarks.md`` in the documentation site (the README only links to it).
Only the text between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` is replaced; the
markers and everything outside them stay byte for byte, so the page's prose (how to read
the numbers, the lab notes of each issue) can be edited by hand while the tables are
regenerated from ``bench/results/*.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench._harness import RESULT_FORMAT
from bench.registry import names

__all__ = ["END", "START", "load_results", "render", "replace_block", "update_page"]

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"


def load_results(results_dir: Path) -> list[dict[str, Any]]:
    """Every result file in ``results_dir``, registered benchmarks first in run order.

    Raises:
        ValueError: a file is not a result record of this format.
    """
    order = {name: i for i, name in enumerate(names())}
    results = []
    for path in sorted(results_dir.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("format") != RESULT_FORMAT:
            raise ValueError(f"{path}: expected a {RESULT_FORMAT} record")
        results.append(record)
    return sorted(results, key=lambda r: (order.get(r["benchmark"], len(order)), r["benchmark"]))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if 0 < abs(value) < 1:
            return f"{value:.2g}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def _machine_line(record: dict[str, Any]) -> str:
    m = record.get("machine", {})
    commit = (m.get("git_commit") or "unknown")[:10]
    if m.get("git_dirty"):
        commit += " (uncommitted changes)"
    parts = [
        f"{record.get('started_at', '?')}, commit {commit}",
        f"{m.get('cpus_usable') or m.get('cpu_count')} CPUs ({m.get('cpu_model') or '?'})",
        f"Python {m.get('python')}",
        f"cryptography {m.get('cryptography')}",
        f"aiokafka {m.get('aiokafka')}",
        f"{record.get('duration_s')} s",
    ]
    if record.get("quick"):
        parts.append("**quick run: counts too small to trust**")
    return "Measured " + "; ".join(parts) + "."


def render(results: Iterable[dict[str, Any]]) -> str:
    """Markdown for every result: a heading, where it ran, its table and its notes."""
    blocks = []
    for record in results:
        table = record["table"]
        lines = [
            f"### {record['benchmark']}",
            "",
            f"{record['summary']} {_machine_line(record)}",
            "",
            "| " + " | ".join(table["columns"]) + " |",
            "|" + "|".join(" --- " for _ in table["columns"]) + "|",
        ]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table["rows"]]
        if record.get("notes"):
            lines.append("")
            lines += [f"- {note}" for note in record["notes"]]
        blocks.append("\n".join(lines))
    if not blocks:
        return "No results recorded yet: run `make bench`."
    return "\n\n".join(blocks)


def replace_block(text: str, block: str) -> str:
    """``text`` with what lies between the markers replaced by ``block``.

    Raises:
        ValueError: the markers are missing, repeated or out of order.
    """
    if text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"benchmarks page: expected one {START} and one {END} marker")
    head, rest = text.split(START)
    if END not in rest:
        raise ValueError(f"benchmarks page: expected the {END} marker after {START}")
    _old, tail = rest.split(END)
    return f"{head}{START}\n{block.strip()}\n{END}{tail}"


def update_page(page: Path, results_dir: Path) -> bool:
    """Re-render the tables in ``page`` from ``results_dir``; True if the file changed."""
    text = page.read_text(encoding="utf-8")
    new = replace_block(text, render(load_results(results_dir)))
    if new == text:
        return False
    page.write_text(new, encoding="utf-8")
    return True
