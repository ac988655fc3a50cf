"""One MARAC workflow sweep, end to end: plan from the register and the audit log, publish.

Shared by ``hub marac sweep`` and the running hub's periodic timer, so an operator's manual
sweep and the hub's own do exactly the same thing (and, with derived ids and the register's
record of what was sent, never the same thing twice).
"""

from __future__ import annotations

import asyncio
from typing import Any

from hub.agents.supervisor import read_state
from hub.audit.pseudonym import Pseudonymiser, load_pseudonym_key
from hub.audit.store import open_store
from hub.client import HubClient
from hub.clock import clock_for
from hub.keys.cases import CaseKeys
from hub.keys.file_store import FileKeyStore
from hub.keys.model import HUB_PARTY
from hub.policies.loader import load_protocol
from hub.settings import HubSettings
from hub.workflows.marac import plan_sweep, run_sweep
from hub.workflows.register import FlagRegister

__all__ = ["sweep_once"]


def sweep_once(settings: HubSettings, *, dry_run: bool = False) -> dict[str, Any]:
    """Plan and (unless ``dry_run``) publish one sweep; returns what was done."""
    protocol = load_protocol(settings.protocol)
    now = clock_for(settings.clock_file)()
    pseudonymiser = Pseudonymiser(load_pseudonym_key(settings))
    cases = CaseKeys(settings.keys_dir, pseudonymise=pseudonymiser.case)
    held_pseudonyms = {h.case for h in cases.holds()}
    store = open_store(settings)
    try:
        with FlagRegister(settings.register_path) as register:
            held = {
                f.case_ref
                for f in register.flags(status="active")
                if cases.pseudonym(f.case_ref) in held_pseudonyms
            }
            plan = plan_sweep(
                register=register,
                store=store,
                protocol=protocol,
                pseudonymiser=pseudonymiser,
                held_cases=held,
                now=now,
            )
            sent = 0
            if not dry_run and plan.events:
                bootstrap = settings.kafka_bootstrap or read_state(settings).bootstrap

                async def publish_all() -> int:
                    async with HubClient(
                        HUB_PARTY,
                        bootstrap=bootstrap,
                        keys=FileKeyStore(settings.keys_dir),
                        security=settings.kafka_security,
                    ) as client:

                        async def publish(
                            event_type: str, data: dict[str, Any], key: str, event_id: str
                        ) -> None:
                            await client.publish(event_type, data, key=key, event_id=event_id)

                        return await run_sweep(plan, register=register, publish=publish, now=now)

                sent = asyncio.run(publish_all())
    finally:
        store.close()
    return {
        "now": now.isoformat(),
        "planned": [
            {"event_type": e.event_type, "event_id": e.event_id, "case_ref": e.case_ref,
             "kind": e.alert_kind}
            for e in plan.events
        ],
        "published": sent,
        "held": plan.held,
    }  # fmt: skip
