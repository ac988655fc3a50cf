"""One hub per data dir: a second `hub up` is refused; a killed hub's lock never blocks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.broker import EmbeddedBroker
from tests.conftest import hub_test_env

pytestmark = pytest.mark.integration

HUB = Path(sys.executable).parent / "hub"


def _env(data_dir: Path, bootstrap: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        hub_test_env(),
        HUB_DATA_DIR=str(data_dir),
        HUB_KAFKA_BOOTSTRAP=bootstrap,
        HUB_CONSOLE_PORT="0",
    )
    return env


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (its workers and sink run in sessions of their own)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


@contextlib.contextmanager
def _hub_up(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`hub up`, ready; it and every process it started are ended on the way out."""
    proc = subprocess.Popen(
        [str(HUB), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    started: list[int] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        line = ""
        while not line.startswith("hub ready"):
            line = proc.stdout.readline().strip()
            assert proc.poll() is None or line, f"hub up exited with {proc.returncode}"
            assert time.monotonic() < deadline, "hub up not ready within 90 s"
        started = _children(proc.pid)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in started:  # workers a kill -9 left orphaned (gone after a clean stop)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()


def test_second_hub_up_on_a_data_dir_in_use_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with EmbeddedBroker() as broker, _hub_up(_env(data_dir, broker.bootstrap)) as first:
        state_before = (data_dir / "hub.json").read_text()
        second = subprocess.run(
            [str(HUB), "up"],
            env=_env(data_dir, broker.bootstrap),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "Traceback" not in second.stderr
        assert f"already in use by a running hub (pid {first.pid}" in second.stderr
        assert f"bootstrap {broker.bootstrap}" in second.stderr
        assert "hub ready" not in second.stdout
        # the first hub is untouched: its state file is still there, and still its own
        assert (data_dir / "hub.json").read_text() == state_before
        assert json.loads(state_before)["pid"] == first.pid
        assert first.poll() is None


def test_hub_up_restarts_after_the_previous_one_was_killed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with EmbeddedBroker() as broker:
        env = _env(data_dir, broker.bootstrap)
        with _hub_up(env) as killed:
            os.kill(killed.pid, signal.SIGKILL)
            killed.wait(timeout=30)
            assert (data_dir / "hub.lock").exists()  # left behind, as a crash leaves it
            with _hub_up(env) as restarted:
                state = json.loads((data_dir / "hub.json").read_text())
                assert state["pid"] == restarted.pid
