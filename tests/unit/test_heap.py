"""``freeze_heap``: start-up objects out of the collector's way, dead cycles still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from hub.agents.heap import freeze_heap


class _Node:
    """A cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test process collects as usual


def test_what_lives_at_the_freeze_is_frozen() -> None:
    kept = _Node()
    frozen = freeze_heap()
    assert frozen == gc.get_freeze_count()
    assert frozen > 0
    assert all(o is not kept for o in gc.get_objects())  # skipped by every collection


def test_a_cycle_that_died_after_a_freeze_is_freed_by_the_next_one() -> None:
    node = _Node()
    alive = weakref.ref(node)
    freeze_heap()
    del node
    gc.collect()
    assert alive() is not None  # frozen: the collector does not look at it
    freeze_heap()
    assert alive() is None  # unfrozen, collected, then the survivors frozen again
