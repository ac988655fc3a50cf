"""Sign-in sessions, CSRF tokens and justifications, all held in the signed session cookie.

The cookie is Starlette's ``SessionMiddleware`` (itsdangerous HMAC-signed, ``HttpOnly``,
``SameSite=Strict``, expiring after ``HUB_CONSOLE_SESSION_LIFETIME`` seconds); on top of the
cookie's own expiry a sign-in carries its issue time and ends that long after it however
active the user is (an absolute lifetime, OWASP session management). The cookie alone is not
enough: each sign-in has a random session id that the server must still hold as live
(``hub.web.live_sessions``), so signing out ends the session on the server, and a copy of
the cookie taken before then no longer signs anyone in.

Every form carries the session's CSRF token (synchroniser token pattern) and every POST
checks it in constant time; ``SameSite=Strict`` is the second line, not the only one.

A *grant* is a justification the user gave to see one piece of personal data (an event, a
subject's disclosures, a case's chronology, the MARAC board): purpose and free text, kept
for the sign-in so paging and CSV export need not ask again; each view is still audited.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from hub.audit.consultations import PURPOSES
from hub.errors import ConfigError
from hub.settings import HubSettings
from hub.web.accounts import Account, Role
from hub.web.live_sessions import LiveSessions

__all__ = [
    "PURPOSES",
    "Grant",
    "SignedIn",
    "add_grant",
    "check_csrf",
    "csrf_token",
    "find_grant",
    "load_session_secret",
    "sign_in",
    "sign_out",
    "signed_in",
]

_MAX_GRANTS = 16  # keeps the cookie well under the 4 KB browsers allow
_SECRET_FILE = "console-session.key"  # noqa: S105 (a file name, not a secret)


@dataclass(frozen=True)
class SignedIn:
    """The person behind a request."""

    name: str
    role: Role
    party: str | None

    def describe(self) -> str:
        """``name (role, party)`` for audit records."""
        party = f", {self.party}" if self.party else ""
        return f"{self.name} ({self.role.value}{party})"


@dataclass(frozen=True)
class Grant:
    """A justification given for one piece of personal data."""

    purpose: str
    reason: str
    at: float


def load_session_secret(settings: HubSettings) -> str:
    """``HUB_CONSOLE_SECRET``, else ``<data_dir>/console-session.key`` (created 0600).

    Raises:
        ConfigError: the file cannot be read or created.
    """
    if settings.console_secret is not None:
        return settings.console_secret.get_secret_value()
    path = settings.data_dir / _SECRET_FILE
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".console-session-", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="ascii") as handle:
                    handle.write(secrets.token_hex(32) + "\n")
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)  # never overwrite: two processes keep one key
            finally:
                os.unlink(tmp)
        return path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ConfigError(f"console session key {path}: cannot read or create: {exc}") from exc


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (also before sign-in)."""
    session = request.session
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def check_csrf(request: Request, submitted: str) -> None:
    """Refuse a POST whose token is not this session's (403).

    Raises:
        HTTPException: 403 when the token is missing or wrong.
    """
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, submitted):
        raise HTTPException(status_code=403, detail="The form has expired: reload and retry.")


def sign_in(
    request: Request, account: Account, *, now: float, lifetime: float, sessions: LiveSessions
) -> None:
    """Start a fresh session (no fixation: the old contents, id and token are dropped)."""
    previous = request.session.get("sid")
    if isinstance(previous, str):
        sessions.end(previous)  # a sign-in over another in this browser ends that one
    request.session.clear()
    session_id = sessions.start(account.name, issued=now, expires=now + lifetime)
    request.session.update(
        {
            "sid": session_id,
            "user": account.name,
            "role": account.role.value,
            "party": account.party,
            "issued": now,
            "csrf": secrets.token_urlsafe(32),
            "grants": {},
        }
    )


def sign_out(request: Request, *, sessions: LiveSessions) -> None:
    """End the session on the server (every copy of the cookie), then in this browser."""
    session_id = request.session.get("sid")
    if isinstance(session_id, str):
        sessions.end(session_id)
    request.session.clear()


def signed_in(
    request: Request, *, now: float, lifetime: float, sessions: LiveSessions
) -> SignedIn | None:
    """The signed-in person, or ``None``: never signed in, signed out, or expired."""
    session = request.session
    issued = session.get("issued")
    session_id = session.get("sid")
    if not isinstance(issued, int | float) or "user" not in session:
        return None
    if now - issued > lifetime or now < issued:
        if isinstance(session_id, str):
            sessions.end(session_id)
        session.clear()
        session["expired"] = True
        return None
    if not isinstance(session_id, str) or not sessions.is_live(session_id, now=now):
        session.clear()  # signed out (perhaps from another copy of this cookie), or too old
        return None
    try:
        return SignedIn(
            name=str(session["user"]), role=Role(session["role"]), party=session["party"]
        )
    except (KeyError, ValueError):
        sessions.end(session_id)
        session.clear()
        return None


def find_grant(request: Request, key: str) -> Grant | None:
    """The justification given for ``key`` in this sign-in, if any."""
    grants: dict[str, Any] = request.session.get("grants") or {}
    found = grants.get(key)
    if not isinstance(found, list) or len(found) != 3:
        return None
    return Grant(purpose=str(found[0]), reason=str(found[1]), at=float(found[2]))


def add_grant(request: Request, key: str, *, purpose: str, reason: str, now: float) -> None:
    """Keep a justification for ``key``; the oldest goes when there are too many."""
    grants: dict[str, Any] = dict(request.session.get("grants") or {})
    grants.pop(key, None)
    grants[key] = [purpose, reason, now]
    while len(grants) > _MAX_GRANTS:
        grants.pop(next(iter(grants)))
    request.session["grants"] = grants
