"""The router's cost per event as recipients per event grow: 1, 4, 16, 64 (issue 3).

Issue 3 asks for "cost per event as recipients per event grow (1, 4, 16, 64)". This measures
``Router.route`` in-process, exactly as a worker runs it (``hub.agents.app.build_router``
with a ``GroupSync``): the publisher's signature checked and its payload decrypted, the Avro
payload decoded, the protocol evaluated, the payload minimised per recipient, each delivery
sealed (epoch data key, AES-256-GCM, Ed25519 signature) and escrowed, one audit record per
recipient built, and the ``AuditBatch`` JSON the worker hands to the producer serialised.
As in a worker's route loop, events are routed in batches of ``HUB_ROUTE_BATCH`` (64) and the
case keys a batch creates are written together at its end (``Router.new_keys``, one
transaction); that write is timed with the batch's last event. There is no broker and no
audit store write: the broker's cost is measured by ``bench/hub_e2e.py`` and the store's by
``bench/audit_scale.py``.

For each N a synthetic protocol is written to a temporary directory: one publisher (a police
force) and N recipient agencies (``agency-01`` ...) holding one role, and one rule that
delivers SOCJAG intelligence (``uk.csp.socjag.intel.v1``, drawn from ``hub.scenarios``) to
that role with an allow-list of a few fields, a lawful basis, an s115 gateway, a retention
period and a declared agreement. ``hub policy check``'s checker runs on it first and the run
fails on any finding. Keys are made as ``hub up`` makes them (``ensure_dev_keys``), events are
sealed and signed by the publisher's ``HubClient.build``, ``warmup`` of them are routed
untimed, then every one of ``events`` is timed on its own with ``perf_counter_ns`` (garbage
collector paused, as in every benchmark here). Every event must be delivered to all N
recipients: the run fails otherwise, so a misconfigured protocol cannot report a number.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from bench import floor
from bench._harness import Benchmark, Measured, Stats, machine_info
from hub.agents.app import build_router
from hub.broker import topics
from hub.client.sdk import HubClient
from hub.durable import GroupSync
from hub.envelope import wire
from hub.keys import FileKeyStore, KeySuite
from hub.keys.store import ensure_dev_keys
from hub.models import AuditBatch, Origin
from hub.policies.check import check_protocol
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol
from hub.scenarios.north_worcs import SOCJAG_INTEL, Scenario, ScenarioEvent
from hub.schemas import SchemaRegistry
from hub.settings import HubSettings

__all__ = ["BENCHMARK", "COLUMNS", "run"]

EVENT_TYPE = SOCJAG_INTEL
PUBLISHER = "bench-police"
ROLE = "fanout-recipient"
RULE = "fanout-intel-to-agencies"
AGREEMENT = "BENCH-FANOUT-ISA"
#: the allow-list: a few of the item's fields, never its source grade or handling details
FIELDS = ("intel_ref", "category", "location", "intel_grade", "classification", "summary")

COLUMNS = [
    "recipients",
    "events",
    "events/s",
    "median µs per event",
    "p95 µs per event",
    "median µs per recipient",
    "audit JSON median µs",
    "CPU µs per event",
    "deliveries",
    "group sync ms",
    "floor (a) CPU µs per event",
    "route / floor (a)",
]


def recipient_ids(n: int) -> list[str]:
    """``agency-01`` ... ``agency-NN``."""
    width = max(2, len(str(n)))
    return [f"agency-{i:0{width}d}" for i in range(1, n + 1)]


def protocol_yaml(n: int, *, today: dt.date) -> str:
    """A valid protocol: one publisher, ``n`` recipients, one rule delivering to them all."""
    review = (today + dt.timedelta(days=365)).isoformat()
    parties = [
        f"  - id: {PUBLISHER}\n    name: Benchmark police force\n    kind: police\n"
        "    roles: [socjag-publisher]\n"
    ]
    parties += [
        f"  - id: {pid}\n    name: Benchmark agency {pid}\n    kind: council\n    roles: [{ROLE}]\n"
        for pid in recipient_ids(n)
    ]
    return (
        "protocol:\n"
        f"  id: bench-fanout-{n}\n"
        f"  title: Fan-out benchmark protocol, {n} recipient(s)\n"
        '  version: "1"\n'
        f"  review_date: {review}\n"
        "  audit_retention: P6Y\n"
        "crypto:\n"
        "  suite: x25519\n"
        "relevant_authorities: [police, council]\n"
        "parties:\n" + "".join(parties) + "agreements:\n"
        f"  - id: {AGREEMENT}\n"
        "    title: Fan-out benchmark information sharing agreement\n"
        f"    review_date: {review}\n"
        f"    signatories: [{PUBLISHER}]\n"
        "rules:\n"
        f"  - id: {RULE}\n"
        "    description: Every benchmark agency receives a minimised intelligence item.\n"
        f"    events: [{EVENT_TYPE}]\n"
        f"    publishers: {{parties: [{PUBLISHER}]}}\n"
        "    recipients:\n"
        f"      - roles: [{ROLE}]\n"
        f"    fields: [{', '.join(FIELDS)}]\n"
        "    gateway: Crime and Disorder Act 1998 s115\n"
        "    lawful_basis: UK GDPR Art 6(1)(e) public task\n"
        "    conditions: [DPA 2018 Sch 1 para 10 preventing or detecting unlawful acts (Art 10)]\n"
        "    purpose: Disrupt serious and organised crime (benchmark)\n"
        "    retention: P2Y\n"
        f"    agreement: {AGREEMENT}\n"
    )


def write_protocol(path: Path, n: int, registry: SchemaRegistry) -> Protocol:
    """Write the protocol for ``n`` recipients, prove it with the checker, load it.

    Raises:
        RuntimeError: ``hub policy check`` reports an error or a warning for it.
    """
    today = dt.date.today()
    path.write_text(protocol_yaml(n, today=today), encoding="utf-8")
    report = check_protocol(path, registry, today=today)
    if report.errors or report.warnings:
        raise RuntimeError(
            f"fanout: the synthetic protocol for {n} recipient(s) fails hub policy check:\n"
            + "\n".join(report.lines())
        )
    return load_protocol(path)


def scenario_events(count: int, *, seed: int) -> list[ScenarioEvent]:
    """The first ``count`` SOCJAG intelligence items of a seed's scenario stream."""
    out: list[ScenarioEvent] = []
    stream: Iterator[ScenarioEvent] = Scenario(seed=seed).events(100 * count + 1000)
    for item in stream:
        if item.event_type == EVENT_TYPE and item.expect == "routed":
            out.append(item)
            if len(out) == count:
                return out
    raise RuntimeError(f"fanout: only {len(out)} of {count} {EVENT_TYPE} events in seed {seed}")


def _settings(data_dir: Path, protocol: Path) -> HubSettings:
    return HubSettings(
        data_dir=data_dir,
        kafka_bootstrap="unused:1",
        protocol=protocol,
        workflow_interval=0,
        log_level="WARNING",
    )


class _Case:
    """One N: its own data dir, protocol, keys, router and sealed events."""

    def __init__(self, root: Path, n: int, items: list[ScenarioEvent]) -> None:
        self.n = n
        root.mkdir(parents=True)
        registry = SchemaRegistry()
        protocol_path = root / "protocol.yaml"
        self.protocol = write_protocol(protocol_path, n, registry)
        self.settings = _settings(root / "data", protocol_path)
        self.settings.data_dir.mkdir(parents=True)
        keys = FileKeyStore(self.settings.keys_dir)
        ensure_dev_keys(  # as Supervisor.start does for hub up
            keys,
            self.protocol.party_ids,
            suite=KeySuite(self.protocol.crypto.suite),
            extra_suites=[KeySuite(s) for s in self.protocol.crypto.suites[1:]],
        )
        self.group = GroupSync()
        self.router = build_router(self.settings, self.protocol, group=self.group)
        publisher = HubClient(
            PUBLISHER,
            bootstrap="unused:0",
            keys=keys,
            registry=registry,
            crypto=self.protocol.crypto,
        )
        self.messages = [
            publisher.build(item.event_type, item.data, key=item.key, subject=item.subject)
            for item in items
        ]
        self.topic = topics.inbound(PUBLISHER)

    def route(self, offset: int, message: wire.WireMessage) -> tuple[int, int, int]:
        """Route one event and serialise its audit batch; (route ns, audit JSON ns, delivered).

        Raises:
            RuntimeError: the event was not delivered to every recipient.
        """
        clock = time.perf_counter_ns
        start = clock()
        result = self.router.route(
            origin=Origin(topic=self.topic, partition=0, offset=offset),
            key=message.key,
            value=message.value,
            headers=message.headers,
            seen=lambda event_id: None,
        )
        routed = clock()
        batch = AuditBatch(records=tuple(result.audit)).model_dump_json().encode()
        done = clock()
        if (
            result.quarantined is not None
            or result.delivered != self.n
            or len(result.messages) != self.n
            or len(result.audit) != self.n
            or not batch
        ):
            reasons = sorted({r.reason or "" for r in result.audit})
            raise RuntimeError(
                f"fanout: event {result.event_id} with {self.n} recipient(s): expected "
                f"{self.n} deliveries, got {result.delivered} delivered, {result.withheld} "
                f"withheld, outcome {result.outcome}: {reasons}"
            )
        return routed - start, done - routed, result.delivered


def _warm(case: _Case, warmup: int) -> None:
    """Route the warm-up events untimed, and make their case keys durable."""
    for offset, message in enumerate(case.messages[:warmup]):
        case.route(offset, message)
    case.group.sync_to(case.group.position)


class _Timing:
    """One N's timed samples, gathered over the rounds."""

    def __init__(self) -> None:
        self.per_event: list[int] = []
        self.audit_json: list[int] = []
        self.deliveries = 0
        self.elapsed = 0.0
        self.cpu = 0.0
        self.rounds: list[float] = []  # CPU µs per event of each round
        self.sync_s = 0.0


class _Floor:
    """Floor (a)'s per-event work for N recipients (``bench.floor.FanOut.crypto``), in-process.

    Why: ``Router.route`` costs what it costs on the machine of the moment, which on a
    shared machine moves by half from one hour to the next. The floor's work (verify,
    decode, derive, seal, sign per recipient) timed in the same rounds gives a ratio that
    moves far less: the in-process counterpart of the hub benchmark's hub / floor (a).
    """

    def __init__(self, directory: Path, n: int, inputs: list[Any], publisher_public: str) -> None:
        config, _ = floor.write_config(directory / f"floor-{n}.json", n)
        config["publisher_public"] = publisher_public  # one publisher, one set of inputs
        self.work = floor.FanOut(config)
        self.inputs = [(key, value, dict(headers)) for key, value, headers in inputs]
        self.rounds: list[float] = []  # CPU µs per event of each round
        self._next = 0

    def round(self, events: int) -> None:
        """``events`` inputs through the floor's work, timed as a whole (CPU)."""
        crypto, inputs = self.work.crypto, self.inputs
        picked = [inputs[(self._next + i) % len(inputs)] for i in range(events)]
        self._next = (self._next + events) % len(inputs)
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            c0 = time.process_time()
            for key, value, headers in picked:
                crypto(key, value, headers)
            cpu = time.process_time() - c0
        finally:
            if was_enabled:
                gc.enable()
        self.rounds.append(cpu / events * 1e6)


def _floors(directory: Path, recipients: list[int], count: int, seed: int) -> list[_Floor]:
    """Floor (a) for each N, on one set of signed, Avro-encoded SOCJAG items."""
    _, publisher = floor.write_config(directory / "floor-publisher.json", 1)
    inputs = floor.signed_inputs(publisher, count, seed)
    public = publisher.public_key().public_bytes_raw().hex()
    return [_Floor(directory, n, inputs, public) for n in recipients]


def _round(case: _Case, timing: _Timing, chunk: list[tuple[int, wire.WireMessage]]) -> None:
    """Time one round of one N: every event on its own, the round's CPU as a whole."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        c0 = time.process_time()
        batch = case.settings.route_batch
        keys: AbstractContextManager[object] | None = None
        for n, (offset, message) in enumerate(chunk):
            if keys is None:  # a batch begins: its new case keys are written at its end
                keys = case.router.new_keys()
                keys.__enter__()
            route_ns, json_ns, delivered = case.route(offset, message)
            if n % batch == batch - 1 or n == len(chunk) - 1:
                written = time.perf_counter_ns()
                keys.__exit__(None, None, None)
                keys = None
                route_ns += time.perf_counter_ns() - written
            timing.per_event.append(route_ns + json_ns)
            timing.audit_json.append(json_ns)
            timing.deliveries += delivered
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        if was_enabled:
            gc.enable()
    timing.elapsed += elapsed
    timing.cpu += cpu
    timing.rounds.append(cpu / len(chunk) * 1e6)
    # once per round, as the worker's ack path does: the new case keys reach the disk
    s0 = time.perf_counter()
    case.group.sync_to(case.group.position)
    timing.sync_s += time.perf_counter() - s0


def _result(case: _Case, timing: _Timing, floor_of: _Floor) -> dict[str, Any]:
    events = len(timing.per_event)
    if timing.deliveries != events * case.n:
        raise RuntimeError(
            f"fanout: {events} events to {case.n} recipient(s) made {timing.deliveries} "
            f"deliveries, expected {events * case.n}"
        )
    stats = Stats.of(timing.per_event)
    return {
        "recipients": case.n,
        "events": events,
        "deliveries": timing.deliveries,
        "seconds": round(timing.elapsed, 4),
        "cpu_seconds": round(timing.cpu, 4),
        # the quietest round: on a shared machine other work only ever adds CPU time
        "cpu_us_per_event": round(min(timing.rounds), 1),
        "cpu_us_per_event_all_rounds": round(timing.cpu / events * 1e6, 1),
        "cpu_us_per_event_by_round": [round(r, 1) for r in timing.rounds],
        "events_per_s": round(events / timing.elapsed, 1),
        "deliveries_per_s": round(timing.deliveries / timing.elapsed, 1),
        "per_event": stats.as_dict(),
        "median_us_per_recipient": round(stats.median_us / case.n, 2),
        "audit_json": Stats.of(timing.audit_json).as_dict(),
        "group_sync_ms": round(timing.sync_s * 1000, 2),
        # the same quietest-round reading of floor (a)'s work in the same rounds
        "floor_cpu_us_per_event": round(min(floor_of.rounds), 1),
        "floor_cpu_us_per_event_by_round": [round(r, 1) for r in floor_of.rounds],
        "route_over_floor": round(min(timing.rounds) / min(floor_of.rounds), 3),
    }


def _row(m: Mapping[str, Any]) -> list[Any]:
    per_event = m["per_event"]
    return [
        m["recipients"],
        m["events"],
        round(m["events_per_s"]),
        round(per_event["median_us"], 1),
        round(per_event["p95_us"], 1),
        round(m["median_us_per_recipient"], 1),
        round(m["audit_json"]["median_us"], 1),
        round(m["cpu_us_per_event"]),
        m["deliveries"],
        round(m["group_sync_ms"], 1),
        round(m["floor_cpu_us_per_event"]),
        round(m["route_over_floor"], 2),
    ]


def _marginal(
    measurements: list[dict[str, Any]],
    *,
    key: str = "cpu_us_per_event",
    what: str = "an event",
) -> str | None:
    """Least-squares line through ``key`` (CPU µs per event) against N: fixed, per recipient.

    ``what`` names whose cost the line is, in the sentence.
    """
    if len(measurements) < 2:
        return None
    xs = [float(m["recipients"]) for m in measurements]
    ys = [float(m[key]) for m in measurements]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return (
        f"Fitted to a line (least squares over CPU µs per event), {what} costs about "
        f"{my - slope * mx:.0f} µs plus {slope:.0f} µs per recipient."
    )


#: inputs signed for floor (a)'s in-process work (reused in turn past that many events)
_FLOOR_INPUTS = 500
#: issue 16's cost line for ``Router.route``: µs per event, and per recipient
TARGET_US = (250, 60)


def _against_target(measurements: list[dict[str, Any]]) -> str:
    """Each N's CPU µs per event beside issue 16's line at that N (250 + 60 N).

    Why beside the fit as well: the fitted intercept and slope trade against each other (a
    cost that shrinks per recipient as N grows lowers the slope and raises the intercept),
    while the line says what an event with N recipients may cost; each N is held to it.
    """
    fixed, each = TARGET_US
    parts = []
    for m in measurements:
        n, cpu = int(m["recipients"]), float(m["cpu_us_per_event"])
        line = fixed + each * n
        parts.append(f"N={n} {cpu:.0f} of {line} µs ({'within' if cpu <= line else 'over'})")
    return (
        f"Against issue 16's line ({fixed} µs per event plus {each} µs per recipient): "
        + ", ".join(parts)
        + "."
    )


def _load_average() -> str:
    """The 1-minute load average, or "unknown" where the OS has none."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "unknown"


def run(params: Mapping[str, Any]) -> Measured:
    """Measure the router for every recipient count in ``params``."""
    recipients = [int(n) for n in params["recipients"]]
    events = int(params["events"])
    warmup = int(params["warmup"])
    if events < 1 or warmup < 0 or not recipients or min(recipients) < 1:
        raise ValueError(
            f"fanout: expected events >= 1, warmup >= 0 and recipients >= 1, got "
            f"events={events}, warmup={warmup}, recipients={recipients}"
        )
    rounds = max(1, min(int(params["rounds"]), events))
    load_before = _load_average()
    items = scenario_events(warmup + events, seed=int(params["seed"]))
    with tempfile.TemporaryDirectory(prefix="hub-bench-fanout-") as tmp:
        cases = [_Case(Path(tmp) / f"n{n}", n, items) for n in recipients]
        for case in cases:
            _warm(case, warmup)
        floors = _floors(
            Path(tmp), recipients, min(events, _FLOOR_INPUTS), seed=int(params["seed"])
        )
        for each in floors:
            each.round(max(1, min(warmup, _FLOOR_INPUTS)))  # warm, as the routers were
            each.rounds.clear()
        timings = [_Timing() for _ in cases]
        timed = list(enumerate(items[warmup:], start=warmup))
        for r in range(rounds):  # N by N within each round, so a busy spell hits every N
            lo, hi = events * r // rounds, events * (r + 1) // rounds
            for case, timing, each in zip(cases, timings, floors, strict=True):
                _round(case, timing, [(o, case.messages[o]) for o, _ in timed[lo:hi]])
                each.round(hi - lo)  # the floor's work right after, for as many events
        measurements = [_result(c, t, f) for c, t, f in zip(cases, timings, floors, strict=True)]
        del cases  # routers, keys and sealed events go with the temporary directory
    machine = machine_info()
    notes = [
        "In-process routing cost only: `Router.route` as a worker builds it (`build_router` "
        "with a `GroupSync`), plus the `AuditBatch` JSON it hands to the producer. No broker "
        "(see the hub benchmark) and no audit store write (see the audit benchmark).",
        "Per event: publisher signature verified and payload decrypted, Avro decoded, "
        "protocol evaluated, payload minimised per recipient, each delivery sealed "
        "(epoch data key, AES-256-GCM, Ed25519) and escrowed, one audit record per recipient.",
        f"Synthetic protocol per N (checked by `hub policy check`'s checker): one publisher, "
        f"N recipient agencies, one rule delivering {EVENT_TYPE} (from hub.scenarios) with "
        f"{len(FIELDS)} allow-listed fields. Every event delivered to all N: deliveries = "
        "events x N is asserted. Each item is a new case, so each event also creates and "
        "escrows a case key (`CaseKeys.key_for`; as in the route loop, a batch's new keys "
        "are written in one transaction at its end, `Router.new_keys`, batches of "
        "`HUB_ROUTE_BATCH` events, and the keyring's log fsynced by the group sync).",
        f"{events} timed events per N after {warmup} untimed, in {rounds} rounds taken N by "
        "N (so a busy spell on a shared machine lands on every N); each event timed on its "
        "own with `perf_counter_ns`, garbage collector paused; events/s = events / wall time "
        "of the timed loops; CPU µs per event = this process's CPU time / events in the "
        "quietest round (other work only ever adds to it; every round is in the result file, "
        "and the mean over all of them; time blocked on disk is not in it). Group sync = one "
        "`GroupSync.sync_to` after each round (new case keys to disk), not in the per-event "
        "numbers.",
        f"Measured on {machine['cpu_model'] or 'an unknown CPU'}, "
        f"{machine['cpus_usable']} usable CPU(s), Python {machine['python']}, one thread "
        "(see `machine` in the result file). 1-minute load average "
        f"{load_before} before the run, {_load_average()} after: other work on a shared "
        "machine inflates the numbers, the p95 most.",
    ]
    notes.append(
        "Floor (a) in-process (`bench.floor.FanOut.crypto`, the hub benchmark's design floor "
        "without its broker): per event one Ed25519 verify and the Avro decode, per "
        "recipient HKDF, AES-256-GCM, canonical JSON and an Ed25519 signature; timed in the "
        "same rounds right after each N's routing, for as many events, CPU of the quietest "
        "round. Route / floor (a) is the machine-independent reading of the cost: on a "
        "shared machine both move together from hour to hour."
    )
    marginal = _marginal(measurements)
    if marginal:
        notes.append(marginal)
    floor_line = _marginal(measurements, key="floor_cpu_us_per_event", what="floor (a)'s work")
    if floor_line:
        notes.append(floor_line)
    if measurements:
        notes.append(_against_target(measurements))
    return Measured(
        measurements=measurements,
        columns=COLUMNS,
        rows=[_row(m) for m in measurements],
        notes=notes,
    )


BENCHMARK = Benchmark(
    name="fanout",
    summary="Router cost per event as recipients per event grow (1, 4, 16, 64), in-process "
    "with encryption, signatures, policy, minimisation and audit records (issue 3).",
    run=run,
    defaults={
        "recipients": [1, 4, 16, 64],
        "events": 2000,
        "warmup": 200,
        "rounds": 5,
        "seed": 7,
    },
    quick={"events": 50, "warmup": 5, "rounds": 2},
)
