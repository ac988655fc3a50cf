"""Envelope v1 and v2 through the router: it reads both, and writes v2 only.

v2 labels the sealed value ``application/vnd.uk-csp.hub.sealed.v2`` with the payload's own
type in ``ce_hubcontenttype``; v1 wrote the payload's type as ``content-type``.
"""

from __future__ import annotations

from typing import Any

import pytest

from hub.envelope import crypto, wire
from hub.keys.file_store import FileKeyStore
from hub.keys.model import KeySuite
from hub.keys.store import ensure_dev_keys
from hub.models import QuarantineReason
from tests.factories import MARAC_RAISED, marac_flag
from tests.unit.test_router import KEYS, PROTOCOL, make_router, never_seen, record

PUBLISHER = "marac.north-worcs"


@pytest.fixture(scope="module", autouse=True)
def _keys(tmp_path_factory: pytest.TempPathFactory) -> None:
    store = FileKeyStore(tmp_path_factory.mktemp("keys"))
    extra = [KeySuite(s) for s in PROTOCOL.crypto.suites[1:]]
    ensure_dev_keys(store, PROTOCOL.party_ids, extra_suites=extra)
    KEYS[0] = store


def as_v1(rec: dict[str, Any], *, keep_extension: bool = False) -> dict[str, Any]:
    """The same sealed record as a v1 writer labelled it, signed again by its publisher."""
    headers = {k: v.decode() for k, v in rec["headers"]}
    inner = headers["ce_hubcontenttype"] if keep_extension else headers.pop("ce_hubcontenttype")
    headers["content-type"] = inner
    del headers["ce_hubsig"]
    data = crypto.signing_input(headers, rec["key"], rec["value"])
    headers["ce_hubsig"] = crypto.b64e(KEYS[0].sign(headers["ce_hubsigkid"], data))
    return {**rec, "headers": [(k, v.encode()) for k, v in sorted(headers.items())]}


def test_the_hub_writes_v2_deliveries_for_a_v2_event() -> None:
    rec = record(PUBLISHER, MARAC_RAISED, marac_flag("MARAC-V2-0001"))
    sent = dict(rec["headers"])
    assert sent["content-type"] == wire.SEALED.encode()
    result = make_router().route(**rec, seen=never_seen)
    assert result.quarantined is None
    deliveries = [m for m in result.messages if m.topic.startswith("hub.out.")]
    assert deliveries
    for message in deliveries:
        headers = dict(message.headers)
        assert headers["content-type"] == wire.SEALED.encode()
        assert headers["ce_hubcontenttype"] == wire.JSON.encode()


def test_a_v1_event_is_still_routed_and_delivered_as_v2() -> None:
    rec = as_v1(record(PUBLISHER, MARAC_RAISED, marac_flag("MARAC-V1-0001"), event_id="e-v1"))
    assert dict(rec["headers"])["content-type"] == wire.AVRO.encode()
    result = make_router().route(**rec, seen=never_seen)
    assert result.quarantined is None, result.audit[0].reason
    deliveries = [m for m in result.messages if m.topic.startswith("hub.out.")]
    assert deliveries
    assert all(dict(m.headers)["content-type"] == wire.SEALED.encode() for m in deliveries)


def test_a_v1_label_with_the_v2_extension_is_quarantined() -> None:
    rec = as_v1(
        record(PUBLISHER, MARAC_RAISED, marac_flag("MARAC-V1-0002"), event_id="e-mixed"),
        keep_extension=True,
    )
    result = make_router().route(**rec, seen=never_seen)
    assert result.quarantined is QuarantineReason.BAD_ATTRIBUTE
    assert "only envelope v2" in result.audit[0].reason
