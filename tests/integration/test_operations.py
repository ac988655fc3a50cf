"""Operations on a real run: `hub up` with two workers, metrics, health, logs without PII.

One module-scoped run: `hub up` (a subprocess, its own embedded broker) with HUB_WORKERS=2
and HUB_METRICS_PORT, a seeded scenario published through the SDK, every party's deliveries
read back. The tests then look at that run from different sides: the workers shared the
partitions and every recipient got each event once; the endpoints answer; and no subject's
name, date of birth, reference, case reference, address line or postcode is in any log.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from hub.audit.sqlite import SQLiteAuditStore
from hub.broker.embedded import below_ephemeral
from hub.client import HubClient
from hub.keys.file_store import FileKeyStore
from hub.models import AuditDecision, AuditRecord, Delivery
from hub.policies.loader import load_protocol
from hub.scenarios.north_worcs import Scenario, ScenarioEvent
from hub.settings import default_protocol_path
from tests.conftest import hub_test_env, wait_for

pytestmark = pytest.mark.integration

HUB = Path(sys.executable).parent / "hub"
READY = re.compile(r"^hub ready bootstrap=(\S+)$")
EVENTS = 90
SEED = 5
#: payload fields that identify a person or a case: none of their values may reach a log
SENSITIVE_PATHS = {
    "subject.name",
    "subject.date_of_birth",
    "subject_ref",
    "subject_refs[]",
    "case_ref",
    "intel_ref",
    "ban_ref",
    "address.line1",
    "address.postcode",
}


def free_port_pair() -> int:
    """A port P with P and P + 1 free (one per worker), below the ephemeral range.

    A pair taken from the ephemeral range (``bind(0)``) can be given to an outgoing
    connection (the parallel tests' Kafka clients open many) between this check and the
    workers' bind: a worker then found its port in use and served no metrics.
    """
    ports = below_ephemeral() or range(20768, 32766)
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(ports.start, ports.stop)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    pytest.fail("no two consecutive free ports")


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Samples of one metric from the Prometheus text format."""
    out = []
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            out.append((labels, float(match.group(2))))
    return out


def metric_sum(text: str, name: str) -> float:
    return sum(v for _, v in metric_samples(text, name))


def sensitive_values(events: list[ScenarioEvent]) -> set[str]:
    """Every name, date of birth, reference, address line and postcode the scenario used."""
    found: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else k)
        elif isinstance(value, list):
            for v in value:
                walk(v, f"{path}[]")
        elif path in SENSITIVE_PATHS and isinstance(value, str) and value:
            found.add(value)

    for event in events:
        walk(event.data, "")
        found.add(event.key)
        if event.subject:
            found.add(event.subject)
    return found


@dataclass
class Run:
    """What the module's run left behind."""

    data_dir: Path
    bootstrap: str
    metrics_port: int
    proc: subprocess.Popen[str]
    stdout: list[str]
    stderr_path: Path
    published: list[str] = field(default_factory=list)
    events: list[ScenarioEvent] = field(default_factory=list)
    received: dict[str, list[Delivery]] = field(default_factory=dict)

    def records(self) -> list[AuditRecord]:
        with SQLiteAuditStore(self.data_dir / "audit.sqlite3") as store:
            return store.query(limit=1_000_000)

    def decided(self) -> int:
        with SQLiteAuditStore(self.data_dir / "audit.sqlite3") as store:
            return sum(store.has_event(i) for i in self.published)

    def worker_url(self, slot: int, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port + slot}{path}"


def _read_lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


def _publish(run: Run, keys: FileKeyStore) -> None:
    async def go() -> None:
        clients: dict[str, HubClient] = {}
        try:
            for item in Scenario(seed=SEED).events(EVENTS):
                client = clients.setdefault(
                    item.publisher, HubClient(item.publisher, bootstrap=run.bootstrap, keys=keys)
                )
                run.events.append(item)
                run.published.append(
                    await client.publish(
                        item.event_type, item.data, key=item.key, subject=item.subject
                    )
                )
        finally:
            for client in clients.values():
                await client.close()

    asyncio.run(go())


def _read_all(run: Run, keys: FileKeyStore, parties: Sequence[str]) -> None:
    """Each party reads its topic once with an idempotent consumer (an inbox by event id).

    The parties read side by side, as they would: one after another, each read's end
    probe and its last empty poll added up to 7.5 of the fixture's 13 s.
    """

    async def read(party: str) -> None:
        got: list[Delivery] = []
        async with HubClient(
            party,
            bootstrap=run.bootstrap,
            keys=keys,
            inbox=run.data_dir / "test-inbox" / f"{party}.sqlite3",
            group_id=f"ops-test-{uuid.uuid4().hex[:6]}",
        ) as client:
            async for delivery in client.deliveries(poll_timeout=0.3):
                got.append(delivery)
        run.received[party] = got

    async def go() -> None:
        await asyncio.gather(*(read(party) for party in parties))

    asyncio.run(go())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    data_dir = tmp_path_factory.mktemp("ops")
    port = free_port_pair()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "PYTHONPATH"}
    env.update(
        hub_test_env(),
        HUB_DATA_DIR=str(data_dir),
        HUB_WORKERS="2",
        HUB_PARTITIONS="3",  # the hub's default, not the tests' 1: the workers share each topic
        HUB_METRICS_PORT=str(port),
        HUB_CONSOLE_PORT="0",  # not this test's concern, and its port may be taken
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
    stdout: list[str] = []
    threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
    bootstrap = ""
    try:
        while not bootstrap:
            line = lines.get(timeout=120)
            assert line is not None, stderr_path.read_text()[-3000:]
            stdout.append(line)
            if match := READY.match(line):
                bootstrap = match.group(1)
        running = Run(data_dir, bootstrap, port, proc, stdout, stderr_path)
        keys = FileKeyStore(data_dir / "keys")
        _publish(running, keys)
        wait_for(lambda: running.decided() == EVENTS, timeout=120, what="every event decided")
        parties = load_protocol(default_protocol_path()).party_ids
        _read_all(running, keys, parties)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        while True:  # the rest of stdout, for the log scan
            try:
                line = lines.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            stdout.append(line)
        proc.stdout.close()


def test_two_workers_share_partitions_and_deliver_once(run: Run) -> None:
    state = json.loads((run.data_dir / "hub.json").read_text())
    assert len(state["workers"]) == 2
    owned = []
    for slot in (0, 1):
        status, body = http_get(run.worker_url(slot, "/metrics"))
        assert status == 200
        owned.append(metric_sum(body.decode(), "hub_partitions_assigned"))
    assert all(n > 0 for n in owned), owned  # both workers got inbound partitions
    parties = load_protocol(default_protocol_path()).party_ids
    assert sum(owned) == 3 * (len(parties) + 1)  # every hub.in.* partition, once

    records = [r for r in run.records() if r.event_id in set(run.published)]
    delivered = Counter(
        (r.event_id, r.recipient) for r in records if r.decision == AuditDecision.DELIVERED
    )
    assert delivered
    assert max(delivered.values()) == 1  # one audit record per delivery
    expected: dict[str, set[str]] = {}
    for event_id, recipient in delivered:
        assert recipient is not None
        expected.setdefault(recipient, set()).add(event_id)
    for party in parties:
        ids = [d.id for d in run.received.get(party, []) if not d.from_hub]
        ids = [i for i in ids if i in set(run.published)]
        assert len(ids) == len(set(ids)), party  # each event once
        assert set(ids) == expected.get(party, set()), party  # every delivery, nothing else


def test_metrics_count_what_the_audit_log_records(run: Run) -> None:
    records = run.records()
    texts = []
    for slot in (0, 1):
        status, body = http_get(run.worker_url(slot, "/metrics"))
        assert status == 200
        texts.append(body.decode())
    delivered = sum(1 for r in records if r.decision == AuditDecision.DELIVERED)
    withheld = sum(1 for r in records if r.decision == AuditDecision.WITHHELD)
    assert sum(metric_sum(t, "hub_delivered_total") for t in texts) == delivered
    assert sum(metric_sum(t, "hub_withheld_total") for t in texts) == withheld
    rejected = sum(1 for r in records if r.decision == AuditDecision.REJECTED)
    assert sum(metric_sum(t, "hub_quarantined_total") for t in texts) == rejected
    # events in: the scenario's records, plus the hub's own (alerts) and the consumers' acks
    assert sum(metric_sum(t, "hub_events_in_total") for t in texts) >= EVENTS
    labels = {
        tuple(sorted(lb)) for t in texts for lb, _ in metric_samples(t, "hub_delivered_total")
    }
    assert labels == {("event_type", "recipient")}

    def settled() -> bool:
        lags = []
        for slot in (0, 1):
            text = http_get(run.worker_url(slot, "/metrics"))[1].decode()
            lags += [metric_sum(text, "hub_consumer_lag"), metric_sum(text, "hub_audit_lag")]
        return all(v == 0 for v in lags)

    wait_for(settled, timeout=30, what="consumer and audit lag back to 0")
    assert metric_samples(texts[0], "hub_checkpoint_age_seconds")


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_metrics_report_each_workers_process(run: Run) -> None:
    """process_* series come from the worker itself: its memory is what an operator watches."""
    children = Path(f"/proc/{run.proc.pid}/task/{run.proc.pid}/children").read_text().split()
    workers = [
        int(pid)
        for pid in children
        if b"hub.agents.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(workers) == 2
    for slot in (0, 1):
        text = http_get(run.worker_url(slot, "/metrics"))[1].decode()
        reported = metric_sum(text, "process_resident_memory_bytes")
        actual = [_rss_bytes(pid) for pid in workers]  # read after the scrape: a moment later
        assert any(abs(reported - rss) <= 0.2 * rss for rss in actual), (reported, actual)
        assert metric_sum(text, "process_open_fds") > 0
        # its stores' page caches, which the process_* series cannot tell apart
        assert 0 < metric_sum(text, "hub_sqlite_memory_bytes") < reported
        assert metric_sum(text, "process_cpu_seconds_total") > 0
        assert metric_samples(text, "python_gc_collections_total")
        assert metric_samples(text, "python_info")
    # each worker capped glibc's malloc arenas before its first thread (hub.agents.allocator)
    lines = (run.data_dir / "worker.log").read_text().splitlines()
    arenas = [json.loads(line) for line in lines if '"malloc_arenas"' in line]
    assert [a["limit"] for a in arenas] == [1, 1]


def test_health_and_readiness(run: Run) -> None:
    for slot in (0, 1):
        status, body = http_get(run.worker_url(slot, "/healthz"))
        assert status == 200, body
        assert json.loads(body)["status"] == "ok"
        status, body = http_get(run.worker_url(slot, "/readyz"))
        assert status == 200, body
        checks = json.loads(body)["checks"]
        assert checks == {
            "loop": True,
            "broker_reachable": True,
            "coordinator_known": True,
            "partitions_assigned": True,
            "audit_gate_open": True,
            "not_stopping": True,
        }
        assert http_get(run.worker_url(slot, "/nothing"))[0] == 404


def test_logs_carry_no_personal_data(run: Run) -> None:
    # stop the hub first, so shutdown logging is in the scan too
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=60) == 0
    secrets = sensitive_values(run.events)
    assert len(secrets) > 100  # the scan has something to look for
    logs = {path.name: path.read_text(errors="replace") for path in run.data_dir.glob("*.log")}
    logs["hub-up.stderr"] = run.stderr_path.read_text(errors="replace")
    logs["hub-up.stdout"] = "\n".join(run.stdout)
    assert "worker.log" in logs
    assert '"event": "routed"' in logs["worker.log"]  # the workers did log what they did
    for line in logs["worker.log"].splitlines():  # structured: every line one JSON object
        assert isinstance(json.loads(line), dict), line
    found = sorted(
        (name, value) for name, text in logs.items() for value in secrets if value in text
    )
    assert not found, found[:20]
