"""The hub's raw consumers wait the lost-log grace their settings give (``hub.toml`` too).

``hub.broker.lost_log``: each consumer's watch waited the grace ``HUB_LOST_LOG_GRACE`` named,
or 5 s; ``HubSettings.lost_log_grace`` (documented as a setting of every hub process, from
the environment or ``hub.toml``) reached the watches only through the environment ``hub up``
gives the processes it starts. A process started on its own (``python -m hub.webhooks``, the
audit sink of a deployment) with the setting in ``hub.toml`` used 5 s. The router worker's
fetch loop is tested in ``tests/unit/test_lost_log_acks.py``.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from hub.agents import sink
from hub.audit.stream import load_audit_stream_key
from hub.webhooks import dispatcher
from hub.webhooks.config import WebhookEndpoint
from tests.conftest import RunningHub, unique

pytestmark = pytest.mark.integration

#: a recipient of the reference protocol (``hub.out.west-mercia-police``)
PARTY = "west-mercia-police"
GRACE = 42.0


class _Grace(BaseException):
    """Raised by a stand-in ``LostLogWatch`` with the grace it was given (past any retry)."""


def _report_grace(*, grace: float | None = None, **_kw: Any) -> Any:
    raise _Grace(grace)


def test_the_webhook_dispatcher_waits_the_grace_its_settings_give(
    hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = hub.settings.model_copy(update={"lost_log_grace": GRACE})
    endpoint = WebhookEndpoint(party=PARTY, url="http://127.0.0.1:9/hook", secret="s" * 32)
    monkeypatch.setattr(dispatcher, "LostLogWatch", _report_grace)
    posting = dispatcher.WebhookDispatcher(endpoint, settings=settings, bootstrap=hub.bootstrap)
    with pytest.raises(_Grace) as seen:
        asyncio.run(asyncio.wait_for(posting.run(), timeout=60))
    assert seen.value.args == (GRACE,)


def test_the_audit_sink_waits_the_grace_its_settings_give(
    hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = hub.settings.model_copy(update={"lost_log_grace": GRACE})
    monkeypatch.setattr(sink, "LostLogWatch", _report_grace)

    def make_sink() -> Any:  # what run_audit_sink reads of it before its watch
        return SimpleNamespace(store=SimpleNamespace(close=lambda: None))

    serving = sink.serve_audit_sink(
        make_sink,
        bootstrap=hub.bootstrap,
        group_id=unique("test-lost-log-grace"),  # not the hub's own sink's group
        settings=settings,
        secret=load_audit_stream_key(settings),
    )
    with pytest.raises(_Grace) as seen:
        asyncio.run(asyncio.wait_for(serving, timeout=60))
    assert seen.value.args == (GRACE,)
