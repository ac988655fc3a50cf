"""The hub's processes: one line per process module, each exposing ``PROCESS``.

To add a process, write ``hub/processes/<name>.py`` with ``PROCESS = MyProcess()`` (a
``hub.processes.base.Process``) and add its module name here. Order matters only for
checks on an event type that two processes own: they run in this order.
"""

from __future__ import annotations

import importlib
from functools import cache

from hub.processes.base import Process, ProcessRegistry

__all__ = ["BUILTIN", "default_registry"]

#: the process modules of every hub, in check order
BUILTIN: tuple[str, ...] = (
    "hub.processes.marac",
    "hub.processes.pubwatch",
    "hub.processes.socjag",
    "hub.processes.asb",
    "hub.processes.s17a",
    "hub.processes.federation",
)


@cache
def default_registry() -> ProcessRegistry:
    """The registry of ``BUILTIN`` processes (imported once per process)."""
    processes: list[Process] = []
    for name in BUILTIN:
        module = importlib.import_module(name)
        processes.append(module.PROCESS)
    return ProcessRegistry(processes)
