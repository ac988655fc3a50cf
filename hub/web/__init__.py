"""The web console: server-rendered pages over the audit store, protocol and MARAC register.

For IG officers, MARAC coordinators and agency users (issue 6).

``hub console`` serves it (``hub up`` too, on ``HUB_CONSOLE_PORT``); accounts come from
``hub console user add``. Every view of personal data asks why and is itself audited.
"""

from hub.web.accounts import Account, Accounts, Role
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
