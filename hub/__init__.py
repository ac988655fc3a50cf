"""hub: an event-driven information-sharing hub for Community Safety Partnerships."""

from hub.errors import HubError
from hub.models import AuditRecord, Decision, Delivery

__all__ = ["AuditRecord", "Decision", "Delivery", "HubError"]
__version__ = "0.1.0"
