"""The shared state's contract, run against both backends: SQLite files and PostgreSQL.

Why one suite (as ``test_audit_store_contract.py`` for the audit store): the router, the
sweeps and the CLI see one class per store (``SeenEvents``, ``FlagRegister``, ``BanRegister``,
``AgreementAlerts``, ``AsbRegister``, ``CaseKeys``), opened by ``hub.state`` from
``HUB_STATE_URL``; both backends must give the same answers. Two stores opened on one
location stand for two workers (on one host for SQLite, on any host for PostgreSQL): each
has its own connection, so what keeps a claim exact is the engine's locking. The PostgreSQL
cases run on the throwaway server of ``tests/postgres.py`` and skip only when its binaries
are absent.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from hub.agents.seen import Claim, SeenEvents
from hub.durable import GroupSync
from hub.errors import CaseShreddedError, ConfigError, KeyStoreError, LegalHoldError
from hub.federation.ownership import Owned
from hub.keys.cases import CaseKeys
from hub.models import event_key
from hub.settings import HubSettings
from hub.state import (
    has_state,
    open_agreement_alerts,
    open_asb_register,
    open_ban_register,
    open_case_keys,
    open_flag_register,
    open_ownership_register,
    open_proof_register,
    open_seen,
    open_strategic_register,
    state_url,
)
from hub.workflows.agreements import PlannedAlert
from hub.workflows.asb.cases import Action
from hub.workflows.asb.threshold import Complaint
from hub.workflows.bans import BAN_TYPE, EXPIRED_TYPE, RETAIL_EXCLUSION_TYPE, UPDATED_TYPE
from hub.workflows.register import Referral
from hub.workflows.sqlite_state import RegisterError
from tests.unit.conftest import BACKENDS

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
A = "hub.in.police.west-mercia/0/17"
B = "hub.in.police.west-mercia/2/4"
C = "hub.in.council.redditch/2/4"
POLICE = "/parties/police.west-mercia"


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> HubSettings:
    """Settings selecting one backend: SQLite in ``tmp_path``, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return HubSettings(data_dir=tmp_path / "data")
    url: str = request.getfixturevalue("postgres_url")
    return HubSettings(data_dir=tmp_path / "data", state_url=url)


def pseudonym(ref: str) -> str:
    return f"case_{ref.replace('-', '_')}"


@pytest.fixture
def seen(settings: HubSettings) -> Iterator[SeenEvents]:
    with open_seen(settings) as store:
        yield store


# -- selection -------------------------------------------------------------------------------


def test_the_backend_follows_hub_state_url(settings: HubSettings) -> None:
    with open_seen(settings) as store:
        assert (type(store).__name__ == "PostgresSeenEvents") == bool(settings.state_url)
    assert state_url(settings) == settings.state_url
    # SQLite: nothing written in the data dir by a PostgreSQL hub; PostgreSQL: always "there"
    assert has_state(settings) == bool(settings.state_url)
    assert settings.seen_path.exists() != bool(settings.state_url)


def test_a_state_url_of_another_scheme_is_refused(tmp_path: Path) -> None:
    settings = HubSettings(data_dir=tmp_path, state_url="mysql://u:secret@db/hub")
    with pytest.raises(ConfigError, match=r"expected postgresql://.*'mysql'") as caught:
        state_url(settings)
    assert "secret" not in str(caught.value)


# -- seen events -----------------------------------------------------------------------------


def test_seen_first_claim_wins_and_a_reprocess_keeps_it(seen: SeenEvents) -> None:
    assert seen.first("evt-1") is None
    assert seen.remember("evt-1", origin=A, at=T0) == A
    assert seen.remember("evt-1", origin=A, at=T0 + dt.timedelta(hours=1)) == A  # reprocess
    assert seen.remember("evt-1", origin=B, at=T0) == A  # another record: a duplicate
    assert seen.first(event_key(POLICE, "evt-1")) == A
    assert seen.first(event_key("/parties/council.redditch", "evt-1")) is None
    assert seen.first("evt-1") == A
    assert seen.count() == 1


def test_seen_first_many_answers_a_batch_as_first_answers_each(seen: SeenEvents) -> None:
    seen.remember("evt-1", origin=A, at=T0)
    seen.remember("evt-2", origin=C, at=T0)
    council = "/parties/council.redditch"
    keys = [
        event_key(POLICE, "evt-1"),  # seen, from this source
        event_key(council, "evt-1"),  # the same id from another source: another event
        event_key(council, "evt-2"),
        event_key(POLICE, "evt-3"),  # never seen
        "evt-2",  # a bare id: first() alone answers those
    ]
    found = seen.first_many(keys)
    assert found == {event_key(POLICE, "evt-1"): A, event_key(council, "evt-2"): C}
    for key in keys[:4]:
        assert found.get(key) == seen.first(key)
    many = [event_key(POLICE, f"bulk-{n}") for n in range(1200)]  # beyond one IN (...) chunk
    seen.remember_many([Claim(event_id=f"bulk-{n}", origin=A, at=T0) for n in (0, 777, 1199)])
    assert set(seen.first_many(many)) == {many[0], many[777], many[1199]}


def test_seen_batch_claims_in_order_with_duplicates_inside(seen: SeenEvents) -> None:
    seen.remember("evt-0", origin=C, at=T0)
    claims = [
        Claim("evt-1", A, T0, recipients=("fire", "health")),
        Claim("evt-2", A, T0),
        Claim("evt-1", B, T0),  # the same (source, id) again, later in the batch
        Claim("evt-0", B, T0),  # claimed before this batch, by another party's record
        Claim("evt-0", C, T0),  # that claim itself, again
    ]
    assert seen.remember_many(claims) == [A, A, A, B, C]
    assert seen.remember_many([]) == []
    assert seen.count() == 4  # evt-0 from two sources is two events
    assert seen.delivered("evt-1", "fire") == {("police.west-mercia", None)}
    assert seen.delivered("evt-1", "police.west-mercia") == set()


N = 3000  # ids per batch: enough for two batches' inserts to overlap


def test_seen_two_workers_claim_exactly_once(settings: HubSettings) -> None:
    """Two batches of the same ids at once, in opposite orders: each id claimed once, and
    neither batch fails (in PostgreSQL, rows locked in two orders would be a deadlock)."""
    with open_seen(settings) as first, open_seen(settings) as second:
        winners: list[str] = []
        failed: list[BaseException] = []
        start = threading.Barrier(2)

        def claim(store: SeenEvents, origin: str, ids: list[int]) -> None:
            start.wait()
            try:
                holders = store.remember_many(
                    [Claim(f"evt-{i}", origin, T0, source=POLICE) for i in ids]
                )
            except BaseException as exc:
                failed.append(exc)
                return
            winners.extend(h for h in holders if h == origin)

        ids = list(range(N))
        threads = [
            threading.Thread(target=claim, args=(first, A, ids)),
            threading.Thread(target=claim, args=(second, B, ids[::-1])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failed == []
        assert len(winners) == N  # every id claimed by exactly one of the two
        assert first.count() == N
        sample = [f"evt-{i}" for i in range(0, N, 97)]
        assert {first.first(e) for e in sample} <= {A, B}
        assert [first.first(e) for e in sample] == [second.first(e) for e in sample]


def test_seen_prune_forgets_only_older_ids(seen: SeenEvents) -> None:
    seen.remember_many([Claim(f"old-{i}", A, T0) for i in range(5)])
    seen.remember("new", origin=A, at=T0 + dt.timedelta(days=2))
    assert seen.prune(T0 + dt.timedelta(days=1), chunk=2) == 5
    assert seen.count() == 1
    assert seen.first("new") == A


def test_seen_group_commit_syncs_through_the_store(settings: HubSettings) -> None:
    group = GroupSync()
    with open_seen(settings, group=group) as store:
        store.remember("evt-1", origin=A, at=T0)
        assert group.position > group.synced
        group.sync_to(group.position)  # SQLite: one fsync or syncfs; PostgreSQL: a WAL flush
        assert group.synced == group.position


# -- the MARAC flag register -----------------------------------------------------------------


def test_flags_newer_event_wins_and_repeats_change_nothing(settings: HubSettings) -> None:
    with open_flag_register(settings) as one, open_flag_register(settings) as two:
        for register, case_ref, event_id in ((one, "M-2", "e1"), (two, "M-1", "e0")):
            register.record(case_ref=case_ref, subject_ref="S-1", subject_pseudonym="p1",
                            status="active", review_date=None, at=T0, event_id=event_id,
                            event_type="raised")  # fmt: skip
        later = T0 + dt.timedelta(days=3)
        two.record(case_ref="M-2", subject_ref=None, subject_pseudonym=None, status="withdrawn",
                   review_date=dt.date(2025, 9, 1), at=later, event_id="e2",
                   event_type="withdrawn")  # fmt: skip
        one.record(case_ref="M-2", subject_ref=None, subject_pseudonym=None, status="active",
                   review_date=None, at=T0 + dt.timedelta(days=1), event_id="e3",
                   event_type="updated")  # older than e2: ignored  # fmt: skip
        flag = one.flag("M-2")
        assert flag is not None
        assert (flag.status, flag.review_date, flag.subject_ref) == (
            "withdrawn",
            dt.date(2025, 9, 1),
            "S-1",
        )
        assert (flag.raised_at, flag.updated_at, flag.last_event_id) == (T0, later, "e2")
        assert [f.case_ref for f in two.flags()] == ["M-1", "M-2"]
        assert [f.case_ref for f in two.flags(status="active")] == ["M-1"]
        assert one.flag("M-9") is None


def test_flags_referrals_and_alerts(settings: HubSettings) -> None:
    with open_flag_register(settings) as register:
        first = Referral(event_id="e1", case_ref="M-1", subject_pseudonym="p1",
                         referred_at=T0, reason="raised", repeat_of=None)  # fmt: skip
        repeat = first.model_copy(
            update={"event_id": "e2", "referred_at": T0 + dt.timedelta(days=30), "repeat_of": "e1"}
        )
        register.add_referral(first)
        register.add_referral(repeat)
        register.add_referral(first)  # idempotent
        assert register.referrals() == [first, repeat]
        assert register.raises("M-1") == [first, repeat]
        assert register.last_referral("p1", other_than="e2") == first
        assert register.last_referral("p1", other_than="e9") == repeat
        assert register.mark_alert("a1", "review-due", "M-1", T0) is True
        assert register.mark_alert("a1", "review-due", "M-1", T0) is False
        assert register.alert_sent("a1")
        assert not register.alert_sent("a2")
        assert register.alert_time("a1") == T0
        assert register.alert_time("a2") is None


# -- the ban register ------------------------------------------------------------------------


def ban(ref: str, end: str = "2025-09-01", **extra: object) -> dict[str, object]:
    return {"ban_ref": ref, "scheme": "redditch", "incident_type": "violence",
            "ban_start": "2025-03-01", "ban_end": end,
            "subject": {"photo_ref": "ph-1"}, **extra}  # fmt: skip


def test_bans_lifecycle(settings: HubSettings) -> None:
    with open_ban_register(settings) as one, open_ban_register(settings) as two:
        one.record(BAN_TYPE, ban("B-1"), publisher="pub.a", at=T0, event_id="e1")
        two.record(RETAIL_EXCLUSION_TYPE, ban("R-1"), publisher="shop.b", at=T0, event_id="e2")
        two.record(UPDATED_TYPE, ban("B-1", "2025-06-01"), publisher="pub.a",
                   at=T0 + dt.timedelta(days=1), event_id="e3")  # fmt: skip
        one.record(UPDATED_TYPE, ban("B-1", "2025-12-01"), publisher="pub.a",
                   at=T0, event_id="e4")  # older: ignored  # fmt: skip
        one.record(UPDATED_TYPE, ban("X-1"), publisher="pub.a", at=T0, event_id="e5")  # unknown
        held = two.ban("B-1")
        assert held is not None
        assert (held.ban_end, held.status, held.photo_ref, held.last_event_id) == (
            dt.date(2025, 6, 1), "active", "ph-1", "e3",
        )  # fmt: skip
        assert one.start_type("R-1") == RETAIL_EXCLUSION_TYPE
        assert one.start_type("B-1") == BAN_TYPE
        assert one.started_by("e1", "B-1")
        assert not one.started_by("e3", "B-1")
        two.record(EXPIRED_TYPE, ban("B-1"), publisher="hub", at=T0 + dt.timedelta(days=2),
                   event_id="e6")  # fmt: skip
        expired = one.ban("B-1")
        assert expired is not None
        assert (expired.status, expired.photo_ref) == ("expired", None)
        # a new ban with the reference of an ended one replaces it whole
        one.record(BAN_TYPE, ban("B-1", "2026-01-01"), publisher="pub.c",
                   at=T0 + dt.timedelta(days=3), event_id="e7")  # fmt: skip
        again = two.ban("B-1")
        assert again is not None
        assert (again.status, again.publisher, again.photo_ref) == ("active", "pub.c", "ph-1")
        assert [b.ban_ref for b in one.bans()] == ["B-1", "R-1"]
        assert [b.ban_ref for b in one.bans(status="expired")] == []
        assert one.mark_sent("n1", "B-1", T0) is True
        assert two.mark_sent("n1", "B-1", T0) is False
        assert two.sent("n1")
        assert not two.sent("n2")
        assert one.ban("nope") is None


def test_agreement_alerts(settings: HubSettings) -> None:
    alert = PlannedAlert(
        event_id="x", agreement_id="ISA-1", review_date=dt.date(2025, 6, 1), stage="due",
        data={}, settles=(("al-1", "soon"), ("al-2", "due")),
    )  # fmt: skip
    with open_agreement_alerts(settings) as register:
        register.mark_sent(alert, T0)
        register.mark_sent(alert, T0)
        assert register.sent("al-1")
        assert register.sent("al-2")
        assert not register.sent("al-3")
        assert register.sent_for("ISA-1", dt.date(2025, 6, 1)) == ["due", "soon"]


def test_a_peers_proof_kept_by_one_worker_is_read_by_any_and_a_resend_replaces_it(
    settings: HubSettings,
) -> None:
    """``hub audit proof --peer`` on any host reads what any worker's router kept."""
    entry = {
        "record": '{"record_id": "r-1"}', "leaf_index": 4, "tree_size": 9,
        "inclusion_proof": ["aGFzaA=="], "checkpoint": "origin\n9\nroot\n",
    }  # fmt: skip
    with open_proof_register(settings) as one, open_proof_register(settings) as other:
        assert other.entries("swcsp-hub", "t-1") == []
        one.add("swcsp-hub", "t-1", {**entry, "transfer_event_id": "t-1", "peer": None})
        assert other.entries("swcsp-hub", "t-1") == [entry]  # the entry's fields only
        resent = {**entry, "tree_size": 12, "checkpoint": "origin\n12\nroot\n"}
        other.add("swcsp-hub", "t-1", resent)
        second = {**entry, "record": '{"record_id": "r-2"}'}
        other.add("swcsp-hub", "t-1", second)
        assert one.entries("swcsp-hub", "t-1") == [resent, second]  # one per record id
        assert one.entries("nwcsp-hub", "t-1") == []  # by peer


def test_ownership_is_seen_by_every_worker_and_the_first_event_stands(
    settings: HubSettings,
) -> None:
    """A peer's ownership recorded by one worker stops transfers routed by any other."""
    taken = Owned(
        case_ref="MARAC-2026-0042", peer="swcsp-hub", side="theirs", event_id="own-1",
        transfer_event_id="tx-1", taken_on=dt.date(2026, 12, 1),
    )  # fmt: skip
    ours = replace(taken, case_ref="MARAC-2026-0007", side="ours", event_id="own-2")
    with open_ownership_register(settings) as one, open_ownership_register(settings) as other:
        assert other.owner(taken.case_ref) is None
        one.take(taken)
        one.take(replace(taken, event_id="own-resent", taken_on=dt.date(2026, 12, 3)))
        other.take(ours)
        assert other.owner(taken.case_ref) == taken  # the first event for the case stands
        assert one.owner(ours.case_ref) is None  # this area took it: no peer owns it
        assert one.all() == [ours, taken]  # by date taken, then case reference


# -- case keys, shredding, legal holds -------------------------------------------------------


@pytest.fixture
def cases(settings: HubSettings) -> Iterator[Callable[[], CaseKeys]]:
    opened: list[CaseKeys] = []

    def open_one() -> CaseKeys:
        keys = open_case_keys(settings, pseudonymise=pseudonym)
        opened.append(keys)
        return keys

    yield open_one
    for keys in opened:
        keys.close()


def test_case_key_is_one_per_case_across_workers(cases: Callable[[], CaseKeys]) -> None:
    router, other = cases(), cases()
    key = router.key_for("MARAC-2025-0042")
    assert len(key) == 32
    assert other.key_for("MARAC-2025-0042") == key
    assert other.key_for("MARAC-2025-0043") != key
    assert router.live_cases() == [pseudonym("MARAC-2025-0042"), pseudonym("MARAC-2025-0043")]


def test_shred_destroys_the_key_for_every_worker(
    cases: Callable[[], CaseKeys], settings: HubSettings
) -> None:
    router, cli = cases(), cases()
    router.key_for("C-0001")
    assert cli.shred("C-0001") is True
    assert router.is_shredded("C-0001")
    with pytest.raises(CaseShreddedError):
        router.key_for("C-0001")  # never re-created, by any worker
    assert cli.shred("C-0001") is False
    assert router.live_cases() == []
    assert cli.shred("C-0002") is False  # no key yet: the tombstone still stops one
    with pytest.raises(CaseShreddedError):
        router.key_for("C-0002")
    if settings.state_url:  # the row is gone: no query can return the key
        with psycopg.connect(settings.state_url) as conn:
            assert conn.execute("SELECT count(*) FROM case_keys").fetchone() == (0,)
            rows = conn.execute("SELECT name FROM shredded ORDER BY name").fetchall()
        assert rows == [(pseudonym("C-0001"),), (pseudonym("C-0002"),)]


def test_a_legal_hold_stops_a_shred_until_lifted(cases: Callable[[], CaseKeys]) -> None:
    router, ig = cases(), cases()
    router.key_for("C-0001")
    hold = ig.add_hold("C-0001", "DHR", "ig.officer")
    assert router.holds() == [hold]
    assert router.hold_on(pseudonym("C-0001")) == hold
    with pytest.raises(LegalHoldError, match="under legal hold"):
        router.shred("C-0001")
    with pytest.raises(LegalHoldError, match="already under hold"):
        router.add_hold("C-0001", "again", "someone")
    assert ig.lift_hold("C-0001", "ig.officer") == hold
    with pytest.raises(LegalHoldError, match="found none"):
        ig.lift_hold("C-0001", "ig.officer")
    assert router.shred("C-0001") is True
    with pytest.raises(CaseShreddedError):
        ig.add_hold("C-0001", "too late", "ig.officer")
    assert router.holds() == []


def test_deferred_keys_are_written_together_when_the_block_ends(
    cases: Callable[[], CaseKeys],
) -> None:
    router, other = cases(), cases()
    router.key_for("C-0000")  # an existing key is read as ever
    with router.deferred() as lost:
        key = router.key_for("C-0001")
        assert router.key_for("C-0001") == key  # the block's own new key, every time
        assert router.key_for("C-0000") == other.key_for("C-0000")
        assert other.live_cases() == [pseudonym("C-0000")]  # nothing written yet
    assert not lost
    assert lost.ours == {}
    assert other.key_for("C-0001") == key
    assert other.live_cases() == [pseudonym("C-0000"), pseudonym("C-0001")]


def test_a_deferred_key_another_worker_wrote_first_is_reported_lost(
    cases: Callable[[], CaseKeys],
) -> None:
    router, other, cli = cases(), cases(), cases()
    with router.deferred() as lost:
        ours = router.key_for("C-0001")
        router.key_for("C-0002")
        router.key_for("C-0003")
        theirs = other.key_for("C-0001")  # another worker, writing at once
        cli.shred("C-0002")  # and a shred, before the block ends
    # what the block sealed under, and what stands instead (None: shredded)
    assert lost.ours == {
        pseudonym("C-0001"): ours,
        pseudonym("C-0002"): lost.ours[pseudonym("C-0002")],
    }
    assert lost.kept == {pseudonym("C-0001"): theirs, pseudonym("C-0002"): None}
    assert router.key_for("C-0001") == theirs != ours  # the first writer's key stands
    with pytest.raises(CaseShreddedError):
        router.key_for("C-0002")  # no key for a shredded case, deferred or not
    assert router.live_cases() == [pseudonym("C-0001"), pseudonym("C-0003")]


def test_deferred_writers_of_overlapping_cases_never_deadlock(
    settings: HubSettings, cases: Callable[[], CaseKeys]
) -> None:
    """Two workers' batches share a case; their locks are taken in one order, so none waits
    on the other in a cycle (PostgreSQL would abort one, and its worker would restart).

    The locks are on 32-bit hashes of the names: ordered by name, two names whose hashes
    collide (p < q < r, hash(p) == hash(r)) make A take p then q, and B q then "p" (r).
    """
    if not settings.state_url:
        pytest.skip("PostgreSQL only: SQLite has one writer at a time")
    with psycopg.connect(settings.state_url, autocommit=True) as admin:
        # two case names whose lock ids collide, in the database's order of names
        pair = admin.execute(
            "SELECT array_agg(n ORDER BY n) FROM (SELECT 'case_H_' || i AS n, "
            "hashtext('hub.case:case_H_' || i) AS h FROM generate_series(1, 300000) AS i) AS t "
            "GROUP BY h HAVING count(*) = 2 LIMIT 1"
        ).fetchone()
        assert pair is not None
        low, high = pair[0]
        middle = next(
            m
            for m in (low + c for c in "0123456789")
            if admin.execute("SELECT %s < %s AND %s < %s", (low, m, m, high)).fetchone()[0]  # type: ignore[index]
        )
        ref = {name: name.removeprefix("case_").replace("_", "-") for name in (low, middle, high)}

        def waiting() -> int:
            row = admin.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone()
            return int(row[0]) if row else 0

        def until(count: int) -> None:
            deadline = time.monotonic() + 10.0
            while waiting() < count:
                assert time.monotonic() < deadline, f"expected {count} waiting for a case lock"
                time.sleep(0.01)

        errors: list[BaseException] = []

        def batch(keys: CaseKeys, names: tuple[str, str]) -> None:
            try:
                with keys.deferred():
                    for name in names:
                        keys.key_for(ref[name])
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        one, two = cases(), cases()
        with psycopg.connect(settings.state_url) as holder:  # a third writer holds p's lock
            holder.execute("SELECT pg_advisory_xact_lock(hashtext('hub.case:' || %s))", (low,))
            first = threading.Thread(target=batch, args=(one, (low, middle)))
            first.start()
            until(1)
            second = threading.Thread(target=batch, args=(two, (middle, high)))
            second.start()
            until(2)
            holder.commit()
        first.join(30)
        second.join(30)
    assert errors == []
    assert set(one.live_cases()) == {low, middle, high}


def test_a_deferred_block_that_fails_writes_nothing_and_a_shredded_case_is_refused_inside(
    cases: Callable[[], CaseKeys],
) -> None:
    router, cli = cases(), cases()
    cli.shred("C-0009")

    def routing_fails() -> None:
        with router.deferred():
            router.key_for("C-0001")
            with pytest.raises(CaseShreddedError):
                router.key_for("C-0009")
            raise RuntimeError("routing failed")

    with pytest.raises(RuntimeError):
        routing_fails()
    assert cli.live_cases() == []
    with router.deferred() as lost:  # the next block starts afresh
        with pytest.raises(KeyStoreError, match="not reentrant"), router.deferred():
            pass
        router.key_for("C-0001")
    assert not lost
    assert cli.live_cases() == [pseudonym("C-0001")]


def test_deferral_applies_to_the_thread_that_began_it(cases: Callable[[], CaseKeys]) -> None:
    router, other = cases(), cases()
    seen: list[list[str]] = []
    with router.deferred():
        worker = threading.Thread(target=lambda: router.key_for("C-0002"))
        worker.start()
        worker.join()
        seen.append(other.live_cases())  # another thread's key was written at once
    assert seen == [[pseudonym("C-0002")]]


def test_case_keys_group_commit(settings: HubSettings) -> None:
    group = GroupSync()
    keys = open_case_keys(settings, pseudonymise=pseudonym, group=group)
    try:
        keys.key_for("C-0001")
        assert group.position > group.synced
        group.sync_to(group.position)
        assert group.synced == group.position
        with keys.deferred():
            keys.key_for("C-0002")
            assert group.synced == group.position  # nothing written yet
        assert group.position > group.synced  # written once: synced before the ack
        group.sync_to(group.position)
        other = open_case_keys(settings, pseudonymise=pseudonym)  # a worker of its own
        try:
            with keys.deferred() as lost:
                keys.key_for("C-0003")
                other.key_for("C-0003")  # written first, synced by nobody here
            assert lost.kept == {pseudonym("C-0003"): other.key_for("C-0003")}
            # sealed again under the other's key: synced before this batch's ack too
            assert group.position > group.synced
        finally:
            other.close()
    finally:
        keys.close()


# -- the ASB Case Review register ------------------------------------------------------------


def test_asb_register_lifecycle(settings: HubSettings) -> None:
    day = dt.date(2025, 3, 3)
    with open_asb_register(settings) as one, open_asb_register(settings) as two:
        one.open_case(event_id="a1", case_ref="ASB-1", applicant_ref="ap-1",
                      applicant_kind="victim", district="redditch", received_on=day)  # fmt: skip
        two.open_case(event_id="a1", case_ref="ASB-1", applicant_ref="other",
                      applicant_kind="mp", district="bromsgrove",
                      received_on=day)  # the same event again: changes nothing  # fmt: skip
        complaint = Complaint(body="police", reference="C-1", reported_on=day,
                              incident_on=day, complainant="cp-1")  # fmt: skip
        one.answer(event_id="a2", case_ref="ASB-1", body="police", answered_on=day,
                   complaints=[complaint])  # fmt: skip
        moved = dt.date(2025, 3, 1)
        two.answer(event_id="a3", case_ref="ASB-1", body="police", answered_on=day,
                   complaints=[replace(complaint, incident_on=moved)])  # replaces  # fmt: skip
        two.record(event_id="a4", case_ref="ASB-1", acknowledged_on=day, threshold_met=True,
                   decided_on=day)  # fmt: skip
        action = Action(action_ref="X-1", body="council", action="fit CCTV", due_on=day,
                        set_on=day)  # fmt: skip
        one.outcome(event_id="a5", case_ref="ASB-1", outcome="actions agreed", outcome_on=day,
                    meeting_on=None, appeal=False, actions=[action])  # fmt: skip
        two.action_update(event_id="a6", case_ref="ASB-1", action_ref="X-1",
                          status="completed", on=day)  # fmt: skip
        one.appeal(event_id="a7", case_ref="ASB-1", appeal_ref="AP-1", lodged_on=day)
        one.appeal(event_id="a7", case_ref="ASB-1", appeal_ref="AP-1", lodged_on=day)  # repeat
        one.mark_alert("al-1", "threshold", "ASB-1", T0)
        two.mark_alert("al-1", "threshold", "ASB-1", T0)
        case = two.case("ASB-1")
        assert case is not None
        assert (case.applicant_ref, case.district, case.threshold_met, case.reopened) == (
            "ap-1", "redditch", True, 1,
        )  # fmt: skip
        assert (case.meeting_on, case.appeal_ref, case.answers) == (day, "AP-1", {"police": day})
        assert [(a.action_ref, a.completed_on) for a in case.actions] == [("X-1", day)]
        assert [(c.reference, c.incident_on) for c in one.complaints("ASB-1")] == [("C-1", moved)]
        assert one.alerts("ASB-1") == [("al-1", "threshold")]
        assert one.alert_sent("al-1")
        assert [c.case_ref for c in one.cases()] == ["ASB-1"]
        assert one.case("ASB-9") is None
        # a reprocessed event is known as applied to its case (its checks are not run again)
        assert two.applied("a1", "ASB-1")
        assert not two.applied("a1", "ASB-9")
        assert not one.applied("a9", "ASB-1")


# -- the s17A register -----------------------------------------------------------------------


def test_strategic_register_keeps_the_latest_submission_and_each_release(
    settings: HubSettings,
) -> None:
    from hub.strategic.dataset import ReleasedCell
    from hub.strategic.register import Release

    kept = {"submitter": "hwfrs", "period": "2026Q3", "category": "fire_deliberate_fires"}
    with open_strategic_register(settings) as one, open_strategic_register(settings) as two:
        one.keep(**kept, submission_id="S-1", event_id="e1", received_at=T0, counts={"B97": 7})
        later = T0 + dt.timedelta(days=1)
        two.keep(**kept, submission_id="S-2", event_id="e2", received_at=later, counts={"B97": 9})
        one.keep(**kept, submission_id="S-1", event_id="e1", received_at=T0, counts={"B97": 7})
        [submission] = two.submissions("2026Q3")
        assert (submission.submission_id, submission.counts) == ("S-2", {"B97": 9})
        assert one.periods() == ["2026Q3"]
        assert two.submissions("2026Q2") == []
        one.mark_alert("al-1", submitter="hw-icb", period="2026Q3", kind="late", at=T0)
        two.mark_alert("al-1", submitter="hw-icb", period="2026Q3", kind="late", at=T0)
        assert two.alert_sent("al-1")
        assert not one.alert_sent("al-2")
        published = Release("R-1", "2026Q3", "0" * 64, "e9", T0.isoformat(), ())
        one.record_release(published)
        routed = replace(published, recipients=("nwcsp.analysts",))
        two.record_release(routed)
        one.record_release(published)  # the sweep's mark again: the recipients stay
        assert one.releases("2026Q3") == [routed]
        cell = ReleasedCell("redditch", "outward_code", "B97", "fire_deliberate_fires", None)
        one.keep_released_cells("R-1", period="2026Q3", threshold=5, cells=[cell])
        two.keep_released_cells("R-1", period="2026Q3", threshold=5, cells=[cell])
        assert two.released()["2026Q3"].cells == (cell,)


def test_postgres_reopens_a_lost_connection(settings: HubSettings) -> None:
    """A server restart or a dropped connection: that call fails, the next one reconnects."""
    if not settings.state_url:
        pytest.skip("PostgreSQL only: a SQLite file has no connection to lose")
    with open_flag_register(settings) as register:
        assert register.flags() == []
        with psycopg.connect(settings.state_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(RegisterError, match="flag register postgresql://"):
            register.flags()
        assert register.mark_alert("a1", "review-due", "M-1", T0) is True  # reconnected
        assert register.alert_sent("a1")
