"""The console app: sign-in, justification, security headers, and the page routers.

Server-rendered HTML (Jinja2, autoescaped) that works without JavaScript; one small script
refreshes the live counters. Responses that may hold personal data are ``no-store`` and
send no referrer (search URLs can carry a subject reference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.sessions import SessionMiddleware

from hub.audit.consultations import MIN_REASON
from hub.errors import HubError
from hub.processes import default_registry
from hub.web import pages_audit, pages_ops
from hub.web.context import Console, NotSignedInError, render, require, sign_in_url
from hub.web.session import (
    PURPOSES,
    add_grant,
    check_csrf,
    load_session_secret,
    sign_in,
    sign_out,
)

__all__ = ["create_app", "safe_next"]

_STATIC = Path(__file__).parent / "static"
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_MIN_REASON = MIN_REASON  # a justification is a sentence, not "x"


def create_app(console: Console) -> FastAPI:
    """The console over one data dir (settings, accounts and clocks in ``console``)."""
    app = FastAPI(title="hub console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    app.add_middleware(BaseHTTPMiddleware, dispatch=_security_headers)
    app.add_middleware(
        SessionMiddleware,
        secret_key=load_session_secret(console.settings),
        session_cookie="hub_console",
        max_age=int(console.settings.console_session_lifetime),
        same_site="strict",
        https_only=False,  # loopback by default; behind a TLS proxy set it in the proxy
    )
    app.mount("/static", StaticFiles(directory=_STATIC), name="static")
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]  # starlette types handlers loosely
    app.add_exception_handler(HubError, _hub_error)  # type: ignore[arg-type]  # as above
    app.include_router(_auth_router())
    app.include_router(pages_audit.router)
    app.include_router(pages_ops.router)
    for page in default_registry().console():  # each process's pages (hub.processes)
        app.include_router(page.router)
    return app


def safe_next(target: str | None, default: str = "/dashboard") -> str:
    """A local path to return to; anything else (``//host``, ``http:``) becomes ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


async def _security_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
    response = await call_next(request)
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if not request.url.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


async def _hub_error(request: Request, exc: HubError) -> Response:
    """A failure the hub reports on purpose, on the console's error page (503).

    No hub in this data dir, a store that cannot be read: the message names what to fix.
    The console never makes up a key or a store to carry on.
    """
    return render(
        request, "error.html", {"title": "The hub is not available", "detail": str(exc)}, status=503
    )


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if isinstance(exc, NotSignedInError):
        return RedirectResponse(sign_in_url(exc.path), status_code=303)
    titles = {403: "Access denied", 404: "Page not found"}
    return render(
        request,
        "error.html",
        {"title": titles.get(exc.status_code, "Something went wrong"), "detail": exc.detail},
        status=exc.status_code,
    )


def _auth_router() -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    def home(request: Request) -> RedirectResponse:
        return RedirectResponse("/dashboard", status_code=303)

    @router.get("/sign-in", response_class=HTMLResponse)
    def sign_in_form(request: Request, next: str = "/dashboard") -> HTMLResponse:
        expired = bool(request.session.pop("expired", False))
        return render(
            request,
            "sign_in.html",
            {"next": safe_next(next), "errors": [], "name": "", "expired": expired},
        )

    @router.post("/sign-in", response_model=None)
    def sign_in_post(
        request: Request,
        name: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/dashboard",
    ) -> Response:
        check_csrf(request, csrf_token)
        app = request.app.state.console
        account = app.accounts.authenticate(name.strip(), password) if name and password else None
        if account is None:
            return render(
                request,
                "sign_in.html",
                {
                    "next": safe_next(next),
                    "errors": ["The name or password is not right."],
                    "name": name,
                    "expired": False,
                },
                status=401,
            )
        sign_in(
            request,
            account,
            now=app.wall(),
            lifetime=app.settings.console_session_lifetime,
            sessions=app.sessions,
        )
        return RedirectResponse(safe_next(next), status_code=303)

    @router.post("/sign-out")
    def sign_out_post(
        request: Request, csrf_token: Annotated[str, Form()] = ""
    ) -> RedirectResponse:
        check_csrf(request, csrf_token)
        sign_out(request, sessions=request.app.state.console.sessions)
        return RedirectResponse("/sign-in", status_code=303)

    @router.post("/justify", response_model=None)
    def justify(
        request: Request,
        key: Annotated[str, Form()],
        what: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/dashboard",
        purpose: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        check_csrf(request, csrf_token)
        require(request)
        errors = []
        if purpose not in PURPOSES:
            errors.append("Choose the purpose of this look-up.")
        if len(reason.strip()) < _MIN_REASON:
            errors.append(f"Say why you need to see this (at least {_MIN_REASON} characters).")
        if errors:
            return render(
                request,
                "justify.html",
                {
                    "key": key,
                    "what": what,
                    "next": safe_next(next),
                    "purposes": PURPOSES,
                    "errors": errors,
                    "purpose": purpose,
                    "reason": reason,
                },
                status=400,
            )
        add_grant(
            request,
            key,
            purpose=purpose,
            reason=reason.strip(),
            now=request.app.state.console.wall(),
        )
        return RedirectResponse(safe_next(next), status_code=303)

    return router
