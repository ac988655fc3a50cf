"""The leader's timers: the processes' sweeps, governance alerts, expiry and seen-id pruning.

Sweeps come from the registered processes (``hub.processes``: ``hub marac sweep``,
``hub pubwatch sweep``, ...) plus the hub's own agreement alerts, each run every
``HUB_WORKFLOW_INTERVAL`` seconds off the event loop. The expiry sweep crypto-shreds expired
cases (``hub.keys.expiry``) and forgets seen event ids the audit log has pruned
(``hub.agents.seen``), every ``SWEEP_INTERVAL_S``. Each runs on the leader worker only.

Every function here takes what it needs as arguments and returns what it did, so a test runs
one without faust; ``install`` puts them on the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from hub.errors import HubError
from hub.log import get_logger
from hub.processes.base import ProcessRegistry, Sweep

if TYPE_CHECKING:
    import faust

    from hub.keys.cases import CaseKeys
    from hub.policies.model import Protocol
    from hub.settings import HubSettings

__all__ = ["expiry_sweep", "install", "run_sweep", "sweeps_for"]

_log = get_logger("router")


def sweeps_for(protocol: Protocol, processes: ProcessRegistry) -> list[Sweep]:
    """The processes' sweeps under ``protocol``, then the hub's agreement alerts."""
    sweeps = processes.sweeps(protocol)
    if protocol.governance is not None:  # IG alerts for agreements lapsing or lapsed
        from hub.workflows.agreements import sweep_agreements

        sweeps.append(Sweep("agreement_sweep", sweep_agreements))
    return sweeps


async def run_sweep(settings: HubSettings, sweep: Sweep) -> dict[str, Any] | None:
    """Run one sweep off the loop; a HubError is logged (the next sweep retries), not raised."""
    try:
        result = await asyncio.to_thread(sweep.run, settings)
    except HubError as exc:  # the next sweep retries; routing carries on meanwhile
        _log.error(f"{sweep.name}_failed", error=str(exc))
        return None
    if result["published"]:
        _log.info(sweep.name, published=result["published"], held=len(result.get("held", ())))
    return result


async def expiry_sweep(
    settings: HubSettings, *, cases: CaseKeys, protocol: Protocol
) -> tuple[int, str] | None:
    """Crypto-shred expired cases, forget ids the audit log has pruned; what was forgotten.

    Cases: ``hub.keys.expiry``. Event ids: ``hub.agents.seen`` (kept as long as the audit
    records of their events). Failures are logged; the next sweep retries.
    """
    from hub.agents.seen import forget_before
    from hub.audit.store import open_store
    from hub.clock import clock_for
    from hub.keys.expiry import expire_cases
    from hub.state import open_seen

    def sweep() -> None:
        store = open_store(settings)
        try:
            expire_cases(cases, store, protocol, clock=clock_for(settings.clock_file))
        finally:
            store.close()

    def forget() -> tuple[int, str] | None:
        # its own connections, so the routers' lookups never wait for this one's lock
        store = open_store(settings)
        try:
            before = forget_before(store)
        finally:
            store.close()
        if before is None:  # the audit log has pruned nothing: every id is kept
            return None
        with open_seen(settings) as seen_ids:
            return seen_ids.prune(before), before.isoformat()

    try:
        await asyncio.to_thread(sweep)
    except HubError as exc:  # the next sweep retries; routing carries on meanwhile
        _log.error("expiry_sweep_failed", error=str(exc))
    try:
        forgotten = await asyncio.to_thread(forget)
    except HubError as exc:  # the next sweep retries
        _log.error("seen_prune_failed", error=str(exc))
        return None
    if forgotten is not None and forgotten[0]:
        _log.info("seen_pruned", forgotten=forgotten[0], before=forgotten[1])
    return forgotten


def install(
    app: faust.App,
    settings: HubSettings,
    *,
    protocol: Protocol,
    processes: ProcessRegistry,
    cases: CaseKeys,
) -> None:
    """Put the sweeps and the expiry sweep on ``app`` as leader-only timers."""
    from hub.keys.expiry import SWEEP_INTERVAL_S

    if settings.workflow_interval > 0:
        for sweep in sweeps_for(protocol, processes):
            _timer(app, settings.workflow_interval, sweep.name, _sweep_job(settings, sweep))

    async def expiry() -> None:
        await expiry_sweep(settings, cases=cases, protocol=protocol)

    _timer(app, SWEEP_INTERVAL_S, "expiry_sweep", expiry)


def _sweep_job(settings: HubSettings, sweep: Sweep) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await run_sweep(settings, sweep)

    return run


def _timer(app: faust.App, interval: float, name: str, job: Callable[[], Awaitable[None]]) -> None:
    job.__name__ = job.__qualname__ = name  # faust names the timer after the function
    app.timer(interval=interval, on_leader=True)(job)
