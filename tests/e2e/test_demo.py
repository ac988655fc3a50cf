"""Whole runs through the CLI: `hub demo` end to end, and `hub up` started and stopped.

Each test gets its own data dir and its own embedded broker (started by the command under
test), so nothing here shares state with the session hub of the integration tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO

import pytest

from hub.audit.sqlite import SQLiteAuditStore
from hub.models import AuditDecision, AuditRecord
from tests.conftest import hub_test_env, unique, wait_for
from tests.factories import MARAC_RAISED, marac_flag

pytestmark = pytest.mark.e2e

HUB = Path(sys.executable).parent / "hub"
READY = re.compile(r"^hub ready bootstrap=(\S+):(\d+)$")


def hub_env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, **hub_test_env(), "HUB_DATA_DIR": str(data_dir)}


def all_records(db: Path) -> list[AuditRecord]:
    with SQLiteAuditStore(db) as store:
        return store.query(limit=1_000_000)


# -- hub demo ----------------------------------------------------------------------------------


def parse_received(lines: list[str]) -> dict[str, int]:
    """The `received per party:` table of the demo's summary."""
    start = lines.index("received per party:") + 1
    table: dict[str, int] = {}
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        party, count = line.split()
        table[party] = int(count)
    return table


#: seed 9's first 60 events include two the protocol must refuse (MARAC flags raised by
#: parties not permitted to raise them); seed 3's first 60 include none, so with it the
#: rejection path would never run
DEMO_SEED = "9"
DONE = re.compile(
    r"^done: (\d+) published, (\d+) decided by the hub \((\d+) were meant to be "
    r"refused\), (\d+) rejection notices sent to publishers, (\d+) signed checkpoints "
    r"delivered to parties$"
)


def test_demo_plays_the_scenario_and_audits_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(HUB), "demo", "--events", "60", "--rate", "40", "--seed", DEMO_SEED],
        env=hub_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert any(
        READY.match(line) and line.startswith("hub ready bootstrap=127.0.0.1:") for line in lines
    ), result.stdout
    done = next((m for line in lines if (m := DONE.match(line))), None)
    assert done is not None, result.stdout
    published, decided, refusals, notices, _checkpoints = map(int, done.groups())
    # and one ASB Case Review (6 events) and one quarter's s17A submissions (13) after the 60
    assert (published, decided) == (79, 79)
    assert refusals > 0
    assert notices <= refusals
    assert not (tmp_path / "hub.json").exists()  # the demo stopped its hub

    records = all_records(tmp_path / "audit.sqlite3")
    decisions = Counter(r.decision for r in records)
    # The demo exercises routing; IG actions (exemptions, shredding, holds) come from
    # `hub audit` and `hub keys` and are tested there, so the demo must not produce them.
    routing = {
        AuditDecision.DELIVERED,
        AuditDecision.WITHHELD,
        AuditDecision.REJECTED,
        AuditDecision.ACKNOWLEDGED,
    }
    for decision in routing:
        assert decisions[decision] > 0, (decision, decisions)
    assert set(decisions) <= routing, decisions
    assert decisions[AuditDecision.REJECTED] == refusals
    reasons = {r.reason.split(":", 1)[0] for r in records if r.decision == AuditDecision.REJECTED}
    assert reasons <= {"policy_rejected", "publisher_not_permitted"}, reasons

    # The demo counts what each party's consumer received; the store counts what the hub
    # delivered. A consumer can only receive what was delivered, but may not have read the
    # last deliveries before the demo stopped, so received <= delivered per party.
    received = parse_received(lines)
    delivered = Counter(r.recipient for r in records if r.decision == AuditDecision.DELIVERED)
    assert set(delivered) <= set(received), set(delivered) - set(received)
    for party, count in received.items():
        assert count <= delivered[party], (party, count, delivered[party])
    assert sum(received.values()) > 0
    # the ASB Case Review application reached its district's four relevant bodies, and each
    # body's answer reached the coordinator
    asb = Counter(
        r.event_type
        for r in records
        if r.decision == AuditDecision.DELIVERED
        and (r.event_type or "").startswith("uk.csp.asb.review.")
    )
    assert asb["uk.csp.asb.review.application.v1"] == 4, asb
    assert asb["uk.csp.asb.review.complaints.v1"] == 4, asb
    # each s17A submission (all but the ICB's, late) was kept, and its receipt reached the
    # analysts, never the counts: the audit names only the receipt's fields
    s17a = [
        r
        for r in records
        if r.decision == AuditDecision.DELIVERED
        and r.event_type == "uk.csp.strategic.submission.v1"
    ]
    assert {r.recipient for r in s17a} == {"nwcsp.analysts"}
    assert len(s17a) == 13
    assert all("counts" not in r.fields and "kept by the hub" in r.reason for r in s17a)
    # every acknowledgement is for a delivery the hub audited to that recipient
    delivered_pairs = {
        (r.event_id, r.recipient) for r in records if r.decision == AuditDecision.DELIVERED
    }
    acks = [(r.event_id, r.recipient) for r in records if r.decision == AuditDecision.ACKNOWLEDGED]
    assert set(acks) <= delivered_pairs


# -- hub up ------------------------------------------------------------------------------------


def read_lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


def wait_ready(lines: queue.Queue[str | None], *, timeout: float) -> str:
    """The bootstrap address from `hub ready bootstrap=HOST:PORT`, within the deadline."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            pytest.fail(f"hub up exited before it was ready; stdout: {seen}")
        seen.append(line)
        if match := READY.match(line):
            return f"{match[1]}:{match[2]}"
    pytest.fail(f"hub up not ready within {timeout:.0f}s; stdout: {seen}")


def stop(proc: subprocess.Popen[str], data_dir: Path) -> None:
    """Last-resort cleanup of a `hub up` a failed test left running (by pid only)."""
    if proc.poll() is not None:
        return
    workers: list[int] = []
    with contextlib.suppress(OSError, ValueError, KeyError):
        workers = json.loads((data_dir / "hub.json").read_text())["workers"]
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_hub_up_serves_the_cli_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = hub_env(tmp_path)
    with open(tmp_path / "hub-up.stderr", "w") as stderr:
        proc = subprocess.Popen(
            [str(HUB), "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=tmp_path,
        )
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        bootstrap = wait_ready(lines, timeout=120)
        state = json.loads((tmp_path / "hub.json").read_text())
        assert state["bootstrap"] == bootstrap
        assert state["pid"] == proc.pid
        assert state["workers"]

        data = tmp_path / "flag.json"
        data.write_text(json.dumps(marac_flag(unique("MARAC"))))
        published = subprocess.run(
            [
                str(HUB),
                "publish",
                "--as",
                "marac.north-worcs",
                "--type",
                MARAC_RAISED,
                "--data",
                str(data),
                "--no-wait",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
        assert published.returncode == 0, published.stderr
        event_id = published.stdout.strip()
        db = tmp_path / "audit.sqlite3"

        def decided() -> list[AuditRecord]:
            if not db.exists():
                return []
            with SQLiteAuditStore(db) as store:
                return store.query(event_id=event_id)

        records = wait_for(decided, timeout=30, what=f"audit records of {event_id}")
        assert {r.decision for r in records} <= {AuditDecision.DELIVERED, AuditDecision.WITHHELD}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "hub-up.stderr").read_text()[-2000:]
        assert not (tmp_path / "hub.json").exists()
        workers: list[int] = state["workers"]
        wait_for(
            lambda: not any(_alive(pid) for pid in workers),
            timeout=10,
            what=f"router workers {workers} to exit",
        )
    finally:
        stop(proc, tmp_path)
        reader.join(timeout=5)
        proc.stdout.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is gone as far as we are concerned: its parent has not reaped it yet
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    return False
