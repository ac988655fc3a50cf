"""The design floor (issue 16): the least CPU the hub's wire contract needs, on the same broker.

Two standalone faust-streaming agents, each a real worker process on the embedded broker
(as ``bench/passthrough.py`` runs bare faust, and ``hub up`` runs the router), reading
batches with ``stream.take_events`` and producing with ``send_soon``:

- **(a) with crypto**, per event: verify one Ed25519 signature (the publisher's, over the
  record), decode the Avro payload (fastavro, the event type's schema), and for each of
  ``recipients`` (4) recipients derive a case key (HKDF-SHA256 from a per-recipient epoch
  key), seal the recipient's minimised fields (canonical JSON) with AES-256-GCM under a
  canonical-JSON context, build the canonical JSON signing input (headers, key, SHA-256 of
  the value) and sign it (Ed25519). Then produce the 4 deliveries (one topic per recipient,
  with their headers) and 1 audit message (one record per delivery, with the SHA-256 of
  the exact bytes delivered), and ack (faust commits the offsets).
- **(b) without crypto**: the same fan-out (4 deliveries, 1 audit message, ack) of the
  record as it came; no signature, no Avro, no sealing.

Nothing here imports the hub's router, envelope or key store: the floor must not move when
the hub's code does. The inputs are SOCJAG intelligence items from ``hub.scenarios``, Avro
encoded with the hub's schema and signed by a publisher key made for the run.

Measured as in ``bench/passthrough.py``: one event goes through first (start-up and the
group rebalance untimed), then the clock and the CPU meter run from producing the first of
``events`` to reading back the last of its ``events x (recipients + 1)`` output records.
CPU per event is user plus system time from ``/proc`` of the worker and of the broker.

Beside the floors, the hub's own figures from ``bench/results/hub.json`` (``bench hub``):
run ``python -m bench hub floor`` for both in one run (``floor`` after ``hub``, so it reads
the fresh hub record; ``python -m bench`` runs every benchmark in that order too). The
ratios say how far the hub is from its floor: throughput hub/floor (issue 16 wants at
least 0.7 of floor (a)), CPU per event hub/floor.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gc
import hashlib
import hmac
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench._harness import ROOT, Benchmark, CpuMeter, Measured

__all__ = ["BENCHMARK", "COLUMNS", "FanOut", "hub_ratios", "run", "signed_inputs", "write_config"]

COLUMNS = [
    "variant",
    "events",
    "events/s",
    "worker CPU ms/event",
    "broker CPU ms/event",
    "hub/floor events/s",
    "hub/floor CPU (worker+broker)",
]
EVENT_TYPE = "uk.csp.socjag.intel.v1"
#: the fields each recipient may see (as the fan-out benchmark's rule allows)
FIELDS = ("category", "classification", "intel_grade", "intel_ref", "location", "summary")
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_ZERO_SALT = bytes(32)


def _canonical(data: Any) -> bytes:
    return _CANONICAL.encode(data).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FanOut:
    """The per-event work of each variant, outside faust (so a unit test can run it).

    Args:
        config: what ``write_config`` wrote: keys (raw, hex), recipients, the Avro schema.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        import fastavro
        from cryptography.hazmat.primitives.asymmetric.ed25519 import (
            Ed25519PrivateKey,
            Ed25519PublicKey,
        )

        self.recipients: list[str] = list(config["recipients"])
        self._publisher = Ed25519PublicKey.from_public_bytes(
            bytes.fromhex(config["publisher_public"])
        )
        self._hub = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(config["hub_private"]))
        self._hub_kid: str = config["hub_kid"]
        self._epochs = {r: bytes.fromhex(k) for r, k in config["epoch_keys"].items()}
        self._dek_ids: dict[str, str] = dict(config["dek_ids"])
        self._schema = fastavro.parse_schema(config["schema"])
        self._reader = fastavro.schemaless_reader

    def crypto(
        self, key: bytes, value: bytes, headers: Mapping[str, bytes]
    ) -> list[tuple[str, bytes, list[tuple[str, bytes]]]]:
        """(a): verify, decode, then derive, seal, sign for each recipient; plus the audit.

        Returns (recipient or "audit", value, headers) for each output record.
        """
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._publisher.verify(headers["ce_hubsig"], value)  # raises InvalidSignature
        # a record schema decodes to a dict (fastavro types it as any Avro value)
        decoded = self._reader(io.BytesIO(value), self._schema, self._schema)
        data: dict[str, Any] = decoded  # type: ignore[assignment]
        event_id = headers["ce_id"].decode()
        key_b64 = _b64(key)
        plaintext = _canonical({f: data[f] for f in FIELDS if f in data})
        out: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
        audit = []
        for recipient in self.recipients:
            dek_id = self._dek_ids[recipient]
            info = b"hub/case/v1\x00" + dek_id.encode() + b"\x00" + key
            prk = hmac.digest(_ZERO_SALT, self._epochs[recipient], "sha256")  # RFC 5869
            case_key = hmac.digest(prk, info + b"\x01", "sha256")
            text = {
                "ce_id": event_id,
                "ce_type": EVENT_TYPE,
                "ce_hubrecipient": recipient,
                "ce_hubdekid": dek_id,
                "ce_hubsigkid": self._hub_kid,
                "ce_hubfields": ",".join(FIELDS),
            }
            aad = _canonical(
                {"id": event_id, "recipient": recipient, "dek": dek_id, "key": key_b64}
            )
            nonce = os.urandom(12)
            sealed = nonce + AESGCM(case_key).encrypt(nonce, plaintext, aad)
            digest = hashlib.sha256(sealed).hexdigest()
            signed = _canonical({"headers": text, "key": key_b64, "value_sha256": digest})
            text["ce_hubsig"] = _b64(self._hub.sign(signed))
            out.append((recipient, sealed, [(k, v.encode()) for k, v in sorted(text.items())]))
            audit.append({"event_id": event_id, "recipient": recipient, "sha256": digest})
        out.append(("audit", _canonical({"records": audit}), []))
        return out

    def plain(
        self, key: bytes, value: bytes, headers: Mapping[str, bytes]
    ) -> list[tuple[str, bytes, list[tuple[str, bytes]]]]:
        """(b): the same fan-out of the record as it came, and an audit message."""
        event_id = headers["ce_id"].decode()
        out = [(r, value, [("ce_id", headers["ce_id"])]) for r in self.recipients]
        audit = [{"event_id": event_id, "recipient": r} for r in self.recipients]
        out.append(("audit", _canonical({"records": audit}), []))
        return out


# -- the bench side ----------------------------------------------------------------------


def write_config(path: Path, recipients: int) -> tuple[dict[str, Any], Any]:
    """Keys for the run, the recipients and the schema; returns it and the publisher key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    publisher = Ed25519PrivateKey.generate()
    hub = Ed25519PrivateKey.generate()
    names = [f"agency-{i:02d}" for i in range(1, recipients + 1)]
    schema_file = ROOT / "hub" / "schemas" / f"{EVENT_TYPE}.avsc"
    config = {
        "recipients": names,
        "publisher_public": publisher.public_key().public_bytes_raw().hex(),
        "hub_private": hub.private_bytes_raw().hex(),
        "hub_kid": "hub#" + hashlib.sha256(hub.public_key().public_bytes_raw()).hexdigest()[:16],
        "epoch_keys": {n: os.urandom(32).hex() for n in names},
        "dek_ids": {n: _b64(os.urandom(12)).replace("+", "-").replace("/", "_") for n in names},
        "schema": json.loads(schema_file.read_text(encoding="utf-8")),
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    path.chmod(0o600)
    return config, publisher


def signed_inputs(publisher: Any, count: int, seed: int) -> list[Any]:
    """``count`` signed, Avro-encoded SOCJAG items: (key, value, headers)."""
    from hub.scenarios.north_worcs import SOCJAG_INTEL, Scenario
    from hub.schemas import SchemaRegistry

    registry = SchemaRegistry()  # the hub's encoder, so the bytes are what agencies send
    out: list[Any] = []
    for item in Scenario(seed=seed).events(100 * count + 1000):
        if item.event_type != SOCJAG_INTEL or item.expect != "routed":
            continue
        value = registry.encode(EVENT_TYPE, item.data)
        event_id = str(uuid.uuid4())
        headers = [("ce_id", event_id.encode()), ("ce_hubsig", publisher.sign(value))]
        out.append(((item.key or event_id).encode(), value, headers))
        if len(out) == count:
            return out
    raise RuntimeError(f"floor: only {len(out)} of {count} {EVENT_TYPE} items in seed {seed}")


async def _create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=1, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def _drive(
    bootstrap: str,
    source: str,
    outputs: Sequence[str],
    inputs: Sequence[Any],
    *,
    per_event: int,
    within: float,
    meter: CpuMeter,
) -> float:
    """One event through (warm-up), then seconds for the rest to come out completely."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1024 * 1024
    )
    await reader.start()
    await producer.start()
    deadline = time.monotonic() + within
    seen = 0

    async def read_until(count: int) -> None:
        nonlocal seen
        while seen < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"floor: {seen} of {count} output records before the deadline")
            batches = await reader.getmany(timeout_ms=100, max_records=10000)
            seen += sum(len(records) for records in batches.values())

    try:
        reader.assign([TopicPartition(t, 0) for t in outputs])
        await reader.seek_to_beginning()
        key, value, headers = inputs[0]
        await producer.send_and_wait(source, key=key, value=value, headers=headers)
        await read_until(per_event)
        gc.collect()  # the load generator's heap frozen, as in the hub's drive
        gc.freeze()
        t0 = time.perf_counter()
        meter.start()
        for key, value, headers in inputs[1:]:
            await producer.send(source, key=key, value=value, headers=headers)
        await producer.flush()
        await read_until(per_event * len(inputs))
        return time.perf_counter() - t0
    finally:
        gc.unfreeze()
        await producer.stop()
        await reader.stop()


def _variant(
    variant: str,
    bootstrap: str,
    broker_pid: int,
    config_path: Path,
    inputs: Sequence[Any],
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """Run one worker process over fresh topics; its rate and CPU per event."""
    tag = uuid.uuid4().hex[:8]
    recipients = json.loads(config_path.read_text(encoding="utf-8"))["recipients"]
    source = f"floor-{tag}-in"
    outputs = [f"floor-{tag}-out-{r}" for r in recipients] + [f"floor-{tag}-audit"]
    asyncio.run(_create_topics(bootstrap, [source, *outputs]))
    datadir = tempfile.TemporaryDirectory(prefix="bench-floor-")  # faust's table dir
    cmd = [sys.executable, "-m", "bench.floor", "worker", bootstrap, variant, str(config_path)]
    cmd += [source, f"floor-{tag}", str(params["batch"]), str(params["within_s"]), datadir.name]
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    meter = CpuMeter({"worker": [proc.pid], "broker": [broker_pid], "bench": [os.getpid()]})
    events = len(inputs) - 1  # the first is the warm-up
    try:
        seconds = asyncio.run(
            _drive(
                bootstrap,
                source,
                outputs,
                inputs,
                per_event=len(outputs),
                within=float(params["timeout_s"]),
                meter=meter,
            )
        )
        cpu = meter.ms_per(events)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        datadir.cleanup()
    return {
        "operation": "floor",
        "variant": variant,
        "events": events,
        "recipients": len(recipients),
        "outputs_per_event": len(outputs),
        "elapsed_s": round(seconds, 3),
        "events_per_s": round(events / seconds, 1),
        "cpu_ms_per_event": cpu,
    }


def hub_ratios(hub_record: Mapping[str, Any] | None, floor: Mapping[str, Any]) -> dict[str, Any]:
    """The hub's one-worker throughput and CPU per event against one floor measurement.

    ``hub_record`` is a ``bench hub`` result (``None`` when there is none): its first
    unprofiled one-worker ``hub throughput`` measurement is used.
    """
    if hub_record is None:
        return {}
    found = [
        m
        for m in hub_record.get("measurements", [])
        if m.get("operation") == "hub throughput"
        and m.get("workers") == 1
        and not m.get("profiled")
    ]
    if not found:
        return {}
    hub = found[0]
    hub_cpu = hub["cpu_ms_per_event"]
    # every hub process (workers, broker, an audit sink of its own, webhooks), not the bench
    hub_total = sum(float(v) for k, v in hub_cpu.items() if k != "bench")
    floor_cpu = floor["cpu_ms_per_event"]
    floor_total = float(floor_cpu["worker"]) + float(floor_cpu["broker"])
    return {
        "hub_started_at": hub_record.get("started_at"),
        "hub_events_per_s": hub["events_per_s"],
        "hub_cpu_ms_per_event": {k: v for k, v in hub_cpu.items() if k != "bench"},
        "hub_over_floor_events_per_s": round(float(hub["events_per_s"]) / floor["events_per_s"], 3),
        "hub_over_floor_cpu": round(hub_total / floor_total, 2) if floor_total else None,
    }


def _load_hub(path: Path) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return record if record.get("benchmark") == "hub" else None


def run(params: Mapping[str, Any]) -> Measured:
    """Start a broker, measure both floors on it, stop it; set the hub's record beside them."""
    from hub.broker import EmbeddedBroker

    events = int(params["events"])
    if events < 1 or int(params["recipients"]) < 1:
        raise ValueError(f"floor: expected events >= 1 and recipients >= 1, got {dict(params)}")
    started = dt.datetime.now(dt.UTC)
    measurements: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-floor-cfg-") as tmp:
        config_path = Path(tmp) / "floor.json"
        _config, publisher = write_config(config_path, int(params["recipients"]))
        inputs = signed_inputs(publisher, events + 1, int(params["seed"]))
        broker = EmbeddedBroker()
        bootstrap = broker.start()
        try:
            for variant in ("crypto", "plain"):
                measurements.append(
                    _variant(variant, bootstrap, broker.pid or 0, config_path, inputs, params)
                )
        finally:
            broker.stop()
    hub_path = ROOT / str(params["hub_results"])
    hub_record = _load_hub(hub_path)
    rows: list[list[Any]] = []
    for m in measurements:
        m.update(hub_ratios(hub_record, m))
        rows.append(
            [
                "(a) with crypto" if m["variant"] == "crypto" else "(b) without crypto",
                m["events"],
                round(m["events_per_s"]),
                m["cpu_ms_per_event"]["worker"],
                m["cpu_ms_per_event"]["broker"],
                m.get("hub_over_floor_events_per_s"),
                m.get("hub_over_floor_cpu"),
            ]
        )
    hub_when = hub_record.get("started_at") if hub_record else None
    notes = [
        f"Two standalone faust agents (worker processes, `stream.take_events({params['batch']}, "
        f"within={params['within_s']})`, `send_soon`) on one embedded Tansu broker, "
        f"{events} SOCJAG items each, {params['recipients']} recipients: per event "
        f"{params['recipients']} deliveries (a topic each) and 1 audit message. (a): verify one "
        "Ed25519 signature, decode Avro, then per recipient HKDF-SHA256 case key, AES-256-GCM "
        "seal of the minimised fields, canonical JSON signing input, Ed25519 signature. "
        "(b): the same fan-out of the record as it came.",
        "CPU per event: user plus system time of the worker and of the broker from /proc over "
        "the timed part (the bench process, which produces the inputs and reads every output "
        "back, is in the result file as `bench`).",
        (
            f"Hub figures from {params['hub_results']} (bench hub, started {hub_when}, one "
            "worker, unprofiled): hub/floor events/s is the hub's throughput over the floor's "
            "(issue 16: at least 0.7 against (a)); hub/floor CPU is the CPU per event of every "
            "hub process (workers, broker, an audit sink) over the floor's worker plus broker. "
            "Same run when the hub started just before this floor (which started "
            f"{started.isoformat(timespec='seconds')}): `python -m bench hub floor`."
            if hub_record
            else f"No hub record at {params['hub_results']}: run `python -m bench hub floor` "
            "for the ratios."
        ),
        "A shared two-core machine: the broker, the worker and the bench share the cores, and "
        "other work on the machine moves the figures; compare within one run.",
    ]
    return Measured(measurements=measurements, columns=COLUMNS, rows=rows, notes=notes)


def _worker(
    bootstrap: str,
    variant: str,
    config_path: str,
    source: str,
    prefix: str,
    batch: int,
    within: float,
    datadir: str,
) -> None:
    """The faust side (in its own process): the fan-out agent, run until terminated."""
    import faust

    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    work = FanOut(config)
    step = work.crypto if variant == "crypto" else work.plain
    app = faust.App(
        f"bench-floor-{variant}-{source}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        datadir=datadir,
        topic_partitions=1,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        broker_rebalance_timeout=3.0,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
    )
    topic_in = app.topic(source, key_type=bytes, value_type=bytes)
    sinks = {
        r: app.topic(f"{prefix}-out-{r}", key_type=bytes, value_type=bytes) for r in work.recipients
    }
    sinks["audit"] = app.topic(f"{prefix}-audit", key_type=bytes, value_type=bytes)

    async def fan_out(stream: Any) -> None:
        async for events in stream.take_events(batch, within=within):
            for event in events:
                message = event.message
                headers = dict(message.headers or ())
                for target, value, out_headers in step(message.key or b"", message.value, headers):
                    sinks[target].send_soon(key=message.key, value=value, headers=out_headers)

    app.agent(topic_in, name="fan_out")(fan_out)
    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # else faust sets the root logger to DEBUG (as the hub's worker does)
    gc.collect()  # the start-up heap out of the collector's way, as the hub's worker does
    gc.freeze()  # (hub.agents.heap), so the floor keeps every saving the hub makes
    worker.execute_from_commandline()


BENCHMARK = Benchmark(
    name="floor",
    summary="The design floor: two standalone faust agents doing the hub's per-event contract "
    "(a) with its crypto and (b) without, on the embedded broker, beside the hub's figures "
    "(issue 16).",
    run=run,
    defaults={
        "events": 5000,
        "recipients": 4,
        "batch": 500,
        "within_s": 0.05,
        "seed": 11,
        "timeout_s": 180.0,
        "hub_results": "bench/results/hub.json",
    },
    quick={"events": 100, "timeout_s": 60.0},
)


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _b, _variant_name, _config, _source, _prefix, _batch, _within, _datadir = sys.argv[2:10]
    _worker(_b, _variant_name, _config, _source, _prefix, int(_batch), float(_within), _datadir)
