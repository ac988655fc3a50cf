"""The hub's log lines are whole JSON objects, one per write, whatever else logs at once."""

from __future__ import annotations

import json

import pytest

from hub.log import configure_logging, get_logger


class _Recorder:
    """A stderr that remembers each write call separately."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_each_log_line_is_written_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    # A line and its newline written in two calls let a library thread's line land between
    # them, gluing two JSON objects together in a worker's log (seen in CI). One call per line
    # leaves nothing between.
    recorder = _Recorder()
    monkeypatch.setattr("sys.stderr", recorder)
    configure_logging("INFO", json=True)
    log = get_logger("router")
    log.info("routed", event_id="e-1", delivered=3)
    log.warning("quarantined", event_id="e-2", reason="bad_signature")
    assert len(recorder.writes) == 2
    for text in recorder.writes:
        assert text.endswith("\n")
        assert text.count("\n") == 1
        assert isinstance(json.loads(text), dict)
    assert json.loads(recorder.writes[1])["reason"] == "bad_signature"
