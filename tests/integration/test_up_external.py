"""`hub up` with HUB_KAFKA_BOOTSTRAP uses that Kafka and starts no broker of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.broker import EmbeddedBroker
from tests.conftest import hub_test_env

pytestmark = pytest.mark.integration

HUB = Path(sys.executable).parent / "hub"


def test_hub_up_uses_the_external_bootstrap(tmp_path: Path) -> None:
    """Own broker as the external one: the hub `hub up` starts on it joins the router's
    consumer group, and on the shared broker it would take partitions from the shared hub."""
    with EmbeddedBroker() as external:
        env = {
            **os.environ,
            **hub_test_env(),
            "HUB_DATA_DIR": str(tmp_path / "data"),
            "HUB_KAFKA_BOOTSTRAP": external.bootstrap,
        }
        proc = subprocess.Popen(
            [str(HUB), "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 90
            line = ""
            while time.monotonic() < deadline and not line.startswith("hub ready"):
                line = proc.stdout.readline().strip()
                if not line and proc.poll() is not None:
                    break
            assert line == f"hub ready bootstrap={external.bootstrap}"
            state = json.loads((tmp_path / "data" / "hub.json").read_text())
            assert state["embedded"] is False
            assert state["bootstrap"] == external.bootstrap
            assert not (tmp_path / "data" / "broker.log").exists()
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
            if proc.stdout is not None:
                proc.stdout.close()
        assert code == 0
        assert not (tmp_path / "data" / "hub.json").exists()
