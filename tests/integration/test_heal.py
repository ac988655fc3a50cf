"""`hub up` restarts what dies: a router worker, the audit sink and the webhook dispatcher."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.broker import EmbeddedBroker
from hub.models import AuditDecision
from hub.settings import HubSettings
from hub.webhooks import WebhookConfig
from tests.conftest import RunningHub, start_hub, unique
from tests.factories import MARAC_RAISED, marac_flag

pytestmark = pytest.mark.integration


@pytest.fixture
def hub_with_webhook(tmp_path: Path) -> Iterator[RunningHub]:
    """Its own broker: the test kills this hub's worker, sink and dispatcher (a dispatcher
    starts only for webhooks configured before the hub), and two hubs on one broker would
    share its topics and consumer groups (tests/conftest.py)."""
    data = tmp_path / "data"
    # an endpoint nobody listens on: the dispatcher runs (and retries) without a receiver
    WebhookConfig(HubSettings(data_dir=data).webhooks_path).add(
        "wrs", "http://127.0.0.1:9/hub-webhook"
    )
    with EmbeddedBroker() as broker:
        running = start_hub(broker.bootstrap, data)
        try:
            yield running
        finally:
            running.supervisor.stop()


def test_dead_processes_are_restarted_and_routing_goes_on(hub_with_webhook: RunningHub) -> None:
    hub = hub_with_webhook
    supervisor = hub.supervisor
    dispatcher = supervisor.webhooks
    assert dispatcher is not None
    assert supervisor.heal() == []  # nothing to do while everything runs

    worker = supervisor.workers[0]
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    dispatcher.send_signal(signal.SIGKILL)
    dispatcher.wait()
    sink = supervisor.sink
    assert sink is not None  # HUB_AUDIT_SINK=process, the default
    sink.send_signal(signal.SIGKILL)
    sink.wait()

    said = supervisor.heal()
    assert any(f"audit sink {sink.pid} exited" in line for line in said), said
    assert supervisor.sink is not None
    assert supervisor.sink.poll() is None
    assert any(f"router worker {worker.pid} exited" in line for line in said), said
    assert any(f"webhook dispatcher {dispatcher.pid} exited" in line for line in said), said
    assert supervisor.webhooks is not None
    assert supervisor.webhooks.pid != dispatcher.pid
    assert supervisor.webhooks.poll() is None
    assert worker not in supervisor.workers
    assert len(supervisor.workers) == 1

    supervisor.wait_ready(timeout=90)
    event_id = hub.publish("marac.north-worcs", MARAC_RAISED, marac_flag(unique("MARAC")))
    records = hub.wait_records(event_id, at_least=5, timeout=90)
    assert any(r.decision == AuditDecision.DELIVERED for r in records)
