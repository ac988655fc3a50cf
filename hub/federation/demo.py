"""Two partnership hubs, linked, and a victim who moves from Redditch to Worcester (issue 20).

``hub federation demo`` starts a North and a South Worcestershire hub, each on an embedded
broker of its own, pins each one's hub keys in the other (as ``hub keys export --party hub``
and ``hub keys import --peer`` do), and links them both ways (``run_link``). The North's
MARAC coordinator raises a flag at a Redditch address, then updates it when the victim moves
to Worcester: the update is transferred, the South's coordinator is delivered it and
acknowledges it, and the North hears both receipts. Each hub proves its record of the
hand-over to the other; the South's coordinator takes ownership, and the North tells the
flag's holders to withdraw it. Both sides' audit counts are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.agents.supervisor import Supervisor
from hub.audit.store import open_store
from hub.broker import EmbeddedBroker
from hub.client import HubClient
from hub.errors import HubError
from hub.federation.link import ForwardedLog, LinkStats, run_link
from hub.federation.ownership import OWNERSHIP_TYPE, withdraw_id
from hub.federation.proofs import export_log_key, pin_log_key
from hub.federation.receipts import receipt_id
from hub.keys.file_store import DIRECTORY_FORMAT, FileKeyStore
from hub.keys.model import KeySuite
from hub.keys.peers import PeerPins, parse_export
from hub.keys.store import ensure_dev_keys
from hub.models import AuditDecision
from hub.policies.loader import load_protocol
from hub.settings import HubSettings, default_protocol_path

__all__ = ["DemoResult", "run_federation_demo"]

SOUTH_PROTOCOL = default_protocol_path().with_name("south-worcestershire.yaml")
_RAISED = "uk.csp.marac.flag.raised.v1"
_UPDATED = "uk.csp.marac.flag.updated.v1"


@dataclass
class DemoResult:
    """What the demo saw: the transfer's event id and each hub's audit counts."""

    transfer_event_id: str
    north: dict[str, int]
    south: dict[str, int]
    acknowledged: bool


class _DemoError(HubError):
    """The demo did not see what it waited for."""


def _flag(case: str, *, town: str, postcode: str, district: str) -> dict[str, Any]:
    return {
        "case_ref": case,
        "subject_ref": f"SUBJ-{case[-6:]}",
        "address": {"line1": "14 Alder Close", "town": town, "postcode": postcode,
                    "district": district},
        "risk_level": "high",
        "referral_reason": "dash",
        "dash_score": 17,
        "marac_date": "2026-11-19",
        "review_date": "2027-05-19",
        "contact": {"name": "IDVA duty desk", "phone": "01527 000100",
                    "email": "idva@example.org.uk"},
        "markers": ["property", "person"],
        "notes": "Victim moved to Worcester; perpetrator unaware of the new address.",
    }  # fmt: skip


def _hub_keys(settings: HubSettings) -> FileKeyStore:
    protocol = load_protocol(settings.protocol)
    store = FileKeyStore(settings.keys_dir)
    ensure_dev_keys(
        store,
        [],
        suite=KeySuite(protocol.crypto.suite),
        extra_suites=[KeySuite(s) for s in protocol.crypto.suites[1:]],
    )
    return store


def _pin(into: FileKeyStore, peer: str, source: FileKeyStore) -> None:
    records = [r.model_dump(mode="json") for r in source.public("hub")]
    text = json.dumps({"format": DIRECTORY_FORMAT, "keys": records})
    PeerPins(into.root).pin(
        peer, parse_export(text, source=peer, directory_format=DIRECTORY_FORMAT)
    )


def _pin_log_key(into: HubSettings, peer: str, source: HubSettings, timeout: float) -> None:
    _wait(
        lambda: export_log_key(source) is not None,
        timeout=timeout,
        what=f"{peer}'s audit log key",
    )
    key = export_log_key(source)
    if key is not None:
        pin_log_key(into.keys_dir, peer, key)


def _wait(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise _DemoError(f"federation demo: expected {what} within {timeout:.0f}s, got none")
        time.sleep(0.2)


def _records(settings: HubSettings, event_id: str) -> list[Any]:
    with contextlib.closing(open_store(settings)) as store:
        return list(store.query(event_id=event_id))


def _proofs(settings: HubSettings, peer: str, transfer: str) -> list[dict[str, Any]]:
    """The proofs from ``peer`` this hub kept for a transfer (its shared state)."""
    from hub.state import open_proof_register

    with open_proof_register(settings) as register:
        return register.entries(peer, transfer)


def _counts(settings: HubSettings) -> dict[str, int]:
    with contextlib.closing(open_store(settings)) as store:
        return store.counts()


def run_federation_demo(
    data_dir: Path, *, report: Callable[[str], None], timeout: float = 90.0
) -> DemoResult:
    """Run the two hubs, play the move, and stop everything; see the module docstring."""
    north_settings = HubSettings(data_dir=data_dir / "north")
    south_settings = HubSettings(data_dir=data_dir / "south", protocol=SOUTH_PROTOCOL)
    north_keys, south_keys = _hub_keys(north_settings), _hub_keys(south_settings)
    _pin(north_keys, "swcsp-hub", south_keys)
    _pin(south_keys, "nwcsp-hub", north_keys)
    with EmbeddedBroker() as north_broker, EmbeddedBroker() as south_broker:
        north_settings = north_settings.model_copy(
            update={"kafka_bootstrap": north_broker.bootstrap}
        )
        south_settings = south_settings.model_copy(
            update={"kafka_bootstrap": south_broker.bootstrap}
        )
        north, south = Supervisor(north_settings), Supervisor(south_settings)
        north.start()
        try:
            south.start()
            try:
                # the log keys exist once each hub's audit sink ran: each pins the other's,
                # as `hub keys export --party hub` (now with log_key) and `import --peer` do
                _pin_log_key(south_settings, "nwcsp-hub", north_settings, timeout)
                _pin_log_key(north_settings, "swcsp-hub", south_settings, timeout)
                report(f"north hub ready bootstrap={north_broker.bootstrap}")
                report(f"south hub ready bootstrap={south_broker.bootstrap}")
                return asyncio.run(
                    _play(north_settings, south_settings, north_keys, south_keys, report, timeout)
                )
            finally:
                south.stop()
        finally:
            north.stop()


async def _play(
    north: HubSettings,
    south: HubSettings,
    north_keys: FileKeyStore,
    south_keys: FileKeyStore,
    report: Callable[[str], None],
    wait_s: float,
) -> DemoResult:
    stop = asyncio.Event()
    logs = [
        ForwardedLog(north.data_dir / "federation" / "swcsp-hub.sqlite3"),
        ForwardedLog(south.data_dir / "federation" / "nwcsp-hub.sqlite3"),
    ]
    if north.kafka_bootstrap is None or south.kafka_bootstrap is None:
        raise _DemoError("federation demo: expected both hubs' brokers, got none")
    links = [
        asyncio.create_task(
            run_link(
                peer="swcsp-hub",
                hub_id="nwcsp-hub",
                bootstrap=north.kafka_bootstrap,
                peer_bootstrap=south.kafka_bootstrap,
                forwarded=logs[0],
                stop=stop,
                stats=LinkStats(),
                session_timeout=north.session_timeout,
            )
        ),
        asyncio.create_task(
            run_link(
                peer="nwcsp-hub",
                hub_id="swcsp-hub",
                bootstrap=south.kafka_bootstrap,
                peer_bootstrap=north.kafka_bootstrap,
                forwarded=logs[1],
                stop=stop,
                stats=LinkStats(),
                session_timeout=south.session_timeout,
            )
        ),
    ]
    try:
        case = f"MARAC-NW-2026-{uuid.uuid4().hex[:4].upper()}"
        async with HubClient("marac.north-worcs", bootstrap=north.kafka_bootstrap,
                             keys=north_keys) as coordinator:  # fmt: skip
            await coordinator.publish(
                _RAISED,
                _flag(case, town="Redditch", postcode="B97 4HJ", district="redditch"),
                key=case,
            )
            report(f"north: {case} raised at a Redditch address")
            moved = _flag(case, town="Worcester", postcode="WR1 2AA", district="worcester")
            transfer = await coordinator.publish(
                _UPDATED, {**moved, "change_reason": "moved"}, key=case
            )
            report(f"north: {case} updated, the victim moved to Worcester (event {transfer})")
        await asyncio.to_thread(
            _wait,
            lambda: any(
                r.recipient == "marac.south-worcs" and r.decision is AuditDecision.DELIVERED
                for r in _records(south, transfer)
            ),
            timeout=wait_s,
            what="the transfer delivered to the South's MARAC coordinator",
        )
        report("south: the transfer reached the South Worcs MARAC coordinator")

        async def acknowledge(bootstrap: str) -> None:
            async with HubClient("marac.south-worcs", bootstrap=bootstrap,
                                 keys=south_keys) as new_coordinator:  # fmt: skip
                async for delivery in new_coordinator.deliveries(follow=True, poll_timeout=0.5):
                    if delivery.id == transfer:
                        await new_coordinator.acknowledge(delivery)
                        return

        try:
            await asyncio.wait_for(acknowledge(south.kafka_bootstrap), wait_s)
        except TimeoutError as exc:
            raise _DemoError(
                f"federation demo: expected the transfer on hub.out.marac.south-worcs within "
                f"{wait_s:.0f}s, got none"
            ) from exc
        report("south: its coordinator acknowledged the transfer")
        acked = receipt_id(transfer, "acknowledged")
        await asyncio.to_thread(
            _wait,
            lambda: any(r.decision is AuditDecision.DELIVERED for r in _records(north, acked)),
            timeout=wait_s,
            what="the South's acknowledged receipt in the North's audit log",
        )
        report("north: the South's receipts arrived: received, then acknowledged")
        await asyncio.to_thread(
            _wait,
            lambda: (
                bool(_proofs(north, "swcsp-hub", transfer))
                and bool(_proofs(south, "nwcsp-hub", transfer))
            ),
            timeout=wait_s,
            what="each hub's proof of its record of the hand-over, kept by the other",
        )
        report(
            "both: each log's record of the hand-over proved to the other hub with its signed "
            f"checkpoint (hub audit proof --peer PEER --event {transfer})"
        )
        # the South's coordinator takes ownership: the North lets go of the case
        async with HubClient("marac.south-worcs", bootstrap=south.kafka_bootstrap,
                             keys=south_keys) as new_coordinator:  # fmt: skip
            ownership = await new_coordinator.publish(
                OWNERSHIP_TYPE,
                {
                    "case_ref": case,
                    "previous_owner": "nwcsp-hub",
                    "transfer_event_id": transfer,
                    "new_case_ref": None,
                    "taken_on": dt.date.today(),
                },
                key=case,
            )
        report(f"south: its coordinator took ownership of {case} (event {ownership})")
        withdrawals: list[Any] = []

        def told() -> bool:
            withdrawals[:] = [
                r
                for r in _records(north, withdraw_id(ownership))
                if r.decision is AuditDecision.DELIVERED and r.recipient != "marac.north-worcs"
            ]
            return bool(withdrawals)

        await asyncio.to_thread(
            _wait, told, timeout=wait_s, what="the North's withdrawal notices to the flag's holders"
        )
        holders = ", ".join(sorted({str(r.recipient) for r in withdrawals}))
        report(f"north: stopped following {case}; told its holders to withdraw the flag: {holders}")
        return DemoResult(
            transfer_event_id=transfer,
            north=_counts(north),
            south=_counts(south),
            acknowledged=True,
        )
    finally:
        stop.set()
        await asyncio.gather(*links, return_exceptions=True)
        for log in logs:
            log.close()
