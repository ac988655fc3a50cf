"""The one exception tree of the hub.

Every failure the hub can report to a person or a calling system is a ``HubError``; the CLI
catches ``HubError`` once and prints its message, so messages read "what: expected X, got Y".
A policy *deny* is not an error: it is a ``Decision`` value (see ``hub.policies.engine``).

```
HubError
├── ConfigError              settings, data dir, missing running hub
├── BrokerError              the Kafka-protocol broker cannot be started or reached
├── CrashLoopError           a hub process keeps dying: ``hub up`` stops instead of restarting it
├── ProtocolError            a sharing protocol cannot be loaded or is unsafe
│   └── ProtocolCheckError   ``hub policy check`` findings (carries every finding)
├── SchemaError              unknown event type or schema, incompatible schema change
├── EventError               an event that cannot be accepted
│   ├── EventValidationError payload does not match its schema, bad attributes
│   ├── EventTooLargeError   payload over the configured limit
│   ├── EventRefusedError    the hub would refuse it (checked before sending)
│   └── UnknownPartyError    a party id the protocol does not declare
├── AuditError               the audit store cannot be opened, written or queried
│   └── AuditIntegrityError  a proof, checkpoint or stored record does not verify
└── KeyStoreError            party or case keys cannot be created, found, read or used
    ├── UnknownKeyError      no key with this id, or no active key for a party
    ├── KeyRevokedError      the key was revoked: never used again, its signatures rejected
    ├── CaseShreddedError    the case key was destroyed (crypto-shredded); it stays destroyed
    └── LegalHoldError       a legal hold forbids shredding the case, or no such hold
```
"""

from __future__ import annotations

__all__ = [
    "AuditError",
    "AuditIntegrityError",
    "BrokerError",
    "CaseShreddedError",
    "ConfigError",
    "CrashLoopError",
    "EventError",
    "EventRefusedError",
    "EventTooLargeError",
    "EventValidationError",
    "HubError",
    "KeyRevokedError",
    "KeyStoreError",
    "LegalHoldError",
    "ProtocolCheckError",
    "ProtocolError",
    "SchemaError",
    "UnknownKeyError",
    "UnknownPartyError",
]


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class ConfigError(HubError):
    """Settings or the data directory are unusable."""


class BrokerError(HubError):
    """The Kafka-protocol broker cannot be started or reached."""


class CrashLoopError(HubError):
    """A process the hub runs (a router worker, the audit sink) keeps dying soon after start."""


class ProtocolError(HubError):
    """A sharing protocol cannot be loaded."""


class ProtocolCheckError(ProtocolError):
    """A sharing protocol is unsafe; ``findings`` lists each problem with file and line."""

    def __init__(self, message: str, findings: list[str]) -> None:
        super().__init__(message)
        self.findings = findings


class SchemaError(HubError):
    """An event type has no schema, or a schema change breaks compatibility."""


class EventError(HubError):
    """An event cannot be accepted."""

    #: machine-readable reason, shared with quarantine records
    reason: str = "invalid_event"


class EventValidationError(EventError):
    """An event's payload or attributes are invalid."""

    reason = "schema_invalid"


class EventTooLargeError(EventError):
    """An event's payload exceeds the configured limit."""

    reason = "oversized"


class EventRefusedError(EventError):
    """The hub would refuse this event whatever its state: it is not sent (``hub.client``)."""


class UnknownPartyError(EventError):
    """A party id the protocol does not declare."""

    reason = "unknown_party"


class AuditError(HubError):
    """The audit store cannot be opened, written or queried."""


class KeyStoreError(HubError):
    """Party or case keys cannot be created, found, read or used."""


class UnknownKeyError(KeyStoreError):
    """No key has this id, or a party has no active key (never created, or revoked)."""


class KeyRevokedError(KeyStoreError):
    """A revoked key: it never signs or encrypts again, and signatures by it are rejected."""


class CaseShreddedError(KeyStoreError):
    """The case key was destroyed by crypto-shredding; a shredded case stays shredded."""


class LegalHoldError(KeyStoreError):
    """A legal hold forbids shredding the case (lift it first), or the hold does not exist."""


class AuditIntegrityError(AuditError):
    """A Merkle proof, a signed checkpoint or the stored log does not verify (tampering)."""
