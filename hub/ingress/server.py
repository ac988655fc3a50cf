"""Running the ingress: the shared Kafka producer, the app built from settings, uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI

from hub.agents.supervisor import read_state
from hub.broker.security import KafkaSecurity
from hub.envelope import wire
from hub.errors import BrokerError, ConfigError
from hub.ingress.app import RecentIds, TrustedProxy, create_app
from hub.ingress.tokens import TokenStore
from hub.keys.file_store import FileKeyStore
from hub.net import is_loopback
from hub.policies.loader import load_protocol
from hub.settings import HubSettings

__all__ = ["KafkaSender", "build_app", "check_transport", "serve"]


class KafkaSender:
    """One producer for every party (``acks=all``), started on first use.

    A write that the broker does not acknowledge within ``timeout`` seconds is a
    ``BrokerError``; the producer is then rebuilt, so the next request reconnects.
    """

    def __init__(
        self, bootstrap: str, *, timeout: float = 10.0, security: KafkaSecurity | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._kafka = (security or KafkaSecurity()).client_kwargs()
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    acks="all",
                    enable_idempotence=False,
                    linger_ms=0,
                    request_timeout_ms=int(self.timeout * 1000),
                    **self._kafka,
                )
                try:
                    await asyncio.wait_for(producer.start(), self.timeout)
                except (KafkaError, TimeoutError, OSError) as exc:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise BrokerError(
                        f"broker at {self.bootstrap}: cannot connect ({type(exc).__name__})"
                    ) from exc
                self._producer = producer
            return self._producer

    async def __call__(self, message: wire.WireMessage) -> str:
        """Produce and wait for the broker's acknowledgement; returns the record's origin."""
        producer = await self._get()
        try:
            meta = await asyncio.wait_for(
                producer.send_and_wait(
                    message.topic, key=message.key, value=message.value, headers=message.headers
                ),
                self.timeout,
            )
        except (KafkaError, TimeoutError) as exc:
            await self._reset(producer)
            raise BrokerError(
                f"broker at {self.bootstrap}: write to {message.topic} not acknowledged "
                f"({type(exc).__name__})"
            ) from exc
        return f"{meta.topic}/{meta.partition}/{meta.offset}"

    async def _reset(self, producer: AIOKafkaProducer) -> None:
        async with self._lock:
            if self._producer is producer:
                self._producer = None
        with contextlib.suppress(Exception):
            await producer.stop()

    async def close(self) -> None:
        """Flush and stop the producer."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


def build_app(
    settings: HubSettings,
    *,
    bootstrap: str | None = None,
    trusted_proxy: TrustedProxy | None = None,
    replay_window: int = 100_000,
) -> FastAPI:
    """The ingress for this data dir: its keys, tokens, protocol and broker."""
    protocol = load_protocol(settings.protocol)
    if bootstrap is None:
        bootstrap = settings.kafka_bootstrap or read_state(settings).bootstrap
    # The ingress writes every served party's inbound topic, so in production it needs its own
    # Kafka principal with Write on those topics (HUB_KAFKA_USERNAME etc. for this process).
    sender = KafkaSender(bootstrap, security=settings.kafka_security)
    return create_app(
        keys=FileKeyStore(settings.keys_dir),
        tokens=TokenStore.in_data_dir(settings.data_dir),
        sender=sender,
        crypto=protocol.crypto,
        parties=protocol.party_ids,
        max_event_bytes=settings.max_event_bytes,
        body_timeout=settings.ingress_body_timeout,
        recent=RecentIds(replay_window),
        trusted_proxy=trusted_proxy,
        on_shutdown=sender.close,
    )


def check_transport(
    host: str, *, tls_cert: Path | None, tls_key: Path | None, allow_plain_http: bool
) -> None:
    """Refuse plain HTTP off loopback (unless allowed) and half a TLS configuration."""
    if tls_cert is None and not is_loopback(host) and not allow_plain_http:
        raise ConfigError(
            f"--host {host}: bearer tokens would cross the network in clear: give "
            "--tls-cert/--tls-key, bind to 127.0.0.1 behind a TLS proxy, or pass "
            "--allow-plain-http"
        )
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key: expected both or neither")


def serve(
    app: FastAPI,
    *,
    host: str,
    port: int,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    allow_plain_http: bool = False,
    body_timeout: float = 10.0,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; ``on_ready(url)`` once it accepts connections.

    Tokens are bearer secrets, so plain HTTP is only for loopback (a TLS-terminating proxy
    in front) unless ``allow_plain_http`` says the network in between is trusted.

    ``body_timeout`` (HUB_INGRESS_BODY_TIMEOUT) bounds a signed-in caller's body in the app
    (``hub.ingress.app``) and is also uvicorn's keep-alive timeout, so an idle connection is
    not kept longer than a body may take. A caller refused before its body is read is
    disconnected with the answer (``hub.ingress.connections``).
    """
    check_transport(host, tls_cert=tls_cert, tls_key=tls_key, allow_plain_http=allow_plain_http)
    try:
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise ConfigError(f"--host {host} --port {port}: cannot listen ({exc.strerror})") from exc
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        server_header=False,
        timeout_keep_alive=max(1, math.ceil(body_timeout)),
    )
    server = uvicorn.Server(config)
    bound_host, bound_port = sock.getsockname()[:2]
    scheme = "https" if tls_cert else "http"
    url = f"{scheme}://{bound_host}:{bound_port}"

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        # uvicorn sets a plain bool once it listens and offers no event to await
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if server.started and on_ready is not None:
            on_ready(url)
        await task

    asyncio.run(run())
