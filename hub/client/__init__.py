"""Agency SDK: ``HubClient`` publishes, consumes and acknowledges for one party."""

from hub.client.sdk import HubClient

__all__ = ["HubClient"]
