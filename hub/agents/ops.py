"""Operations endpoint of one worker: Prometheus metrics, ``/healthz`` and ``/readyz``.

The HTTP server runs in a thread of its own, so a probe still gets an answer (a failing one)
when the worker's event loop is stuck: ``/healthz`` reports the age of the loop's last
heartbeat, which only the loop can refresh. Everything the thread reads is a snapshot the
loop writes once a second (``OpsState.tick``) or a thread-safe prometheus_client metric, so
the thread never touches faust or aiokafka objects.

Readiness and lag come from the worker's own look at the broker (``hub.agents.health``), not
from faust's cached highwater, which stays as it was when the broker dies: not ready while the
broker does not answer or the router's consumer has lost its group coordinator.

Label cardinality is bounded by the protocol and the schema registry: parties, event types,
inbound topics and quarantine reasons, never event ids, case references or pseudonyms.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.agents.routing import RouteResult
from hub.log import get_logger
from hub.models import AuditDecision
from hub.state.sqlite_memory import sqlite_memory

__all__ = ["HEARTBEAT_LIMIT_S", "Metrics", "OpsServer", "OpsState"]

_log = get_logger("ops")

#: /healthz fails when the event loop has not ticked for this long (a stuck or blocked loop)
HEARTBEAT_LIMIT_S = 10.0


@dataclass
class OpsState:
    """What the loop knows, copied for the HTTP thread once a second."""

    started: float = field(default_factory=time.monotonic)
    heartbeat: float = field(default_factory=time.monotonic)
    partitions: int = 0
    audit_open: bool = True
    stopping: bool = False
    consumer_lag: dict[str, int] = field(default_factory=dict)
    audit_lag: int = 0
    checkpoint_age: float = 0.0
    broker_reachable: bool = True
    coordinator_known: bool = True
    #: events lost with the embedded broker, per inbound topic (``hub.broker.watch``)
    events_lost: dict[str, int] = field(default_factory=dict)

    def tick(
        self,
        *,
        partitions: int,
        audit_open: bool,
        consumer_lag: Mapping[str, int],
        audit_lag: int,
        checkpoint_age: float,
    ) -> None:
        """Refresh the snapshot (called on the event loop)."""
        self.partitions = partitions
        self.audit_open = audit_open
        self.consumer_lag = dict(consumer_lag)
        self.audit_lag = audit_lag
        self.checkpoint_age = checkpoint_age
        self.heartbeat = time.monotonic()

    def observe_broker(
        self, *, reachable: bool, coordinator_known: bool, events_lost: Mapping[str, int]
    ) -> None:
        """The worker's last look at its broker (``hub.agents.health``, on the event loop)."""
        self.broker_reachable = reachable
        self.coordinator_known = coordinator_known
        self.events_lost = dict(events_lost)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Alive: the loop ticked within ``HEARTBEAT_LIMIT_S``."""
        age = time.monotonic() - self.heartbeat
        ok = age <= HEARTBEAT_LIMIT_S
        return ok, {"status": "ok" if ok else "loop_stalled", "heartbeat_age_s": round(age, 3)}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready: alive, not stopping, partitions assigned, audit gate open, broker there.

        The broker is there when it answered the worker's last look (within a second or two)
        and the router's consumer knows its group coordinator: without either, nothing is
        consumed, produced or committed.
        """
        alive, _ = self.health()
        checks = {
            "loop": alive,
            "broker_reachable": self.broker_reachable,
            "coordinator_known": self.coordinator_known,
            "partitions_assigned": self.partitions > 0,
            "audit_gate_open": self.audit_open,
            "not_stopping": not self.stopping,
        }
        ok = all(checks.values())
        return ok, {"status": "ready" if ok else "not_ready", "checks": checks}


class _Gauges(Collector):
    """Gauges read from the snapshot at scrape time."""

    def __init__(self, state: OpsState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        lag = GaugeMetricFamily(
            "hub_consumer_lag",
            "records on the inbound topics this worker owns not yet committed by the router "
            "(the broker's end offsets, as last answered, minus the committed offsets)",
            labels=["topic"],
        )
        for topic, value in sorted(state.consumer_lag.items()):
            lag.add_metric([topic], value)
        yield lag
        yield GaugeMetricFamily(
            "hub_audit_lag",
            "audit messages this worker produced (one per routed batch) that the audit store "
            "does not hold yet; delivery pauses when the oldest is older than "
            "HUB_AUDIT_OUTAGE_LIMIT",
            value=state.audit_lag,
        )
        yield GaugeMetricFamily(
            "hub_checkpoint_age_seconds",
            "seconds since this worker's audit sink last signed a checkpoint (or started)",
            value=state.checkpoint_age,
        )
        yield GaugeMetricFamily(
            "hub_broker_reachable",
            "1 when the broker answered this worker's last look (end offsets or metadata)",
            value=float(state.broker_reachable),
        )
        lost = CounterMetricFamily(
            "hub_events_lost",
            "inbound events the embedded broker held, never decided, lost when it died "
            "(counted by hub up after restarting it; over the life of the data dir)",
            labels=["topic"],
        )
        for topic, value in sorted(state.events_lost.items()):
            lost.add_metric([topic], value)
        yield lost
        yield GaugeMetricFamily(
            "hub_partitions_assigned", "partitions assigned to this worker", value=state.partitions
        )
        held = sqlite_memory()
        if held is not None:
            yield GaugeMetricFamily(
                "hub_sqlite_memory_bytes",
                "memory SQLite's allocator holds in this worker (the page caches of its stores "
                "and registers, up to each connection's cache_size): part of its resident "
                "memory that Python's own counters do not see",
                value=held,
            )
        yield GaugeMetricFamily(
            "hub_ready", "1 when /readyz answers 200", value=float(state.readiness()[0])
        )


class Metrics:
    """The worker's Prometheus registry (its own, not the process-global one)."""

    def __init__(self, state: OpsState) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # the standard process_* (resident memory, CPU seconds, open fds), python_gc_* and
        # python_info series: a worker's memory under steady load is watched, not assumed
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.events_in = Counter(
            "hub_events_in",
            "inbound records read by the router",
            ["topic"],
            registry=self.registry,
        )
        self.delivered = Counter(
            "hub_delivered",
            "deliveries written (one per recipient of an event)",
            ["recipient", "event_type"],
            registry=self.registry,
        )
        self.withheld = Counter(
            "hub_withheld",
            "negative decisions audited (a rule's party whose condition failed, a prohibition)",
            ["recipient", "event_type"],
            registry=self.registry,
        )
        self.quarantined = Counter(
            "hub_quarantined",
            "inbound records refused to hub.quarantine",
            ["reason"],
            registry=self.registry,
        )
        self.refused = Counter(
            "hub_audit_refused",
            "hub.audit messages the sink refused to store (forged_audit_message: no valid MAC; "
            "unreadable_audit_message): each is quarantined, audited, and an alert to the IG role",
            ["reason"],
            registry=self.registry,
        )
        self.registry.register(_Gauges(state))
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def observe(self, topic: str, result: RouteResult) -> None:
        """Count one routed record (after its outputs were acknowledged by the broker)."""
        self._child(self.events_in, topic).inc()
        if result.quarantined is not None:
            self._child(self.quarantined, result.quarantined.value).inc()
        for record in result.audit:
            if record.decision == AuditDecision.DELIVERED:
                counter = self.delivered
            elif record.decision == AuditDecision.WITHHELD:
                counter = self.withheld
            else:
                continue
            self._child(counter, record.recipient or "-", str(record.event_type)).inc()

    def _child(self, counter: Counter, *values: str) -> Any:
        """``counter.labels(*values)``, looked up once per label set.

        ``labels`` takes the metric's lock and checks the values on every call, and a routed
        event counts one child per recipient; the children never change once made.
        """
        key = (id(counter), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*values)
        return child

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class OpsServer:
    """``GET /metrics``, ``/healthz``, ``/readyz`` on a thread (stdlib HTTP server)."""

    def __init__(self, *, host: str, port: int, state: OpsState, metrics: Metrics) -> None:
        self.state = state
        self.metrics = metrics
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="hub-ops", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0 in tests)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve until ``stop``."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, ops.metrics.exposition(), "text/plain; version=0.0.4")
                    return
                if self.path in ("/healthz", "/readyz"):
                    check = ops.state.health if self.path == "/healthz" else ops.state.readiness
                    ok, body = check()
                    self._send(200 if ok else 503, json.dumps(body).encode(), "application/json")
                    return
                self._send(404, b'{"status":"not_found"}', "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Probes every few seconds are not worth a log line each."""

        return Handler
