"""Server ports for the embedded broker (and the tests' servers) lie below the ephemeral range.

A port found free inside the kernel's range for clients' source ports can be taken by an
outgoing connection before the server binds it, or, while a dead broker is being restarted on
its port, by a client retrying it that the kernel gives that very port (a connection to
itself). ``free_port`` takes its ports below that range, where the kernel says where it is.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from hub.broker import embedded
from hub.broker.embedded import below_ephemeral, free_port


def _low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


@pytest.mark.skipif(
    not Path("/proc/sys/net/ipv4/ip_local_port_range").exists(), reason="Linux only"
)
def test_free_ports_lie_below_the_ephemeral_range_and_are_free() -> None:
    ports = below_ephemeral()
    assert ports is not None
    assert ports.stop <= _low() - 1  # a pair P, P + 1 stays below it too
    assert ports.start >= 1024  # never a privileged port
    for _ in range(20):
        port = free_port()
        assert port in ports
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free indeed


def test_without_the_kernels_range_any_free_port_will_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "_EPHEMERAL", tmp_path / "absent")
    assert below_ephemeral() is None
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_range_starting_too_low_leaves_no_room_below_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow = tmp_path / "ip_local_port_range"
    narrow.write_text("1500\t60999\n")
    monkeypatch.setattr(embedded, "_EPHEMERAL", narrow)
    assert below_ephemeral() is None
    assert 0 < free_port() < 65536
