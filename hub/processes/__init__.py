"""Partnership processes as plug-ins (``hub.processes.base``), one module each."""

from hub.processes.base import (
    BaseProcess,
    Checked,
    CliGroup,
    ConsolePage,
    Effect,
    EventContext,
    NavEntry,
    Process,
    ProcessRegistry,
    Refusal,
    Routed,
    Stores,
    Sweep,
    apply_effects,
)
from hub.processes.registry import BUILTIN, default_registry

__all__ = [
    "BUILTIN",
    "BaseProcess",
    "Checked",
    "CliGroup",
    "ConsolePage",
    "Effect",
    "EventContext",
    "NavEntry",
    "Process",
    "ProcessRegistry",
    "Refusal",
    "Routed",
    "Stores",
    "Sweep",
    "apply_effects",
    "default_registry",
]
