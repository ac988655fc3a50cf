"""`hub up` restarts a dying process with exponential backoff and stops on a crash loop.

The worker here is the real router worker process, started with a protocol file that does not
exist: it exits with an error at start, every time, as a misconfigured worker would. No broker
is needed (it fails before it would connect).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from hub.agents.supervisor import Supervisor
from hub.errors import CrashLoopError
from hub.settings import HubSettings

BACKOFF = 0.5
LIMIT = 3


@pytest.fixture
def supervisor(tmp_path: Path) -> Supervisor:
    settings = HubSettings(
        data_dir=tmp_path / "data",
        kafka_bootstrap="127.0.0.1:9",  # never reached: the worker dies first
        console_port=0,
        restart_backoff=BACKOFF,
        restart_limit=LIMIT,
        restart_window=600.0,
    )
    sup = Supervisor(settings)  # loads the good protocol; its workers get the missing one
    sup.settings = settings.model_copy(update={"protocol": tmp_path / "no-such-protocol.yaml"})
    return sup


def test_a_worker_that_crashes_at_start_is_restarted_with_backoff_then_the_hub_gives_up(
    supervisor: Supervisor,
) -> None:
    first = supervisor.start_worker()
    started = [first.pid]
    said: list[str] = []
    delays: list[float] = []
    deadline = time.monotonic() + 120
    caught: CrashLoopError | None = None
    while caught is None:
        assert time.monotonic() < deadline, f"no crash loop detected; said {said}"
        try:
            lines = supervisor.heal()
        except CrashLoopError as exc:
            caught = exc
            break
        said += lines
        for line in lines:
            delay = re.search(r"restarting in ([0-9.]+)s", line)
            delays.append(float(delay.group(1)) if delay else 0.0)
            if delay:
                # the heal that noticed a repeated death did not restart it: it waits
                assert supervisor.workers == [], line
        started += [w.pid for w in supervisor.workers if w.pid not in started]
        time.sleep(0.05)
    # restarted at once the first time, then after doubling waits; never a fourth time
    assert delays == [0.0, BACKOFF, 2 * BACKOFF], said
    assert len(started) == LIMIT + 1
    assert all("router worker" in line and "exited (1)" in line for line in said), said
    message = str(caught)
    assert f"router worker {started[-1]} exited (1)" in message
    assert "crash loop" in message
    assert str(supervisor.worker_log) in message
    assert "no-such-protocol.yaml" in supervisor.worker_log.read_text()


def test_deaths_outside_the_window_do_not_add_up(supervisor: Supervisor, tmp_path: Path) -> None:
    supervisor.settings = supervisor.settings.model_copy(update={"restart_window": 0.5})
    supervisor.start_worker()
    restarts = 0
    deadline = time.monotonic() + 60
    while restarts < LIMIT + 1 and time.monotonic() < deadline:
        lines = supervisor.heal()  # would raise CrashLoopError if the deaths added up
        restarts += len(lines)
        # every death is a first one within the window: restarted at once, never delayed
        assert all("restarting (death 1 of" in line for line in lines), lines
        time.sleep(0.6 if lines else 0.05)  # let the window pass before the next death
    assert restarts >= LIMIT + 1
    supervisor.stop()


def test_the_state_file_is_replaced_whole_never_rewritten_in_place(
    supervisor: Supervisor,
) -> None:
    """``hub.json`` is read while a restart rewrites it: a reader sees the old or the new one.

    Written in place, a reader could open it truncated (a JSONDecodeError on an empty file
    was seen under load); replaced by a rename, the old inode stays whole for whoever has it.
    """
    supervisor.bootstrap = "127.0.0.1:9"
    path = supervisor.settings.state_file
    supervisor._write_state()
    before = path.stat().st_ino
    with path.open() as old:
        supervisor.bootstrap = "127.0.0.1:10"
        supervisor._write_state()
        assert '"127.0.0.1:9"' in old.read()  # the reader's file is still the whole old one
    assert path.stat().st_ino != before
    assert '"127.0.0.1:10"' in path.read_text()
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".hub.json")] == []
