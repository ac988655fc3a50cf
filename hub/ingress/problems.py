"""Problem details (RFC 9457) for every way the ingress refuses a request.

Each kind of bad input has its own ``type`` URI under ``PROBLEM_BASE`` so a calling system
can branch on it without parsing English; ``errors`` (RFC 9457 section 3.2 extension member)
lists each offending attribute or field with a JSON Pointer (RFC 6901) into the request body.
"""

from __future__ import annotations

from enum import StrEnum

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "PROBLEM_BASE",
    "PROBLEM_MEDIA_TYPE",
    "FieldError",
    "Problem",
    "ProblemError",
    "ProblemKind",
]

PROBLEM_BASE = "https://hub.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemKind(StrEnum):
    """Each refusal, as the last segment of its ``type`` URI; the value's status below."""

    UNAUTHENTICATED = "unauthenticated"
    SOURCE_MISMATCH = "source-mismatch"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    MALFORMED_JSON = "malformed-json"
    MISSING_ATTRIBUTE = "missing-attribute"
    INVALID_ATTRIBUTE = "invalid-attribute"
    UNSUPPORTED_SPECVERSION = "unsupported-specversion"
    PAYLOAD_TOO_LARGE = "payload-too-large"
    REQUEST_TIMEOUT = "request-timeout"
    UNKNOWN_TYPE = "unknown-type"
    SCHEMA_INVALID = "schema-invalid"
    DUPLICATE_EVENT_ID = "duplicate-event-id"
    BROKER_UNAVAILABLE = "broker-unavailable"
    PARTY_KEY_UNAVAILABLE = "party-key-unavailable"
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"


#: (HTTP status, title) per kind; the title never varies for a kind (RFC 9457 3.1.3)
_KINDS: dict[ProblemKind, tuple[int, str]] = {
    ProblemKind.UNAUTHENTICATED: (401, "Missing or unknown credentials"),
    ProblemKind.SOURCE_MISMATCH: (403, "Event source is not the authenticated party"),
    ProblemKind.UNSUPPORTED_MEDIA_TYPE: (415, "Content type must be application/cloudevents+json"),
    ProblemKind.MALFORMED_JSON: (400, "Request body is not a JSON object"),
    ProblemKind.MISSING_ATTRIBUTE: (400, "Required CloudEvents attribute missing"),
    ProblemKind.INVALID_ATTRIBUTE: (400, "Invalid CloudEvents attribute"),
    ProblemKind.UNSUPPORTED_SPECVERSION: (400, "Unsupported CloudEvents specversion"),
    ProblemKind.PAYLOAD_TOO_LARGE: (413, "Event too large"),
    ProblemKind.REQUEST_TIMEOUT: (408, "Request body not received in time"),
    ProblemKind.UNKNOWN_TYPE: (404, "Unknown event type"),
    ProblemKind.SCHEMA_INVALID: (422, "Event data does not match its schema"),
    ProblemKind.DUPLICATE_EVENT_ID: (409, "Event id already accepted"),
    ProblemKind.BROKER_UNAVAILABLE: (503, "Broker unavailable"),
    ProblemKind.PARTY_KEY_UNAVAILABLE: (500, "The ingress cannot sign or seal for the party"),
    ProblemKind.NOT_FOUND: (404, "Not found"),
    ProblemKind.METHOD_NOT_ALLOWED: (405, "Method not allowed"),
}


class FieldError(BaseModel):
    """One offending attribute or data field."""

    model_config = ConfigDict(frozen=True)

    pointer: str = Field(description="JSON Pointer (RFC 6901) into the request body")
    detail: str


class Problem(BaseModel):
    """An RFC 9457 problem details document."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(description=f"a URI under {PROBLEM_BASE}")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="the request path")
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """Raised inside the ingress to answer with a problem document.

    Not a ``HubError``: it never leaves the HTTP layer; it carries the HTTP answer to a
    failure that was already classified (often from a ``HubError``).
    """

    def __init__(
        self,
        kind: ProblemKind,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    @property
    def status(self) -> int:
        """The HTTP status of this kind of problem."""
        return _KINDS[self.kind][0]

    def problem(self, instance: str | None = None) -> Problem:
        """The document to send."""
        status, title = _KINDS[self.kind]
        return Problem(
            type=PROBLEM_BASE + self.kind.value,
            title=title,
            status=status,
            detail=self.detail,
            instance=instance,
            errors=self.errors,
        )

    def response(self, instance: str | None = None) -> JSONResponse:
        """The HTTP response: ``application/problem+json``."""
        return JSONResponse(
            self.problem(instance).model_dump(mode="json", exclude_none=True),
            status_code=self.status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=self.headers,
        )


def status_of(kind: ProblemKind) -> int:
    """The HTTP status of a kind of problem."""
    return _KINDS[kind][0]


def kinds_by_status() -> dict[int, list[ProblemKind]]:
    """Every kind grouped by status, for the OpenAPI document."""
    out: dict[int, list[ProblemKind]] = {}
    for kind, (status, _title) in _KINDS.items():
        out.setdefault(status, []).append(kind)
    return out
