"""A throwaway PostgreSQL server for tests: ``initdb`` in a temp dir, stopped at session end.

Why a real server: the PostgreSQL audit store's guarantees (dedup, append order equal to
commit order across writer processes) are properties of PostgreSQL's locking and MVCC, which
no fake reproduces.

How it runs:

* the binaries are found on ``PATH`` (``initdb``, ``pg_ctl``) or in the newest
  ``/usr/lib/postgresql/<major>/bin``; if there are none, the fixtures skip with that reason
  (and only then: a server that fails to start is an error, not a skip);
* ``initdb`` and ``postgres`` refuse to run as root, so when the tests run as root the server
  runs as the existing unprivileged user ``nobody`` (``subprocess``'s ``user=``/``group=``, no
  extra tool or new account), in a ``mkdtemp`` directory under the system temp dir that is
  chowned to it;
* it listens on 127.0.0.1 on a free port (retried on a lost race) and on a unix socket in
  the same temp dir, with ``trust`` auth for the ``postgres`` superuser;
* durability is switched off (``initdb -N``, ``fsync=off``): the data is thrown away
  (``durable=True`` keeps PostgreSQL's defaults: ``bench/audit_scale.py`` times commits);
* ``postgres_url`` gives each test its own fresh database, so tests never see each other's
  records and need no cleanup order.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from hub.broker.embedded import free_port

__all__ = ["PostgresServer", "find_pg_bindir", "postgres_server", "postgres_url"]

_UNPRIVILEGED_USER = "nobody"
_START_ATTEMPTS = 3


def find_pg_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or ``None`` if PostgreSQL is absent."""
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl") is not None:
        # /usr/local/bin may hold symlinks; pg_ctl finds postgres next to its real path.
        return Path(initdb).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


class PostgresServer:
    """One PostgreSQL cluster in a temp dir; ``start`` then ``stop`` (see the module doc)."""

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        self.durable = durable
        self.port = 0
        self.startup_seconds = 0.0
        self._root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
        self.data_dir = self._root / "data"
        self._log = self._root / "postgres.log"
        self._user: str | None = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam(_UNPRIVILEGED_USER)
            self._user = entry.pw_name
            self._gid = entry.pw_gid
            os.chown(self._root, entry.pw_uid, entry.pw_gid)

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL for the superuser on this server (no password: trust auth)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        """``initdb`` then ``pg_ctl start -w``; raises with the server log if it fails."""
        began = time.monotonic()
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-instructions",
            *(() if self.durable else ("--no-sync",)),
        )  # fmt: skip
        for attempt in range(_START_ATTEMPTS):
            self.port = free_port()  # below the ephemeral range: no client takes it
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self._root}"
            )
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            try:
                self._run(
                    "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
                    "-l", str(self._log), "-o", options,
                )  # fmt: skip
                break
            except RuntimeError:
                if attempt == _START_ATTEMPTS - 1:
                    raise  # not a port race three times running: report it
        self.startup_seconds = time.monotonic() - began

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by ``create_database``, closing any connection left open."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server (immediate: the data is thrown away) and remove the temp dir."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data_dir))
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        # cwd: the postgres user may not be able to read the caller's cwd (e.g. /root).
        result = subprocess.run(
            [str(self.bindir / tool), *args],
            cwd=self._root,
            user=self._user,
            group=self._gid if self._user else None,
            extra_groups=[] if self._user else None,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            log = self._log.read_text() if self._log.exists() else ""
            raise RuntimeError(
                f"{tool} failed with exit code {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}\n{log}"
            )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server; skips if PostgreSQL is not installed."""
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL binaries not found (no initdb/pg_ctl on PATH or in "
            "/usr/lib/postgresql/*/bin): install postgresql to run the PostgreSQL tests"
        )
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A URL to a fresh, empty database on the session's server, dropped afterwards."""
    url = postgres_server.create_database()
    yield url
    with contextlib.suppress(psycopg.Error):
        postgres_server.drop_database(url)
