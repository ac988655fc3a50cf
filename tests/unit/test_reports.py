"""IG reports over real audit stores (SQLite and PostgreSQL) seeded with a small partnership.

Every report test runs against both backends: the reports use only the ``AuditStore``
protocol, and this is what shows it (PostgreSQL runs on a throwaway server,
``tests/postgres.py``, and is skipped only when its binaries are absent).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.audit import reports
from hub.audit.pseudonym import Pseudonymiser
from hub.audit.store import AuditStore, open_store
from hub.audit.subjects import person_ref
from hub.errors import AuditError
from hub.models import AuditDecision, AuditRecord, record_id_for
from hub.settings import HubSettings
from tests.postgres import find_pg_bindir

_NO_PG = pytest.mark.skipif(
    find_pg_bindir() is None,
    reason="PostgreSQL binaries not found (initdb/pg_ctl): PostgreSQL report tests skipped",
)
BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="pg", marks=_NO_PG)]

T0 = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)

MARAC_RAISED = "uk.csp.marac.flag.raised.v1"
MARAC_UPDATED = "uk.csp.marac.flag.updated.v1"
SOCJAG = "uk.csp.socjag.intel.v1"
BAN = "uk.csp.pubwatch.ban.v1"

CASE = "MARAC-2024-0042"
VICTIM = "SUBJ-0042"
BANNED = ("John Smith", "1990-02-03")
MARAC_FIELDS = ("address", "case_ref", "contact", "markers", "risk_level")
KEY = bytes(range(32))


def delivered(event_id: str, recipient: str, time: dt.datetime, **kw: Any) -> AuditRecord:
    return _record(event_id, recipient, AuditDecision.DELIVERED, time, **kw)


def withheld(event_id: str, recipient: str | None, time: dt.datetime, **kw: Any) -> AuditRecord:
    kw.setdefault("fields", ())
    kw.setdefault("lawful_basis", None)
    return _record(event_id, recipient, AuditDecision.WITHHELD, time, **kw)


def ack(event_id: str, party: str, time: dt.datetime) -> AuditRecord:
    """As the router writes it: event_id = the acknowledged event, no case pseudonym."""
    return AuditRecord(
        record_id=record_id_for(event_id, party, AuditDecision.ACKNOWLEDGED),
        time=time,
        event_id=event_id,
        event_type=MARAC_RAISED,
        publisher=party,
        recipient=party,
        decision=AuditDecision.ACKNOWLEDGED,
        reason=f"{party} acknowledged {event_id} (received)",
        ack_event_id=f"ack-{event_id}-{party}",
    )


def _record(
    event_id: str,
    recipient: str | None,
    decision: AuditDecision,
    time: dt.datetime,
    **kw: Any,
) -> AuditRecord:
    values: dict[str, Any] = {
        "record_id": record_id_for(event_id, recipient, decision),
        "time": time,
        "event_id": event_id,
        "event_type": MARAC_RAISED,
        "event_time": time - MIN,
        "publisher": "west-mercia-police",
        "recipient": recipient,
        "decision": decision,
        "rule": "marac-flag-to-housing",
        "reason": "rule matched",
        "lawful_basis": "UK GDPR 6(1)(e); DPA 2018 Sch 1 para 18",
        "fields": MARAC_FIELDS,
        "payload_sha256": f"sha-{event_id}-{recipient}" if decision == "delivered" else None,
        "protocol_hash": "p" * 64,
    }
    values.update(kw)
    return AuditRecord(**values)


def seed_records(pseudo: Pseudonymiser) -> list[AuditRecord]:
    """A MARAC case with three events (one published late), a SOCJAG item and a ban."""
    marac = {
        "case_pseudonym": pseudo.case(CASE),
        "subject_pseudonyms": (pseudo.subject(VICTIM),),
    }
    raised_at = T0
    updated_at = T0 + 2 * DAY
    late_at = T0 + 3 * DAY  # probation published an earlier contact three days later
    banned = pseudo.subject(person_ref(*BANNED))
    return [
        # evt-raise: housing and the ICB receive the flag, fire is withheld.
        delivered("evt-raise", "redditch-bc.housing", raised_at, **marac),
        delivered(
            "evt-raise",
            "hw-icb",
            raised_at,
            rule="marac-flag-to-health",
            fields=("case_ref", "risk_level"),
            **marac,
        ),
        withheld(
            "evt-raise", "hw-fire", raised_at, rule=None, reason="no rule shares with", **marac
        ),
        ack("evt-raise", "redditch-bc.housing", raised_at + 5 * MIN),
        # evt-update: housing only; housing acknowledges it too.
        delivered(
            "evt-update", "redditch-bc.housing", updated_at, event_type=MARAC_UPDATED, **marac
        ),
        ack("evt-update", "redditch-bc.housing", updated_at + 30 * MIN),
        # the ICB acknowledges an event it never received about this case: must not attach.
        ack("evt-other", "hw-icb", updated_at),
        # evt-late: happened before the referral, routed after the update.
        delivered(
            "evt-late",
            "redditch-bc.housing",
            late_at,
            event_time=T0 - 10 * DAY,
            publisher="probation",
            rule="probation-to-housing",
            **marac,
        ),
        # SOCJAG intel naming the victim and someone else, shared with community safety.
        delivered(
            "evt-intel",
            "redditch-bc.community-safety",
            T0 + DAY,
            event_type=SOCJAG,
            rule="socjag-p-to-csp",
            lawful_basis="UK GDPR 6(1)(e); DPA 2018 Sch 1 para 10",
            fields=("intel_ref", "summary"),
            case_pseudonym=pseudo.case("INT-7"),
            subject_pseudonyms=(pseudo.subject(VICTIM), pseudo.subject("SUBJ-9")),
        ),
        # A Pub Watch ban about another person, to licensing and the scheme.
        delivered(
            "evt-ban",
            "redditch-bc.licensing",
            T0 + DAY,
            event_type=BAN,
            publisher="pubwatch-redditch",
            rule="ban-to-licensing",
            fields=("ban_ref", "subject"),
            case_pseudonym=pseudo.case("BAN-1"),
            subject_pseudonyms=(banned,),
        ),
        withheld(
            "evt-ban",
            "retail-crp",
            T0 + DAY,
            event_type=BAN,
            publisher="pubwatch-redditch",
            rule="segregate-night-time",
            reason="night-time offenders are not shown to retailers",
            case_pseudonym=pseudo.case("BAN-1"),
            subject_pseudonyms=(banned,),
        ),
        # A rejection (no recipient, no subject): never a disclosure.
        AuditRecord(
            record_id=record_id_for("evt-bad@x", None, AuditDecision.REJECTED),
            time=T0,
            event_id="evt-bad",
            decision=AuditDecision.REJECTED,
            reason="schema_invalid: bad",
        ),
    ]


@pytest.fixture
def pseudo() -> Pseudonymiser:
    return Pseudonymiser(KEY)


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path: Path, pseudo: Pseudonymiser
) -> Iterator[AuditStore]:
    location = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    if request.param == "postgres":
        location = request.getfixturevalue("postgres_url")
    opened = open_store(HubSettings(data_dir=tmp_path, audit_url=location))
    try:
        opened.append(seed_records(pseudo))
        yield opened
    finally:
        opened.close()


def rid(event_id: str, recipient: str) -> str:
    return record_id_for(event_id, recipient, "delivered")


# -- subject access ------------------------------------------------------------------------


def test_sar_lists_every_disclosure_in_time_order_with_its_details(
    store: AuditStore, pseudo: Pseudonymiser
) -> None:
    report = reports.subject_access(store, pseudo, VICTIM)

    assert report.subject_pseudonym == pseudo.subject(VICTIM)
    assert [(d.event_id, d.recipient) for d in report.disclosures] == [
        ("evt-raise", "redditch-bc.housing"),
        ("evt-raise", "hw-icb"),
        ("evt-intel", "redditch-bc.community-safety"),
        ("evt-update", "redditch-bc.housing"),
        ("evt-late", "redditch-bc.housing"),
    ]
    icb = report.disclosures[1]
    assert icb.time == T0
    assert icb.rule == "marac-flag-to-health"
    assert icb.lawful_basis == "UK GDPR 6(1)(e); DPA 2018 Sch 1 para 18"
    assert icb.fields == ("case_ref", "risk_level")
    assert icb.event_type == MARAC_RAISED
    assert icb.publisher == "west-mercia-police"
    assert icb.record_id == rid("evt-raise", "hw-icb")
    assert report.withheld_from_response == ()


def test_sar_leaves_out_withheld_events_and_other_subjects(
    store: AuditStore, pseudo: Pseudonymiser
) -> None:
    report = reports.subject_access(store, pseudo, VICTIM)

    recipients = {d.recipient for d in report.disclosures}
    assert "hw-fire" not in recipients  # withheld by the protocol: nothing was disclosed
    assert "redditch-bc.licensing" not in recipients  # another person's ban


def test_sar_normalises_a_pub_watch_person_reference(
    store: AuditStore, pseudo: Pseudonymiser
) -> None:
    report = reports.subject_access(store, pseudo, "  JOHN   smith |1990-02-03")

    assert [(d.event_id, d.recipient) for d in report.disclosures] == [
        ("evt-ban", "redditch-bc.licensing")
    ]
    assert reports.normalise_subject_ref("John  Smith|1990-02-03") == person_ref(*BANNED)
    assert reports.normalise_subject_ref("SUBJ-1") == "SUBJ-1"


def test_sar_for_an_unknown_subject_is_empty(store: AuditStore, pseudo: Pseudonymiser) -> None:
    report = reports.subject_access(store, pseudo, "SUBJ-NOBODY")

    assert report.disclosures == ()
    assert report.withheld_from_response == ()


def test_exemptions_are_listed_one_by_one_with_their_reasons(
    store: AuditStore, pseudo: Pseudonymiser
) -> None:
    reports.mark_exempt(
        store,
        record_id=rid("evt-intel", "redditch-bc.community-safety"),
        exemption="DPA 2018 Sch 2 para 2",
        reason="live investigation into county lines",
        officer="A Patel",
        now=T0 + 10 * DAY,
    )
    reports.mark_exempt(
        store,
        record_id=rid("evt-raise", "hw-icb"),
        exemption="DPA 2018 Sch 3 para 5",
        reason="serious harm to the victim",
        officer="A Patel",
        now=T0 + 11 * DAY,
    )

    report = reports.subject_access(store, pseudo, VICTIM)

    # Only those two deliveries leave the disclosures; the rest are still listed.
    assert [(d.event_id, d.recipient) for d in report.disclosures] == [
        ("evt-raise", "redditch-bc.housing"),
        ("evt-update", "redditch-bc.housing"),
        ("evt-late", "redditch-bc.housing"),
    ]
    withheld = report.withheld_from_response
    assert [w.delivery_record_id for w in withheld] == [
        rid("evt-raise", "hw-icb"),
        rid("evt-intel", "redditch-bc.community-safety"),
    ]
    assert [[e.reason for e in w.exemptions] for w in withheld] == [
        ["DPA 2018 Sch 3 para 5: serious harm to the victim (officer A Patel)"],
        ["DPA 2018 Sch 2 para 2: live investigation into county lines (officer A Patel)"],
    ]
    # The exemption follows the delivery: the other person named in the same intel item
    # sees it withheld too, with the same recorded reason.
    other = reports.subject_access(store, pseudo, "SUBJ-9")
    assert other.disclosures == ()
    assert len(other.withheld_from_response) == 1


def test_an_exemption_is_itself_an_append_only_audit_record(
    store: AuditStore, pseudo: Pseudonymiser
) -> None:
    original = rid("evt-raise", "hw-icb")
    before = store.counts()

    marked = reports.mark_exempt(
        store,
        record_id=original,
        exemption="crime",
        reason="ongoing prosecution",
        officer="B Jones",
        now=T0 + 10 * DAY,
    )

    assert marked.decision is AuditDecision.EXEMPTED
    assert marked.record_id == record_id_for(original, "B Jones", "exempted")
    assert marked.event_id == "evt-raise"
    assert marked.recipient == "hw-icb"
    assert marked.reason == "crime: ongoing prosecution (officer B Jones)"
    assert marked.subject_pseudonyms == (pseudo.subject(VICTIM),)
    assert store.query(decision=AuditDecision.EXEMPTED) == [marked]
    after = store.counts()
    assert after["exempted"] == before["exempted"] + 1
    assert store.query(event_id="evt-raise", decision="delivered")[1].record_id == original


def test_marking_twice_is_idempotent_but_a_second_officer_adds_a_reason(
    store: AuditStore, pseudo: Pseudonymiser
) -> None:
    original = rid("evt-raise", "hw-icb")
    first = reports.mark_exempt(
        store, record_id=original, exemption="crime", reason="r1", officer="A", now=T0
    )
    again = reports.mark_exempt(
        store, record_id=original, exemption="crime", reason="r1", officer="A", now=T0 + DAY
    )
    reports.mark_exempt(
        store, record_id=original, exemption="crime", reason="r2", officer="B", now=T0 + DAY
    )

    assert again == first  # the first write stands, with its own time
    assert len(store.query(decision=AuditDecision.EXEMPTED)) == 2
    (entry,) = reports.subject_access(store, pseudo, VICTIM).withheld_from_response
    assert [e.reason for e in entry.exemptions] == [
        "crime: r1 (officer A)",
        "crime: r2 (officer B)",
    ]


@pytest.mark.parametrize(
    ("record_id", "kwargs", "message"),
    [
        ("0" * 32, {}, "expected a delivered record"),
        (record_id_for("evt-raise", "hw-fire", "withheld"), {}, "expected a delivered record"),
        (rid("evt-raise", "hw-icb"), {"reason": "  "}, "exemption reason"),
        (rid("evt-raise", "hw-icb"), {"officer": ""}, "exemption officer"),
    ],
)
def test_mark_exempt_refuses_bad_input(
    store: AuditStore, record_id: str, kwargs: dict[str, str], message: str
) -> None:
    args = {"exemption": "crime", "reason": "why", "officer": "A"} | kwargs
    with pytest.raises(AuditError, match=message):
        reports.mark_exempt(
            store,
            record_id=record_id,
            exemption=args["exemption"],
            reason=args["reason"],
            officer=args["officer"],
        )
    assert store.query(decision=AuditDecision.EXEMPTED) == []


# -- chronology ----------------------------------------------------------------------------


def test_chronology_orders_events_by_event_time_and_joins_acknowledgements(
    store: AuditStore, pseudo: Pseudonymiser
) -> None:
    chron = reports.chronology(store, pseudo, CASE)

    assert chron.case_pseudonym == pseudo.case(CASE)
    assert [e.event_id for e in chron.entries] == ["evt-late", "evt-raise", "evt-update"]
    late, raised, updated = chron.entries
    assert late.publisher == "probation"
    assert late.event_time == T0 - 10 * DAY
    assert [(r.recipient, r.time, r.acknowledged_at) for r in late.received] == [
        ("redditch-bc.housing", T0 + 3 * DAY, None)
    ]
    assert [(r.recipient, r.rule, r.fields, r.acknowledged_at) for r in raised.received] == [
        ("redditch-bc.housing", "marac-flag-to-housing", MARAC_FIELDS, T0 + 5 * MIN),
        # the ICB's acknowledgement of a different event must not attach here
        ("hw-icb", "marac-flag-to-health", ("case_ref", "risk_level"), None),
    ]
    assert raised.received[0].acknowledgement == (
        "redditch-bc.housing acknowledged evt-raise (received)"
    )
    assert [(w.recipient, w.reason) for w in raised.withheld] == [
        ("hw-fire", "no rule shares with")
    ]
    assert updated.event_type == MARAC_UPDATED
    assert updated.received[0].acknowledged_at == T0 + 2 * DAY + 30 * MIN


def test_chronology_ignores_sar_exemptions_and_other_cases(
    store: AuditStore, pseudo: Pseudonymiser
) -> None:
    reports.mark_exempt(
        store, record_id=rid("evt-raise", "hw-icb"), exemption="crime", reason="x", officer="A"
    )

    chron = reports.chronology(store, pseudo, CASE)

    raised = chron.entries[1]
    assert [r.recipient for r in raised.received] == ["redditch-bc.housing", "hw-icb"]
    assert reports.chronology(store, pseudo, "MARAC-NONE").entries == ()
    assert [e.event_id for e in reports.chronology(store, pseudo, "BAN-1").entries] == ["evt-ban"]


# -- recipients (Art 19) -------------------------------------------------------------------


def test_recipients_lists_every_party_with_digest_and_acknowledgement(
    store: AuditStore,
) -> None:
    found = reports.recipients(store, "evt-raise")

    assert [r.recipient for r in found] == ["redditch-bc.housing", "hw-icb"]
    housing, icb = found
    assert housing.payload_sha256 == "sha-evt-raise-redditch-bc.housing"
    assert housing.acknowledged is True
    assert housing.acknowledged_at == T0 + 5 * MIN
    assert housing.fields == MARAC_FIELDS
    assert housing.rule == "marac-flag-to-housing"
    assert housing.time == T0
    assert icb.acknowledged is False
    assert icb.acknowledged_at is None


def test_recipients_of_a_withheld_only_or_unknown_event_are_empty(
    store: AuditStore,
) -> None:
    assert reports.recipients(store, "evt-bad") == []
    assert reports.recipients(store, "evt-unknown") == []


# -- volumes -------------------------------------------------------------------------------


def test_volumes_count_deliveries_and_withholdings_per_rule_and_party(
    store: AuditStore,
) -> None:
    rows = reports.volumes(store, T0)

    assert [(r.rule, r.recipient, r.delivered, r.withheld) for r in rows] == [
        (None, "hw-fire", 0, 1),
        ("ban-to-licensing", "redditch-bc.licensing", 1, 0),
        ("marac-flag-to-health", "hw-icb", 1, 0),
        ("marac-flag-to-housing", "redditch-bc.housing", 2, 0),
        ("probation-to-housing", "redditch-bc.housing", 1, 0),
        ("segregate-night-time", "retail-crp", 0, 1),
        ("socjag-p-to-csp", "redditch-bc.community-safety", 1, 0),
    ]


def test_volumes_start_at_the_date_and_ignore_acks_rejections_and_exemptions(
    store: AuditStore,
) -> None:
    reports.mark_exempt(
        store,
        record_id=rid("evt-late", "redditch-bc.housing"),
        exemption="c",
        reason="r",
        officer="A",
        now=T0 + 4 * DAY,
    )

    rows = reports.volumes(store, dt.datetime(2024, 5, 3))  # naive: UTC

    assert [(r.rule, r.recipient, r.delivered, r.withheld) for r in rows] == [
        ("marac-flag-to-housing", "redditch-bc.housing", 1, 0),
        ("probation-to-housing", "redditch-bc.housing", 1, 0),
    ]
    assert reports.volumes(store, T0 + 30 * DAY) == []


def test_reports_read_every_record_past_one_query_page(
    store: AuditStore, pseudo: Pseudonymiser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "_PAGE", 2)

    rows = reports.volumes(store, T0)

    assert sum(r.delivered for r in rows) == 6
    assert sum(r.withheld for r in rows) == 2
    assert len(reports.subject_access(store, pseudo, VICTIM).disclosures) == 5


# -- two parties' events with one id (issue 15, item 5) -------------------------------------


def twins(pseudo: Pseudonymiser) -> list[AuditRecord]:
    """Police and probation each publish evt-twin about the case; housing gets both and
    acknowledges probation's (received, then actioned), as the router now records it."""
    marac = {
        "case_pseudonym": pseudo.case(CASE),
        "subject_pseudonyms": (pseudo.subject(VICTIM),),
    }
    housing = "redditch-bc.housing"
    out = []
    for n, publisher in enumerate(("west-mercia-police", "probation")):
        out.append(
            delivered(
                "evt-twin",
                housing,
                T0 + 4 * DAY + n * MIN,
                publisher=publisher,
                record_id=record_id_for("evt-twin", housing, "delivered", source=publisher),
                payload_sha256=f"sha-{publisher}",
                **marac,
            )
        )
    for n, status in enumerate(("received", "actioned")):
        out.append(
            AuditRecord(
                record_id=record_id_for(
                    "evt-twin", housing, f"acknowledged/{status}", source="probation"
                ),
                time=T0 + 4 * DAY + (10 + n) * MIN,
                event_id="evt-twin",
                event_type=MARAC_RAISED,
                publisher="probation",
                recipient=housing,
                decision=AuditDecision.ACKNOWLEDGED,
                reason=f"{housing} acknowledged evt-twin of probation ({status})",
                ack_event_id=f"ack-twin-{status}",
            )
        )
    return out


def test_two_parties_events_with_one_id_are_two_chronology_entries(
    store: AuditStore, pseudo: Pseudonymiser
) -> None:
    store.append(twins(pseudo))
    entries = [
        e for e in reports.chronology(store, pseudo, CASE).entries if e.event_id == "evt-twin"
    ]
    assert [e.publisher for e in entries] == ["west-mercia-police", "probation"]
    police, probation = entries
    assert [r.acknowledged_at for r in police.received] == [None]
    assert [r.acknowledged_at for r in probation.received] == [T0 + 4 * DAY + 10 * MIN]


def test_recipients_of_an_id_list_each_partys_event_and_its_own_acknowledgement(
    store: AuditStore, pseudo: Pseudonymiser
) -> None:
    store.append(twins(pseudo))
    found = reports.recipients(store, "evt-twin")
    assert [(r.publisher, r.payload_sha256, r.acknowledged) for r in found] == [
        ("west-mercia-police", "sha-west-mercia-police", False),
        ("probation", "sha-probation", True),
    ]
    only = reports.recipients(store, "evt-twin", publisher="west-mercia-police")
    assert [r.publisher for r in only] == ["west-mercia-police"]


def test_an_exemption_of_one_partys_delivery_leaves_the_other_in_the_sar(
    store: AuditStore, pseudo: Pseudonymiser
) -> None:
    records = twins(pseudo)
    store.append(records)
    reports.mark_exempt(
        store, record_id=records[1].record_id, exemption="crime", reason="x", officer="A"
    )
    sar = reports.subject_access(store, pseudo, VICTIM)
    twin = [d for d in sar.disclosures if d.event_id == "evt-twin"]
    assert [d.publisher for d in twin] == ["west-mercia-police"]
    assert [w.delivery_record_id for w in sar.withheld_from_response] == [records[1].record_id]
