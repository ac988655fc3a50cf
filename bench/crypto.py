"""Seal and open cost of the envelope, per event and per recipient, with and without key reuse.

Issue 3 asks for it, and the design says why: an HPKE seal costs tens of microseconds, so
the hub reuses a per-recipient *epoch* data key (``hub.envelope.crypto.DataKeyCache``)
and pays one HPKE encapsulation per epoch, not per message. This benchmark measures that
choice on the hub's real code path, for both suites:

- **seal per event**: the router's delivery loop, ``PartyEnvelope("hub").seal`` once per
  recipient (key store lookups, epoch key, HKDF case key, AES-256-GCM with the context AAD,
  CloudEvents headers, Ed25519 signature), for 1, 4, 16 and 64 recipients. *Reuse* is the
  hub's setting (``CryptoPolicy.max_data_key_uses``, 1000 by default); *no reuse* is the
  same code with ``max_uses=1``, so every delivery gets a fresh epoch key and a fresh HPKE
  encapsulation: the real alternative, same wire format, nothing else changed.
- **open per delivery**: the recipient's ``PartyEnvelope.open`` (signature check, HPKE
  unwrap of the epoch key, or a cache hit when it was reused, HKDF, AES-GCM open), on a
  stream of distinct deliveries sealed with and without reuse.
- **primitives**: raw HPKE single-shot seal/open of a 32-byte key (the baseline the reuse
  saves), Ed25519 sign/verify of a signing input, AES-256-GCM of the payload, HKDF.

Keys are generated at run time in a temporary ``FileKeyStore`` (one store per suite: the
hub and its recipients), so nothing on disk is touched outside it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench._harness import Benchmark, Measured, Stats, time_alternating, time_calls
from hub.envelope import crypto, ed25519
from hub.envelope.party import PartyEnvelope
from hub.envelope.sealing import context_aad
from hub.keys import HUB_PARTY, FileKeyStore, KeySuite
from hub.models import EventAttributes
from hub.policies.model import CryptoPolicy

__all__ = ["BENCHMARK", "run"]

_POLICY = CryptoPolicy()
_SOURCE = "/parties/hub"
_TYPE = "uk.csp.marac.flag.raised.v1"
_KAFKA_KEY = b"CASE-2026-000123"
_EXTENSIONS = {
    "hubprotocol": "sha256:" + "ab" * 32,
    "hubrule": "marac-to-housing",
    "hubfields": "case_ref,risk_level,summary",
}


def _payload(size: int) -> bytes:
    """A minimised JSON delivery of about ``size`` bytes (content does not affect cost)."""
    body = {"case_ref": "CASE-2026-000123", "risk_level": "high", "summary": ""}
    compact = len(json.dumps(body, separators=(",", ":")))
    body["summary"] = "x" * max(0, size - compact)
    return json.dumps(body, separators=(",", ":")).encode()


def _attrs(event_id: str) -> EventAttributes:
    return EventAttributes(
        id=event_id,
        source=_SOURCE,
        type=_TYPE,
        time=dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC),
        subject="CASE-2026-000123",
        datacontenttype="application/json",
    )


def _cache(*, reuse: bool) -> crypto.DataKeyCache:
    if reuse:
        return crypto.DataKeyCache(
            max_uses=_POLICY.max_data_key_uses, max_age=_POLICY.max_data_key_age_s
        )
    return crypto.DataKeyCache(max_uses=1, max_age=_POLICY.max_data_key_age_s)


def _store(root: Path, suite: KeySuite, recipients: int) -> tuple[FileKeyStore, list[str]]:
    store = FileKeyStore(root)
    store.create_party(HUB_PARTY, suite=suite)
    parties = [f"bench-{suite.value}.r{i}" for i in range(recipients)]
    for party in parties:
        store.create_party(party, suite=suite)
    return store, parties


def _row(
    operation: str,
    suite: str,
    recipients: int | None,
    reuse: bool | None,
    stats: Stats,
    speedup: float | None = None,
) -> list[Any]:
    per = stats.median_us / recipients if recipients else None
    return [
        operation,
        suite,
        recipients,
        reuse,
        round(stats.median_us, 2),
        round(stats.p95_us, 2),
        None if per is None else round(per, 2),
        None if speedup is None else round(speedup, 2),
    ]


def _opener(
    envelope: PartyEnvelope, stream: Iterator[tuple[dict[str, str], bytes]]
) -> Callable[[], None]:
    """Each call opens the next delivery of ``stream``."""

    def open_next() -> None:
        headers, value = next(stream)
        envelope.open(headers, key=_KAFKA_KEY, value=value, expected_signer=HUB_PARTY)

    return open_next


COLUMNS = [
    "operation",
    "suite",
    "recipients",
    "key reuse",
    "median µs",
    "p95 µs",
    "median µs per recipient",
    "speed-up from reuse",
]


class _Run:
    """One run's parameters and the records and table rows it accumulates."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.warmup_fraction = float(params["warmup_fraction"])
        self.min_iterations = int(params["min_iterations"])
        self.seal_budget = int(params["seal_budget"])
        self.open_messages = int(params["open_messages"])
        self.primitive_iterations = int(params["primitive_iterations"])
        self.payload = _payload(int(params["payload_bytes"]))
        self.measurements: list[dict[str, Any]] = []
        self.rows: list[list[Any]] = []

    def warmup(self, iterations: int) -> int:
        return max(2, int(iterations * self.warmup_fraction))

    def record(self, operation: str, stats: Stats, **labels: Any) -> None:
        self.measurements.append({"operation": operation, **labels, **stats.as_dict()})

    def seal_events(self, store: FileKeyStore, parties: list[str], suite: str, n: int) -> None:
        """Seal one event to ``n`` recipients, as the router's delivery loop does."""
        iterations = max(self.min_iterations, self.seal_budget // n)
        attrs = _attrs("01JBENCH0000000000000000001")
        recipients = parties[:n]
        envelopes = {
            reuse: PartyEnvelope(HUB_PARTY, store=store, cache=_cache(reuse=reuse))
            for reuse in (True, False)
        }

        def event(envelope: PartyEnvelope) -> Callable[[], None]:
            def seal_to_all() -> None:
                for party in recipients:
                    envelope.seal(
                        attrs,
                        key=_KAFKA_KEY,
                        plaintext=self.payload,
                        recipient=party,
                        extensions=_EXTENSIONS,
                    )

            return seal_to_all

        timed = time_alternating(
            {str(reuse): event(env) for reuse, env in envelopes.items()},
            iterations=iterations,
            warmup=self.warmup(iterations),
        )
        self._pair("seal per event", suite, n, timed, envelopes)

    def open_deliveries(self, store: FileKeyStore, parties: list[str], suite: str) -> None:
        """Open a stream of distinct deliveries as their recipient, from a cold cache."""
        me = parties[0]
        iterations = max(self.min_iterations, self.open_messages)
        warmup = self.warmup(iterations)
        sealers: dict[bool, PartyEnvelope] = {}
        streams: dict[str, Callable[[], None]] = {}
        for reuse in (True, False):
            sealer = sealers[reuse] = PartyEnvelope(
                HUB_PARTY, store=store, cache=_cache(reuse=reuse)
            )
            corpus = []
            for i in range(warmup + iterations):
                sealed = sealer.seal(
                    _attrs(f"01JBENCH{i:019d}"),
                    key=_KAFKA_KEY,
                    plaintext=self.payload,
                    recipient=me,
                    extensions=_EXTENSIONS,
                )
                headers = {k: v.decode() for k, v in sealed.headers}
                corpus.append((headers, sealed.value))
            streams[str(reuse)] = _opener(PartyEnvelope(me, store=store), iter(corpus))
        timed = time_alternating(streams, iterations=iterations, warmup=warmup)
        self._pair("open per delivery", suite, None, timed, sealers)

    def _pair(
        self,
        operation: str,
        suite: str,
        n: int | None,
        timed: Mapping[str, Stats],
        envelopes: Mapping[bool, PartyEnvelope],
    ) -> None:
        """Record a with/without reuse pair, the HPKE operations it did, and the speed-up."""
        speedup = timed["False"].median_us / timed["True"].median_us
        for reuse in (True, False):
            stats, cache = timed[str(reuse)], envelopes[reuse].cache
            labels: dict[str, Any] = {"suite": suite, "reuse": reuse}
            if n is not None:
                labels["recipients"] = n
                labels["median_us_per_recipient"] = round(stats.median_us / n, 2)
            # one HPKE seal on the sending side = one HPKE open on the receiving side
            labels["hpke_per_delivery"] = round(cache.seals / (cache.seals + cache.reuses), 4)
            if reuse:
                labels["speedup_from_reuse"] = round(speedup, 2)
            self.record(operation, stats, **labels)
            self.rows.append(_row(operation, suite, n, reuse, stats, speedup if reuse else None))

    def primitive(self, operation: str, suite: str, fn: Callable[[], object]) -> None:
        n = self.primitive_iterations
        stats = time_calls(fn, iterations=n, warmup=self.warmup(n))
        self.record(operation, stats, suite=suite)
        self.rows.append(_row(operation, suite, None, None, stats))

    def hpke(self, store: FileKeyStore, parties: list[str], suite: str) -> None:
        """Raw single-shot HPKE of a 32-byte data key: the cost reuse amortises."""
        record = store.active(parties[0])
        public = record.encryption_public()
        private = store.hpke_private(record.encryption_key_id)
        hpke_suite = crypto.SUITES[suite]
        info = crypto.wrap_info(parties[0], "bench-dek")
        data_key = os.urandom(32)
        wrapped = hpke_suite.encrypt(data_key, public, info)
        self.primitive("hpke seal (raw)", suite, lambda: hpke_suite.encrypt(data_key, public, info))
        self.primitive("hpke open (raw)", suite, lambda: hpke_suite.decrypt(wrapped, private, info))

    def symmetric(self, store: FileKeyStore, parties: list[str]) -> None:
        """Ed25519 over a real signing input, AES-256-GCM of the payload, HKDF case key."""
        hub = store.active(HUB_PARTY)
        signer = store.signing_private(hub.signing_key_id)
        verifier = hub.signing_public()
        envelope = PartyEnvelope(HUB_PARTY, store=store, cache=_cache(reuse=True))
        sealed = envelope.seal(
            _attrs("01JBENCH0000000000000000002"),
            key=_KAFKA_KEY,
            plaintext=self.payload,
            recipient=parties[0],
            extensions=_EXTENSIONS,
        )
        headers = {k: v.decode() for k, v in sealed.headers}
        message = crypto.signing_input(headers, _KAFKA_KEY, sealed.value)
        signature = signer.sign(message)
        # the hub signs and verifies through libsodium (``hub.envelope.ed25519``); OpenSSL's
        # (cryptography), which gives the same signatures, is the baseline beside it
        fast = ed25519.Signer(signer)
        self.primitive("ed25519 sign (OpenSSL)", "-", lambda: signer.sign(message))
        self.primitive("ed25519 sign (libsodium: the hub's)", "-", lambda: fast.sign(message))
        self.primitive("ed25519 verify (OpenSSL)", "-", lambda: verifier.verify(signature, message))
        self.primitive(
            "ed25519 verify (libsodium: the hub's)",
            "-",
            lambda: ed25519.verify(verifier, signature, message),
        )
        case = crypto.case_key(os.urandom(32), dek_id="bench-dek", kafka_key=_KAFKA_KEY)
        aad = context_aad(headers, _KAFKA_KEY)
        blob = crypto.seal_payload(case, self.payload, aad)
        label = f"aes-256-gcm seal {len(self.payload)} B"
        self.primitive(label, "-", lambda: crypto.seal_payload(case, self.payload, aad))
        label = f"aes-256-gcm open {len(self.payload)} B"
        self.primitive(label, "-", lambda: crypto.open_payload(case, blob, aad))
        epoch = os.urandom(32)
        self.primitive(
            "hkdf case key",
            "-",
            lambda: crypto.case_key(epoch, dek_id="bench-dek", kafka_key=_KAFKA_KEY),
        )


def run(params: Mapping[str, Any]) -> Measured:
    """Measure every operation for every suite in ``params``."""
    bench = _Run(params)
    recipients = [int(n) for n in params["recipients"]]
    with tempfile.TemporaryDirectory(prefix="hub-bench-crypto-") as tmp:
        stores = {
            suite: _store(Path(tmp) / suite, KeySuite(suite), max(recipients))
            for suite in params["suites"]
        }
        for suite, (store, parties) in stores.items():
            for n in recipients:
                bench.seal_events(store, parties, suite, n)
        for suite, (store, parties) in stores.items():
            bench.open_deliveries(store, parties, suite)
        for suite, (store, parties) in stores.items():
            bench.hpke(store, parties, suite)
        store, parties = next(iter(stores.values()))
        bench.symmetric(store, parties)
    notes = [
        "seal per event: the hub sealing one event's deliveries to N recipients through "
        "`PartyEnvelope.seal` (store lookups, epoch key, HKDF, AES-256-GCM with context AAD, "
        f"headers, Ed25519 signature); payload {len(bench.payload)} B.",
        f"key reuse = the hub's epoch data keys (max {_POLICY.max_data_key_uses} uses per "
        "recipient key); no reuse = the same code with `max_data_key_uses=1`, a fresh "
        "HPKE encapsulation per delivery.",
        "open per delivery: the recipient's `PartyEnvelope.open` (signature verify, epoch key "
        "unwrap or cache hit, HKDF, AES-256-GCM) on distinct deliveries.",
        "speed-up from reuse = median without reuse / median with reuse. Each call timed on "
        "its own with `perf_counter_ns` after warm-up, garbage collector paused.",
    ]
    return Measured(measurements=bench.measurements, columns=COLUMNS, rows=bench.rows, notes=notes)


BENCHMARK = Benchmark(
    name="crypto",
    summary="Envelope seal/open cost per event and per recipient, with and without epoch "
    "data key reuse (issue 3), and the primitives under it.",
    run=run,
    defaults={
        "suites": ["x25519", "mlkem768-x25519"],
        "recipients": [1, 4, 16, 64],
        "payload_bytes": 1024,
        "seal_budget": 3000,
        "min_iterations": 40,
        "open_messages": 2000,
        "primitive_iterations": 3000,
        "warmup_fraction": 0.1,
    },
    quick={
        "recipients": [1, 4],
        "seal_budget": 8,
        "min_iterations": 3,
        "open_messages": 6,
        "primitive_iterations": 5,
    },
)
