"""Fixtures shared by unit test modules: the group commit's writers (``hub.durable``), and
an audit store on each backend (SQLite, and a throwaway PostgreSQL when its binaries exist).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

import hub.durable
from hub.audit.store import AuditStore, open_store
from hub.policies import loader
from hub.settings import HubSettings
from tests.postgres import find_pg_bindir

NO_PG = pytest.mark.skipif(
    find_pg_bindir() is None,
    reason="PostgreSQL binaries not found (initdb/pg_ctl): PostgreSQL store tests skipped",
)
BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="pg", marks=NO_PG)]
Opener = Callable[[], AuditStore]


def fd_path(fd: int) -> str:
    """The file an open descriptor of this process refers to."""
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.fixture
def no_syncfs(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a platform without syncfs(2): each writer must fsync its own files."""
    monkeypatch.setattr(hub.durable, "_LIBC", None)


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of every fd passed to ``os.fsync`` (which still runs), in call order."""
    calls: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        calls.append(fd_path(fd))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    return calls


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: a SQLite file path or a fresh PostgreSQL database URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def opener(location: str, tmp_path: Path) -> Opener:
    """Opens another store on the same location (as another worker or process would)."""
    return lambda: open_store(HubSettings(data_dir=tmp_path, audit_url=location))


@pytest.fixture
def store(opener: Opener) -> Iterator[AuditStore]:
    """An audit store on each backend (a module with its own ``store`` fixture keeps it)."""
    opened = opener()
    yield opened
    opened.close()


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the YAML parses from now on (one entry per parse), with an empty cache."""
    monkeypatch.setattr(loader, "_PARSED", {})
    calls: list[int] = []
    original = YAML.load

    def load(self: YAML, stream: Any) -> Any:
        calls.append(1)
        return original(self, stream)

    monkeypatch.setattr(YAML, "load", load)
    return calls
