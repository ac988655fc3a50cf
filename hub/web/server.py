"""Serving the console: bind first (a busy port is a clear error), then uvicorn.

``hub console`` serves in the foreground; ``hub up`` and the browser tests serve it from a
thread next to their other work (uvicorn installs no signal handlers off the main thread).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from hub.errors import ConfigError
from hub.net import is_loopback
from hub.settings import HubSettings
from hub.web.app import create_app
from hub.web.context import Console

__all__ = ["ConsoleServer", "console_server"]


class ConsoleServer:
    """One console on one socket; ``run`` blocks, ``start``/``stop`` use a thread."""

    def __init__(self, app: FastAPI, *, host: str, port: int) -> None:
        if not is_loopback(host):
            # Passwords and session cookies would cross the network in clear: a deployment
            # puts a TLS-terminating proxy in front of a loopback console instead.
            raise ConfigError(
                f"HUB_CONSOLE_HOST {host}: expected a loopback address (put a TLS proxy in "
                "front of 127.0.0.1 to serve the console to other machines)"
            )
        try:
            self._sock = socket.create_server((host, port))
        except OSError as exc:
            raise ConfigError(
                f"console at {host}:{port}: cannot listen ({exc.strerror}); set "
                "HUB_CONSOLE_PORT to a free port (0 with `hub up` starts no console)"
            ) from exc
        bound_host, bound_port = self._sock.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_config=None, access_log=False, server_header=False)
        )
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM (main thread) or ``stop``."""
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self, *, timeout: float = 15.0) -> str:
        """Serve from a daemon thread; returns the URL once it accepts connections.

        Raises:
            ConfigError: the server did not start within ``timeout`` seconds.
        """
        self._thread = threading.Thread(target=self.run, name="hub-console", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        # uvicorn sets a plain bool once it listens and offers no event to wait on
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"console at {self.url}: did not start within {timeout:.0f}s")
            time.sleep(0.02)
        return self.url

    def stop(self, *, timeout: float = 10.0) -> None:
        """Ask uvicorn to finish open requests and stop; wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._sock.close()


def console_server(settings: HubSettings, *, port: int | None = None) -> ConsoleServer:
    """The console for these settings on ``HUB_CONSOLE_HOST``.

    ``port`` defaults to ``HUB_CONSOLE_PORT``; 0 picks a free port.
    """
    app = create_app(Console.from_settings(settings))
    return ConsoleServer(
        app, host=settings.console_host, port=settings.console_port if port is None else port
    )
