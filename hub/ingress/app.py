"""``POST /v1/events``: a CloudEvent in structured JSON mode, produced to ``hub.in.<party>``.

For systems that cannot speak Kafka. The ingress authenticates the caller as a party (a
per-party bearer token, or a reverse proxy's header when explicitly trusted), checks that the
event's ``source`` names that party, validates the data against the type's Avro schema, then
does what ``HubClient.publish`` does for the party: encodes, seals to the hub, signs with the
party's key from the KeyStore and produces with ``acks=all``. It answers 202 with the event
id only once the broker has acknowledged the write; every refusal is an RFC 9457 problem.

Checks run in this order, so a caller sees the first thing to fix: credentials (401), media
type (415), size (413), JSON and CloudEvents attributes (400), source (403), type (404),
schema (422), replay (409), broker (503).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.client import HubClient
from hub.envelope import wire
from hub.errors import (
    BrokerError,
    EventTooLargeError,
    EventValidationError,
    KeyStoreError,
    SchemaError,
)
from hub.ingress.connections import CloseUnreadBody
from hub.ingress.fields import pointer_for
from hub.ingress.problems import (
    PROBLEM_MEDIA_TYPE,
    FieldError,
    Problem,
    ProblemError,
    ProblemKind,
    kinds_by_status,
)
from hub.ingress.tokens import TokenStore
from hub.keys.store import KeyStore
from hub.log import get_logger
from hub.models import PARTY_ID_PATTERN
from hub.policies.model import CryptoPolicy
from hub.schemas import SchemaRegistry

__all__ = [
    "CLOUDEVENTS_JSON",
    "Accepted",
    "CloudEventIn",
    "RecentIds",
    "Sender",
    "TrustedProxy",
    "create_app",
]

CLOUDEVENTS_JSON = "application/cloudevents+json"
#: a structured-mode body carries JSON data plus attributes; Avro is smaller than its JSON,
#: so the body may be this many times HUB_MAX_EVENT_BYTES before it is refused unread
BODY_FACTOR = 4
_NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
_log = get_logger("ingress")
#: module level: FastAPI resolves the (string) annotations below in this module's globals
_BEARER = HTTPBearer(auto_error=False, description="a per-party ingress token")

#: produce a sealed record and return its origin (topic/partition/offset) once the broker
#: has acknowledged it; raises ``BrokerError`` otherwise
Sender = Callable[[wire.WireMessage], Awaitable[str]]


class CloudEventIn(BaseModel):
    """A CloudEvent 1.0 in structured JSON mode, as the ingress accepts it."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="CloudEvent",
        json_schema_extra={
            "example": {
                "specversion": "1.0",
                "id": "0190f6a2-7c1e-7d2a-9b1e-2f4c5d6e7f80",
                "source": "/parties/marac.north-worcs",
                "type": "uk.csp.marac.flag.raised.v1",
                "time": "2026-11-20T10:00:00Z",
                "datacontenttype": "application/json",
                "data": {"case_ref": "MARAC-2026-0042", "...": "the type's Avro fields"},
            }
        },
    )

    specversion: Literal["1.0"] = Field(description="CloudEvents version: only 1.0")
    id: str = Field(
        min_length=1,
        max_length=128,
        pattern=_NO_CONTROL,
        description="unique per event; a retry must reuse it (a UUIDv7 is ideal)",
    )
    source: str = Field(
        min_length=1, max_length=256, description="/parties/<party>: the authenticated party"
    )
    type: str = Field(
        min_length=1, max_length=256, description="event type, e.g. uk.csp.marac.flag.raised.v1"
    )
    time: AwareDatetime | None = Field(
        default=None, description="RFC 3339 with an offset; default: when the ingress got it"
    )
    subject: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=_NO_CONTROL,
        description="pseudonymous case or subject reference, never a name (default: the Kafka key)",
    )
    datacontenttype: Literal["application/json"] | None = Field(
        default=None, description="data is JSON; the ingress encodes it as Avro"
    )
    partitionkey: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=_NO_CONTROL,
        description="CloudEvents Partitioning extension: the Kafka key (default: the case "
        "reference in data)",
    )
    data: dict[str, Any] = Field(description="the payload, as the type's Avro schema in JSON")


class Accepted(BaseModel):
    """The broker holds the event."""

    id: str = Field(description="the event id")


class RecentIds:
    """A bounded memory of event ids this ingress accepted (or is sending), by party.

    Replays are refused here with 409; the hub also quarantines a duplicate id downstream,
    so this bound (oldest forgotten first) limits memory, not safety.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[tuple[str, str], bool] = OrderedDict()

    def reserve(self, party: str, event_id: str) -> bool:
        """Claim an id before sending; False if it was accepted or is being sent."""
        key = (party, event_id)
        if key in self._ids:
            return False
        self._ids[key] = False
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def release(self, party: str, event_id: str) -> None:
        """Forget a claim whose send failed, so the caller may retry with the same id."""
        self._ids.pop((party, event_id), None)

    def __len__(self) -> int:
        return len(self._ids)


class TrustedProxy(BaseModel):
    """Mutual TLS terminated by a reverse proxy that names the party in a header.

    Only requests whose peer address is one of ``addresses`` may use the header; from
    anywhere else it is ignored and a bearer token is required.
    """

    model_config = ConfigDict(frozen=True)

    header: str = Field(min_length=1)
    addresses: frozenset[str] = Field(min_length=1)


def create_app(
    *,
    keys: KeyStore,
    tokens: TokenStore,
    sender: Sender,
    registry: SchemaRegistry | None = None,
    crypto: CryptoPolicy | None = None,
    parties: Collection[str] | None = None,
    max_event_bytes: int = 256 * 1024,
    body_timeout: float = 10.0,
    recent: RecentIds | None = None,
    trusted_proxy: TrustedProxy | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """The ingress ASGI app.

    Args:
        keys: holds each party's signing key; the ingress signs on the party's behalf.
        tokens: the per-party bearer tokens.
        sender: writes a sealed record to Kafka (``KafkaSender`` in production).
        registry: event schemas (default: the hub's).
        crypto: the protocol's crypto section, so each type is sealed with its suite.
        parties: the protocol's parties; a token or header naming another is refused.
        max_event_bytes: HUB_MAX_EVENT_BYTES, applied to the encoded Avro payload.
        body_timeout: HUB_INGRESS_BODY_TIMEOUT, seconds from the start of reading to the
            body's last byte; a slower caller gets 408 and the connection is closed.
        recent: the replay memory (default: 100,000 ids).
        trusted_proxy: accept the party from a reverse proxy's header (mTLS at the proxy).
        on_shutdown: awaited when the server stops (closes the Kafka producer).
    """
    registry = registry or SchemaRegistry()
    recent = recent if recent is not None else RecentIds()
    known_parties = frozenset(parties) if parties is not None else None
    clients: dict[str, HubClient] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await on_shutdown()

    app = FastAPI(
        title="hub ingress",
        version="1",
        summary="Publish CloudEvents to the hub over HTTPS, for systems that cannot speak Kafka.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )

    def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
        party: str | None = None
        if trusted_proxy is not None and _from_proxy(request, trusted_proxy):
            party = request.headers.get(trusted_proxy.header)
        if party is None and credentials is not None:
            party = tokens.party_for(credentials.credentials)
        if party is None:
            raise ProblemError(
                ProblemKind.UNAUTHENTICATED,
                "expected 'Authorization: Bearer <ingress token>' with a token issued by "
                "`hub ingress token add`, got "
                + ("an unknown or revoked token" if credentials else "no bearer token"),
                headers={"WWW-Authenticate": 'Bearer realm="hub"'},
            )
        if not re.fullmatch(PARTY_ID_PATTERN, party) or (
            known_parties is not None and party not in known_parties
        ):
            raise ProblemError(
                ProblemKind.UNAUTHENTICATED,
                "the credentials name a party the protocol does not declare",
                headers={"WWW-Authenticate": 'Bearer realm="hub"'},
            )
        return party

    def client_for(party: str) -> HubClient:
        if party not in clients:
            # The client is used only to build sealed, signed records (no Kafka connection
            # of its own): the ingress shares one producer across parties.
            clients[party] = HubClient(
                party,
                bootstrap="",
                keys=keys,
                registry=registry,
                max_event_bytes=max_event_bytes,
                crypto=crypto,
            )
        return clients[party]

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=Accepted,
        summary="Publish one CloudEvent (structured JSON mode) as the authenticated party",
        responses=_problem_responses(),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    CLOUDEVENTS_JSON: {"schema": {"$ref": "#/components/schemas/CloudEvent"}}
                },
            }
        },
    )
    async def post_event(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> Accepted:
        party = authenticate(request, credentials)
        _check_media_type(request.headers.get("content-type"))
        body = await _read_body(
            request, limit=BODY_FACTOR * max_event_bytes, within=body_timeout, party=party
        )
        event = _parse(body)
        if event.source != wire.source_for(party):
            raise ProblemError(
                ProblemKind.SOURCE_MISMATCH,
                f"source: expected {wire.source_for(party)} (the party these credentials act "
                f"for), got {event.source!r}",
                errors=[FieldError(pointer="/source", detail="not the authenticated party")],
            )
        if event.type not in registry:
            raise ProblemError(
                ProblemKind.UNKNOWN_TYPE,
                f"type: no schema for {event.type!r}; expected one of "
                f"{', '.join(sorted(registry.types))}",
                errors=[FieldError(pointer="/type", detail="unknown event type")],
            )
        message = _build(client_for(party), registry, event)
        if not recent.reserve(party, event.id):
            raise ProblemError(
                ProblemKind.DUPLICATE_EVENT_ID,
                f"id {event.id!r} was already accepted from {party}: a retry after a 202 is a "
                "replay; give a new event a new id",
                errors=[FieldError(pointer="/id", detail="already accepted")],
            )
        try:
            origin = await sender(message)
        except BrokerError as exc:
            recent.release(party, event.id)
            _log.warning("ingress_broker_unavailable", event_id=event.id, party=party)
            raise ProblemError(
                ProblemKind.BROKER_UNAVAILABLE,
                f"the broker did not acknowledge the write ({exc}); nothing is accepted: "
                "retry with the same id",
                headers={"Retry-After": "5"},
            ) from exc
        except BaseException:
            recent.release(party, event.id)
            raise
        _log.info(
            "ingress_accepted", event_id=event.id, party=party, type=event.type, origin=origin
        )
        return Accepted(id=event.id)

    app.add_middleware(CloseUnreadBody)  # an answer before the body's end closes the connection
    _install_handlers(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # FastAPI's documented hook
    return app


def _from_proxy(request: Request, proxy: TrustedProxy) -> bool:
    host = request.client.host if request.client else None
    if host is None:
        return False
    try:
        return any(ipaddress.ip_address(host) == ipaddress.ip_address(a) for a in proxy.addresses)
    except ValueError:
        return host in proxy.addresses


def _check_media_type(content_type: str | None) -> None:
    media, _, params = (content_type or "").partition(";")
    charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, flags=re.IGNORECASE)
    if media.strip().lower() != CLOUDEVENTS_JSON or (
        charset is not None and charset.group(1).lower() not in ("utf-8", "utf8")
    ):
        raise ProblemError(
            ProblemKind.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type: expected {CLOUDEVENTS_JSON} (CloudEvents structured mode, "
            f"UTF-8), got {content_type or 'none'!r}",
            headers={"Accept-Post": CLOUDEVENTS_JSON},
        )


async def _read_body(request: Request, *, limit: int, within: float, party: str) -> bytes:
    """The request body, at most ``limit`` bytes, read within ``within`` seconds in all.

    A caller refused before this point never has its body read, and the connection closes
    with the answer (``hub.ingress.connections``). A signed-in caller's body is read, so it
    is bounded here: one deadline for the whole body (not per chunk, which a byte every few
    seconds would defeat), then 408 and the connection closed, so no slow partner system
    (or a stolen token) can tie up the ingress's connections.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(f"request body is {int(declared)} bytes: expected at most {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:  # stop reading: a body without Content-Length gets no further
                    raise _too_large(
                        f"request body is over {limit} bytes: expected at most {limit}"
                    )
                chunks.append(chunk)
    except TimeoutError:
        _log.warning("ingress_body_timeout", party=party, received=size, within=within)
        raise ProblemError(
            ProblemKind.REQUEST_TIMEOUT,
            f"request body: expected all of it within {within:g} s, got {size} bytes; send "
            "the body with the headers (the connection is closed)",
            headers={"Connection": "close"},
        ) from None
    return b"".join(chunks)


def _too_large(detail: str) -> ProblemError:
    return ProblemError(ProblemKind.PAYLOAD_TOO_LARGE, detail)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            # Two readings of one event (RFC 8259 leaves duplicates undefined): refuse.
            raise ValueError(f"member {name!r} appears twice")
        out[name] = value
    return out


def _parse(body: bytes) -> CloudEventIn:
    try:
        obj = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise ProblemError(ProblemKind.MALFORMED_JSON, "body is not UTF-8") from exc
    except (ValueError, RecursionError) as exc:
        raise ProblemError(ProblemKind.MALFORMED_JSON, f"body is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProblemError(
            ProblemKind.MALFORMED_JSON,
            f"body: expected a JSON object (one CloudEvent), got {type(obj).__name__}",
        )
    try:
        return CloudEventIn.model_validate(obj)
    except ValidationError as exc:
        raise _attribute_problem(exc, obj) from exc


def _attribute_problem(exc: ValidationError, obj: dict[str, Any]) -> ProblemError:
    errors: list[FieldError] = []
    kind = ProblemKind.INVALID_ATTRIBUTE
    missing: list[str] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in err["loc"]]
        name = loc[0] if loc else ""
        if err["type"] == "missing":
            missing.append(name)
            detail = "required attribute is missing"
        elif err["type"] == "extra_forbidden":
            detail = "not an attribute the hub accepts (no extensions but partitionkey)"
        else:
            detail = err["msg"]
        errors.append(FieldError(pointer="/" + "/".join(loc), detail=detail))
    if "specversion" in obj and obj.get("specversion") != "1.0":
        kind = ProblemKind.UNSUPPORTED_SPECVERSION
        summary = f"specversion: expected '1.0', got {str(obj['specversion'])[:20]!r}"
    elif missing:
        kind = ProblemKind.MISSING_ATTRIBUTE
        summary = f"required CloudEvents attribute(s) missing: {', '.join(missing)}"
    else:
        summary = "; ".join(f"{e.pointer.lstrip('/')}: {e.detail}" for e in errors[:5])
    return ProblemError(kind, summary, errors=errors)


def _build(client: HubClient, registry: SchemaRegistry, event: CloudEventIn) -> wire.WireMessage:
    try:
        return client.build(
            event.type,
            event.data,
            key=event.partitionkey,
            subject=event.subject,
            event_id=event.id,
            time=event.time or dt.datetime.now(dt.UTC),
        )
    except EventTooLargeError as exc:
        raise _too_large(str(exc)) from exc
    except EventValidationError as exc:
        detail = str(exc)
        pointer = pointer_for(registry.raw(event.type), detail)
        raise ProblemError(
            ProblemKind.SCHEMA_INVALID,
            detail,
            errors=[FieldError(pointer=pointer, detail=detail)],
        ) from exc
    except SchemaError as exc:  # the registry changed under us: treat as unknown
        raise ProblemError(ProblemKind.UNKNOWN_TYPE, str(exc)) from exc
    except KeyStoreError as exc:
        _log.error("ingress_no_party_key", party=client.party, error=str(exc))
        raise ProblemError(
            ProblemKind.PARTY_KEY_UNAVAILABLE,
            f"the ingress cannot sign for {client.party} or seal to the hub: a key is "
            "missing or revoked; ask the hub operator",
        ) from exc


def _install_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)  # noqa: S101  # registered for this type only
        if exc.status >= 500:
            _log.warning("ingress_refused", kind=exc.kind.value, status=exc.status)
        else:
            _log.info("ingress_refused", kind=exc.kind.value, status=exc.status)
        return exc.response(request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101  # registered for it only
        if exc.status_code == 405:
            problem = ProblemError(
                ProblemKind.METHOD_NOT_ALLOWED,
                f"{request.method} {request.url.path}: expected POST",
                headers=dict(exc.headers or {}),
            )
        else:
            problem = ProblemError(
                ProblemKind.NOT_FOUND, f"{request.url.path}: expected POST /v1/events"
            )
        return problem.response(request.url.path)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        # No parameter is declared for FastAPI to validate; kept so nothing answers
        # with FastAPI's own (non-problem) 422 if one is added.
        _log.error("ingress_request_validation", error=str(exc)[:300])
        return ProblemError(ProblemKind.INVALID_ATTRIBUTE, "invalid request").response(
            request.url.path
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)


def _problem_responses() -> dict[int | str, dict[str, Any]]:
    described = {
        status: " | ".join(kind.value for kind in kinds)
        for status, kinds in kinds_by_status().items()
        if status != 405
    }
    return {
        status: {
            "description": f"problem (RFC 9457), type .../problems/<{names}>",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            **(
                {"headers": {"Retry-After": {"schema": {"type": "integer"}}}}
                if status == 503
                else {}
            ),
        }
        for status, names in described.items()
    }


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (CloudEventIn, Problem):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(generated.pop("$defs", {}))
        components[str(generated.get("title", model.__name__))] = generated
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema
