"""`hub up` and `hub publish` under umask 0: every file the running hub writes (its state
file, the broker's and workers' logs, the audit store, the seen-event store, keys, SQLite's
companion files) is 0600 and every directory 0700."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import hub_test_env

pytestmark = pytest.mark.integration

HUB = Path(sys.executable).parent / "hub"
EXAMPLE = Path(__file__).parents[2] / "examples" / "events" / "marac-flag-raised-redditch.json"


def _loose(data_dir: Path) -> dict[str, str]:
    """Paths under ``data_dir`` (itself as ``.``) that are not owner-only."""
    bad = {}
    for path in [data_dir, *data_dir.rglob("*")]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        want = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if stat.S_IMODE(info.st_mode) != want:
            bad[str(path.relative_to(data_dir))] = f"{stat.S_IMODE(info.st_mode):o}"
    return bad


def test_a_hub_started_under_umask_0_writes_only_owner_only_files(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(hub_test_env(), HUB_DATA_DIR=str(data_dir), HUB_CONSOLE_PORT="0")
    proc = subprocess.Popen(
        [str(HUB), "up"],
        env=env,
        cwd=tmp_path,
        umask=0,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        line = ""
        while time.monotonic() < deadline and not line.startswith("hub ready"):
            line = proc.stdout.readline().strip()
            if not line and proc.poll() is not None:
                break
        assert line.startswith("hub ready"), line
        publish = ["publish", "--as", "marac.north-worcs", "--type", "uk.csp.marac.flag.raised.v1"]
        published = subprocess.run(
            [str(HUB), *publish, "--data", str(EXAMPLE)],
            env=env,
            cwd=tmp_path,
            umask=0,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert published.returncode == 0, published.stderr
        running = {p.name for p in data_dir.iterdir()}
        # publish waited for the audited decision: the router and the sink wrote their files
        assert {"hub.json", "audit.sqlite3", "seen-events.sqlite3", "keys"} <= running, running
        assert any(name.startswith("worker") and name.endswith(".log") for name in running)
        assert _loose(data_dir) == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
    assert _loose(data_dir) == {}
