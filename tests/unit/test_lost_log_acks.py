"""The router's lost-log rewind (``hub.agents.transport._Consumer._rewind_lost_logs``) and
the records of the lost log still in the route loop when it rewinds.

The broker lost a partition's log (the embedded broker restarted empty); the worker's fetch
position is past the new log's end, and the route loop may still hold records it fetched
from the lost log (held at the audit gate while the audit sink has not yet rewound, say).
Their acknowledgements come after the rewind, at offsets the new log has not reached. faust
counted them as acknowledgements of the new log's offsets: a commit then passed records of
the new log not yet routed, and lost them if the worker died or the partition moved before
they were. faust's real consumer bookkeeping is used; the broker is a stub.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka.errors import IllegalStateError
from faust.types import TP

from hub.agents import transport
from hub.agents.app import create_app
from hub.agents.transport import HubApp
from hub.broker.lost_log import GRACE_ENV, LostLogWatch
from hub.keys.file_store import FileKeyStore
from hub.keys.model import KeySuite
from hub.keys.store import ensure_dev_keys
from hub.policies.loader import load_protocol
from hub.settings import HubSettings
from tests.unit.test_rebalance import _Record

TOPIC = "hub.in.marac.north-worcs"
#: where the lost log had reached (the worker's fetch position and last commit)
LOST_END = 511


class _Kafka:
    """The aiokafka consumer in faust's consumer thread: one partition past its log's end."""

    def __init__(self, tp: TP, *, position: int, highwater: int) -> None:
        self.tp = tp
        self.assigned = {tp}
        self.positions = {tp: position}
        self.highwater = highwater
        assignment = SimpleNamespace(state_value=self._state)
        self._subscription = SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))

    def _state(self, tp: TP) -> Any:
        return SimpleNamespace(
            has_valid_position=True, position=self.positions[tp], highwater=self.highwater
        )

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def seek(self, tp: TP, offset: int) -> None:
        if tp not in self.assigned:  # as aiokafka's SubscriptionState does
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.positions[tp] = offset


@contextlib.contextmanager
def _router_consumer(name: str, kafka: _Kafka) -> Iterator[Any]:
    """faust's consumer of a ``HubApp`` (never started) over ``kafka``; acks on for TOPIC."""
    app = HubApp(name, broker="kafka://127.0.0.1:9", web_enabled=False)
    consumer = cast(Any, app.consumer)
    cast(Any, app.topics)._acking_topics.add(TOPIC)  # as subscribing TOPIC with acks does

    async def call_thread(fun: Any, *args: Any, **kwargs: Any) -> Any:
        return await fun(*args, **kwargs)

    consumer._thread._consumer = kafka
    consumer._thread.call_thread = call_thread
    try:
        yield consumer
    finally:
        consumer._thread.thread_loop.close()


def _commit(consumer: Any) -> dict[TP, int]:
    """What faust's commit would commit now, its bookkeeping updated as faust's is."""
    offsets: dict[TP, int] = consumer._filter_committable_offsets(list(consumer._acked))
    consumer._committed_offset.update(offsets)
    return offsets


async def test_acks_of_lost_records_after_the_rewind_commit_nothing_of_the_new_log() -> None:
    tp = TP(TOPIC, 0)
    kafka = _Kafka(tp, position=LOST_END, highwater=0)
    with _router_consumer("lost-log-acks", kafka) as consumer:
        consumer._committed_offset[tp] = 505  # committed on the restarted broker
        lost = [_Record(tp, offset) for offset in range(505, LOST_END)]
        for record in lost:  # fetched before the broker restarted, still in the route loop
            consumer.track_message(record)

        await consumer._rewind_lost_logs(LostLogWatch(grace=0.0, every=0.0))
        assert kafka.positions[tp] == 0

        new = [_Record(tp, offset) for offset in range(3)]
        for record in new:  # the new log's records, fetched after the rewind
            consumer.track_message(record)
        for record in lost:  # routed now (the route loop acknowledges in fetch order)
            consumer.ack(record)
        # none of the new log's records is routed yet: committing past 0 would lose them
        assert {t: o for t, o in _commit(consumer).items() if o > 0} == {}
        for record in new:
            consumer.ack(record)
        assert _commit(consumer) == {tp: 3}


async def test_acks_of_lost_records_do_not_stand_in_for_the_new_logs_same_offsets() -> None:
    # the new log has grown past the lost records' offsets by the time they are routed: an
    # ack of lost record 505 must not count as one of new record 505, which is not routed
    tp = TP(TOPIC, 0)
    kafka = _Kafka(tp, position=LOST_END, highwater=0)
    with _router_consumer("lost-log-same-offsets", kafka) as consumer:
        lost = [_Record(tp, offset) for offset in range(505, LOST_END)]
        for record in lost:
            consumer.track_message(record)
        await consumer._rewind_lost_logs(LostLogWatch(grace=0.0, every=0.0))
        new = [_Record(tp, offset) for offset in range(LOST_END + 5)]
        for record in new:
            consumer.track_message(record)
        for record in [*lost, *new[:505]]:  # new records 505 and on are not routed yet
            consumer.ack(record)
        assert _commit(consumer) == {tp: 505}
        for record in new[505:]:
            consumer.ack(record)
        assert _commit(consumer) == {tp: LOST_END + 5}


async def test_a_partition_revoked_just_after_the_look_does_not_stop_the_fetch_loop() -> None:
    # the look runs in faust's consumer thread, where a rebalance may take the partition as
    # soon as it returns: a seek from the fetch loop's thread afterwards raised aiokafka's
    # IllegalStateError, which ends the fetch loop (the worker crashes and restarts)
    tp = TP(TOPIC, 0)
    kafka = _Kafka(tp, position=LOST_END, highwater=0)
    with _router_consumer("lost-log-revoked", kafka) as consumer:
        in_thread = consumer._thread.call_thread

        async def then_revoked(fun: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await in_thread(fun, *args, **kwargs)
            finally:
                kafka.assigned.clear()  # the rebalance, in the consumer thread

        consumer._thread.call_thread = then_revoked
        await asyncio.wait_for(
            consumer._rewind_lost_logs(LostLogWatch(grace=0.0, every=0.0)), timeout=10
        )


class _Grace(BaseException):
    """Raised by a stand-in ``LostLogWatch`` with the grace it was given."""


def _report_grace(*, grace: float | None = None, **_kw: Any) -> Any:
    raise _Grace(grace)


async def test_the_router_fetch_loop_waits_the_grace_its_settings_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the worker's settings from hub.toml (as a worker started on its own reads them): the
    # fetch loop read HUB_LOST_LOG_GRACE only, which `hub up` alone sets from them
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(GRACE_ENV, raising=False)
    consumer = cast(Any, _worker_app(tmp_path, "lost_log_grace = 42.0\n").consumer)
    monkeypatch.setattr(transport, "LostLogWatch", _report_grace)
    try:
        with pytest.raises(_Grace) as seen:
            await consumer._drain_messages(SimpleNamespace(_stopped=asyncio.Event()))
    finally:
        consumer._thread.thread_loop.close()
    assert seen.value.args == (42.0,)


def _worker_app(here: Path, toml: str) -> HubApp:
    """The router app a worker builds (never started) from ``hub.toml`` in ``here``."""
    (here / "hub.toml").write_text(f'data_dir = "{here / "data"}"\n{toml}')
    settings = HubSettings()
    protocol = load_protocol(settings.protocol)
    ensure_dev_keys(
        FileKeyStore(settings.keys_dir),
        [p for p in protocol.party_ids if not protocol.is_peer(p)],
        suite=KeySuite(protocol.crypto.suite),
    )
    app = create_app(settings, protocol=protocol, bootstrap="127.0.0.1:9")  # never dialled
    return cast(HubApp, app)
