"""The ``hub`` command: one typer app, one sub-app per command group.

A command group is imported only when it is needed. ``hub audit query ...`` builds the app
with the ``audit`` group alone, so a command does not pay for the imports of every other
group (the web console's, the ingress API's FastAPI, the ACL renderer's...): most of a
short command's time was spent importing groups it never used. A process's group (``hub
marac``, ``hub asb``...) comes with the other processes' groups only. ``hub --help``, an
unknown command and ``app`` (as tests and the docs read it) build the whole app, in one
fixed order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from hub.errors import HubError

if TYPE_CHECKING:
    app: typer.Typer

__all__ = ["app", "build_app", "main"]


def _setup() -> None:
    """Logs go to stderr from the first line, so stdout carries only a command's output."""
    from hub.log import configure_logging

    configure_logging(os.environ.get("HUB_LOG_LEVEL", "INFO"))


def _group(name: str, module: str, attr: str = "app") -> Callable[[typer.Typer], None]:
    def add(app: typer.Typer) -> None:
        from importlib import import_module

        app.add_typer(getattr(import_module(f"hub.cli.{module}"), attr), name=name)

    return add


def _processes(app: typer.Typer) -> None:
    """Each process's commands (``hub.processes``): ``hub asb``, ``hub marac``..."""
    from hub.processes import default_registry

    for group in default_registry().cli():
        app.add_typer(group.app, name=group.name)


def _runtime(app: typer.Typer) -> None:
    """``hub up|demo|broker|publish|consume``."""
    from hub.cli import runtime

    runtime.register(app)


def _acl(app: typer.Typer) -> None:
    from hub.cli import acl

    app.command("acl")(acl.acl_command)


#: every part of the app, in the order ``hub --help`` lists it, with the first arguments
#: that need it alone (a process's groups are known only once the registry is read: a
#: first argument no part names reads it, and builds the whole app if no group has the name)
_PARTS: tuple[tuple[tuple[str, ...], Callable[[typer.Typer], None]], ...] = (
    (("policy",), _group("policy", "policy")),
    (("audit",), _group("audit", "audit")),
    (("keys",), _group("keys", "keys")),
    (("holds",), _group("holds", "keys", "hold_app")),  # `hub keys hold`: a hidden alias
    ((), _processes),
    (("ingress",), _group("ingress", "ingress")),
    (("webhooks",), _group("webhooks", "webhooks")),
    (("console",), _group("console", "console")),
    (("federation",), _group("federation", "federation")),
    (("state",), _group("state", "state")),
    (("up", "demo", "broker", "publish", "consume"), _runtime),
    (("acl",), _acl),
)
_BY_COMMAND = {name: part for names, part in _PARTS for name in names}


def build_app(command: str | None = None) -> typer.Typer:
    """The ``hub`` app: with ``command``, only what that first argument needs, if known."""
    app = typer.Typer(
        name="hub",
        help="Policy-routed, audited information sharing for Community Safety Partnerships.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_setup)
    one = _BY_COMMAND.get(command) if command is not None else None
    if one is None and command is not None and not command.startswith("-"):
        _processes(app)  # perhaps a process's group (``hub marac``): those alone, if so
        if command in {group.name for group in app.registered_groups}:
            return app
        return build_app()
    for part in (one,) if one is not None else [part for _, part in _PARTS]:
        part(app)
    return app


def __getattr__(name: str) -> typer.Typer:
    """``app``: the whole app, built on first use (``from hub.cli.main import app``)."""
    if name == "app":
        built = build_app()
        globals()["app"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point: private files first (``hub.private``), then the command."""
    from hub.private import enter_private

    try:
        enter_private()
    except HubError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from None
    build_app(sys.argv[1] if len(sys.argv) > 1 else None)()
