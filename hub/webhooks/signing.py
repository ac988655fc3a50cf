"""Standard Webhooks signatures (https://www.standardwebhooks.com/, spec v1).

``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` =
``v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``; the secret is shared as
``whsec_<base64 key>``. Receivers compare in constant time and refuse stale timestamps.

The signature itself is the reference implementation's (the ``standardwebhooks`` package,
``Webhook.sign``, 1.3 or later: 1.1 formatted a bytes body into a str before signing it), so
the wire format is the spec's by construction. Two things stay ours:
the secret is checked strictly (``whsec_`` prefix, valid base64; the package strips the
prefix if present and decodes leniently, so a mangled secret would sign with other bytes
rather than fail), and ``verify`` takes the receiver's clock as an argument (the package's
``Webhook.verify`` reads the wall clock, which no test can hold still); it compares against
the package's signature, in constant time, with the spec's 5-minute window.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import secrets
import time

from standardwebhooks import Webhook

__all__ = ["SECRET_PREFIX", "headers_for", "new_secret", "sign", "verify"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
#: a receiver refuses a timestamp further than this from its clock (the spec's replay window)
TOLERANCE_S = 300


def new_secret() -> str:
    """A fresh signing secret (32 random bytes), in the ``whsec_`` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"webhook secret: expected '{SECRET_PREFIX}...', got another form")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("webhook secret: expected base64 after the prefix") from exc
    if not key:
        raise ValueError("webhook secret: expected a key after the prefix, got none")
    return key


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message (``v1,<base64 HMAC-SHA256>``)."""
    when = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return Webhook(_key(secret)).sign(msg_id, when, body)


def headers_for(
    secret: str, *, msg_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers (plus the content type) for a POST."""
    timestamp = int(time.time() if now is None else now)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id=msg_id, timestamp=timestamp, body=body),
    }


def verify(secret: str, *, headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    """What a receiver does: any ``v1`` signature matches and the timestamp is fresh."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lower["webhook-id"]
        timestamp = int(lower["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_S:
        return False
    expected = sign(secret, msg_id=msg_id, timestamp=timestamp, body=body)
    offered = lower.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)
