"""``hub.agents.recent``: a router's deliveries, kept until the audit store holds their batch."""

from __future__ import annotations

from hub.agents.recent import Recent


def test_values_are_dropped_once_the_batch_that_last_set_them_is_stored() -> None:
    recent: Recent[frozenset[str]] = Recent(cap=100)
    recent.update("case-1", 1, lambda held: (held or frozenset()) | {"police"})
    recent.update("case-2", 2, lambda held: (held or frozenset()) | {"housing"})
    recent.update("case-1", 3, lambda held: (held or frozenset()) | {"probation"})
    assert recent.get("case-1") == frozenset(
        {"police", "probation"}
    )  # updated, and stamped batch 3
    assert recent.forget_through(1) == 0  # case-1 was set again in batch 3
    assert recent.forget_through(2) == 1
    assert recent.get("case-2") is None
    assert recent.get("case-1") == frozenset({"police", "probation"})
    assert recent.forget_through(3) == 1
    assert len(recent) == 0


def test_the_cap_drops_the_oldest_while_nothing_is_stored() -> None:
    recent: Recent[int] = Recent(cap=3)
    for n in range(5):
        recent.update(f"event-{n}", n, lambda _held: 0)
    assert len(recent) == 3
    assert [recent.get(f"event-{n}") for n in range(5)] == [None, None, 0, 0, 0]
