"""HTTP ingress on the real broker and hub: a MARAC flag POSTed as marac.north-worcs is
routed by the hub and delivered; the OpenAPI document holds against the running server
(schemathesis)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

from hub.envelope import wire
from hub.ingress import TokenStore, build_app
from hub.models import AuditDecision
from tests.conftest import RunningHub, unique, wait_for
from tests.factories import MARAC_RAISED, marac_flag

pytestmark = pytest.mark.integration

PUBLISHER = "marac.north-worcs"
HOUSING = "redditch-bc.housing-repairs"


@dataclass(frozen=True)
class Ingress:
    url: str
    token: str


@pytest.fixture(scope="module")
def ingress(hub: RunningHub) -> Iterator[Ingress]:
    """The ingress app under uvicorn in a thread, on a free port, writing to the hub's broker."""
    token, _ = TokenStore.in_data_dir(hub.settings.data_dir).add(PUBLISHER, label="tests")
    app = build_app(hub.settings, bootstrap=hub.bootstrap)
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), timeout=20, what="ingress up")
    assert server.started, "uvicorn did not start"
    yield Ingress(url=f"http://127.0.0.1:{port}", token=token)
    server.should_exit = True
    thread.join(timeout=20)
    sock.close()


def test_marac_flag_over_http_is_routed_and_delivered(hub: RunningHub, ingress: Ingress) -> None:
    case = unique("MARAC")
    event_id = wire.new_event_id()
    body = {
        "specversion": "1.0",
        "id": event_id,
        "source": f"/parties/{PUBLISHER}",
        "type": MARAC_RAISED,
        "time": "2026-11-20T10:00:00Z",
        "datacontenttype": "application/json",
        "data": marac_flag(case),
    }
    headers = {
        "authorization": f"Bearer {ingress.token}",
        "content-type": "application/cloudevents+json",
    }
    response = httpx2.post(f"{ingress.url}/v1/events", json=body, headers=headers, timeout=30)
    assert response.status_code == 202, response.text
    assert response.json() == {"id": event_id}

    records = hub.wait_records(event_id, at_least=8)
    assert {r.publisher for r in records} == {PUBLISHER}
    delivered = {r.recipient for r in records if r.decision == AuditDecision.DELIVERED}
    assert {"west-mercia-police", HOUSING} <= delivered

    got = hub.deliveries(HOUSING, until=lambda ds: any(d.id == event_id for d in ds))
    flag = next(d for d in got if d.id == event_id)
    assert flag.source == f"/parties/{PUBLISHER}"
    assert flag.data["case_ref"] == case
    assert "notes" not in flag.data  # minimised for a department, as from the SDK

    again = httpx2.post(f"{ingress.url}/v1/events", json=body, headers=headers, timeout=30)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


def test_openapi_document_holds_against_the_running_ingress(ingress: Ingress) -> None:
    """Generated requests, valid and invalid by the document: no 5xx, every answer as documented.

    Driven through hypothesis directly: schemathesis' pytest fixture loader does not run
    under pytest 9.
    """
    loaded = schemathesis.openapi.from_url(f"{ingress.url}/openapi.json")
    operation = loaded["/v1/events"]["POST"]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    statuses: list[int] = []

    @given(case=cases)
    @settings(
        max_examples=50,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def call(case: schemathesis.Case[Any]) -> None:
        response = case.call_and_validate(
            base_url=ingress.url,
            headers={"authorization": f"Bearer {ingress.token}"},
            checks=[
                checks.not_a_server_error,
                checks.status_code_conformance,
                checks.content_type_conformance,
                checks.response_schema_conformance,
                checks.response_headers_conformance,
            ],
            timeout=30,
        )
        statuses.append(response.status_code)

    call()
    assert statuses, "schemathesis generated no requests"
    assert all(status < 500 for status in statuses)
