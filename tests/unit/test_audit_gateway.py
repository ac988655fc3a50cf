"""The audit record names the rule's legal gateway (issue 17), and old records keep their bytes.

A record without a gateway has the canonical form every record had before the field existed,
so its leaf, its packed row (format 1) and the verification of a log written by earlier code
are unchanged; a record with one is packed in format 2.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.audit.checkpoint import NoteSigner
from hub.audit.log import AuditLog
from hub.audit.packing import SharedValues, pack, subjects_of, unpack, unpack_checked
from hub.audit.sqlite import SQLiteAuditStore, canonical_bytes
from hub.models import AuditDecision, AuditRecord, RecipientDecision
from hub.policies.engine import evaluate
from hub.policies.loader import load_protocol
from hub.settings import default_protocol_path
from tests.factories import MARAC_RAISED, marac_flag

S115 = "Crime and Disorder Act 1998 s115"
SIGNER = NoteSigner("hub.test/gateway", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))

#: a delivery record as the hub wrote it before records named a gateway (written by 5d8556c's
#: code): its canonical bytes, the row's index columns and the packed blob stored beside them
OLD_CANONICAL = (
    b'{"ack_event_id":null,"case_pseudonym":"efefefefefefefefefefefefefefefef","condition":'
    b'"UK GDPR Art 9(2)(g) substantial public interest","decision":"delivered","event_id":'
    b'"01930000-0000-7000-8000-000000000001","event_time":"2026-11-20T09:59:00Z","event_type":'
    b'"uk.csp.marac.flag.raised.v1","fields":["case_ref","marac_date"],"lawful_basis":'
    b'"UK GDPR Art 6(1)(e) public task","origin":"hub.in.marac.north-worcs/0/7",'
    b'"payload_sha256":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd",'
    b'"protocol_hash":"abababababababababababababababababababababababababababababababab",'
    b'"publisher":"marac.north-worcs","purpose":"Flag the address","reason":'
    b'"rule marac-flag-district-departments","recipient":"redditch-bc.housing-repairs",'
    b'"record_id":"00000000000000000000000000000000","rule":"marac-flag-district-departments",'
    b'"subject_pseudonyms":["12121212121212121212121212121212"],"time":"2026-11-20T10:00:00Z"}'
)
OLD_COLUMNS = (
    "00000000000000000000000000000000",
    "2026-11-20T10:00:00.000000+00:00",
    "01930000-0000-7000-8000-000000000001",
    "marac.north-worcs",
    "redditch-bc.housing-repairs",
    "delivered",
    "efefefefefefefefefefefefefefefef",
)
OLD_PACKED = bytes.fromhex(
    "0102000022554b2047445052204172742039283229286729207375627374616e7469616c207075626c696320"
    "696e7465726573742200000022323032362d31312d32305430393a35393a30305a220022756b2e6373702e6d"
    "617261632e666c61672e7261697365642e763122005b22636173655f726566222c226d617261635f64617465"
    "225d0022554b2047445052204172742036283129286529207075626c6963207461736b2200226875622e696e"
    "2e6d617261632e6e6f7274682d776f7263732f302f3722002263646364636463646364636463646364636463"
    "6463646364636463646364636463646364636463646364636463646364636463646364636463646364636463"
    "6422002261626162616261626162616261626162616261626162616261626162616261626162616261626162"
    "61626162616261626162616261626162616261626162616222000022466c6167207468652061646472657373"
    "22002272756c65206d617261632d666c61672d64697374726963742d6465706172746d656e74732200000022"
    "6d617261632d666c61672d64697374726963742d6465706172746d656e747322005b22313231323132313231"
    "3231323132313231323132313231323132313231323132225d0022323032362d31312d32305431303a30303a"
    "30305a2200715363de"
)


def _record(i: int, *, gateway: str | None) -> AuditRecord:
    time = dt.datetime(2026, 11, 20, 10, 0, 1, 123456, tzinfo=dt.UTC) + dt.timedelta(seconds=i)
    return AuditRecord(
        record_id=f"{i + 100:032d}",
        time=time,
        event_id=f"evt-{i}",
        event_type=MARAC_RAISED,
        publisher="marac.north-worcs",
        recipient="redditch-bc.housing-repairs",
        decision=AuditDecision.DELIVERED,
        rule="marac-flag-district-departments",
        reason="rule marac-flag-district-departments",
        lawful_basis="UK GDPR Art 6(1)(e) public task",
        gateway=gateway,
        fields=("case_ref", "marac_date"),
        payload_sha256="cd" * 32,
        case_pseudonym="ef" * 16,
        subject_pseudonyms=("12" * 16,),
    )


def test_a_record_from_before_gateways_keeps_its_bytes_and_its_row() -> None:
    old = AuditRecord.model_validate_json(OLD_CANONICAL)
    assert old.gateway is None
    assert canonical_bytes(old) == OLD_CANONICAL  # the same leaf in the Merkle log
    assert pack(OLD_CANONICAL, OLD_COLUMNS) == OLD_PACKED  # the same stored row
    assert unpack(OLD_PACKED, OLD_COLUMNS) == OLD_CANONICAL


def test_a_record_with_a_gateway_is_packed_and_read_back() -> None:
    record = _record(1, gateway=S115)
    canonical = canonical_bytes(record)
    assert b'"gateway":"Crime and Disorder Act 1998 s115"' in canonical
    columns = (
        record.record_id,
        "2026-11-20T10:00:02.123456+00:00",
        record.event_id,
        record.publisher,
        record.recipient,
        "delivered",
        record.case_pseudonym,
    )
    shared = SharedValues()
    packed = pack(canonical, columns, shared)
    assert packed[:1] == b"\x05"  # format 2
    assert len(packed) < len(canonical) // 2
    shared.commit()
    assert unpack(packed, columns, shared) == canonical
    assert unpack_checked(packed, columns, shared) == (canonical, {"12" * 16})
    assert subjects_of(canonical) == {"12" * 16}
    assert AuditRecord.model_validate_json(canonical).gateway == S115


def test_a_log_of_records_with_and_without_gateways_verifies(tmp_path: Path) -> None:
    with SQLiteAuditStore(tmp_path / "audit.sqlite3") as store:
        log = AuditLog(store, signer=SIGNER)
        store.append([_record(i, gateway=S115 if i % 2 else None) for i in range(6)])
        log.checkpoint()
        store.append([AuditRecord.model_validate_json(OLD_CANONICAL)])
        log.checkpoint()
        report = log.verify()
        assert report.ok, report
        assert report.size == 7
        assert [r.gateway for r in store.query(limit=10)][:6] == [None, S115] * 3


def test_the_engine_names_the_gateway_of_the_rule_it_applied() -> None:
    protocol = load_protocol(default_protocol_path())
    decision = evaluate(
        protocol,
        event_id="e1",
        event_type=MARAC_RAISED,
        publisher="marac.north-worcs",
        data=marac_flag("MARAC-1"),
    )
    delivered: dict[str, RecipientDecision] = {r.party: r for r in decision.deliveries}
    assert delivered["redditch-bc.housing-repairs"].gateway == S115
    assert delivered["west-mercia-police"].gateway == S115
