"""One MARAC workflow sweep, end to end: plan from the register and the audit log, publish.

Shared by ``hub marac sweep`` and the running hub's periodic timer, so an operator's manual
sweep and the hub's own do exactly the same thing (and, with derived ids and the register's
record of what was sent, never the same thing twice).
"""

from __future__ import annotations

import asyncio
from typing import Any

from hub.settings import HubSettings
from hub.state import open_case_keys, open_flag_register
from hub.workflows.context import hub_publisher, workflow_context
from hub.workflows.marac import plan_sweep, run_sweep

__all__ = ["sweep_once"]


def sweep_once(settings: HubSettings, *, dry_run: bool = False) -> dict[str, Any]:
    """Plan and (unless ``dry_run``) publish one sweep; returns what was done."""
    with (
        workflow_context(settings) as ctx,
        open_flag_register(settings) as register,
    ):
        cases = open_case_keys(settings, pseudonymise=ctx.pseudonymiser.case)
        held_pseudonyms = {h.case for h in cases.holds()}
        held = {
            f.case_ref
            for f in register.flags(status="active")
            if cases.pseudonym(f.case_ref) in held_pseudonyms
        }
        plan = plan_sweep(
            register=register,
            store=ctx.store,
            protocol=ctx.protocol,
            pseudonymiser=ctx.pseudonymiser,
            held_cases=held,
            now=ctx.now,
        )
        sent = 0
        if not dry_run and plan.events:

            async def publish_all() -> int:
                async with hub_publisher(settings) as client:

                    async def publish(
                        event_type: str, data: dict[str, Any], key: str, event_id: str
                    ) -> None:
                        await client.publish(event_type, data, key=key, event_id=event_id)

                    return await run_sweep(plan, register=register, publish=publish, now=ctx.now)

            sent = asyncio.run(publish_all())
    return {
        "now": ctx.now.isoformat(),
        "planned": [
            {"event_type": e.event_type, "event_id": e.event_id, "case_ref": e.case_ref,
             "kind": e.alert_kind}
            for e in plan.events
        ],
        "published": sent,
        "held": plan.held,
    }  # fmt: skip
