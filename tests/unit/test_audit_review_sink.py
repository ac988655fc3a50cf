"""Review of the audit sink's issue 16 commits: the leaf bytes and the stored rows stay exact.

Each test pins a case where a shortcut (a kept value, a memo) could give bytes other than
the ones the record's ``model_dump`` gives, or a leaf other than the one the store holds.
"""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from hub.audit.sqlite import _prepare, _utc_text, canonical_bytes
from hub.models import AuditDecision, AuditRecord

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
