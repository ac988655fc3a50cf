"""Real traffic through a running hub, then the audit log verified, proven and tampered with.

The session hub keeps writing its store, so each test works on a consistent copy taken with
SQLite's backup API (a plain file copy could miss pages still in the WAL).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hub.audit.checkpoint import log_signer
from hub.audit.log import AuditLog
from hub.audit.merkle import verify_inclusion
from hub.audit.sqlite import SQLiteAuditStore
from hub.settings import HubSettings
from tests.conftest import RunningHub, unique
from tests.factories import MARAC_RAISED, marac_flag

pytestmark = pytest.mark.integration

HUB = Path(sys.executable).with_name("hub")


def copy_store(hub: RunningHub, data_dir: Path) -> Path:
    """The live store and the hub's log signing key, as an IG officer's copy would have them.

    With the key: the running hub may already have signed a checkpoint into the store (one
    is due every ``HUB_CHECKPOINT_INTERVAL`` seconds), and a copy checked with a new key
    would fail on that checkpoint, not on what the test is about.
    """
    data_dir.mkdir()
    key = hub.settings.data_dir / "keys" / "log-signing.key"
    if key.exists():
        (data_dir / "keys").mkdir(mode=0o700)
        shutil.copy2(key, data_dir / "keys" / "log-signing.key")
    target = data_dir / "audit.sqlite3"
    with (
        sqlite3.connect(hub.settings.audit_db_path) as src,
        sqlite3.connect(target) as dst,
    ):
        src.backup(dst)
    return target


def run_hub(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [str(HUB), *args],
        env={**env, "HUB_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def traffic(hub: RunningHub) -> list[str]:
    """A few MARAC flags, each fully audited before the tests look."""
    events = []
    for _ in range(3):
        event_id = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC")))
        hub.wait_records(event_id, at_least=2)
        events.append(event_id)
    return events


def test_tampering_with_the_live_store_copy_is_found_at_its_index(
    hub: RunningHub, traffic: list[str], tmp_path: Path
) -> None:
    db = copy_store(hub, tmp_path / "data")
    settings = HubSettings(data_dir=tmp_path / "data")
    with SQLiteAuditStore(db) as store:
        log = AuditLog(store, signer=log_signer(settings))
        log.checkpoint()
        assert log.verify().ok
        target = store.record_index(store.query(event_id=traffic[1])[0].record_id)
        assert target is not None
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE audit_records SET recipient = 'someone-else' WHERE seq = "
            "(SELECT seq FROM audit_records ORDER BY seq LIMIT 1 OFFSET ?)",
            (target,),
        )
    with SQLiteAuditStore(db) as store:
        report = AuditLog(store, signer=log_signer(settings)).verify()
    assert report.first is not None
    assert report.first.index == target

    result = run_hub("audit", "verify", data_dir=tmp_path / "data")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: audit log does not verify")
    assert result.stderr.splitlines()[-1].endswith(f"at index {target}")


def test_cli_verify_proof_and_consistency_on_an_untampered_copy(
    hub: RunningHub, traffic: list[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    db = copy_store(hub, data)
    signed = run_hub("audit", "checkpoint", data_dir=data)
    assert signed.returncode == 0, signed.stderr
    size = int(signed.stdout.splitlines()[1])
    # the hub signs within HUB_CHECKPOINT_INTERVAL of its newest record, so the copy may
    # hold its checkpoints too: every one of them is checked, the new one among them
    with SQLiteAuditStore(db) as store:
        stored = store.checkpoints()
    assert (size, signed.stdout) in stored

    verified = run_hub("audit", "verify", "--json", data_dir=data)
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"]
    assert report["tree_size"] >= size
    assert report["checkpoints_checked"] == len(stored)
    assert report["unsigned_records"] == 0

    proved = run_hub("audit", "proof", "--event", traffic[0], "--json", data_dir=data)
    assert proved.returncode == 0, proved.stderr
    proofs = [json.loads(line) for line in proved.stdout.splitlines()]
    assert len(proofs) >= 2
    assert {p["event_id"] for p in proofs} == {traffic[0]}
    verifier = log_signer(HubSettings(data_dir=data)).verifier()
    for item in proofs:
        head = verifier.open_checkpoint(item["checkpoint"])
        verify_inclusion(
            leaf=base64.b64decode(item["leaf_hash"]),
            index=item["leaf_index"],
            size=item["tree_size"],
            proof=[base64.b64decode(h) for h in item["proof"]],
            root=head.root_hash,
        )

    consistent = run_hub("audit", "consistency", "--from", "1", "--to", str(size), data_dir=data)
    assert consistent.returncode == 0, consistent.stderr
    bad = run_hub("audit", "consistency", "--from", "5", "--to", "2", data_dir=data)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ")
    assert "Traceback" not in bad.stderr
