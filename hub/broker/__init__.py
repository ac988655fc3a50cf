"""Embedded Kafka-protocol broker launcher and topic administration."""

from hub.broker.embedded import EmbeddedBroker, wait_until_ready

__all__ = ["EmbeddedBroker", "wait_until_ready"]
