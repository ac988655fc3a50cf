"""The floor benchmark's per-event work does the contract's work, and its ratios read right.

The floor is only a floor if its agent really does what the contract needs: these run
``FanOut`` outside faust and check every delivery opens with its case key and carries a
valid signature over its canonical signing input, and the audit message names the SHA-256 of
the exact bytes delivered. Speed is never asserted here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import bench
from bench.floor import FIELDS, FanOut, hub_ratios, signed_inputs, write_config


@pytest.fixture
def setup(tmp_path: Path) -> tuple[dict[str, Any], Any, FanOut]:
    config, publisher = write_config(tmp_path / "floor.json", 4)
    assert (tmp_path / "floor.json").stat().st_mode & 0o777 == 0o600
    return config, publisher, FanOut(json.loads((tmp_path / "floor.json").read_text()))


def test_floor_is_registered_after_the_hub() -> None:
    names = bench.names()
    assert names.index("floor") > names.index("hub")  # so it reads the fresh hub record
    assert bench.load("floor").name == "floor"


def test_crypto_fan_out_seals_signs_and_audits_every_delivery(
    setup: tuple[dict[str, Any], Any, FanOut],
) -> None:
    config, publisher, work = setup
    ((key, value, headers),) = signed_inputs(publisher, 1, seed=11)
    out = work.crypto(key, value, dict(headers))
    assert [target for target, _v, _h in out] == [*config["recipients"], "audit"]
    hub_public = Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(config["hub_private"])
    ).public_key()
    audit = json.loads(out[-1][1])["records"]
    for (recipient, sealed, sealed_headers), record in zip(out[:-1], audit, strict=True):
        text = {k: v.decode() for k, v in sealed_headers}
        signature = base64.b64decode(text.pop("ce_hubsig"))
        digest = hashlib.sha256(sealed).hexdigest()
        signed = json.dumps(
            {"headers": text, "key": base64.b64encode(key).decode(), "value_sha256": digest},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        hub_public.verify(signature, signed)  # raises if not
        assert record == {"event_id": text["ce_id"], "recipient": recipient, "sha256": digest}
        # the case key is HKDF-SHA256 of the recipient's epoch key: it opens the payload
        epoch = bytes.fromhex(config["epoch_keys"][recipient])
        dek_id = config["dek_ids"][recipient]
        prk = hmac.digest(bytes(32), epoch, "sha256")
        info = b"hub/case/v1\x00" + dek_id.encode() + b"\x00" + key
        case_key = hmac.digest(prk, info + b"\x01", "sha256")
        aad = json.dumps(
            {
                "id": text["ce_id"],
                "recipient": recipient,
                "dek": dek_id,
                "key": base64.b64encode(key).decode(),
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        opened = json.loads(AESGCM(case_key).decrypt(sealed[:12], sealed[12:], aad))
        assert set(opened) <= set(FIELDS)
        assert opened


def test_crypto_fan_out_refuses_a_bad_publisher_signature(
    setup: tuple[dict[str, Any], Any, FanOut],
) -> None:
    _config, publisher, work = setup
    ((key, value, headers),) = signed_inputs(publisher, 1, seed=11)
    tampered = dict(headers)
    tampered["ce_hubsig"] = bytes(64)
    with pytest.raises(InvalidSignature):
        work.crypto(key, value, tampered)


def test_plain_fan_out_has_the_same_shape(setup: tuple[dict[str, Any], Any, FanOut]) -> None:
    config, publisher, work = setup
    ((key, value, headers),) = signed_inputs(publisher, 1, seed=11)
    out = work.plain(key, value, dict(headers))
    assert [target for target, _v, _h in out] == [*config["recipients"], "audit"]
    assert all(v == value for _t, v, _h in out[:-1])


def test_hub_ratios_use_the_unprofiled_one_worker_run() -> None:
    floor = {"events_per_s": 400.0, "cpu_ms_per_event": {"worker": 1.5, "broker": 0.5}}
    hub = {
        "benchmark": "hub",
        "started_at": "2026-12-04T15:00:00+00:00",
        "measurements": [
            {"operation": "baseline", "variant": "raw aiokafka"},
            {
                "operation": "hub throughput",
                "workers": 1,
                "profiled": True,
                "events_per_s": 1.0,
                "cpu_ms_per_event": {"workers": 9.0, "broker": 9.0},
            },
            {
                "operation": "hub throughput",
                "workers": 2,
                "profiled": False,
                "events_per_s": 2.0,
                "cpu_ms_per_event": {"workers": 9.0, "broker": 9.0},
            },
            {
                "operation": "hub throughput",
                "workers": 1,
                "profiled": False,
                "events_per_s": 200.0,
                "cpu_ms_per_event": {"workers": 3.0, "broker": 2.0, "sink": 1.0, "bench": 5.0},
            },
        ],
    }
    ratios = hub_ratios(hub, floor)
    assert ratios["hub_over_floor_events_per_s"] == 0.5
    assert ratios["hub_over_floor_cpu"] == 3.0
    assert ratios["hub_started_at"] == "2026-12-04T15:00:00+00:00"
    assert hub_ratios(None, floor) == {}
    assert hub_ratios({"measurements": []}, floor) == {}
