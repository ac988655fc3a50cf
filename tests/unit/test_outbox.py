"""The audit outbox (``hub.agents.outbox``): audit messages on disk until the store has them."""

from __future__ import annotations

from pathlib import Path

from hub.agents.outbox import AuditOutbox
from hub.envelope.wire import WireMessage


def message(name: str) -> WireMessage:
    return WireMessage(
        topic="hub.audit",
        key=name.encode(),
        value=b"\x00" + name.encode(),
        headers=[("hub_audit_writer", b"router/h/1"), ("hub_audit_mac", b"\xff" + name.encode())],
    )


def test_messages_survive_the_process_and_come_back_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "audit-outbox.sqlite3"
    with AuditOutbox(path) as outbox:
        outbox.put([("r1", message("m1")), ("r2", message("m2"))])
        outbox.put([("r1", message("m1"))])  # a reprocessed batch: kept once
    with AuditOutbox(path) as reopened:  # a worker starting after the last one died
        assert reopened.pending() == [("r1", message("m1")), ("r2", message("m2"))]


def test_confirmed_messages_are_forgotten(tmp_path: Path) -> None:
    with AuditOutbox(tmp_path / "outbox.sqlite3") as outbox:
        outbox.put((f"r{i}", message(f"m{i}")) for i in range(1200))
        outbox.remove([f"r{i}" for i in range(1199)])  # more than one statement's worth
        assert outbox.pending() == [("r1199", message("m1199"))]
        outbox.remove([])
        assert len(outbox.pending()) == 1
