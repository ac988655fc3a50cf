"""Group commit (``hub.durable``) and the writers that use it: case keys, SQLite registers.

The router acknowledges an event only after ``GroupSync`` says every write made for it is on
disk, so these tests pin what that promise rests on: a round covers every write before it
and is not repeated for a position already covered, a failed round claims nothing and is
retried, concurrent waiters share one round, and each writer skips its own fsync when
grouped yet makes its writes durable when the round asks. Calls to ``os.fsync`` and
``syncfs`` are recorded (the real calls still run) rather than inferred from timings.

Also here: ``decode_audit_message``, the audit sink's reader for the router's batched
audit messages, which must never let an unreadable message pass as an empty one.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

import pytest

import hub.durable
from hub.agents.sink import decode_audit_message
from hub.durable import GroupSync
from hub.keys import CaseKeys
from hub.models import AuditBatch, AuditDecision, AuditRecord, record_id_for
from hub.workflows.register import FlagRegister

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


class Writer:
    """A stand-in writer: counts its own syncs, and fails the first ``failures`` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.calls = 0
        self.failures = failures

    def sync(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(errno.EIO, "simulated fsync failure")


def pseudonym(ref: str) -> str:
    return "pc_" + hashlib.sha256(ref.encode()).hexdigest()[:32]


@pytest.fixture
def syncfs_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Where each ``_syncfs`` was asked for; it reports success without syncing."""
    calls: list[Path] = []

    def record(where: Path) -> bool:
        calls.append(where)
        return True

    monkeypatch.setattr(hub.durable, "_syncfs", record)
    return calls


@pytest.fixture
def rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of writers in each ``_sync_round`` (which still runs)."""
    calls: list[int] = []
    real = hub.durable._sync_round

    def record(writers: list[tuple[Callable[[], None], Path]]) -> None:
        calls.append(len(writers))
        real(writers)

    monkeypatch.setattr(hub.durable, "_sync_round", record)
    return calls


# -- GroupSync -----------------------------------------------------------------------------


def test_position_counts_every_dirty_write(tmp_path: Path) -> None:
    group = GroupSync()
    writer = Writer()
    assert (group.position, group.synced) == (0, 0)
    for _ in range(3):
        group.dirty(writer.sync, tmp_path)
    assert group.position == 3
    assert group.synced == 0  # marking dirty syncs nothing


@pytest.mark.usefixtures("no_syncfs")
def test_sync_to_runs_one_round_and_not_again_for_a_covered_position(
    tmp_path: Path, rounds: list[int]
) -> None:
    group = GroupSync()
    writer = Writer()
    group.dirty(writer.sync, tmp_path)
    group.dirty(writer.sync, tmp_path)
    group.sync_to(1)
    assert group.synced >= 1
    # the round covers every write made before it, not just the one asked for
    assert group.synced == 2
    assert writer.calls == 1
    assert rounds == [1]

    group.sync_to(2)
    group.sync_to(1)
    assert rounds == [1]  # already covered: no new round
    assert writer.calls == 1


@pytest.mark.usefixtures("no_syncfs")
def test_one_writer_marked_dirty_many_times_syncs_once_per_round(tmp_path: Path) -> None:
    group = GroupSync()
    writer, other = Writer(), Writer()
    for _ in range(5):
        # a bound method is a new object on each access: still one writer
        group.dirty(writer.sync, tmp_path)
    group.dirty(other.sync, tmp_path)
    group.sync_to(group.position)
    assert (writer.calls, other.calls) == (1, 1)

    group.dirty(writer.sync, tmp_path)
    group.sync_to(group.position)
    assert (writer.calls, other.calls) == (2, 1)  # only writers dirty since the last round
    assert group.synced == 7


def test_syncfs_replaces_the_writers_own_syncs(tmp_path: Path, syncfs_calls: list[Path]) -> None:
    group = GroupSync()
    writer = Writer()
    group.dirty(writer.sync, tmp_path)
    group.sync_to(group.position)
    assert syncfs_calls == [tmp_path]
    assert writer.calls == 0
    assert group.synced == 1


def test_writers_on_one_filesystem_share_one_syncfs(
    tmp_path: Path, syncfs_calls: list[Path]
) -> None:
    first, second = tmp_path / "keys", tmp_path / "workflows"
    first.mkdir()
    second.mkdir()
    assert first.stat().st_dev == second.stat().st_dev
    group = GroupSync()
    a, b = Writer(), Writer()
    group.dirty(a.sync, first)
    group.dirty(b.sync, second)
    group.sync_to(group.position)
    assert len(syncfs_calls) == 1
    assert syncfs_calls[0] in (first, second)
    assert (a.calls, b.calls) == (0, 0)
    assert group.synced == 2


@pytest.mark.skipif(hub.durable._LIBC is None, reason="no syncfs(2) on this platform")
def test_real_syncfs_succeeds_without_the_writers_syncs(tmp_path: Path) -> None:
    assert GroupSync().whole_filesystem
    assert hub.durable._syncfs(tmp_path) is True
    group = GroupSync()
    writer = Writer()
    group.dirty(writer.sync, tmp_path)
    group.sync_to(group.position)
    assert writer.calls == 0
    assert group.synced == 1


@pytest.mark.usefixtures("no_syncfs")
def test_a_write_made_during_a_round_is_left_for_the_next(tmp_path: Path) -> None:
    group = GroupSync()
    late = Writer()

    class WritesMidRound(Writer):
        def sync(self) -> None:
            super().sync()
            if self.calls == 1:  # the event loop routes another event meanwhile
                group.dirty(late.sync, tmp_path)

    early = WritesMidRound()
    group.dirty(early.sync, tmp_path)
    group.sync_to(1)
    # the round began before that write: claiming it would ack an unsynced event
    assert (group.synced, group.position) == (1, 2)
    assert late.calls == 0

    group.sync_to(2)
    assert late.calls == 1
    assert group.synced == 2


class ObservedLock:
    """``GroupSync``'s round lock, telling the test when a second thread queues for it."""

    def __init__(self) -> None:
        self._inner = threading.Lock()
        self.contended = threading.Event()

    def __enter__(self) -> None:
        if self._inner.locked():
            self.contended.set()
        self._inner.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._inner.release()


@pytest.mark.usefixtures("no_syncfs")
def test_a_caller_queued_behind_a_covering_round_runs_none_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rounds: list[int]
) -> None:
    group = GroupSync()
    lock = ObservedLock()
    monkeypatch.setattr(group, "_lock", lock)
    second: list[threading.Thread] = []

    class StartsASecondCaller(Writer):
        def sync(self) -> None:
            super().sync()
            # another ack for the same position arrives while this round holds the lock
            thread = threading.Thread(target=group.sync_to, args=(1,))
            thread.start()
            second.append(thread)
            assert lock.contended.wait(timeout=10)

    writer = StartsASecondCaller()
    group.dirty(writer.sync, tmp_path)
    group.sync_to(1)
    second[0].join(timeout=10)
    assert not second[0].is_alive()
    assert rounds == [1]  # the second caller found its position covered
    assert writer.calls == 1
    assert group.synced == 1


@pytest.mark.usefixtures("no_syncfs")
def test_failed_round_claims_nothing_and_the_next_retries_the_writer(tmp_path: Path) -> None:
    group = GroupSync()
    failing, fine = Writer(failures=1), Writer()
    group.dirty(failing.sync, tmp_path)
    group.dirty(fine.sync, tmp_path)
    with pytest.raises(OSError, match="simulated"):
        group.sync_to(group.position)
    assert group.synced == 0  # the caller must not acknowledge
    assert failing.calls == 1

    group.sync_to(group.position)
    assert failing.calls == 2  # retried although nothing new was written
    assert group.synced == 2


@pytest.mark.usefixtures("no_syncfs")
async def test_concurrent_waiters_share_one_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rounds: list[int]
) -> None:
    group = GroupSync()
    writer = Writer()
    for _ in range(3):
        group.dirty(writer.sync, tmp_path)
    position = group.position
    threads: list[int] = []
    real = group.sync_to

    def sync_to(p: int) -> None:
        threads.append(p)
        real(p)

    # counted at sync_to, not _sync_round: sync_to's lock alone would hide a thread per waiter
    monkeypatch.setattr(group, "sync_to", sync_to)
    await asyncio.gather(*(group.wait(position) for _ in range(20)))
    assert threads == [position]
    assert rounds == [1]
    assert writer.calls == 1
    assert group.synced >= position

    await group.wait(position)  # already durable: returns without a round
    assert threads == [position]


@pytest.mark.usefixtures("no_syncfs")
async def test_wait_for_a_later_write_runs_another_round(tmp_path: Path) -> None:
    group = GroupSync()
    writer = Writer()
    group.dirty(writer.sync, tmp_path)
    await group.wait(group.position)
    group.dirty(writer.sync, tmp_path)
    await group.wait(group.position)
    assert writer.calls == 2
    assert group.synced == 2


@pytest.mark.usefixtures("no_syncfs")
async def test_wait_raises_when_the_round_fails(tmp_path: Path) -> None:
    group = GroupSync()
    writer = Writer(failures=1)
    group.dirty(writer.sync, tmp_path)
    with pytest.raises(OSError, match="simulated"):
        await group.wait(group.position)
    assert group.synced == 0
    await group.wait(group.position)  # a later ack retries
    assert group.synced == 1


# -- CaseKeys ------------------------------------------------------------------------------


def keyring_wal(tmp_path: Path) -> str:
    return os.path.realpath(tmp_path / "keys" / "cases" / "keyring.sqlite3") + "-wal"


@pytest.mark.usefixtures("no_syncfs")
def test_grouped_case_key_is_written_now_and_fsynced_by_the_round(
    tmp_path: Path, fsynced: list[str]
) -> None:
    group = GroupSync()
    assert not group.whole_filesystem
    cases = CaseKeys(tmp_path / "keys", pseudonymise=pseudonym, group=group)
    key = cases.key_for("MARAC-2025-0042")

    keyring = tmp_path / "keys" / "cases" / "keyring.sqlite3"
    assert key in keyring.read_bytes() + Path(keyring_wal(tmp_path)).read_bytes()  # written
    assert len(key) == 32
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(keyring_wal(tmp_path)).stat().st_mode) == 0o600
    assert fsynced == []  # no fsync on the routing path
    assert group.position == 1

    group.sync_to(group.position)
    assert fsynced == [keyring_wal(tmp_path)]  # the commit's log, once
    assert group.synced == 1

    # an existing key is read, not written: nothing new to sync
    assert cases.key_for("MARAC-2025-0042") == key
    assert group.position == 1
    # one keyring for every case, not a file per case
    assert sorted(p.name for p in keyring.parent.iterdir()) == [
        ".lock",
        keyring.name,
        f"{keyring.name}-shm",
        f"{keyring.name}-wal",
    ]


@pytest.mark.skipif(hub.durable._LIBC is None, reason="no syncfs(2) on this platform")
def test_grouped_case_key_with_syncfs_lists_no_files(
    tmp_path: Path, fsynced: list[str], syncfs_calls: list[Path]
) -> None:
    group = GroupSync()
    cases = CaseKeys(tmp_path / "keys", pseudonymise=pseudonym, group=group)
    cases.key_for("C1")
    group.sync_to(group.position)
    assert syncfs_calls == [tmp_path / "keys" / "cases"]
    assert fsynced == []  # the filesystem sync covered the keyring and its log


def keyring_synchronous(cases: CaseKeys) -> int:
    assert cases._conn is not None
    row = cases._conn.execute("PRAGMA synchronous").fetchone()
    assert row is not None
    return int(row[0])


def test_ungrouped_case_key_is_fsynced_as_it_is_written(tmp_path: Path) -> None:
    cases = CaseKeys(tmp_path / "keys", pseudonymise=pseudonym)
    cases.key_for("MARAC-2025-0042")
    assert keyring_synchronous(cases) == 2  # FULL: SQLite fsyncs every commit itself
    grouped = CaseKeys(tmp_path / "keys", pseudonymise=pseudonym, group=GroupSync())
    grouped.key_for("MARAC-2025-0043")
    assert keyring_synchronous(grouped) == 1  # NORMAL: the group round fsyncs the log


@pytest.mark.usefixtures("no_syncfs")
def test_grouped_case_key_shredded_before_the_round(tmp_path: Path, fsynced: list[str]) -> None:
    group = GroupSync()
    cases = CaseKeys(tmp_path / "keys", pseudonymise=pseudonym, group=group)
    cases.key_for("C1")
    assert cases.shred("C1") is True
    fsynced.clear()

    group.sync_to(group.position)  # the log was truncated by the shred: nothing to keep
    assert group.synced == 1


@pytest.mark.usefixtures("no_syncfs")
def test_case_key_fsync_is_retried_after_a_failed_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsynced: list[str]
) -> None:
    group = GroupSync()
    cases = CaseKeys(tmp_path / "keys", pseudonymise=pseudonym, group=group)
    cases.key_for("C1")
    wal = keyring_wal(tmp_path)
    real_open = os.open
    failed: list[str] = []

    def open_failing_once(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        if os.path.realpath(path) == wal and not failed:
            failed.append(str(path))
            raise OSError(errno.EMFILE, "simulated: too many open files")
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", open_failing_once)
    with pytest.raises(OSError, match="simulated"):
        group.sync_to(group.position)
    assert group.synced == 0

    group.sync_to(group.position)
    assert group.synced == 1
    assert wal in fsynced  # durable only if it was fsynced


# -- SQLite registers ----------------------------------------------------------------------


def synchronous(register: FlagRegister) -> int:
    row = register._conn.execute("PRAGMA synchronous").fetchone()
    assert row is not None
    return int(row[0])


def test_grouped_register_commits_without_fsync(tmp_path: Path) -> None:
    group = GroupSync()
    with FlagRegister(tmp_path / "workflows.sqlite3", group=group) as register:
        assert synchronous(register) == 1  # NORMAL: the round fsyncs the WAL instead
        assert group.position == 0
        assert register.mark_alert("a1", "review-due", "C1", T0) is True
        assert group.position == 1
        assert register.mark_alert("a2", "review-due", "C1", T0) is True
        assert group.position == 2
        assert register.alert_sent("a1")
        assert group.position == 2  # reads are not writes


def test_ungrouped_register_fsyncs_every_commit(tmp_path: Path) -> None:
    with FlagRegister(tmp_path / "workflows.sqlite3") as register:
        assert synchronous(register) == 2  # FULL


def test_register_sync_fsyncs_the_write_ahead_log(tmp_path: Path, fsynced: list[str]) -> None:
    path = tmp_path / "workflows.sqlite3"
    with FlagRegister(path, group=GroupSync()) as register:
        register.mark_alert("a1", "review-due", "C1", T0)
        fsynced.clear()
        register.sync()
    assert fsynced == [os.path.realpath(path) + "-wal"]


@pytest.mark.usefixtures("no_syncfs")
def test_round_fsyncs_the_register_wal(tmp_path: Path, fsynced: list[str]) -> None:
    path = tmp_path / "workflows.sqlite3"
    group = GroupSync()
    with FlagRegister(path, group=group) as register:
        register.mark_alert("a1", "review-due", "C1", T0)
        register.mark_alert("a2", "review-due", "C1", T0)
        fsynced.clear()
        group.sync_to(group.position)
        assert fsynced == [os.path.realpath(path) + "-wal"]  # once for both commits
        assert group.synced == 2


def test_register_sync_without_a_wal_file_is_a_no_op(tmp_path: Path, fsynced: list[str]) -> None:
    path = tmp_path / "workflows.sqlite3"
    with FlagRegister(path, group=GroupSync()) as register:
        wal = Path(f"{path}-wal")
        if wal.exists():  # a checkpoint removed it: already durable
            wal.unlink()
        fsynced.clear()
        register.sync()
    assert fsynced == []


# -- decode_audit_message ------------------------------------------------------------------


def record(i: int) -> AuditRecord:
    event_id = f"evt-{i}"
    return AuditRecord(
        record_id=record_id_for(event_id, "council.housing", AuditDecision.DELIVERED),
        time=T0 + timedelta(seconds=i),
        event_id=event_id,
        event_type="uk.csp.marac.flag.raised.v1",
        publisher="police",
        recipient="council.housing",
        decision=AuditDecision.DELIVERED,
        rule="marac-to-housing",
        reason="rule matched",
        fields=("case_ref", "risk"),
        subject_pseudonyms=(f"subj-{i}",),
    )


def test_decode_batch_keeps_every_record_in_order() -> None:
    records = [record(i) for i in range(3)]
    message = AuditBatch(records=tuple(records)).model_dump_json().encode()
    assert decode_audit_message(message) == records


def test_decode_lone_record() -> None:
    lone = record(7)
    assert decode_audit_message(lone.model_dump_json().encode()) == [lone]


def _batch_with_extra_field() -> bytes:
    body = json.loads(AuditBatch(records=(record(1),)).model_dump_json())
    body["signature"] = "unexpected"
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "value",
    [b"{}", b"not json", b"", None, b"[]", _batch_with_extra_field()],
    ids=["empty-object", "not-json", "empty", "none", "array", "batch-extra-field"],
)
def test_decode_refuses_anything_else(value: bytes | None) -> None:
    # the sink stops on this rather than skip an audit record
    with pytest.raises(ValueError):  # noqa: PT011 (pydantic's ValidationError, any message)
        decode_audit_message(value)
