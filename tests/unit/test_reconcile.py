"""``hub.audit.reconcile``'s pure parts: deliveries read against ``delivered`` records."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from hub.audit.reconcile import (
    Outbound,
    SeenDelivery,
    Unidentified,
    classify,
    reconcile,
    reconcile_with_store,
)
from hub.audit.sqlite import SQLiteAuditStore
from hub.broker.decode_guard import UNDECODABLE
from hub.models import AuditDecision, AuditRecord, record_id_for

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
POLICE = "west-mercia-police"
HOUSING = "redditch-bc.housing-repairs"
COORD = "marac.north-worcs"


def _record(
    event_id: str, recipient: str, decision: AuditDecision = AuditDecision.DELIVERED, **kw: str
) -> AuditRecord:
    publisher = kw.get("publisher", COORD)
    return AuditRecord(
        record_id=record_id_for(event_id, recipient, decision.value, source=publisher),
        time=NOW,
        event_id=event_id,
        publisher=publisher,
        recipient=recipient,
        decision=decision,
        reason="rule r",
    )


def _seen(event_id: str, recipient: str, offset: int, publisher: str = COORD) -> SeenDelivery:
    return SeenDelivery(event_id, recipient, publisher, f"hub.out.{recipient}/0@{offset}")


def test_every_delivery_with_its_record_is_audited_and_repeats_are_duplicates() -> None:
    read = Outbound(
        topics=[f"hub.out.{POLICE}", f"hub.out.{HOUSING}"],
        deliveries=[
            _seen("e1", POLICE, 0),
            _seen("e1", HOUSING, 0),
            _seen("e1", POLICE, 1),  # redelivered after a crash
            _seen("e2", POLICE, 2),
        ],
        notices=3,
    )
    result = reconcile(
        read, delivered=[_record("e1", POLICE), _record("e1", HOUSING), _record("e2", POLICE)]
    )
    assert result.ok
    assert (result.read, result.deliveries, result.audited) == (4, 3, 3)
    assert result.unaudited == []
    assert [(d.delivery.event_id, d.delivery.recipient, d.copies) for d in result.duplicated] == [
        ("e1", POLICE, 2)
    ]
    assert result.redelivered == 1
    assert result.to_json()["notices"] == 3


def test_a_delivery_without_its_delivered_record_is_unaudited() -> None:
    read = Outbound(
        topics=[],
        deliveries=[_seen("e1", POLICE, 0), _seen("e1", HOUSING, 5), _seen("e1", HOUSING, 6)],
    )
    # the police delivery audited; housing only withheld (a record, but not a delivery)
    records = [
        _record("e1", POLICE),
        _record("e1", HOUSING, AuditDecision.WITHHELD),
    ]
    result = reconcile(read, delivered=records)
    assert not result.ok
    assert result.audited == 1
    assert [(d.event_id, d.recipient, d.origin) for d in result.unaudited] == [
        ("e1", HOUSING, f"hub.out.{HOUSING}/0@5")
    ]
    document = result.to_json()
    assert document["unaudited"] == 1
    assert document["unaudited_deliveries"][0]["event_id"] == "e1"


def test_the_same_id_from_another_publisher_is_another_event() -> None:
    read = Outbound(topics=[], deliveries=[_seen("e1", POLICE, 0, publisher="retail-crp")])
    assert reconcile(read, delivered=[_record("e1", POLICE)]).unaudited != []
    # a delivery read without its source (the fault probes' tuples) matches any publisher
    anonymous = Outbound(topics=[], deliveries=[SeenDelivery("e1", POLICE)])
    assert reconcile(anonymous, delivered=[_record("e1", POLICE)]).ok


def test_unidentified_records_fail_the_check() -> None:
    read = Outbound(topics=[], deliveries=[], unidentified=[Unidentified("t/0@1", "no ce_id")])
    assert not reconcile(read, delivered=[]).ok


@dataclass
class _Raw:
    headers: list[tuple[str, bytes]]
    topic: str = f"hub.out.{POLICE}"
    partition: int = 1
    offset: int = 7
    value: bytes = field(default=b"")


def test_classify_reads_the_headers() -> None:
    delivery = classify(
        _Raw([("ce_id", b"e1"), ("ce_source", b"/parties/" + COORD.encode()),
              ("ce_hubrecipient", POLICE.encode())])
    )  # fmt: skip
    assert delivery == SeenDelivery("e1", POLICE, COORD, f"hub.out.{POLICE}/1@7")
    assert classify(_Raw([("ce_id", b"n1"), ("ce_source", b"/parties/hub")])) is None
    # the hub's own event routed under a rule (an alert, a withdrawal): a delivery like any
    alert = classify(
        _Raw([("ce_id", b"a1"), ("ce_source", b"/parties/hub"), ("ce_hubrule", b"marac-alerts"),
              ("ce_hubrecipient", POLICE.encode())])
    )  # fmt: skip
    assert alert == SeenDelivery("a1", POLICE, "hub", f"hub.out.{POLICE}/1@7")
    missing = classify(_Raw([("ce_id", b"e1")]))
    assert missing == Unidentified(f"hub.out.{POLICE}/1@7", "no ce_hubrecipient header")
    marked = classify(_Raw([(UNDECODABLE, b"header name not UTF-8"), ("ce_id", b"e1")]))
    assert isinstance(marked, Unidentified)
    assert "header name not UTF-8" in marked.why


def test_reconcile_with_store_asks_again_while_the_sink_catches_up(tmp_path: Path) -> None:
    read = Outbound(topics=[], deliveries=[_seen("e1", POLICE, 0), _seen("e2", POLICE, 1)])
    now = [0.0]
    with SQLiteAuditStore(tmp_path / "audit.sqlite3") as store:
        store.append([_record("e1", POLICE)])

        def sleep(seconds: float) -> None:
            now[0] += seconds
            store.append([_record("e2", POLICE)])  # the sink wrote it meanwhile

        result = reconcile_with_store(store, read, wait=5.0, clock=lambda: now[0], sleep=sleep)
        assert result.ok
        assert result.audited == 2
        late = Outbound(topics=[], deliveries=[_seen("e3", POLICE, 2)])
        given_up = reconcile_with_store(
            store,
            late,
            wait=1.0,
            clock=lambda: now[0],
            sleep=lambda s: now.__setitem__(0, now[0] + s),
        )
        assert [d.event_id for d in given_up.unaudited] == ["e3"]
