"""MARAC acknowledgement tracking (``hub marac status``) with acknowledgements as routed.

The router writes one record per acknowledgement status and names the acknowledged event's
publisher (issue 15, item 5); ``flag_status`` must still count one acknowledgement per
department, at the first status, and never take another party's event with the same id for
the flag's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.agents.routing import Router
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.store import AuditStore, open_store
from hub.envelope.party import PartyEnvelope
from hub.keys.file_store import FileKeyStore
from hub.keys.model import KeySuite
from hub.keys.store import ensure_dev_keys
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.processes import Stores, apply_effects
from hub.settings import HubSettings
from hub.workflows.marac import earlier_recipients, flag_status
from hub.workflows.register import FlagRegister
from tests.factories import MARAC_RAISED, MARAC_UPDATED, marac_flag
from tests.unit.test_router import FIXED, KEYS, PROTOCOL, REGISTRY, ack, never_seen, record

PSEUDO = Pseudonymiser(b"k" * 32)
LATER = FIXED.replace(hour=13)


@pytest.fixture(scope="module", autouse=True)
def _keys(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Dev keys for every party, for this module's routers and records (``KEYS[0]``)."""
    keys = FileKeyStore(tmp_path_factory.mktemp("keys"))
    extra = [KeySuite(s) for s in PROTOCOL.crypto.suites[1:]]
    ensure_dev_keys(keys, PROTOCOL.party_ids, extra_suites=extra)
    KEYS[0] = keys


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AuditStore]:
    opened = open_store(HubSettings(data_dir=tmp_path))
    yield opened
    opened.close()


@pytest.fixture
def register(tmp_path: Path) -> Iterator[FlagRegister]:
    with FlagRegister(tmp_path / "workflows.sqlite3") as opened:
        yield opened


def router(register: FlagRegister, now: list[dt.datetime] | None = None) -> Router:
    """A router whose clock reads ``now[0]`` (FIXED unless given)."""
    clock = now if now is not None else [FIXED]
    return Router(
        PROTOCOL,
        registry=REGISTRY,
        envelope=PartyEnvelope("hub", store=KEYS[0]),
        pseudonymiser=PSEUDO,
        max_event_bytes=64 * 1024,
        clock=lambda: clock[0],
        register=register,
    )


def status(register: FlagRegister, store: AuditStore) -> dict[str, Any]:
    [report] = flag_status(
        register=register,
        store=store,
        protocol=PROTOCOL,
        pseudonymiser=PSEUDO,
        now=FIXED + dt.timedelta(days=5),
        case="MARAC-50",
    )
    return {a.party: a for a in report.acks}


def test_received_then_actioned_counts_once_at_the_first(
    register: FlagRegister, store: AuditStore
) -> None:
    now = [FIXED]
    hub = router(register, now)
    flag = hub.route(
        **record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-50"), event_id="f-50"),
        seen=never_seen,
    )
    store.append(flag.audit)
    apply_effects(flag.effects, Stores([register]))  # as the worker does
    departments = sorted(status(register, store))
    assert len(departments) >= 2
    first, second = departments[:2]
    received = hub.route(**ack(first, "f-50", MARAC_RAISED), seen=never_seen)
    now[0] = LATER
    actioned = hub.route(
        **ack(first, "f-50", MARAC_RAISED, status="actioned", event_id="ack-2", offset=101),
        seen=never_seen,
    )
    store.append([*received.audit, *actioned.audit])
    acked = [
        r
        for r in store.query(event_id="f-50", party=first)
        if r.decision is AuditDecision.ACKNOWLEDGED
    ]
    assert len(acked) == 2  # both statuses are on the record
    by_party = status(register, store)
    assert by_party[first].acknowledged_at == FIXED
    assert not by_party[first].overdue
    assert by_party[second].acknowledged_at is None
    assert by_party[second].overdue


def test_an_acknowledgement_of_another_partys_event_with_the_same_id_does_not_count(
    register: FlagRegister, store: AuditStore
) -> None:
    flag = router(register).route(
        **record("marac.north-worcs", MARAC_RAISED, marac_flag("MARAC-50"), event_id="f-50"),
        seen=never_seen,
    )
    store.append(flag.audit)
    apply_effects(flag.effects, Stores([register]))  # as the worker does
    department = sorted(status(register, store))[0]
    # the police published f-50 too, and the department acknowledged the police's event
    store.append(
        [
            AuditRecord(
                record_id=record_id_for(
                    "f-50", department, "acknowledged/received", source="west-mercia-police"
                ),
                time=FIXED,
                event_id="f-50",
                event_type=MARAC_RAISED,
                publisher="west-mercia-police",
                recipient=department,
                decision=AuditDecision.ACKNOWLEDGED,
                reason=f"{department} acknowledged f-50 of west-mercia-police (received)",
                ack_event_id="ack-police",
            )
        ]
    )
    assert status(register, store)[department].acknowledged_at is None


def _two_updates_stored_in_reverse(
    register: FlagRegister, store: AuditStore, ids: tuple[str, str], *, naive_second: bool = False
) -> tuple[Any, list[list[AuditRecord]]]:
    """Two updates of MARAC-50 decided in the same hub instant, the publisher's times a second
    apart, the later one's records stored first; the case's status and each event's records.
    """
    hub = router(register)
    routed = []
    for index, event_id in enumerate(ids):
        result = hub.route(
            **record(
                "marac.north-worcs",
                MARAC_UPDATED,
                marac_flag("MARAC-50"),
                event_id=event_id,
                offset=index,
            ),
            seen=never_seen,
        )
        apply_effects(result.effects, Stores([register]))
        happened = FIXED + dt.timedelta(seconds=index)  # the publisher's CloudEvents time
        if naive_second and index == 1:  # a time sent without an offset: naive, taken as UTC
            happened = happened.replace(tzinfo=None)
        routed.append([r.model_copy(update={"event_time": happened}) for r in result.audit])
    store.append(routed[1])  # the later event's batch reached the store first
    store.append(routed[0])
    [report] = flag_status(
        register=register,
        store=store,
        protocol=PROTOCOL,
        pseudonymiser=PSEUDO,
        now=FIXED,
        case="MARAC-50",
    )
    return report, routed


def test_departments_are_listed_by_event_time_not_by_append_order(
    register: FlagRegister, store: AuditStore
) -> None:
    """Two updates of one case decided in the same hub millisecond, stored the other way round.

    With several workers each host's audit sink appends the batches it consumes, so a case's
    records can reach the store out of routing order (issue 22's scale-out run found it).
    The status lists them by the hub's decision time, then by each event's own time.
    """
    report, routed = _two_updates_stored_in_reverse(register, store, ("u-1", "u-2"))
    order = [a.event_id for a in report.acks]
    assert order == sorted(order)
    assert set(order) == {"u-1", "u-2"}
    assert [a.party for a in report.acks if a.event_id == "u-1"] == [
        r.recipient
        for r in routed[0]
        if r.decision is AuditDecision.DELIVERED and r.recipient in {a.party for a in report.acks}
    ]


def test_a_publishers_time_without_an_offset_does_not_break_the_status(
    register: FlagRegister, store: AuditStore
) -> None:
    """Records decided in the same hub instant are ordered by event time, naive or not.

    The hub reads ``ce_time`` with ``datetime.fromisoformat``, which takes a time without
    an offset as naive; the status orders a case's records by (decision time, event time),
    so one naive event time beside an aware one must not make the comparison raise.
    """
    report, _ = _two_updates_stored_in_reverse(register, store, ("n-1", "n-2"), naive_second=True)
    order = [a.event_id for a in report.acks]
    assert order == sorted(order)
    assert set(order) == {"n-1", "n-2"}


def test_earlier_recipients_are_the_parties_the_audit_says_received_the_case(
    tmp_path: Path,
) -> None:
    """The router's Art 19 lookup: the parties delivered any event of a case, by its
    pseudonym, from the store (once each; not those withheld; not another case's)."""
    settings = HubSettings(data_dir=tmp_path)
    pseudo = Pseudonymiser(load_pseudonym_key(settings))

    def delivered(event_id: str, party: str, case: str, decision: AuditDecision) -> AuditRecord:
        return AuditRecord(
            record_id=record_id_for(event_id, party, decision),
            time=FIXED,
            event_id=event_id,
            publisher="west-mercia-police",
            recipient=party,
            decision=decision,
            reason="rule matched",
            case_pseudonym=pseudo.case(case),
        )

    writer = open_store(settings)
    writer.append(
        [
            delivered("e1", "bromsgrove-dc.housing", "MARAC-7", AuditDecision.DELIVERED),
            delivered("e2", "bromsgrove-dc.housing", "MARAC-7", AuditDecision.DELIVERED),
            delivered("e2", "hwfrs", "MARAC-7", AuditDecision.DELIVERED),
            delivered("e2", "probation", "MARAC-7", AuditDecision.WITHHELD),
            delivered("e3", "wah-nhs.safeguarding", "MARAC-8", AuditDecision.DELIVERED),
        ]
    )
    writer.close()
    lookup = earlier_recipients(settings, pseudo)
    assert lookup(" marac-7 ") == {"bromsgrove-dc.housing", "hwfrs"}  # as pseudonymised
    assert lookup("MARAC-8") == {"wah-nhs.safeguarding"}
    assert lookup("MARAC-9") == set()
