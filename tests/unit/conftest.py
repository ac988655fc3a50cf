"""Fixtures shared by the unit tests of the group commit's writers (``hub.durable``)."""

from __future__ import annotations

import os

import pytest

import hub.durable


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
