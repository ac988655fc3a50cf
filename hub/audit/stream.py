"""Authenticated ``hub.audit`` messages: a MAC by the writer over every message.

Anyone who can write to the broker could otherwise add audit records (a forged disclosure
an IG officer would then defend) or, by filling the stream with records the sink cannot
read, suppress real ones. So every message a router (or the webhook dispatcher) writes to
``hub.audit`` carries two headers:

- ``hub_audit_writer``: who wrote it (``router/<host>/<pid>``, ``webhooks/<party>``): ids,
  never personal data;
- ``hub_audit_mac``: HMAC-SHA256 (RFC 2104) under the hub's audit-stream key over a
  domain tag, the writer, the Kafka key and the value, each length-prefixed so no two
  different messages share an input.

The sink verifies it before anything is stored (``hub.agents.sink``). A message that fails
is never stored: it is copied to ``hub.quarantine``, an audit record of the rejection is
written by the sink itself, and the IG role is alerted (``forged_audit_message``).

Why a MAC and not an Ed25519 signature: the writers and the sink are the same party (the
hub), sharing one data dir or one secret (``HUB_AUDIT_STREAM_KEY``); a MAC costs a
microsecond, a signature 40, and there is no third party who must verify it. The Merkle log
and its signed checkpoints are what outsiders verify.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from hub.audit.pseudonym import create_key_file, decode_key
from hub.broker import topics
from hub.canonical import update_length_prefixed
from hub.envelope.wire import WireMessage
from hub.errors import AuditError, ConfigError
from hub.models import AuditBatch, AuditRecord
from hub.settings import HubSettings

__all__ = [
    "MAC_HEADER",
    "MAX_MESSAGE_BYTES",
    "WRITER_HEADER",
    "AuditStreamError",
    "audit_messages",
    "load_audit_stream_key",
    "mac_headers",
    "verify_message",
]

WRITER_HEADER = "hub_audit_writer"
MAC_HEADER = "hub_audit_mac"
_TAG = b"hub.audit/v1"
_KEY_FILE = "audit-stream.key"

#: an audit message's value at most: half the producer's default request limit (1 MiB), so
#: a batch's records never make a message the broker refuses
MAX_MESSAGE_BYTES = 512 * 1024


class AuditStreamError(AuditError):
    """A ``hub.audit`` message whose MAC is missing or wrong: forged, altered or foreign."""


def load_audit_stream_key(settings: HubSettings) -> bytes:
    """The MAC key: ``HUB_AUDIT_STREAM_KEY`` if set, else ``<data_dir>/audit-stream.key``.

    The file is created on first use (32 random bytes, hex, 0600), so every process of a
    single-host hub shares it; a hub on several hosts sets the same secret on each.

    Raises:
        ConfigError: the key is not hex of at least 32 bytes, or the file cannot be read or
            created.
    """
    if settings.audit_stream_key is not None:
        text = settings.audit_stream_key.get_secret_value()
        where = "HUB_AUDIT_STREAM_KEY"
    else:
        path = settings.data_dir / _KEY_FILE
        where = str(path)
        try:
            if not path.exists():
                create_key_file(path)
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"audit stream key file {path}: cannot read or create: {exc}"
            ) from exc
    return decode_key(text, where=where, what="audit stream key")


def _mac(secret: bytes, writer: bytes, key: bytes | None, value: bytes) -> str:
    mac = hmac.new(secret, _TAG, hashlib.sha256)
    update_length_prefixed(mac, (writer, b"" if key is None else b"k" + key, value))
    return mac.hexdigest()


def mac_headers(
    secret: bytes, *, writer: str, key: bytes | None, value: bytes
) -> list[tuple[str, bytes]]:
    """The headers that authenticate one ``hub.audit`` message written by ``writer``."""
    writer_bytes = writer.encode()
    return [
        (WRITER_HEADER, writer_bytes),
        (MAC_HEADER, _mac(secret, writer_bytes, key, value).encode()),
    ]


def verify_message(
    secret: bytes,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str | bytes, bytes | None]] | None,
) -> str:
    """Check a ``hub.audit`` message's MAC; return its writer.

    Raises:
        AuditStreamError: no writer or MAC header, or a MAC that does not match (the
            message was not written by a holder of the key, or was altered).
    """
    found: dict[str, bytes] = {}
    for name, raw in headers or ():
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        if text in (WRITER_HEADER, MAC_HEADER):
            if text in found:
                raise AuditStreamError(f"hub.audit message: header {text} appears twice")
            found[text] = raw or b""
    writer = found.get(WRITER_HEADER)
    claimed = found.get(MAC_HEADER)
    if writer is None or claimed is None:
        raise AuditStreamError(
            f"hub.audit message: expected {WRITER_HEADER} and {MAC_HEADER} headers, "
            "got an unauthenticated message"
        )
    expected = _mac(secret, writer, key, value or b"").encode()
    if not hmac.compare_digest(expected, claimed):
        raise AuditStreamError(
            "hub.audit message: the MAC does not match (forged, altered, or written with "
            "another hub's key)"
        )
    return writer.decode("utf-8", "replace")


def audit_messages(
    records: Sequence[AuditRecord],
    *,
    secret: bytes,
    writer: str,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> list[tuple[WireMessage, str]]:
    """The ``hub.audit`` messages for a batch's records, each with the id of its last record.

    One ``AuditBatch`` for the whole batch (one serialisation), split in halves only when it
    exceeds ``max_bytes``. All records of a message are stored in one transaction, so the
    store holding the last record id means it holds the message (``AuditWatch``).
    """
    return _messages(records, None, secret=secret, writer=writer, max_bytes=max_bytes)


#: how an ``AuditBatch`` serialises around its records: ``{"records":[`` r0 ``,`` r1 ... ``]}``
_OPEN = b'{"records":['
_CLOSE = b"]}"


def _batch_json(records: Sequence[AuditRecord]) -> bytes:
    return AuditBatch(records=tuple(records)).model_dump_json().encode()


def _messages(
    records: Sequence[AuditRecord],
    value: bytes | None,
    *,
    secret: bytes,
    writer: str,
    max_bytes: int,
) -> list[tuple[WireMessage, str]]:
    """``audit_messages``, given the records' ``AuditBatch`` JSON when it is known already.

    Split, the first half is serialised and the second half's JSON cut from the whole's:
    the whole is the first half's records, a comma, then the second half's, so the cut is
    byte for byte what serialising the second half gives (checked: where the whole does not
    begin with the first half's records and a comma, the second half is serialised).
    Serialising both halves again cost a batch too big for one message its JSON twice.
    """
    if not records:
        return []
    if value is None:
        value = _batch_json(records)
    if len(value) > max_bytes and len(records) > 1:
        half = len(records) // 2
        first = _batch_json(records[:half])
        cut = len(first) - len(_CLOSE)  # the first half's records end here in both
        rest: bytes | None = None
        if value[cut : cut + 1] == b"," and value.startswith(memoryview(first)[:cut]):
            rest = _OPEN + value[cut + 1 :]
        return _messages(
            records[:half], first, secret=secret, writer=writer, max_bytes=max_bytes
        ) + _messages(records[half:], rest, secret=secret, writer=writer, max_bytes=max_bytes)
    last = records[-1].record_id
    key = last.encode()
    headers = mac_headers(secret, writer=writer, key=key, value=value)
    return [(WireMessage(topic=topics.AUDIT, key=key, value=value, headers=headers), last)]
