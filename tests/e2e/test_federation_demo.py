"""`hub federation demo` (issue 20): two linked hubs play a victim's move, end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HUB = Path(sys.executable).with_name("hub")


def test_the_federation_demo_transfers_and_both_logs_hold_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [str(HUB), "federation", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "south: the transfer reached the South Worcs MARAC coordinator" in out
    assert "received and acknowledged by the South" in out
    assert "both: each log's record of the hand-over proved to the other hub" in out
    assert "south: its coordinator took ownership of" in out
    told = next(line for line in out.splitlines() if line.startswith("north: stopped following"))
    assert "redditch-bc.community-safety" in told  # a department of the old area holds it
    south = next(line for line in out.splitlines() if line.startswith("south audit log:"))
    assert "acknowledged 1" in south
