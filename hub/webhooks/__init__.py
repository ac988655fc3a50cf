"""Webhook delivery for parties without a Kafka consumer (issue 7.2).

``signing`` (Standard Webhooks headers), ``config`` (party -> endpoint and secret, a 0600 file
in the data dir) and ``dispatcher`` (the party's agent: consumes hub.out.<party>, POSTs, retries,
dead-letters, audits every attempt).
"""

from hub.webhooks.config import WebhookConfig, WebhookEndpoint
from hub.webhooks.signing import sign, verify

__all__ = ["WebhookConfig", "WebhookEndpoint", "sign", "verify"]
