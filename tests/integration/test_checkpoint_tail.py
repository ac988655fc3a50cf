"""The tail of the log is signed without traffic: deleting the newest consultation is found.

A hub with no traffic at all: the only record is the ``consulted`` record a `hub audit
query` appends to the store itself. The audit sink must still sign a checkpoint over it
within ``HUB_CHECKPOINT_INTERVAL``, so that deleting it afterwards is tampering `hub audit
verify` reports, not a log that merely looks one record shorter.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from hub.broker import EmbeddedBroker
from hub.models import AuditDecision
from tests.conftest import RunningHub, start_hub, wait_for

pytestmark = pytest.mark.integration

HUB = Path(sys.executable).with_name("hub")
READER = ("--operator", "A Patel", "--purpose", "assurance", "--reason", "tail of the log test")


@pytest.fixture
def quiet_hub(tmp_path: Path) -> Iterator[RunningHub]:
    """A hub with the default checkpoint settings and no traffic.

    Its own broker: on the session's, other tests' traffic would get the tail signed too.
    """
    with EmbeddedBroker() as broker:
        running = start_hub(broker.bootstrap, tmp_path / "data")
        try:
            yield running
        finally:
            running.supervisor.stop()


def run_hub(hub: RunningHub, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [str(HUB), *args],
        env={**env, **hub.env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_newest_consultation_is_signed_and_its_deletion_found(quiet_hub: RunningHub) -> None:
    hub = quiet_hub
    key = hub.settings.data_dir / "keys" / "log-signing.key"
    wait_for(
        lambda: hub.settings.audit_db_path.exists() and key.exists(),
        timeout=60,
        what="the audit sink's store and log key",
    )
    read = run_hub(hub, "audit", "query", "--decision", "delivered", "--json", *READER)
    assert read.returncode == 0, read.stderr
    with hub.store() as store:
        (consulted,) = store.query(decision=AuditDecision.CONSULTED)
        index = store.record_index(consulted.record_id)
    assert index is not None
    assert "A Patel (command line" in (consulted.reason or "")

    def covered() -> bool:
        with hub.store() as store:
            return any(size > index for size, _ in store.checkpoints())

    wait_for(covered, timeout=30, what=f"a signed checkpoint over record {index}")
    verified = run_hub(hub, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"]
    assert report["unsigned_records"] == 0

    with closing(sqlite3.connect(hub.settings.audit_db_path)) as conn, conn:
        conn.execute("DELETE FROM audit_records WHERE record_id = ?", (consulted.record_id,))
    found = run_hub(hub, "audit", "verify")
    assert found.returncode == 1, found.stdout + found.stderr
    assert "Traceback" not in found.stderr
    assert f"holds only {index} records" in found.stderr
    assert found.stderr.splitlines()[-1].startswith("error: audit log does not verify")
