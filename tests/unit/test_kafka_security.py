"""Kafka TLS and SASL settings reach every client the hub and the SDK open."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from pathlib import Path

import faust
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hub.broker.security import KafkaSecurity
from hub.client import HubClient
from hub.errors import ConfigError
from hub.keys.file_store import FileKeyStore
from hub.settings import HubSettings


def _ca(tmp_path: Path) -> Path:
    """A throwaway CA certificate (tests make their own; nothing is checked in)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test partnership CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_plaintext_is_the_default_for_the_embedded_broker() -> None:
    security = HubSettings().kafka_security
    assert security.client_kwargs() == {"security_protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None


def test_sasl_ssl_scram_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = _ca(tmp_path)
    monkeypatch.setenv("HUB_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("HUB_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("HUB_KAFKA_USERNAME", "hub")
    monkeypatch.setenv("HUB_KAFKA_PASSWORD", "s3cret-from-a-secret-file")
    monkeypatch.setenv("HUB_KAFKA_SSL_CAFILE", str(ca))
    settings = HubSettings()
    assert "s3cret" not in repr(settings)  # never printed with the settings
    kwargs = settings.kafka_security.client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "hub"
    assert kwargs["sasl_plain_password"] == "s3cret-from-a-secret-file"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "test partnership CA"),),)
    ]
    credentials = settings.kafka_security.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "hub"
    assert credentials.ssl_context is not None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HUB_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "HUB_KAFKA_USERNAME": "hub"},
         "HUB_KAFKA_SASL_MECHANISM, HUB_KAFKA_PASSWORD"),
        ({"HUB_KAFKA_USERNAME": "hub"}, "set HUB_KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"HUB_KAFKA_SECURITY_PROTOCOL": "SSL", "HUB_KAFKA_SSL_CERTFILE": "/x.pem"},
         "both its certfile and its keyfile"),
    ],
)  # fmt: skip
def test_incomplete_settings_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=expected):
        _ = HubSettings().kafka_security


def test_an_unreadable_ca_is_a_clear_error(tmp_path: Path) -> None:
    security = KafkaSecurity(protocol="SSL", ssl_cafile=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="cannot load the CA"):
        security.client_kwargs()


@pytest.mark.parametrize(("protocol", "tls"), [("SSL", True), ("PLAINTEXT", False)])
async def test_the_sdk_speaks_tls_on_the_wire_when_told_to(
    tmp_path: Path, protocol: str, tls: bool
) -> None:
    """A real socket: the first bytes a client sends are a TLS ClientHello, or Kafka's own."""
    first: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(5)
        if not first.done():
            first.set_result(data)
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    security = KafkaSecurity.model_validate({"protocol": protocol})
    client = HubClient(
        "west-mercia-police",
        bootstrap=f"127.0.0.1:{port}",
        keys=FileKeyStore(tmp_path / "keys"),
        security=security,
    )
    connecting = asyncio.create_task(client.deliveries().__anext__())
    try:
        data = await asyncio.wait_for(first, timeout=30)
    finally:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await connecting  # the SDK closes its half-open consumer when cancelled
        server.close()
    # TLS record: content type 22 (handshake), version 3.x; Kafka: a 4-byte length prefix
    assert (data[:2] == b"\x16\x03") is tls
