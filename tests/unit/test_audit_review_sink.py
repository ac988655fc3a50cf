"""Review of the audit sink's issue 16 commits: the leaf bytes and the stored rows stay exact.

Each test pins a case where a shortcut (a kept value, a memo) could give bytes other than
the ones the record's ``model_dump`` gives, or a leaf other than the one the store holds.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dateutil import parser as dateutil_parser
from dateutil import tz as dateutil_tz
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.audit.merkle import CompactRange, leaf_hash
from hub.audit.sqlite import _prepare, _utc_text, canonical_bytes
from hub.models import AuditBatch, AuditDecision, AuditRecord
from tests.unit.test_merkle import RFC_LEAVES  # the RFC 6962 / transparency-dev test tree

_VECTORS = Path(__file__).parents[1] / "vectors" / "rfc9162"

#: a zone whose autumn fold is at offset zero on one side: 01:00-02:00 on the last Sunday
#: of October is BST (+01:00, fold=0) and then GMT (+00:00, fold=1)
_LONDON = ZoneInfo("Europe/London")


def _record(time: dt.datetime, event_time: dt.datetime | None = None) -> AuditRecord:
    return AuditRecord(
        record_id="r-1",
        time=time,
        event_id="e-1",
        event_time=event_time,
        decision=AuditDecision.DELIVERED,
        reason="delivered",
    )


def _dumped(record: AuditRecord) -> bytes:
    dumped = record.model_dump(mode="json")
    if dumped["gateway"] is None:
        del dumped["gateway"]
    return json.dumps(dumped, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize("first_fold", [1, 0])
def test_the_two_sides_of_a_fold_keep_their_own_offsets(first_fold: int) -> None:
    """Two times one fold apart compare equal (same zone) but are an hour apart.

    The kept JSON of recent times was keyed by the time and its zone only: once the GMT
    side (fold=1, ``...Z``) was written, the BST side (fold=0, ``+01:00``) was written as
    the GMT one, an instant an hour off, in the leaf and in the ``time`` column.
    """
    gmt = dt.datetime(2031, 10, 26, 1, 30, 15, 123456, tzinfo=_LONDON, fold=1)
    bst = gmt.replace(fold=0)
    assert gmt == bst  # the premise: equal, and an hour apart
    assert gmt.utcoffset() != bst.utcoffset()
    for fold in (first_fold, 1 - first_fold, first_fold):
        moment = gmt.replace(fold=fold)
        for record in (_record(moment), _record(dt.datetime.now(dt.UTC), event_time=moment)):
            assert canonical_bytes(record) == _dumped(record)
            assert _prepare(record)[0][1] == _utc_text(record.time)


_ZONES = st.sampled_from(
    [
        dt.UTC,
        _LONDON,
        ZoneInfo("Europe/Lisbon"),
        ZoneInfo("Atlantic/Azores"),
        ZoneInfo("UTC"),
        dt.timezone(dt.timedelta(0), "GMT"),
        dt.timezone(dt.timedelta(hours=1)),
        None,
        dateutil_tz.tzutc(),
        dateutil_tz.gettz("Europe/London"),
    ]
)
#: instants around the European autumn and spring changes, where folds and gaps are
_TIMES = st.builds(
    lambda year, march, hour, minute, micro, zone, fold: dt.datetime(
        year, 3 if march else 10, 25 + (year % 7), hour, minute, 0, micro, tzinfo=zone, fold=fold
    ),
    st.integers(min_value=2026, max_value=2032),
    st.booleans(),
    st.integers(min_value=0, max_value=3),
    st.sampled_from([0, 30, 59]),
    st.sampled_from([0, 1, 123456, 999999]),
    _ZONES,
    st.integers(min_value=0, max_value=1),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_TIMES, st.none() | _TIMES), min_size=1, max_size=12))
def test_times_in_any_zone_and_fold_in_any_order_are_the_dumped_times(
    times: list[tuple[dt.datetime, dt.datetime | None]],
) -> None:
    """Records one after another (the kept times carry over), as built and as parsed."""
    for time, event_time in times:
        record = _record(time, event_time)
        (parsed,) = AuditBatch.model_validate_json(
            AuditBatch(records=(record,)).model_dump_json()
        ).records
        for one in (record, parsed):
            assert canonical_bytes(one) == _dumped(one)
            assert _prepare(one)[0][1] == _utc_text(one.time)


def _happy_roots() -> dict[int, bytes]:
    """Tree size -> root of the reference test tree, from the inclusion happy paths."""
    roots = {}
    for path in (_VECTORS / "inclusion").rglob("happy-path.json"):
        case = json.loads(path.read_text())
        roots[case["treeSize"]] = base64.b64decode(case["root"])
    return roots


def test_extend_leaves_in_every_split_gives_the_reference_roots() -> None:
    roots = _happy_roots()
    assert roots  # the vectors are there
    for size, root in roots.items():
        data = RFC_LEAVES[:size]
        for mask in range(1 << max(size - 1, 0)):  # every way to cut ``data`` in batches
            batched = CompactRange()
            start = 0
            for i in range(1, size + 1):
                if i == size or mask >> (i - 1) & 1:
                    batched.extend_leaves(data[start:i])
                    start = i
            assert batched.size == size
            assert batched.root() == root


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=6), min_size=1, max_size=300),
    st.integers(min_value=0, max_value=300),
    st.lists(st.integers(min_value=0, max_value=40), max_size=10),
)
def test_extend_leaves_from_a_pruned_frontier_is_append(
    data: list[bytes], pruned: int, cuts: list[int]
) -> None:
    """Resumed after a prune (``from_frontier``, any size): as ``append`` hash by hash."""
    pruned = min(pruned, len(data))
    head = CompactRange()
    for d in data[:pruned]:
        head.append(leaf_hash(d))
    one_by_one = CompactRange.from_frontier(pruned, head.frontier)
    batched = CompactRange.from_frontier(pruned, head.frontier)
    start = pruned
    for cut in [*cuts, len(data)]:
        batch = data[start : start + cut]
        batched.extend_leaves(iter(batch))  # any iterable, as the docstring says
        for d in batch:
            one_by_one.append(leaf_hash(d))
        start += len(batch)
        assert batched.size == one_by_one.size == start
        assert batched.frontier == one_by_one.frontier
        assert batched.root() == one_by_one.root()
    whole = CompactRange()
    for d in data:
        whole.append(leaf_hash(d))
    assert batched.root() == whole.root()


@pytest.mark.parametrize(
    "time",
    [
        dt.datetime(2026, 1, 1, 1, 2, 3, 4, tzinfo=dateutil_tz.tzutc()),
        dateutil_parser.isoparse("2026-01-01T01:02:03.000004Z"),
        dt.datetime(2026, 1, 1, 1, 2, 3, 4, tzinfo=dateutil_tz.tzoffset(None, 0)),
        dt.datetime(2026, 1, 1, 1, 2, 3, 4, tzinfo=dateutil_tz.gettz("Europe/London")),
        dt.datetime(2026, 7, 1, 1, 2, 3, 4, tzinfo=dateutil_tz.gettz("Europe/London")),
        dt.datetime(2031, 10, 26, 1, 30, 1, 5, dateutil_tz.gettz("Europe/London"), fold=0),
        dt.datetime(2031, 10, 26, 1, 30, 1, 5, dateutil_tz.gettz("Europe/London"), fold=1),
    ],
)
def test_a_time_in_a_zone_that_cannot_be_hashed_is_the_dumped_time(time: dt.datetime) -> None:
    """dateutil's zones (a hub dependency; ``isoparse`` gives ``tzutc()``) define ``__eq__``
    and no hash: keeping their times' JSON by the time and its zone raised ``TypeError``,
    so such a record could not be written at all (``model_dump`` takes it)."""
    for record in (_record(time), _record(dt.datetime.now(dt.UTC), event_time=time)):
        assert canonical_bytes(record) == _dumped(record)
        assert _prepare(record)[0][1] == _utc_text(record.time)
