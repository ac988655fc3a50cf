"""`Supervisor.alive()` asks the broker, embedded or external, instead of trusting a pid."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.agents.supervisor import Supervisor
from hub.broker import EmbeddedBroker
from hub.settings import HubSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """Its own broker: these tests stop and freeze it (the session broker must live on)."""
    with EmbeddedBroker() as broker:
        yield broker


def test_an_external_broker_that_is_gone_is_not_alive(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    supervisor = Supervisor(
        HubSettings(data_dir=tmp_path, kafka_bootstrap=own_broker.bootstrap, console_port=0)
    )
    assert supervisor.alive(timeout=10)
    own_broker.stop()
    assert not supervisor.alive(timeout=2)


def test_an_embedded_broker_that_runs_but_does_not_answer_is_not_alive(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    supervisor = Supervisor(HubSettings(data_dir=tmp_path, console_port=0))
    supervisor.broker = own_broker
    supervisor.bootstrap = own_broker.bootstrap
    assert supervisor.alive(timeout=10)
    pid = own_broker.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # frozen: its process runs, it serves nothing
    try:
        assert own_broker.exit_code is None
        assert not supervisor.alive(timeout=2)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert supervisor.alive(timeout=10)
