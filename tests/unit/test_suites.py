"""Per-event-type HPKE suites: the protocol's choice, the loader's check, sealing by type."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hub.envelope.crypto import CryptoError
from hub.envelope.party import PartyEnvelope
from hub.errors import ProtocolError, UnknownKeyError
from hub.keys import HUB_PARTY, FileKeyStore, KeySuite
from hub.models import EventAttributes
from hub.policies.loader import load_protocol
from hub.policies.model import CryptoPolicy
from hub.settings import default_protocol_path

MARAC = "uk.csp.marac.flag.raised.v1"
BAN = "uk.csp.pubwatch.ban.v1"


def test_suite_for_falls_back_to_the_default() -> None:
    policy = CryptoPolicy(suite="x25519", event_types={MARAC: "mlkem768-x25519"})
    assert policy.suite_for(MARAC) == "mlkem768-x25519"
    assert policy.suite_for(BAN) == "x25519"
    assert policy.suites == ("x25519", "mlkem768-x25519")
    assert CryptoPolicy().suites == ("x25519",)


def test_reference_protocol_puts_marac_flags_on_the_hybrid_suite() -> None:
    crypto = load_protocol(default_protocol_path()).crypto
    marac = [t for t in crypto.event_types if t.startswith("uk.csp.marac.flag.")]
    assert len(marac) == 3
    assert {crypto.suite_for(t) for t in marac} == {"mlkem768-x25519"}
    assert crypto.suite_for(BAN) == crypto.suite == "x25519"


def _protocol_with(tmp_path: Path, crypto_block: str) -> Path:
    text = default_protocol_path().read_text()
    start = text.index("\ncrypto:\n")
    end = text.index("\n\n", start + 1)
    path = tmp_path / "p.yaml"
    path.write_text(text[:start] + "\n" + crypto_block + text[end:])
    return path


def test_unknown_event_type_is_a_line_numbered_error(tmp_path: Path) -> None:
    path = _protocol_with(
        tmp_path,
        "crypto:\n  suite: x25519\n  event_types:\n    uk.csp.marac.flag.rised.v1: mlkem768-x25519",
    )
    line = path.read_text().splitlines().index("    uk.csp.marac.flag.rised.v1: mlkem768-x25519")
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    assert f"{path}:{line + 1}: crypto.event_types.uk.csp.marac.flag.rised.v1" in str(err.value)


def test_unknown_suite_is_a_line_numbered_error(tmp_path: Path) -> None:
    path = _protocol_with(
        tmp_path, f"crypto:\n  suite: x25519\n  event_types:\n    {MARAC}: kyber512"
    )
    with pytest.raises(ProtocolError, match=r"p\.yaml:\d+: crypto\.event_types"):
        load_protocol(path)


def _attrs(event_type: str) -> EventAttributes:
    return EventAttributes(
        id=f"ev-{event_type}",
        source="/parties/marac.north-worcs",
        type=event_type,
        time=dt.datetime(2026, 11, 23, 9, 30, tzinfo=dt.UTC),
        subject="MARAC-1",
        datacontenttype="application/json",
    )


@pytest.fixture
def keys(tmp_path: Path) -> FileKeyStore:
    store = FileKeyStore(tmp_path / "keys")
    for party in ("marac.north-worcs", HUB_PARTY):
        store.create_party(party, extra_suites=[KeySuite.MLKEM768_X25519])
    return store


@pytest.mark.parametrize("suite", [None, "x25519", "mlkem768-x25519"])
def test_seal_picks_the_suite_and_the_header_names_it(
    keys: FileKeyStore, suite: str | None
) -> None:
    sender = PartyEnvelope("marac.north-worcs", store=keys)
    sealed = sender.seal(
        _attrs(MARAC), key=b"MARAC-1", plaintext=b"flag", recipient=HUB_PARTY, suite=suite
    )
    headers = {k: v.decode() for k, v in sealed.headers}
    expected = keys.active(HUB_PARTY).encryption_for(suite)
    assert headers["ce_hubsuite"] == expected.suite.value == (suite or "x25519")
    assert headers["ce_hubkid"] == expected.key_id
    assert headers["ce_hubkid"].startswith(f"hub#{expected.suite.value}:")
    opened = PartyEnvelope(HUB_PARTY, store=keys).open(
        headers, key=b"MARAC-1", value=sealed.value, expected_signer="marac.north-worcs"
    )
    assert opened.plaintext == b"flag"


def test_a_suite_header_that_does_not_match_the_key_is_refused(keys: FileKeyStore) -> None:
    sender = PartyEnvelope("marac.north-worcs", store=keys)
    sealed = sender.seal(
        _attrs(MARAC), key=None, plaintext=b"x", recipient=HUB_PARTY, suite="mlkem768-x25519"
    )
    headers = {k: v.decode() for k, v in sealed.headers}
    headers["ce_hubsuite"] = "x25519"
    with pytest.raises(CryptoError) as err:
        PartyEnvelope(HUB_PARTY, store=keys).open(
            headers, key=None, value=sealed.value, expected_signer="marac.north-worcs"
        )
    assert err.value.reason == "bad_envelope"


def test_sealing_to_a_party_without_the_suite_fails_loudly(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys")
    store.create_party("marac.north-worcs")
    store.create_party(HUB_PARTY)
    with pytest.raises(UnknownKeyError, match="hub keys init"):
        PartyEnvelope("marac.north-worcs", store=store).seal(
            _attrs(MARAC), key=None, plaintext=b"x", recipient=HUB_PARTY, suite="mlkem768-x25519"
        )
