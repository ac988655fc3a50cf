"""HTTP ingress (issue 7): each kind of bad input gets its own RFC 9457 problem; a good
event is sealed to the hub, signed as the party, and answered 202 only after the write."""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hub.envelope import wire
from hub.envelope.party import PartyEnvelope
from hub.errors import BrokerError
from hub.ingress import PROBLEM_BASE, RecentIds, TokenStore, TrustedProxy, create_app
from hub.ingress.fields import pointer_for
from hub.keys.file_store import FileKeyStore
from hub.keys.model import HUB_PARTY, KeySuite
from hub.keys.store import ensure_dev_keys
from hub.policies.loader import load_protocol
from hub.schemas import SchemaRegistry
from hub.settings import default_protocol_path
from tests.factories import MARAC_RAISED, marac_flag

PARTY = "marac.north-worcs"
CE_JSON = "application/cloudevents+json"


class FakeBroker:
    """The broker write, injected: records what was sent, or fails like a dead broker."""

    def __init__(self) -> None:
        self.sent: list[wire.WireMessage] = []
        self.down = False

    async def __call__(self, message: wire.WireMessage) -> str:
        if self.down:
            raise BrokerError("broker at 127.0.0.1:1: cannot connect (KafkaConnectionError)")
        self.sent.append(message)
        return f"{message.topic}/0/{len(self.sent) - 1}"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> FileKeyStore:
    store = FileKeyStore(tmp_path_factory.mktemp("keys"))
    ensure_dev_keys(store, [PARTY, "west-mercia-police"], suite=KeySuite.X25519)
    return store


@pytest.fixture
def tokens(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "ingress-tokens.json")


@pytest.fixture
def token(tokens: TokenStore) -> str:
    secret, _ = tokens.add(PARTY, label="marac case system")
    return secret


@pytest.fixture
def broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def client(keys: FileKeyStore, tokens: TokenStore, broker: FakeBroker) -> Iterator[TestClient]:
    protocol = load_protocol(default_protocol_path())
    app = create_app(
        keys=keys,
        tokens=tokens,
        sender=broker,
        parties=protocol.party_ids,
        max_event_bytes=4096,
        recent=RecentIds(capacity=3),
    )
    with TestClient(app) as test_client:
        yield test_client


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "specversion": "1.0",
        "id": wire.new_event_id(),
        "source": f"/parties/{PARTY}",
        "type": MARAC_RAISED,
        "time": "2026-11-20T10:00:00Z",
        "datacontenttype": "application/json",
        "data": marac_flag("MARAC-2026-0042"),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def post(
    client: TestClient,
    body: Any,
    *,
    token: str | None,
    content_type: str = CE_JSON,
    headers: dict[str, str] | None = None,
) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"content-type": content_type, **(headers or {})}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return client.post("/v1/events", content=raw, headers=sent)


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    doc: dict[str, Any] = response.json()
    assert doc["type"] == PROBLEM_BASE + code
    assert doc["status"] == status
    assert doc["title"]
    assert doc["detail"]
    assert doc["instance"] == "/v1/events" or status in (404, 405)
    return doc


# -- accepted ---------------------------------------------------------------------------------


def test_accepted_event_is_sealed_to_the_hub_and_signed_as_the_party(
    client: TestClient, token: str, broker: FakeBroker, keys: FileKeyStore
) -> None:
    body = event()
    response = post(client, body, token=token)

    assert response.status_code == 202, response.text
    assert response.json() == {"id": body["id"]}
    [message] = broker.sent
    assert message.topic == f"hub.in.{PARTY}"
    assert message.key == b"MARAC-2026-0042"
    headers = wire.decode_headers(message.headers)
    assert headers["ce_id"] == body["id"]
    assert headers["ce_source"] == f"/parties/{PARTY}"
    assert headers["content-type"] == "application/vnd.uk-csp.hub.sealed.v2"  # envelope v2
    assert headers["ce_hubcontenttype"] == "application/avro"
    opened = PartyEnvelope(HUB_PARTY, store=keys).open(
        headers, key=message.key, value=message.value, expected_signer=PARTY
    )
    assert opened.signer == PARTY
    assert SchemaRegistry().decode(MARAC_RAISED, opened.plaintext)["case_ref"] == "MARAC-2026-0042"


def test_partitionkey_subject_and_default_time(
    client: TestClient, token: str, broker: FakeBroker
) -> None:
    body = event(partitionkey="CASE-KEY-1", subject="SUBJ-9", time=None, datacontenttype=None)
    assert post(client, body, token=token).status_code == 202
    [message] = broker.sent
    headers = wire.decode_headers(message.headers)
    assert message.key == b"CASE-KEY-1"
    assert headers["ce_subject"] == "SUBJ-9"
    assert headers["ce_time"].endswith("Z")


def test_content_type_with_utf8_charset_is_accepted(client: TestClient, token: str) -> None:
    response = post(client, event(), token=token, content_type=f"{CE_JSON}; charset=UTF-8")
    assert response.status_code == 202, response.text


# -- 401 / 403 --------------------------------------------------------------------------------


def test_missing_token_is_401_with_www_authenticate(client: TestClient) -> None:
    doc = problem(post(client, event(), token=None), 401, "unauthenticated")
    assert "no bearer token" in doc["detail"]


def test_unknown_token_is_401(client: TestClient) -> None:
    response = post(client, event(), token="hubtok_not-a-real-token")
    problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_revoked_token_is_401_at_once(
    client: TestClient, tokens: TokenStore, token: str, broker: FakeBroker
) -> None:
    assert post(client, event(), token=token).status_code == 202
    [record] = tokens.tokens()
    tokens.revoke(record.token_id)
    problem(post(client, event(), token=token), 401, "unauthenticated")
    assert len(broker.sent) == 1


def test_source_of_another_party_is_403(client: TestClient, token: str, broker: FakeBroker) -> None:
    doc = problem(
        post(client, event(source="/parties/west-mercia-police"), token=token),
        403,
        "source-mismatch",
    )
    assert doc["errors"] == [{"pointer": "/source", "detail": "not the authenticated party"}]
    assert broker.sent == []


def test_token_for_a_party_the_protocol_does_not_declare_is_401(
    client: TestClient, tokens: TokenStore
) -> None:
    secret, _ = tokens.add("no-such-agency")
    body = event(source="/parties/no-such-agency")
    problem(post(client, body, token=secret), 401, "unauthenticated")


# -- 415 / 413 / 400 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain", f"{CE_JSON}; charset=latin-1", ""],
)
def test_wrong_content_type_is_415(client: TestClient, token: str, content_type: str) -> None:
    response = post(client, event(), token=token, content_type=content_type)
    problem(response, 415, "unsupported-media-type")
    assert response.headers["accept-post"] == CE_JSON


def test_body_over_the_limit_is_413_unread(client: TestClient, token: str) -> None:
    huge = event(data={"notes": "x" * 20_000})
    doc = problem(post(client, huge, token=token), 413, "payload-too-large")
    assert "16384" in doc["detail"]


def test_avro_payload_over_max_event_bytes_is_413(client: TestClient, token: str) -> None:
    big = event(data=marac_flag("MARAC-2026-0042", notes="x" * 5000))
    doc = problem(post(client, big, token=token), 413, "payload-too-large")
    assert "expected at most 4096" in doc["detail"]


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b'{"id": "a", "id": "b"}'], ids=str
)
def test_malformed_json_is_400(client: TestClient, token: str, raw: bytes) -> None:
    problem(post(client, raw, token=token), 400, "malformed-json")


def test_missing_attributes_are_400_each_named(client: TestClient, token: str) -> None:
    body = event()
    del body["id"], body["type"]
    doc = problem(post(client, body, token=token), 400, "missing-attribute")
    assert {e["pointer"] for e in doc["errors"]} == {"/id", "/type"}
    assert "id, type" in doc["detail"]


def test_wrong_specversion_is_400(client: TestClient, token: str) -> None:
    doc = problem(
        post(client, event(specversion="0.3"), token=token), 400, "unsupported-specversion"
    )
    assert "'0.3'" in doc["detail"]


@pytest.mark.parametrize(
    ("overrides", "pointer"),
    [
        ({"time": "yesterday"}, "/time"),
        ({"time": "2026-11-20T10:00:00"}, "/time"),  # no offset
        ({"id": "x" * 200}, "/id"),
        ({"id": "bad\nid"}, "/id"),
        ({"datacontenttype": "application/avro"}, "/datacontenttype"),
        ({"data": "not an object"}, "/data"),
        ({"data_base64": "AAAA"}, "/data_base64"),
        ({"traceparent": "00-abc"}, "/traceparent"),
    ],
)
def test_invalid_attributes_are_400_with_a_pointer(
    client: TestClient, token: str, overrides: dict[str, Any], pointer: str
) -> None:
    doc = problem(post(client, event(**overrides), token=token), 400, "invalid-attribute")
    assert pointer in {e["pointer"] for e in doc["errors"]}


# -- 404 / 422 --------------------------------------------------------------------------------


def test_unknown_type_is_404(client: TestClient, token: str) -> None:
    doc = problem(
        post(client, event(type="uk.csp.marac.flag.invented.v9"), token=token), 404, "unknown-type"
    )
    assert doc["errors"][0]["pointer"] == "/type"


@pytest.mark.parametrize(
    ("data", "pointer", "words"),
    [
        (marac_flag("MARAC-1", risk_level="extreme"), "/data/risk_level", "one of standard"),
        (
            marac_flag("MARAC-1", address={"district": "atlantis"}),
            "/data/address/district",
            "one of bromsgrove",
        ),
        (marac_flag("MARAC-1", address={"postcode": "nope"}), "/data/address/postcode", "match"),
        ({**marac_flag("MARAC-1"), "shoe_size": 9}, "/data/shoe_size", "unexpected field"),
        (
            {k: v for k, v in marac_flag("MARAC-1").items() if k != "risk_level"},
            "/data/risk_level",
            "got nothing",
        ),
    ],
)
def test_data_failing_the_schema_is_422_naming_the_field(
    client: TestClient, token: str, data: dict[str, Any], pointer: str, words: str
) -> None:
    doc = problem(post(client, event(data=data), token=token), 422, "schema-invalid")
    assert doc["errors"][0]["pointer"] == pointer
    assert words in doc["detail"]


def test_field_pointer_for_the_hub_and_fastavro_spellings() -> None:
    raw = SchemaRegistry().raw(MARAC_RAISED)
    assert pointer_for(raw, "field uk.csp.common.Address.town: expected string") == (
        "/data/address/town"
    )
    assert pointer_for(raw, "field address.postcode: expected to match") == (
        "/data/address/postcode"
    )
    assert pointer_for(raw, "expected a date YYYY-MM-DD, got 'x'") == "/data"
    assert pointer_for(raw, "field /address/postcode: expected to match") == (
        "/data/address/postcode"
    )


# -- 409 / 503 --------------------------------------------------------------------------------


def test_replayed_id_is_409_and_not_sent_again(
    client: TestClient, token: str, broker: FakeBroker
) -> None:
    body = event()
    assert post(client, body, token=token).status_code == 202
    doc = problem(post(client, body, token=token), 409, "duplicate-event-id")
    assert doc["errors"][0]["pointer"] == "/id"
    assert len(broker.sent) == 1


def test_recent_ids_are_bounded_oldest_forgotten_first() -> None:
    recent = RecentIds(capacity=2)
    assert recent.reserve("p", "a")
    assert recent.reserve("p", "b")
    assert not recent.reserve("p", "a")
    assert recent.reserve("p", "c")
    assert len(recent) == 2
    assert recent.reserve("p", "a")  # forgotten: the hub's own duplicate check still applies
    assert recent.reserve("q", "c")  # ids are remembered per party


def test_broker_down_is_503_with_retry_after_and_the_id_can_be_retried(
    client: TestClient, token: str, broker: FakeBroker
) -> None:
    body = event()
    broker.down = True
    response = post(client, body, token=token)
    problem(response, 503, "broker-unavailable")
    assert int(response.headers["retry-after"]) > 0
    broker.down = False
    assert post(client, body, token=token).status_code == 202


def test_party_without_a_signing_key_is_a_500_problem(
    client: TestClient, tokens: TokenStore
) -> None:
    secret, _ = tokens.add("redditch-bc.housing-repairs")  # declared, but no key in this store
    body = event(source="/parties/redditch-bc.housing-repairs")
    problem(post(client, body, token=secret), 500, "party-key-unavailable")


# -- other routes, trusted proxy, OpenAPI ------------------------------------------------------


def test_other_paths_and_methods_are_problems(client: TestClient) -> None:
    problem(client.get("/v1/nothing"), 404, "not-found")
    response = client.get("/v1/events")
    problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["allow"]


def test_trusted_proxy_header_only_from_the_proxy(
    keys: FileKeyStore, tokens: TokenStore, broker: FakeBroker
) -> None:
    # TestClient's peer address is "testclient"
    for addresses, expected in ((frozenset({"testclient"}), 202), (frozenset({"10.0.0.9"}), 401)):
        app = create_app(
            keys=keys,
            tokens=tokens,
            sender=broker,
            trusted_proxy=TrustedProxy(header="X-Client-Party", addresses=addresses),
        )
        with TestClient(app) as proxied:
            response = post(proxied, event(), token=None, headers={"X-Client-Party": PARTY})
        assert response.status_code == expected, response.text


def test_openapi_documents_the_body_problems_and_bearer(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    operation = doc["paths"]["/v1/events"]["post"]
    assert set(operation["requestBody"]["content"]) == {CE_JSON}
    assert {"202", "400", "401", "403", "404", "408", "409", "413", "415", "422", "503"} <= set(
        operation["responses"]
    )
    assert "application/problem+json" in operation["responses"]["422"]["content"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert set(doc["components"]["schemas"]["CloudEvent"]["required"]) == {
        "specversion",
        "id",
        "source",
        "type",
        "data",
    }


# -- slow bodies, over a real socket -----------------------------------------------------------


@contextlib.contextmanager
def served(app: FastAPI) -> Iterator[tuple[str, int]]:
    """The app behind uvicorn on a loopback port, from a thread, as ``hub ingress serve`` runs it.

    The socket listens before uvicorn starts, so a client may connect at once (its request
    waits in the backlog until the server accepts it).
    """
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        host, port = sock.getsockname()[:2]
        yield host, port
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _response(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection.

    A close with bytes of ours still unread is a reset; Linux still hands over what had
    arrived before it.
    """
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := conn.recv(65536):
            data += chunk
    return data


def _trickle(app: FastAPI, headers: dict[str, str], *, declared: int = 400) -> tuple[bytes, int]:
    """POST a body of ``declared`` bytes one byte per 50 ms until the server answers.

    Returns everything the server sent until it closed the connection, and how many body
    bytes were sent. After the answer one more byte goes out: on a connection left open, a
    byte resets uvicorn's keep-alive timer, so only a server that closes it lets this return.
    """
    with served(app) as (host, port), socket.create_connection((host, port)) as conn:
        conn.settimeout(60)  # a safety net for a server that never closes, not a measurement
        lines = ["POST /v1/events HTTP/1.1", f"Host: {host}", f"Content-Length: {declared}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sent = 0
        while sent < declared - 1:  # never the whole body: an answer must come before it
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable:
                break
            conn.sendall(b"{")
            sent += 1
        with contextlib.suppress(OSError):  # already closed: the byte has nowhere to go
            conn.sendall(b"{")
        return _response(conn), sent


def test_a_signed_in_client_trickling_its_body_gets_408_and_is_closed(
    keys: FileKeyStore, tokens: TokenStore, token: str, broker: FakeBroker
) -> None:
    # a byte every 50 ms would pass any per-read idle limit; the limit is on the whole body
    app = create_app(keys=keys, tokens=tokens, sender=broker, body_timeout=0.5)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": CE_JSON}
    answer, sent = _trickle(app, headers)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"connection: close" in head.lower()
    assert json.loads(body)["type"] == PROBLEM_BASE + "request-timeout"
    assert sent < 399
    assert broker.sent == []


def test_a_client_refused_before_its_body_is_read_is_disconnected_at_once(
    keys: FileKeyStore, tokens: TokenStore, broker: FakeBroker
) -> None:
    # a long body timeout: the refusal, not the timeout, is what closes this connection
    app = create_app(keys=keys, tokens=tokens, sender=broker, body_timeout=3600)
    answer, sent = _trickle(app, {"Content-Type": CE_JSON})
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 "), answer[:200]
    assert b"connection: close" in head.lower()
    assert json.loads(body)["type"] == PROBLEM_BASE + "unauthenticated"
    assert sent < 399


def test_an_accepted_event_keeps_its_connection(client: TestClient, token: str) -> None:
    response = post(client, event(), token=token)
    assert response.status_code == 202
    assert "connection" not in response.headers


# -- tokens -----------------------------------------------------------------------------------


def test_token_store_keeps_only_a_hash_in_a_0600_file(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "ingress-tokens.json")
    secret, record = store.add(PARTY, label="case system")
    text = store.path.read_text()
    assert secret not in text
    assert record.sha256 in text
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.party_for(secret) == PARTY
    assert store.party_for(secret + "x") is None
    store.revoke(record.token_id)
    assert store.party_for(secret) is None
    assert [t.active for t in store.tokens()] == [False]
