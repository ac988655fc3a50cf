"""The hub's log lines are whole JSON objects, one per write, whatever else logs at once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hub.log import configure_logging, get_logger
from hub.settings import HubSettings


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


@pytest.mark.parametrize("level", ["WARNING", "ERROR"])
def test_a_worker_leaves_library_debug_calls_disabled(level: str, tmp_path: Path) -> None:
    # faust's terminal spinner lowered the root logger to DEBUG at WARNING and above, so every
    # aiokafka debug call built a record only for the handler to drop it
    import faust

    from hub.agents.worker import build_worker

    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    app = faust.App("log-test", broker="kafka://127.0.0.1:1", web_enabled=False, datadir=tmp_path)
    worker = build_worker(app, HubSettings(data_dir=tmp_path, log_level=level))
    try:
        root.setLevel(logging.getLevelName(level))
        root.handlers = [logging.StreamHandler()]
        worker.on_setup_root_logger(root, logging.getLevelName(level))
        assert not logging.getLogger("aiokafka.producer.producer").isEnabledFor(logging.DEBUG)
        assert root.level == logging.getLevelName(level)
    finally:
        root.setLevel(saved[0])
        root.handlers = saved[1]
