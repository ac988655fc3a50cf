"""Private by default: real hub processes started under a permissive umask leave a 0700 data
dir with 0600 files, and tighten a data dir an older hub (or a looser umask) left open."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hub.private import tighten_data_dir

_CLI = "from hub.cli.main import main; main()"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(data_dir)
    return env


def _run(args: list[str], data_dir: Path, *, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """One hub process as a user with umask 0 would start it (cwd without a hub.toml)."""
    return subprocess.run(
        args,
        input=stdin,
        env=_env(data_dir),
        cwd=data_dir.parent,
        umask=0,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _modes(data_dir: Path) -> dict[str, int]:
    """Every path under ``data_dir`` (itself as ``.``) with its permission bits."""
    found = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    for path in data_dir.rglob("*"):
        found[str(path.relative_to(data_dir))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def _loose(data_dir: Path) -> dict[str, str]:
    """The paths that are not owner-only: directories not 0700, files not 0600."""
    bad = {}
    for name, mode in _modes(data_dir).items():
        path = data_dir / name
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            bad[name] = f"{mode:o}"
    return bad


def _open_data_dir(tmp_path: Path) -> Path:
    """A data dir as an older hub under umask 0022 left it: 0755 with 0644 files."""
    data_dir = tmp_path / ".hub"
    (data_dir / "keys").mkdir(parents=True)
    for name in ("hub.json", "worker.log", "audit.sqlite3", "seen-events.sqlite3", "keys/x.pub"):
        (data_dir / name).write_text("{}", encoding="utf-8")
        (data_dir / name).chmod(0o644)
    data_dir.chmod(0o755)
    (data_dir / "keys").chmod(0o755)
    return data_dir


def test_cli_commands_under_umask_0_create_only_owner_only_files(tmp_path: Path) -> None:
    data_dir = tmp_path / ".hub"
    add = ["console", "user", "add", "--name", "ig", "--role", "ig-officer", "--password-stdin"]
    added = _run([sys.executable, "-c", _CLI, *add], data_dir, stdin="correct horse battery\n")
    assert added.returncode == 0, added.stderr
    for args in (
        ["marac", "status"],
        ["marac", "sweep"],
        ["ingress", "token", "add", "--party", "west-mercia-police"],
    ):
        done = _run([sys.executable, "-c", _CLI, *args], data_dir)
        assert done.returncode == 0, (args, done.stderr)
    names = set(_modes(data_dir))
    # the audit store and the flag register were created by these commands, with SQLite's
    # own companion files, under a umask that would have left them world-readable
    assert {"audit.sqlite3", "workflows.sqlite3", "pseudonym.key", "console-accounts.toml"} <= names
    assert _loose(data_dir) == {}


def test_the_cli_tightens_a_data_dir_left_open(tmp_path: Path) -> None:
    data_dir = _open_data_dir(tmp_path)
    done = _run([sys.executable, "-c", _CLI, "policy", "check"], data_dir)
    assert done.returncode == 0, done.stderr
    assert _loose(data_dir) == {}


@pytest.mark.parametrize("module", ["hub.agents.worker", "hub.webhooks"])
def test_worker_and_dispatcher_entries_tighten_the_data_dir(tmp_path: Path, module: str) -> None:
    # without HUB_KAFKA_BOOTSTRAP the process stops at once: the data dir is tightened first
    data_dir = _open_data_dir(tmp_path)
    done = _run([sys.executable, "-m", module], data_dir)
    assert done.returncode != 0
    assert "HUB_KAFKA_BOOTSTRAP" in done.stderr
    assert _loose(data_dir) == {}


def test_tightening_leaves_symbolic_links_and_what_they_point_at(tmp_path: Path) -> None:
    outside = tmp_path / "shared.txt"
    outside.write_text("not the hub's", encoding="utf-8")
    outside.chmod(0o644)
    data_dir = tmp_path / ".hub"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    (data_dir / "link").symlink_to(outside)
    (data_dir / "hub.json").write_text("{}", encoding="utf-8")
    (data_dir / "hub.json").chmod(0o664)
    assert tighten_data_dir(data_dir) == 2  # the dir and hub.json
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644
    assert tighten_data_dir(data_dir) == 0  # nothing left to change
    assert tighten_data_dir(tmp_path / "absent") == 0


def test_a_data_dir_reached_by_a_link_is_tightened_itself(tmp_path: Path) -> None:
    target = tmp_path / "volume" / "hub-data"
    target.mkdir(parents=True)
    target.chmod(0o755)
    (tmp_path / ".hub").symlink_to(target)
    assert tighten_data_dir(tmp_path / ".hub") == 1
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
