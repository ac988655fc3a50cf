"""Private by default: the data dir is 0700 and every file in it 0600, whatever the umask.

The data dir holds the audit store (parties, rules, pseudonyms, hashes), the workflow
registers (case and subject references), the seen-event store, the logs and the session and
signing keys. Nothing in it is for other local users, so no file in it should be readable by
them, and that cannot depend on the umask of whoever started the hub (0022 is the usual
default, and it gave 0755 and 0644 here).

Every hub process entry (the ``hub`` command, ``python -m hub.agents.worker``,
``python -m hub.webhooks``) calls ``enter_private`` first:

- the umask becomes 0077, so every file and directory the process creates afterwards (SQLite
  databases, logs, state files, and SQLite's ``-wal``/``-shm`` files, which SQLite creates
  with the database's own mode) is owner-only. Child processes (workers, the webhook
  dispatcher, the embedded broker) inherit it;
- the data dir, if it exists, is tightened: 0700 for it and every directory under it, 0600
  for every file, so a data dir written by an older hub or under a looser umask is fixed
  when the hub next starts. Symbolic links are left alone (``chmod`` would follow them out
  of the data dir).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hub.errors import ConfigError
from hub.settings import HubSettings

__all__ = ["DIR_MODE", "FILE_MODE", "PRIVATE_UMASK", "enter_private", "tighten_data_dir"]

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def enter_private(settings: HubSettings | None = None) -> int:
    """Set the umask to 0077 and tighten the data dir; returns how many modes were changed.

    ``settings`` defaults to the environment's (``HUB_*``, ``hub.toml``); when they cannot
    be read or do not validate, only the umask is set and the command itself reports why.

    Raises:
        ConfigError: an entry of the data dir cannot be tightened (e.g. another user owns it).
    """
    os.umask(PRIVATE_UMASK)
    if settings is None:
        try:
            settings = HubSettings()
        except (ValueError, OSError):  # ValidationError, a malformed or unreadable hub.toml
            return 0
    return tighten_data_dir(settings.data_dir)


def tighten_data_dir(data_dir: Path) -> int:
    """Make ``data_dir`` 0700, every directory under it 0700 and every file 0600.

    A data dir that does not exist yet is left to be created (under the private umask) by
    whatever first needs it. Returns how many modes were changed.

    Raises:
        ConfigError: an entry cannot be tightened.
    """
    if not data_dir.is_dir():
        return 0
    data_dir = data_dir.resolve()  # a data dir reached by a symbolic link is still the hub's
    changed = _tighten(data_dir, DIR_MODE)
    for root, dirs, files in os.walk(data_dir):
        for name in dirs:
            changed += _tighten(Path(root, name), DIR_MODE)
        for name in files:
            changed += _tighten(Path(root, name), FILE_MODE)
    return changed


def _tighten(path: Path, mode: int) -> int:
    try:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or stat.S_IMODE(info.st_mode) == mode:
            return 0
        path.chmod(mode)
    except FileNotFoundError:
        return 0  # removed meanwhile (a SQLite -journal, a temporary file): nothing to hide
    except OSError as exc:
        raise ConfigError(
            f"data dir entry {path}: expected to make it mode {mode:o} (owner only), "
            f"cannot: {exc.strerror}"
        ) from exc
    return 1
