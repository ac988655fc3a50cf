"""The recipient's inbox (``hub.client.inbox``): each event handled once, events told apart
by source and id (issue 15, item 5)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hub.client.inbox import Inbox

POLICE = "/parties/west-mercia-police"
MARAC = "/parties/marac.north-worcs"


def test_the_same_id_from_two_parties_is_two_events(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path / "inbox.sqlite3")
    try:
        inbox.mark("e-1", source=POLICE)
        assert inbox.seen("e-1", source=POLICE)
        assert not inbox.seen("e-1", source=MARAC)
        inbox.mark("e-1", source=MARAC)
        assert inbox.seen("e-1", source=MARAC)
        assert not inbox.seen("e-2", source=POLICE)
    finally:
        inbox.close()


def test_an_id_handled_before_sources_were_kept_still_counts(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE seen (event_id TEXT PRIMARY KEY, at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    old.execute("INSERT INTO seen (event_id) VALUES ('e-1')")
    old.commit()
    old.close()
    inbox = Inbox(path)
    try:
        assert inbox.seen("e-1", source=POLICE)  # a redelivery after the upgrade: handled
        assert inbox.seen("e-1")
        assert not inbox.seen("e-2", source=POLICE)
    finally:
        inbox.close()
