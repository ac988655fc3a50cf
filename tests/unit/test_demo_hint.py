"""The demo's hints (issue 18): after `make demo` every command it names runs as pasted, and a
second demo over the same data dir says why its events are refused.

`make demo` runs `.venv/bin/hub`, which is not on PATH: a hint saying `hub ...` failed there.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from hub.audit.sqlite import SQLiteAuditStore
from hub.cli.runtime import next_steps
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.scenarios.demo import _since, earlier_runs_note

REPO = Path(__file__).resolve().parents[2]
VENV_HUB = Path(sys.executable).parent / "hub"


def test_demo_hint_runs_as_pasted(tmp_path: Path) -> None:
    """Every command of the hint runs in a shell where `hub` is not on PATH (after `make
    demo`), from the repo root, against the demo's data dir, and prints something."""
    data = tmp_path / "data"
    data.mkdir()
    now = dt.datetime.now(dt.UTC)
    with SQLiteAuditStore(data / "audit.sqlite3") as store:
        store.append(
            [
                AuditRecord(
                    record_id=record_id_for("evt-1", "hwfrs", AuditDecision.WITHHELD),
                    time=now,
                    event_id="evt-1",
                    event_type="uk.csp.marac.flag.raised.v1",
                    publisher="marac.north-worcs",
                    recipient="hwfrs",
                    decision=AuditDecision.WITHHELD,
                    reason="no rule delivers uk.csp.marac.flag.raised.v1 to hwfrs",
                )
            ]
        )
    path = ":".join(p for p in os.environ["PATH"].split(":") if Path(p) != VENV_HUB.parent)
    env = {**os.environ, "PATH": path, "HUB_DATA_DIR": str(data)}
    env.pop("VIRTUAL_ENV", None)
    commands = [
        line.split("#")[0].strip()
        for line in next_steps(str(VENV_HUB), cwd=REPO)
        if line.startswith("  ") and "hub" in line.split("#")[0]
    ]
    assert commands
    assert all(not c.startswith("hub ") for c in commands), commands
    outputs = {}
    for command in commands:
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.strip(), command
        outputs[command] = done.stdout
    withheld = next(out for c, out in outputs.items() if "withheld" in c)
    assert "no rule delivers" in withheld  # the why, not only the who


def test_a_demo_over_an_earlier_runs_data_dir_says_so_and_counts_its_own_run() -> None:
    assert earlier_runs_note(0) is None  # a fresh data dir: nothing to say
    note = earlier_runs_note(2_326)
    assert note is not None
    assert "2326 records from earlier runs" in note
    assert "already raised" in note
    assert "HUB_DATA_DIR" in note
    # the live counts are this run's: the store's now, less what it held at the start
    assert _since({"delivered": 2_420, "withheld": 1_510}, {"delivered": 1_390}) == {
        "delivered": 1_030,
        "withheld": 1_510,
    }
