"""Broker loss is noticed: `/readyz`, the lag metric, and `hub up` restarting its broker.

The embedded broker keeps everything in memory. Before: `hub up` did not notice its broker
had died, `/readyz` said 200 and consumer lag said 0 (faust's cached highwater), and events
the broker had acknowledged to publishers were never decided, silently. Now a worker asks
the broker itself, `hub up` restarts its broker (and the workers) on the same port, and what
was lost is logged as `events_lost` and counted in `hub_events_lost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from hub.agents.health import WorkerHealth
from hub.audit.sqlite import SQLiteAuditStore
from hub.broker import EmbeddedBroker
from hub.broker.embedded import free_port
from hub.broker.topics import ensure_topics
from hub.client import HubClient
from hub.keys.file_store import FileKeyStore
from tests.conftest import RunningHub, hub_test_env, outbox_empty, start_hub, unique, wait_for
from tests.factories import MARAC_RAISED, marac_flag
from tests.integration.test_operations import http_get as _http_get
from tests.integration.test_operations import metric_samples, metric_sum

pytestmark = pytest.mark.integration

HUB = Path(sys.executable).parent / "hub"
READY = re.compile(r"^hub ready bootstrap=(\S+)$")


def http_get(url: str) -> tuple[int, bytes]:
    """``(status, body)``; status 0 while nothing listens (a worker starting or restarting)."""
    try:
        return _http_get(url)
    except urllib.error.URLError:
        return 0, b""


# -- the worker's own look at the broker ---------------------------------------------------


@dataclass
class FakeFaustConsumer:
    """The parts of faust's consumer ``WorkerHealth`` reads (the router's bookkeeping)."""

    owned: set[TopicPartition]
    _committed_offset: dict[TopicPartition, int]

    def assignment(self) -> set[TopicPartition]:
        return self.owned


def test_lag_is_measured_against_the_broker_and_a_dead_one_is_unreachable(
    tmp_path: Path,
) -> None:
    """Own broker: the test kills it."""
    topic = "hub.in.lag-probe"
    tp = TopicPartition(topic, 0)
    broker = EmbeddedBroker()
    broker.start()
    try:
        asyncio.run(ensure_topics(broker.bootstrap, [topic], partitions=1))

        async def run() -> list[Any]:
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
            await producer.start()
            try:
                for n in range(7):
                    await producer.send_and_wait(topic, str(n).encode(), partition=0)
            finally:
                await producer.stop()
            health = WorkerHealth(
                bootstrap=broker.bootstrap,
                snapshot_path=tmp_path / "workers" / "1.offsets.json",
                lost_path=tmp_path / "events-lost.json",
            )
            consumer = FakeFaustConsumer({tp}, {tp: 2})
            try:
                before = await health.refresh(consumer)
                broker._proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]  # started
                broker._proc.wait()  # type: ignore[union-attr]
                after = await health.refresh(consumer)
            finally:
                await health.close()
            return [before, after]

        before, after = asyncio.run(run())
        assert before.broker_reachable
        assert dict(before.consumer_lag) == {topic: 5}  # 7 on the broker, 2 committed
        assert not after.broker_reachable
        assert dict(after.consumer_lag) == {topic: 5}  # the last measure, not a stale 0
        snapshot = json.loads((tmp_path / "workers" / "1.offsets.json").read_text())
        assert snapshot["views"] == {f"{topic}/0": [7, 2]}
    finally:
        broker.stop()


def test_readyz_goes_not_ready_when_the_broker_dies(tmp_path: Path) -> None:
    """Own broker: the test kills it."""
    broker = EmbeddedBroker()
    broker.start()
    port = free_port()
    hub: RunningHub | None = None
    try:
        hub = start_hub(broker.bootstrap, tmp_path / "data", metrics_port=port)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(f"{url}/readyz")[0] == 200, what="the worker to be ready")
        broker._proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]  # started
        broker._proc.wait()  # type: ignore[union-attr]

        def not_ready() -> dict[str, Any] | None:
            status, body = http_get(f"{url}/readyz")
            return json.loads(body) if status == 503 else None

        body = wait_for(not_ready, timeout=30, what="/readyz to say 503 with the broker dead")
        assert body["checks"]["broker_reachable"] is False
        metrics = http_get(f"{url}/metrics")[1].decode()
        assert metric_sum(metrics, "hub_broker_reachable") == 0
        assert metric_sum(metrics, "hub_ready") == 0
        assert http_get(f"{url}/healthz")[0] == 200  # alive: a restart would not help
    finally:
        if hub is not None:
            for proc in hub.supervisor.workers:  # its broker is gone: no graceful drain
                proc.kill()
                proc.wait()
            hub.supervisor.workers.clear()
            hub.supervisor.stop()
        broker.stop()


# -- hub up restarts its broker and counts the loss -----------------------------------------


def _read_lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


@dataclass
class Up:
    proc: subprocess.Popen[str]
    data_dir: Path
    bootstrap: str
    metrics_port: int
    stderr_path: Path

    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "hub.json").read_text()))

    def log_events(self, name: str) -> list[dict[str, Any]]:
        """JSON log lines named ``name`` from `hub up` itself (its stderr)."""
        found = []
        for line in self.stderr_path.read_text().splitlines():
            if f'"event": "{name}"' in line:
                found.append(json.loads(line))
        return found

    def decided(self, event_id: str) -> bool:
        with SQLiteAuditStore(self.data_dir / "audit.sqlite3") as store:
            return store.has_event(event_id)

    def publish(self, n: int = 1) -> list[str]:
        keys = FileKeyStore(self.data_dir / "keys")

        async def go() -> list[str]:
            async with HubClient(
                "marac.north-worcs", bootstrap=self.bootstrap, keys=keys
            ) as client:
                return [
                    await client.publish(MARAC_RAISED, marac_flag(unique("MARAC")))
                    for _ in range(n)
                ]

        return asyncio.run(go())

    def view(self) -> tuple[int, int]:
        """`hub up`'s own look at the broker: inbound events, and those not committed."""
        path = self.data_dir / "broker-view.json"
        if not path.exists():
            return -1, -1
        offsets = json.loads(path.read_text()).values()
        return sum(end for end, _ in offsets), sum(end - done for end, done in offsets)

    def pending(self) -> int:
        """Inbound events `hub up`'s own look at the broker says are not committed."""
        return self.view()[1]


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    with run_up(tmp_path) as running:
        yield running


@contextlib.contextmanager
def run_up(tmp_path: Path, **settings: str) -> Iterator[Up]:
    """`hub up` (one worker, metrics on) as a subprocess, until the block ends."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        hub_test_env(),
        HUB_DATA_DIR=str(data_dir),
        HUB_WORKERS="1",
        HUB_METRICS_PORT=str(port),
        HUB_CONSOLE_PORT="0",
        HUB_WORKFLOW_INTERVAL="0",  # no sweeps publishing on their own: the counts are exact
        **settings,
    )
    stderr_path = data_dir / "hub-up.stderr"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(
            [str(HUB), "up"],
            env=env,
            cwd=data_dir,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        bootstrap = ""
        while not bootstrap:
            line = lines.get(timeout=120)
            assert line is not None, stderr_path.read_text()[-3000:]
            if match := READY.match(line):
                bootstrap = match.group(1)
        yield Up(proc, data_dir, bootstrap, port, stderr_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stdout.close()


def test_hub_up_restarts_a_dead_broker_and_counts_what_it_lost(up: Up) -> None:
    ready = f"http://127.0.0.1:{up.metrics_port}/readyz"
    wait_for(lambda: http_get(ready)[0] == 200, what="the worker to be ready")
    warm = up.publish()[0]
    wait_for(lambda: up.decided(warm), what="the warm event to be decided")
    wait_for(lambda: up.view() == (1, 0), what="hub up to see the warm event committed")

    # The worker is frozen, so the next events stay undecided on the broker; then the
    # broker dies with them.
    state = up.state()
    worker = state["workers"][0]
    os.kill(worker, signal.SIGSTOP)
    lost = up.publish(4)
    wait_for(lambda: up.view() == (5, len(lost)), what="hub up to see the 4 new events")
    os.kill(state["broker_pid"], signal.SIGKILL)

    # hub up notices: a new broker on the same address, a new worker, the loss in the log
    wait_for(
        lambda: (s := up.state())["broker_pid"] != state["broker_pid"] and s["workers"],
        timeout=120,
        what="hub up to restart its broker",
    )
    assert up.proc.poll() is None
    assert up.state()["bootstrap"] == up.bootstrap
    died = up.log_events("broker_died")
    assert died
    assert died[0]["exit_code"] == -signal.SIGKILL
    totals = up.log_events("events_lost_total")
    assert [t["count"] for t in totals] == [len(lost)]
    per_partition = up.log_events("events_lost")
    assert sum(p["count"] for p in per_partition) == len(lost)
    assert all(p["events"] == [] and p["unlisted"] == p["count"] for p in per_partition)
    assert not any(up.decided(event_id) for event_id in lost)

    # routing goes on, and the loss is a metric on the new worker
    wait_for(lambda: http_get(ready)[0] == 200, timeout=120, what="the new worker to be ready")
    metrics = http_get(f"http://127.0.0.1:{up.metrics_port}/metrics")[1].decode()
    assert metric_sum(metrics, "hub_events_lost_total") == len(lost)
    assert [labels["topic"] for labels, _ in metric_samples(metrics, "hub_events_lost_total")] == [
        "hub.in.marac.north-worcs"
    ]
    after = up.publish()[0]
    wait_for(lambda: up.decided(after), timeout=120, what="an event after the restart decided")


def test_events_a_router_held_undecided_are_listed_by_id(tmp_path: Path) -> None:
    """The router pauses (audit store locked) with events fetched: the loss names them."""
    with run_up(tmp_path, HUB_AUDIT_OUTAGE_LIMIT="1") as up:
        ready = f"http://127.0.0.1:{up.metrics_port}/readyz"
        wait_for(lambda: http_get(ready)[0] == 200, what="the worker to be ready")
        warm = up.publish()[0]
        wait_for(lambda: up.decided(warm), what="the warm event to be decided")
        # ... and the router to have seen it stored: a record it still counted as pending
        # (the sink took over the limit to store it) could pause the next event for a moment,
        # and that pause, lifted at once, would let the events published "while paused" through
        wait_for(
            lambda: outbox_empty(up.data_dir),
            what="the router to see the warm event's records stored",
        )
        worker_log = up.data_dir / "worker.log"
        lock = sqlite3.connect(up.data_dir / "audit.sqlite3", isolation_level=None, timeout=5)
        lock.execute("BEGIN EXCLUSIVE")  # the store cannot be written: the router pauses
        published: list[str] = []
        try:

            def paused() -> bool:
                if '"event": "delivery_paused"' in worker_log.read_text():
                    return True
                published.extend(up.publish())
                return False

            wait_for(paused, timeout=60, what="the router to pause delivery")
            # Published while it is paused, so held undecided until the broker dies. Only a
            # snapshot listing these was surely written after the pause: one written before
            # it (the worker writes one a second) can list an event in mid-route, decided a
            # moment later, and be the last one on disk when the broker dies.
            while_paused = set(up.publish(3))
            published.extend(while_paused)
            snapshot = next((up.data_dir / "workers").glob("*.offsets.json"))

            def fetched() -> set[str] | None:
                data = json.loads(snapshot.read_text())
                ids = {i for events in data.get("fetched", {}).values() for _o, _s, i in events}
                return ids if while_paused <= ids else None

            held = wait_for(
                fetched, what="the worker's snapshot to list the events published while paused"
            )
            assert held <= set(published)
            wait_for(lambda: up.pending() >= 4, what="hub up to see the paused events")
            os.kill(up.state()["broker_pid"], signal.SIGKILL)
            wait_for(
                lambda: up.log_events("events_lost_total"), timeout=60, what="the loss counted"
            )
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        listed = {
            e["id"]
            for loss in up.log_events("events_lost")
            for e in loss["events"]
            if e["source"] == "/parties/marac.north-worcs"
        }
        assert listed
        assert while_paused <= listed  # held since the pause: each one named
        assert listed <= set(published)
        lost = up.log_events("events_lost")
        total = up.log_events("events_lost_total")[0]["count"]
        assert total == sum(loss["count"] for loss in lost)
        assert total == sum(len(loss["events"]) + loss["unlisted"] for loss in lost)
        assert total >= 4  # at least the event in hand at the pause and the 3 after it
        # the new worker routes, and what was listed as lost is never decided: it is gone
        wait_for(lambda: http_get(ready)[0] == 200, timeout=120, what="the new worker ready")
        after = up.publish()[0]
        wait_for(lambda: up.decided(after), timeout=120, what="an event after the restart")
        assert not any(up.decided(event_id) for event_id in listed)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_hub_broker_stops_loudly_when_its_broker_dies(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(tmp_path)
    proc = subprocess.Popen(
        [str(HUB), "broker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("broker ready bootstrap=")
        (tansu,) = _children(proc.pid)
        os.kill(tansu, signal.SIGKILL)
        code = proc.wait(timeout=30)
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert code == 1, err
        assert "error: embedded broker at 127.0.0.1:" in err
        assert f"exited with code -{signal.SIGKILL}" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
