"""Broker loss: what is counted and listed as lost, readiness, and when `hub up` gives up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hub.agents import supervisor as supervisor_module
from hub.agents.ops import Metrics, OpsState
from hub.agents.supervisor import Supervisor
from hub.broker.watch import (
    LostTotals,
    PartitionView,
    WorkerSnapshot,
    count_losses,
    read_snapshots,
    snapshot_path,
    write_json,
)
from hub.errors import BrokerError
from hub.settings import HubSettings

P0 = "hub.in.west-mercia-police/0"
P1 = "hub.in.west-mercia-police/1"


def never(_source: str, _event_id: str) -> bool:
    return False


def test_offsets_beyond_the_commit_are_lost_and_fetched_ones_listed_by_id() -> None:
    broker = {P0: PartitionView(end=10, committed=4), P1: PartitionView(end=3, committed=3)}
    worker = WorkerSnapshot(
        views={P0: PartitionView(end=9, committed=5)},  # it committed 5 since the broker look
        decided={P0: [5, 6]},  # acked, commit not yet sent
        fetched={P0: {7: ("/parties/west-mercia-police", "id-7"), 8: ("/parties/x", "id-8")}},
    )
    losses = count_losses(broker, [worker], decided=lambda _s, i: i == "id-8")
    assert len(losses) == 1
    loss = losses[0]
    assert (loss.topic, loss.partition, loss.first, loss.last) == (
        "hub.in.west-mercia-police",
        0,
        5,
        9,
    )
    # 5 and 6 decided by the worker, 8 decided per the audit store: 7 and 9 lost
    assert loss.count == 2
    assert loss.listed == ((7, "/parties/west-mercia-police", "id-7"),)
    assert loss.unlisted == 1  # offset 9: published, never read by the hub


def test_nothing_beyond_the_commit_is_no_loss() -> None:
    assert count_losses({P0: PartitionView(4, 4)}, [], decided=never) == []
    assert count_losses({}, [WorkerSnapshot(views={P0: PartitionView(2, 2)})], decided=never) == []


def test_worker_snapshots_round_trip_and_are_cleared(tmp_path: Path) -> None:
    snapshot = WorkerSnapshot(
        views={P0: PartitionView(12, 3)},
        decided={P0: [3, 4, 5, 9]},
        fetched={P0: {10: ("/parties/a", "e-10")}},
    )
    path = snapshot_path(tmp_path, 42)
    path.parent.mkdir()
    write_json(path, snapshot.to_json())
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["decided"] == {P0: [[3, 5], [9, 9]]}
    (path.parent / "7.offsets.json").write_text("{not json")
    assert read_snapshots(path.parent, remove=True) == [snapshot]
    assert list(path.parent.iterdir()) == []


def test_lost_totals_add_up_over_restarts(tmp_path: Path) -> None:
    totals = LostTotals(tmp_path / "events-lost.json")
    assert totals.read() == {}
    losses = count_losses({P0: PartitionView(5, 2), P1: PartitionView(1, 0)}, [], decided=never)
    totals.add(losses)
    totals.add(losses[:1])
    assert LostTotals(tmp_path / "events-lost.json").read() == {"hub.in.west-mercia-police": 7}


def test_not_ready_while_the_broker_does_not_answer_and_the_loss_is_a_metric() -> None:
    state = OpsState()
    state.tick(partitions=3, audit_open=True, consumer_lag={}, audit_lag=0, checkpoint_age=0.0)
    assert state.readiness()[0]
    state.observe_broker(reachable=False, coordinator_known=True, events_lost={})
    ready, body = state.readiness()
    assert not ready
    assert body["checks"]["broker_reachable"] is False
    state.observe_broker(reachable=True, coordinator_known=False, events_lost={"hub.in.a": 4})
    assert state.readiness()[1]["checks"]["coordinator_known"] is False
    text = Metrics(state).exposition().decode()
    assert 'hub_events_lost_total{topic="hub.in.a"} 4.0' in text
    assert "hub_broker_reachable 1.0" in text


class DeadBroker:
    """An embedded broker that has died (and may refuse to start again)."""

    def __init__(self, *, restarts: bool) -> None:
        self.restarts = restarts
        self.exit_code: int | None = -9
        self.log_path = Path("broker.log")
        self.pid = 1234
        self.started = 0

    def start(self) -> str:
        self.started += 1
        if not self.restarts:
            raise BrokerError("broker at 127.0.0.1:1: no metadata answer within 30s")
        self.exit_code = None
        return "127.0.0.1:1"

    def stop(self) -> None:
        return None


@pytest.fixture
def supervisor(tmp_path: Path) -> Supervisor:
    sup = Supervisor(HubSettings(data_dir=tmp_path, console_port=0))
    # a worker's last view before the broker died: 3 events past the committed offset
    path = snapshot_path(tmp_path, 99)
    path.parent.mkdir()
    write_json(path, WorkerSnapshot(views={P0: PartitionView(8, 5)}).to_json())
    return sup


def test_a_broker_that_cannot_be_restarted_stops_the_hub_loudly(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    supervisor.broker = DeadBroker(restarts=False)  # type: ignore[assignment]  # a stand-in
    with pytest.raises(BrokerError, match=r"died \(exit code -9\) and could not be restarted"):
        supervisor.heal()
    assert LostTotals(tmp_path / "events-lost.json").read() == {"hub.in.west-mercia-police": 3}


def test_a_broker_that_keeps_dying_stops_the_hub(
    supervisor: Supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = DeadBroker(restarts=True)
    supervisor.broker = broker  # type: ignore[assignment]  # a stand-in
    restarted: list[str] = []
    monkeypatch.setattr(supervisor_module, "ensure_topics", _no_topics)
    monkeypatch.setattr(supervisor, "start_worker", lambda: restarted.append("worker"))
    monkeypatch.setattr(supervisor, "wait_ready", lambda **_kw: None)
    monkeypatch.setattr(supervisor, "_start_watch", lambda: None)
    for n in range(supervisor_module.MAX_BROKER_RESTARTS):
        said = supervisor.heal()
        assert said[0].startswith("embedded broker exited (-9): restarted empty on")
        assert broker.started == n + 1
        broker.exit_code = -9  # and it dies again
    with pytest.raises(BrokerError, match="died 4 times within 600s"):
        supervisor.heal()
    assert broker.started == supervisor_module.MAX_BROKER_RESTARTS
    assert len(restarted) == supervisor_module.MAX_BROKER_RESTARTS * supervisor.settings.workers


async def _no_topics(*_args: Any, **_kw: Any) -> None:
    return None
