"""Standard Webhooks signatures (https://www.standardwebhooks.com/, spec v1).

``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` =
``v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``; the secret is shared as
``whsec_<base64 key>``. Receivers compare in constant time and refuse stale timestamps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

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
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


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
