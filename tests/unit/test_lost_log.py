"""``LostLogWatch``: a position past the log's end, held for the grace period, is a lost log."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from hub.agents.supervisor import Supervisor
from hub.broker.lost_log import GRACE_ENV, GRACE_S, Beyond, LostLogWatch
from hub.settings import HubSettings


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_position_past_the_end_counts_only_after_the_grace_period() -> None:
    clock = _Clock()
    watch = LostLogWatch(grace=5.0, every=1.0, clock=clock)
    assert watch.observe({"p0": (4, 3), "p1": (2, 2)}) == {}  # first seen: not yet
    clock.now += 4.9
    assert watch.observe({"p0": (4, 3), "p1": (2, 2)}) == {}
    clock.now += 0.1
    assert watch.observe({"p0": (4, 3), "p1": (2, 2)}) == {"p0": Beyond(4, 3)}


def test_a_high_watermark_that_catches_up_is_forgotten() -> None:
    """A new Kafka leader's high watermark trailing for a moment is not a lost log."""
    clock = _Clock()
    watch = LostLogWatch(grace=5.0, clock=clock)
    watch.observe({"p0": (10, 8)})
    clock.now += 3
    watch.observe({"p0": (10, 10)})  # caught up: the clock starts again next time
    clock.now += 3
    assert watch.observe({"p0": (10, 9)}) == {}
    clock.now += 5
    assert watch.observe({"p0": (10, 9)}) == {"p0": Beyond(10, 9)}


def test_unknown_positions_and_high_watermarks_are_not_judged() -> None:
    clock = _Clock()
    watch = LostLogWatch(grace=0.0, clock=clock)
    assert watch.observe({"p0": (None, 3), "p1": (5, None)}) == {}
    assert watch.observe({"p2": (6, 5)}) == {"p2": Beyond(6, 5)}


def test_a_rewound_partition_is_watched_afresh_and_looks_are_spaced() -> None:
    clock = _Clock()
    watch = LostLogWatch(grace=2.0, every=1.0, clock=clock)
    assert not watch.due()
    clock.now += 1.0
    assert watch.due()
    watch.observe({"p0": (7, 1)})
    assert not watch.due()  # a look just happened
    clock.now += 2.0
    assert watch.observe({"p0": (7, 1)}) == {"p0": Beyond(7, 1)}
    watch.rewound(["p0"])
    assert watch.observe({"p0": (7, 1)}) == {}  # still there after a seek: a new grace period


def test_a_watch_without_a_grace_never_looks() -> None:
    """Off (Kafka's default: its own OFFSET_OUT_OF_RANGE covers a lost log, and a new
    leader's high watermark may trail its log longer than any grace)."""
    clock = _Clock()
    watch = LostLogWatch(grace=None, clock=clock)
    assert not watch.on
    clock.now += 3600
    assert not watch.due()
    assert watch.observe({"p0": (9, 1)}) == {}
    clock.now += 3600
    assert watch.observe({"p0": (9, 1)}) == {}


def test_hub_up_watches_with_its_embedded_broker_and_not_with_kafka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The processes ``hub up`` starts get the grace through their environment: 1 s when it
    started the embedded broker and none is set, none with an external broker."""
    monkeypatch.delenv(GRACE_ENV, raising=False)
    settings = HubSettings(data_dir=tmp_path)
    embedded = Supervisor(settings)
    embedded.broker, embedded.bootstrap = cast(Any, object()), "127.0.0.1:1"
    assert embedded._env()[GRACE_ENV] == str(GRACE_S)
    external = Supervisor(settings.model_copy(update={"kafka_bootstrap": "kafka:9092"}))
    external.bootstrap = "kafka:9092"
    assert GRACE_ENV not in external._env()
    chosen = Supervisor(settings.model_copy(update={"lost_log_grace": 0.5}))
    chosen.broker, chosen.bootstrap = cast(Any, object()), "127.0.0.1:1"
    assert chosen._env()[GRACE_ENV] == "0.5"
