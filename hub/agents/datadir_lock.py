"""One hub per data dir: an exclusive ``flock(2)`` on ``<data_dir>/hub.lock``.

Two hubs on one data dir would run two sets of workers on the same SQLite files, and the
second one's stop would delete the first one's ``hub.json`` (the CLI and SDK then cannot find
the hub that is still running). ``hub up`` and ``hub demo`` take this lock before they start
anything, and hold it until they stop.

The lock belongs to an open file description of the supervising process: the kernel drops it
when that process exits, however it exits (``kill -9`` included). A lock file left behind by
a killed hub therefore never blocks a restart; only a live holder does. The file's content
(the holder's pid) serves the message only: the lock is the ``flock``, not the file. The
descriptor is not inherited by the workers (PEP 446), so the lock is the supervisor's alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from hub.errors import ConfigError

__all__ = ["LOCK_FILE", "DataDirLock"]

#: the lock file's name in the data dir
LOCK_FILE = "hub.lock"


class DataDirLock:
    """The exclusive lock a running hub holds on its data dir."""

    def __init__(self, data_dir: Path, *, state_file: Path | None = None) -> None:
        self.path = data_dir / LOCK_FILE
        self._state_file = state_file or data_dir / "hub.json"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or say which hub holds it.

        Raises:
            ConfigError: another live process holds the lock on this data dir.
        """
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise ConfigError(self._in_use(holder)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases it); the file stays."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def _in_use(self, holder: int | None) -> str:
        data_dir = self.path.parent.resolve()
        who = f"pid {holder}" if holder else "another process"
        bootstrap = "still starting"
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError, KeyError):
            state = json.loads(self._state_file.read_text())
            if holder is None or state.get("pid") == holder:
                bootstrap = f"bootstrap {state['bootstrap']}"
        stop = f"`kill -TERM {holder}`" if holder else "Ctrl-C in its terminal"
        return (
            f"data dir {data_dir}: already in use by a running hub ({who}, {bootstrap}): "
            f"expected one hub per data dir; stop that one first ({stop}), "
            "or set HUB_DATA_DIR to another directory"
        )


def _read_pid(fd: int) -> int | None:
    """The holder's pid as it wrote it (None: unreadable, or written a moment from now)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        return int(text) if text else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
