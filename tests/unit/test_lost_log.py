"""``LostLogWatch``: a position past the log's end, held for the grace period, is a lost log."""

from __future__ import annotations

from hub.broker.lost_log import Beyond, LostLogWatch


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
