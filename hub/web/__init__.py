"""The web console: server-rendered pages over the audit store, protocol and MARAC register.

For IG officers, MARAC coordinators and agency users (issue 6).

``hub console`` serves it (``hub up`` too, on ``HUB_CONSOLE_PORT``); accounts come from
``hub console user add``. Every view of personal data asks why and is itself audited.
"""

from typing import TYPE_CHECKING, Any

from hub.web.accounts import Account, Accounts, Role

if TYPE_CHECKING:
    from hub.web.app import create_app
    from hub.web.context import Console
    from hub.web.server import ConsoleServer, console_server

__all__ = [
    "Account",
    "Accounts",
    "Console",
    "ConsoleServer",
    "Role",
    "console_server",
    "create_app",
]

#: imported on first use: ``hub console user add`` needs only the accounts, not the web app
_LAZY = {
    "create_app": "hub.web.app",
    "Console": "hub.web.context",
    "ConsoleServer": "hub.web.server",
    "console_server": "hub.web.server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hub.web' has no attribute {name!r}")
