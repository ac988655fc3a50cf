"""A partnership process as a plug-in: what it checks, what it records, what it adds.

MARAC, SOCJAG, Pub Watch and acknowledgements (and, built on the same protocol, ASB Case
Reviews and s17A submissions) are each one module under ``hub.processes``, holding one
``Process``. The router (``hub.agents.routing.Router``) stays generic: for an inbound event
it asks the ``ProcessRegistry`` which processes own the event's type, runs their ``check``
before the protocol's decision, and their ``record`` after it. Neither writes anything:

- a check reads registers through ``Stores`` (passed in; read only) and either raises a
  ``Refusal`` (the event is quarantined, audited, and the publisher told the detail) or
  returns a ``Checked``: marks for every audit record of the event, and whatever it wants to
  hand on to its own ``record``;
- ``record`` returns ``Effect`` objects: data the worker applies (``apply_effects``) right
  after ``Router.route`` returns and before the next event of the batch, so a later event's
  check sees an earlier one's effects, and within the batch's group commit, so they are
  durable before any event of the batch is acknowledged (``hub.agents.batches``).

A process also declares its scheduled sweeps (run on the leader worker every
``HUB_WORKFLOW_INTERVAL``), its CLI group (mounted by ``hub.cli.main``) and its console
pages (mounted by ``hub.web.app``, with navigation entries). Those are built lazily, by
methods, so a worker that only routes never imports typer or FastAPI for them.

Registering a process: add its module to ``BUILTIN`` in ``hub.processes.registry``; the
module exposes ``PROCESS``. See /work/notes/processes-api.md for an example.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from hub.models import Decision, InboundEvent, QuarantineReason

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from hub.durable import GroupSync
    from hub.policies.model import Protocol as PartnershipProtocol
    from hub.settings import HubSettings

__all__ = [
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
]

T = TypeVar("T")

#: a refusal's detail is cut to this many characters (it goes into a header, the audit
#: record and the publisher's notice)
MAX_DETAIL = 2000


class Refusal(Exception):  # noqa: N818 - a check's answer, caught by Router.route
    """A check's refusal: the event is quarantined with ``reason`` and the publisher told why.

    ``detail`` is for the publisher: what is wrong and what to do ("ban PW-1 already in force
    from 2026-11-01: publish uk.csp.pubwatch.ban.updated.v1 to change it"). Ids and
    references only, never a payload's personal data.
    """

    def __init__(self, reason: QuarantineReason, detail: str) -> None:
        if len(detail) > MAX_DETAIL:
            detail = detail[: MAX_DETAIL - 3] + "..."
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Stores:
    """The registers the processes read and their effects write, looked up by class.

    The worker opens them once (``ProcessRegistry.open_stores``); a unit test passes the
    ones it wants, or none: a check whose register is absent skips what it would read, and
    ``apply_effects`` drops effects whose register is absent.
    """

    __slots__ = ("_by_kind", "_items")

    def __init__(self, items: Iterable[object] = ()) -> None:
        self._items: dict[type, object] = {}
        for item in items:
            self._items.setdefault(type(item), item)
        # kind asked -> the register answering it (a subclass: PostgreSQL's twin), once found
        self._by_kind: dict[type, object | None] = {}

    def get(self, kind: type[T]) -> T | None:
        """The register of class ``kind`` (or a subclass), or None."""
        try:
            found = self._by_kind[kind]
        except KeyError:
            found = self._items.get(kind)
            if found is None:
                found = next((i for i in self._items.values() if isinstance(i, kind)), None)
            self._by_kind[kind] = found
        return found  # type: ignore[return-value]  # an instance of kind, or None

    def __iter__(self) -> Any:
        return iter(self._items.values())

    def close(self) -> None:
        """Close every register that can be closed."""
        for item in self._items.values():
            close = getattr(item, "close", None)
            if callable(close):
                close()


@runtime_checkable
class Effect(Protocol):
    """A register update, as data. ``apply`` performs it on the worker's registers.

    Effects are frozen dataclasses (comparable in tests). ``apply`` must be idempotent (an
    event reprocessed after a crash yields the same effects again) and must write through
    the register's own transaction, which the group commit (``hub.durable``) syncs before
    the batch is acknowledged. It does nothing when its register is not in ``stores``.
    """

    def apply(self, stores: Stores) -> None:
        """Write this update to its register in ``stores``."""
        ...


def apply_effects(effects: Sequence[Effect], stores: Stores) -> None:
    """Apply one event's effects in order (the worker, right after ``Router.route``)."""
    for effect in effects:
        effect.apply(stores)


@dataclass(slots=True)
class EventContext:
    """One event as the processes see it: the opened event and what the router derived.

    ``holders`` answers the parties that received an earlier event of the case (this
    worker's recent deliveries, then the audit log); ``subject`` the first subject's
    pseudonym. Both are worked out on first use only.
    """

    event: InboundEvent
    case: str | None
    now: dt.datetime
    protocol: PartnershipProtocol
    _holders: Callable[[], set[str]]
    _subject: Callable[[], str | None]
    _subject_value: list[str | None] = field(default_factory=list)

    @property
    def type(self) -> str:
        """The event type."""
        return self.event.attributes.type

    @property
    def id(self) -> str:
        """The event id."""
        return self.event.attributes.id

    @property
    def party(self) -> str:
        """The publisher."""
        return self.event.attributes.party

    @property
    def data(self) -> dict[str, Any]:
        """The decoded payload."""
        return self.event.data

    def holders(self) -> set[str]:
        """Parties that received an earlier event of this case (empty without a case)."""
        return self._holders()

    def subject(self) -> str | None:
        """The pseudonym of the event's first subject, or None."""
        if not self._subject_value:
            self._subject_value.append(self._subject())
        return self._subject_value[0]


@dataclass(frozen=True, slots=True)
class Checked:
    """A check passed: marks for the audit records, and what ``record`` is handed back.

    ``marks`` go on every audit record of the event; ``carry`` is handed back to the same
    process's ``record`` (what the check looked up, so it is not read twice).
    """

    marks: tuple[str, ...] = ()
    carry: object = None


@dataclass(frozen=True, slots=True)
class Routed:
    """What the decision did, for ``record``: the decision and who received the event."""

    decision: Decision
    delivered: frozenset[str]


@dataclass(frozen=True, slots=True)
class Sweep:
    """A scheduled sweep: ``run(settings)`` returns ``{"published": int, "held": [...], ...}``.

    Run on the leader worker every ``HUB_WORKFLOW_INTERVAL`` seconds, off the event loop
    (``hub.agents.timers``), and by the process's CLI (``hub marac sweep``).
    """

    name: str
    run: Callable[[HubSettings], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class CliGroup:
    """A command group: ``hub <name> ...``."""

    name: str
    app: typer.Typer


@dataclass(frozen=True, slots=True)
class NavEntry:
    """A console navigation entry, shown to signed-in users with one of ``roles``.

    ``roles`` are ``hub.web.accounts.Role`` values; empty means every signed-in user.
    """

    path: str
    label: str
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ConsolePage:
    """Console pages: a FastAPI router (server-rendered, ``hub.web.context.render``)."""

    router: APIRouter
    nav: tuple[NavEntry, ...] = ()


class Process(Protocol):
    """One partnership process. Implementations subclass ``BaseProcess`` for the defaults."""

    @property
    def name(self) -> str:
        """Short name: logs, errors, the registry."""
        ...

    @property
    def event_types(self) -> tuple[str, ...]:
        """Event types it owns: exact types or ``fnmatch`` patterns ("uk.csp.marac.flag.*")."""
        ...

    def check(self, ctx: EventContext, stores: Stores) -> Checked | None:
        """Before the decision: raise ``Refusal``, or return marks and carry (or None)."""
        ...

    def also_holding(self, ctx: EventContext, stores: Stores) -> Collection[str]:
        """Parties holding the case besides its earlier recipients, for corrections (Art 19).

        Asked only when the protocol has a corrections section for the event's type.
        """
        ...

    def record(
        self, ctx: EventContext, routed: Routed, carry: object, stores: Stores
    ) -> Sequence[Effect]:
        """After the decision (not refused): the register updates, as effects."""
        ...

    def open_stores(self, settings: HubSettings, *, group: GroupSync | None) -> Sequence[object]:
        """The registers this process reads and writes, opened for a worker."""
        ...

    def sweeps(self, protocol: PartnershipProtocol) -> Sequence[Sweep]:
        """Scheduled sweeps under ``protocol`` (none when its section is absent)."""
        ...

    def cli(self) -> Sequence[CliGroup]:
        """CLI groups (imported lazily: a worker never builds them)."""
        ...

    def console(self) -> Sequence[ConsolePage]:
        """Console pages (imported lazily)."""
        ...


class BaseProcess:
    """Defaults for ``Process``: checks nothing, records nothing, adds nothing."""

    name: str = "process"
    event_types: tuple[str, ...] = ()

    def check(self, ctx: EventContext, stores: Stores) -> Checked | None:
        """No check."""
        return None

    def also_holding(self, ctx: EventContext, stores: Stores) -> Collection[str]:
        """Nobody besides the earlier recipients."""
        return ()

    def record(
        self,
        ctx: EventContext,
        routed: Routed,
        carry: object,
        stores: Stores,
    ) -> Sequence[Effect]:
        """No effect."""
        return ()

    def open_stores(
        self,
        settings: HubSettings,
        *,
        group: GroupSync | None,
    ) -> Sequence[object]:
        """No register."""
        return ()

    def sweeps(self, protocol: PartnershipProtocol) -> Sequence[Sweep]:
        """No sweep."""
        return ()

    def cli(self) -> Sequence[CliGroup]:
        """No command."""
        return ()

    def console(self) -> Sequence[ConsolePage]:
        """No page."""
        return ()


class ProcessRegistry:
    """The processes of a hub, and which of them own each event type (worked out once)."""

    def __init__(self, processes: Iterable[Process] = ()) -> None:
        self._processes: list[Process] = []
        self._by_type: dict[str, tuple[Process, ...]] = {}
        for process in processes:
            self.register(process)

    def register(self, process: Process) -> None:
        """Add a process; its checks run after those registered before it."""
        if any(p.name == process.name for p in self._processes):
            raise ValueError(f"process {process.name!r} is registered twice")
        self._processes.append(process)
        self._by_type.clear()

    def __iter__(self) -> Any:
        return iter(self._processes)

    def __len__(self) -> int:
        return len(self._processes)

    def for_type(self, event_type: str) -> tuple[Process, ...]:
        """The processes owning ``event_type``, in registration order (cached per type)."""
        found = self._by_type.get(event_type)
        if found is None:
            found = self._by_type[event_type] = tuple(
                p for p in self._processes if _owns(p.event_types, event_type)
            )
        return found

    def open_stores(self, settings: HubSettings, *, group: GroupSync | None = None) -> Stores:
        """Every process's registers, one of each class."""
        return Stores(s for p in self._processes for s in p.open_stores(settings, group=group))

    def sweeps(self, protocol: PartnershipProtocol) -> list[Sweep]:
        """Every process's sweeps under ``protocol``."""
        return [s for p in self._processes for s in p.sweeps(protocol)]

    def cli(self) -> list[CliGroup]:
        """Every process's CLI groups."""
        return [g for p in self._processes for g in p.cli()]

    def console(self) -> list[ConsolePage]:
        """Every process's console pages."""
        return [c for p in self._processes for c in p.console()]


def _owns(patterns: tuple[str, ...], event_type: str) -> bool:
    return any(
        event_type == p or (any(c in p for c in "*?[") and fnmatch.fnmatchcase(event_type, p))
        for p in patterns
    )
