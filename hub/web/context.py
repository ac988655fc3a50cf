"""What every console page needs: settings, accounts, clocks, templates, the signed-in user.

Pages are plain functions over a ``Console`` (held on ``app.state``); the helpers here turn
"not signed in", "not allowed" and "no justification yet" into the right response, so each
page reads as: who may see it, what it reads, what it renders.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import jinja2
from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.rows import describe as describe_row
from hub.audit.store import AuditStore, open_store
from hub.clock import Clock, clock_for
from hub.errors import HubError
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol
from hub.processes import default_registry
from hub.settings import HubSettings
from hub.web.accounts import Accounts, Role
from hub.web.live_sessions import LiveSessions
from hub.web.session import PURPOSES, Grant, SignedIn, csrf_token, find_grant, signed_in
from hub.workflows.agreements import AgreementState, agreement_states

__all__ = ["Console", "NotSignedInError", "console", "justified", "render", "require"]

_TEMPLATES = Path(__file__).parent / "templates"


class NotSignedInError(HTTPException):
    """No sign-in, or it expired: the app answers with a redirect to the sign-in page."""

    def __init__(self, path: str) -> None:
        super().__init__(status_code=401, detail="sign in first")
        self.path = path


@dataclass
class Console:
    """The console's dependencies, built once per app."""

    settings: HubSettings
    accounts: Accounts
    #: the hub's time (``HUB_CLOCK_FILE`` in drills): due dates, counters, audit times
    clock: Clock
    #: wall-clock seconds for session lifetimes, independent of drill clocks
    wall: Callable[[], float] = time.time
    templates: Jinja2Templates = field(init=False)
    #: the sign-ins the server still honours (shared by every console on this data dir)
    sessions: LiveSessions = field(init=False)
    #: the protocol and its file's mtime, re-read when the file changes (``protocol``)
    _protocol: tuple[int, Protocol] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.sessions = LiveSessions.in_data_dir(self.settings.data_dir)
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        env.filters["when"] = _when
        env.filters["party"] = self._party
        env.filters["party_name"] = self.party_name
        env.filters["row"] = describe_row
        self.templates = Jinja2Templates(env=env)

    @classmethod
    def from_settings(cls, settings: HubSettings) -> Console:
        """The console for this data dir: its accounts file and the hub's clock."""
        return cls(
            settings=settings,
            accounts=Accounts(settings.console_accounts_path),
            clock=clock_for(settings.clock_file),
        )

    def now(self) -> dt.datetime:
        """The hub's current time (UTC)."""
        return self.clock()

    @contextlib.contextmanager
    def store(self) -> Iterator[AuditStore]:
        """The audit store, opened for one request."""
        store = open_store(self.settings)
        try:
            yield store
        finally:
            store.close()

    def protocol(self) -> Protocol:
        """The sharing protocol, re-read when its file changes.

        Raises:
            HubError: the protocol file cannot be read or is not a valid protocol.
        """
        path = self.settings.protocol
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            stamp = -1  # load_protocol names the problem
        if self._protocol is None or self._protocol[0] != stamp:
            self._protocol = (stamp, load_protocol(path))
        return self._protocol[1]

    def party_name(self, party_id: str | None) -> str:
        """What a person reads for a party: its display name.

        Its id if the protocol has none, or cannot be read: a page must never fail for want
        of a name.
        """
        if not party_id:
            return "-"
        try:
            return self.protocol().label(party_id)
        except HubError:
            return party_id

    def _party(self, party_id: str | None, *, id_line: bool = False) -> Markup:
        """A party as people read it, its id kept for those who need it.

        An IG officer quotes the protocol by id: it is in the title, or (``id_line``) on a
        second line.
        """
        name = self.party_name(party_id)
        if not party_id or name == party_id:
            return Markup('<span class="party mono">{}</span>').format(name)
        if id_line:
            return Markup(
                '<span class="party">{}<span class="party-id mono">{}</span></span>'
            ).format(name, party_id)
        return Markup('<span class="party" title="{}">{}</span>').format(party_id, name)

    def pseudonymiser(self) -> Pseudonymiser:
        """Keyed pseudonyms: references typed into the console never reach the store."""
        return Pseudonymiser(load_pseudonym_key(self.settings, create=False))


def console(request: Request) -> Console:
    """The ``Console`` of the app serving this request."""
    return cast(Console, request.app.state.console)


def require(request: Request, *roles: Role) -> SignedIn:
    """The signed-in user, if their role is one of ``roles`` (any role when none given).

    Raises:
        NotSignedInError: nobody is signed in, or the sign-in expired.
        HTTPException: 403 when the role may not open this page.
    """
    app = console(request)
    user = signed_in(
        request,
        now=app.wall(),
        lifetime=app.settings.console_session_lifetime,
        sessions=app.sessions,
    )
    account = app.accounts.get(user.name) if user is not None else None
    if user is None or account is None or (account.role, account.party) != (user.role, user.party):
        if user is not None:  # a removed or changed account ends its sessions now
            app.sessions.end_all(user.name)
            request.session.clear()
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NotSignedInError(target)
    request.state.user = user
    if roles and user.role not in roles:
        raise HTTPException(status_code=403, detail="Your role does not give access to this page.")
    return user


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HTMLResponse:
    """A page: the template with the user, the CSRF token and the navigation filled in."""
    user: SignedIn | None = getattr(request.state, "user", None)
    base = {
        "user": user,
        "csrf_token": csrf_token(request),
        "nav": _nav(user),
        "path": request.url.path,
        "agreement_alerts": _agreement_alerts(request) if user else [],
    }
    return console(request).templates.TemplateResponse(
        request, template, {**base, **(context or {})}, status_code=status
    )


def _agreement_alerts(request: Request) -> list[AgreementState]:
    """Agreements due for review or suspended: the banner every page shows until renewed."""
    app = console(request)
    try:
        states = agreement_states(app.protocol(), app.now().date())
    except HubError:  # a page must never fail for want of the banner
        return []
    return [s for s in states if s.state != "ok"]


def justified(request: Request, key: str, what: str) -> Grant | HTMLResponse:
    """The justification already given for ``key``, or the page that asks for one.

    The form posts to ``/justify`` (CSRF-checked), which keeps the grant for this sign-in
    and returns to the current URL.
    """
    grant = find_grant(request, key)
    if grant is not None:
        return grant
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(
        request,
        "justify.html",
        {"key": key, "what": what, "next": here, "purposes": PURPOSES, "errors": []},
    )


def sign_in_url(path: str) -> str:
    """The sign-in page, returning to ``path`` afterwards."""
    return "/sign-in?next=" + quote(path, safe="/")


def _nav(user: SignedIn | None) -> list[tuple[str, str]]:
    if user is None:
        return []
    items = [("/dashboard", "Live counters"), ("/audit", "Audit search")]
    if user.role is Role.IG_OFFICER:
        items += [("/reports/sar", "Subject access"), ("/reports/chronology", "Chronology")]
        items += [("/integrity", "Log integrity")]
    if user.role is Role.MARAC_COORDINATOR:
        items += [("/reports/chronology", "Chronology")]
    for page in default_registry().console():  # each process's pages (hub.processes)
        items += [
            (entry.path, entry.label)
            for entry in page.nav
            if not entry.roles or user.role.value in entry.roles
        ]
    items += [("/protocol", "Protocol"), ("/explain", "Explain")]
    return items


def _when(value: dt.datetime | dt.date | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return value.isoformat()
