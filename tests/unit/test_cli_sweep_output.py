"""What ``hub marac|pubwatch|policy sweep`` print (``hub.cli.common.echo_sweep``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.cli.common import echo_sweep

PLANNED = {"now": "2026-12-04T09:00:00+00:00", "planned": [{"ban_ref": "B-1"}, {"ban_ref": "B-2"}]}


def _line(item: Any) -> str:
    return f"published expiry of ban {item['ban_ref']}"


def test_a_line_per_planned_item_then_the_notes(capsys: pytest.CaptureFixture[str]) -> None:
    echo_sweep(PLANNED, as_json=False, line=_line, notes=["kept by a legal hold: case C-9"])
    assert capsys.readouterr().out.splitlines() == [
        "published expiry of ban B-1",
        "published expiry of ban B-2",
        "kept by a legal hold: case C-9",
    ]


def test_nothing_planned_says_so_after_the_notes(capsys: pytest.CaptureFixture[str]) -> None:
    echo_sweep({"planned": []}, as_json=False, line=_line, notes=["kept by a legal hold: C-9"])
    assert capsys.readouterr().out.splitlines() == ["kept by a legal hold: C-9", "nothing due"]


def test_json_is_the_result_alone(capsys: pytest.CaptureFixture[str]) -> None:
    echo_sweep(PLANNED, as_json=True, line=_line, notes=["not printed"])
    assert json.loads(capsys.readouterr().out) == PLANNED
