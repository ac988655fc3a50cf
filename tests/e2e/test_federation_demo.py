"""`hub federation demo` (issue 20): two linked hubs play a victim's move, end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import hub_test_env

HUB = Path(sys.executable).with_name("hub")


def test_the_federation_demo_transfers_and_both_logs_hold_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= hub_test_env()  # the demo's hubs and links join their groups as the tests' do
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


def test_the_pages_federation_examples_run_on_the_demo_hubs(tmp_path: Path) -> None:
    """The IG officer's cross-log proof examples, as the page writes them, on both demo hubs.

    ``tests/e2e/test_docs_examples.py`` runs every other example on a single `hub demo`;
    these need two linked hubs. After `hub federation demo`, the North's IG officer checks
    the proof the South sent and exports the North's; the South exports its own, and the
    North checks that bundle: the three lines of the page, in their order.
    """
    from hub.audit.sqlite import SQLiteAuditStore
    from hub.models import AuditDecision
    from tests.e2e.test_docs_examples import EXAMPLES, federated

    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= hub_test_env()  # the demo's hubs and links join their groups as the tests' do
    env["HUB_DATA_DIR"] = str(tmp_path / "data")
    demo = subprocess.run(
        [str(HUB), "federation", "demo"], env=env, capture_output=True, text=True,
        timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    north, south = (tmp_path / "data" / "federation-demo" / side for side in ("north", "south"))
    with SQLiteAuditStore(north / "audit.sqlite3") as store:
        sent = store.query(party="swcsp-hub", decision=AuditDecision.DELIVERED, limit=1)
    assert sent, "the North's log holds no delivery to the South"
    proofs = [e for e in EXAMPLES if federated(e) and e.argv[:2] == ("audit", "proof")]
    assert len(proofs) == 3, [str(e) for e in proofs]
    check, export, bundle = proofs
    (tmp_path / "n").mkdir()
    (tmp_path / "s").mkdir()
    runs = (  # (example, hub's data dir, working dir)
        (check, north, tmp_path / "n"),
        (export, north, tmp_path / "n"),
        (export, south, tmp_path / "s"),
        (bundle, north, tmp_path / "s"),  # the bundle the South exported
    )
    for example, data_dir, cwd in runs:
        run_env = {
            **env,
            "HUB_DATA_DIR": str(data_dir),
            "TRANSFER_ID": sent[0].event_id,
            "PATH": f"{HUB.parent}{os.pathsep}{env.get('PATH', '')}",
        }
        if data_dir == south:
            run_env["HUB_PROTOCOL"] = str(
                Path(__file__).parents[2] / "hub" / "policies" / "south-worcestershire.yaml"
            )
        done = subprocess.run(
            ["bash", "-c", example.line], env=run_env, capture_output=True, text=True,
            timeout=120, check=False, cwd=cwd,
        )  # fmt: skip
        assert done.returncode == 0, f"{example} on {data_dir.name}: {done.stdout}{done.stderr}"
        assert done.stdout.strip(), f"{example} printed nothing"
    assert (tmp_path / "s" / "bundle.json").exists()
