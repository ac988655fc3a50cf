"""A party's check of the hub's signed audit checkpoints, as they arrive in its deliveries.

The audit sink sends every party each checkpoint it signs (``uk.csp.audit.checkpoint.v1``,
``{"origin", "size", "checkpoint"}``, the note in C2SP signed-note form). A party checks the
signature with the log's verifier key (``hub audit log-key``), keeps the note, and can later
ask the hub to prove that the log it signed still holds what it held then. Checking is quiet
work: a consumer counts the good ones and speaks up only about a bad one.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.audit.checkpoint import Checkpoint, NoteVerifier
from hub.errors import AuditIntegrityError, HubError
from hub.models import Delivery

__all__ = ["CHECKPOINT_TYPE", "CheckpointCheck"]

CHECKPOINT_TYPE = "uk.csp.audit.checkpoint.v1"


@dataclass
class CheckpointCheck:
    """Verifies checkpoint deliveries with the log's verifier key; counts what it saw."""

    verifier: NoteVerifier | None
    #: why checkpoints cannot be checked here (no verifier key), if so
    unavailable: str | None = None
    verified: int = 0
    #: checkpoints that came while there was no key to check them with
    unchecked: int = 0
    #: the largest tree size seen in a verified checkpoint
    size: int = 0

    def check(self, delivery: Delivery) -> Checkpoint | None:
        """Verify one checkpoint delivery (None when there is no key to check with).

        Raises:
            AuditIntegrityError: the note does not verify, names another log, or its size
                is not the one the delivery states.
        """
        if self.verifier is None:
            self.unchecked += 1
            return None
        note = delivery.data.get("checkpoint")
        if not isinstance(note, str):
            raise AuditIntegrityError(
                f"checkpoint {delivery.id}: expected a signed note, got {type(note).__name__}"
            )
        try:
            head = self.verifier.open_checkpoint(note)
        except HubError as exc:
            raise AuditIntegrityError(f"checkpoint {delivery.id}: {exc}") from exc
        if delivery.data.get("size") != head.size:
            raise AuditIntegrityError(
                f"checkpoint {delivery.id}: states size {delivery.data.get('size')}, "
                f"the signed note says {head.size}"
            )
        self.verified += 1
        self.size = max(self.size, head.size)
        return head
