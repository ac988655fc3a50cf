"""Who reads personal data from the command line, and why (DPA 2018 s62).

``hub audit query``, ``sar``, ``chronology`` and ``recipients`` show the audit records of
people's data. Like the console, they first ask who is reading (``--operator``), for which
purpose (``--purpose``, one of the console's) and why (``--reason``), prompting for what is
missing when run on a terminal and refusing otherwise; then they append the same
``consulted`` record the console does (``hub.audit.consultations``) before anything is
printed, so nothing is shown that the log does not name. Integrity commands (``verify``,
``proof``, ``consistency``, ``checkpoint``, ``log-key``) and counts (``volumes``) show no
personal data and ask nothing.
"""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import typer

from hub.audit.consultations import MIN_REASON, PURPOSES, record_consultation
from hub.audit.store import AuditStore, sqlite_path
from hub.errors import AuditError, ConfigError
from hub.models import AuditRecord
from hub.settings import HubSettings

__all__ = [
    "PURPOSE_NAMES",
    "Consultation",
    "Operator",
    "OperatorOpt",
    "PurposeOpt",
    "ReasonOpt",
    "justify",
    "require_store",
]

#: a short name for each of ``PURPOSES``, for typing ``--purpose``
PURPOSE_NAMES = {
    "sar": PURPOSES[0],
    "dhr": PURPOSES[1],
    "marac": PURPOSES[2],
    "breach": PURPOSES[3],
    "correction": PURPOSES[4],
    "assurance": PURPOSES[5],
}
#: an operator's name as the records show it, not an essay
_MAX_NAME = 80
_MAX_REASON = 500

OperatorOpt = Annotated[
    str | None,
    typer.Option(
        "--operator",
        metavar="NAME",
        help="who is reading (your name, as the consulted audit record will show it)",
    ),
]
PurposeOpt = Annotated[
    str | None,
    typer.Option(
        "--purpose",
        metavar="PURPOSE",
        help="why: " + ", ".join(PURPOSE_NAMES) + " (or the purpose in full)",
    ),
]
ReasonOpt = Annotated[
    str | None,
    typer.Option(
        "--reason",
        metavar="TEXT",
        help=f"the justification in your words (at least {MIN_REASON} characters)",
    ),
]


@dataclass(frozen=True)
class Operator:
    """The person a CLI read is recorded against, and the OS account that ran it."""

    name: str
    os_user: str

    def describe(self) -> str:
        """``name (command line, OS user u)`` for audit records."""
        return f"{self.name} (command line, OS user {self.os_user})"


@dataclass(frozen=True)
class _Grant:
    purpose: str
    reason: str


@dataclass(frozen=True)
class Consultation:
    """A justified CLI read: whom to record, and why."""

    operator: Operator
    purpose: str
    reason: str

    def record(
        self,
        store: AuditStore,
        what: str,
        *,
        event_id: str | None = None,
        subject_pseudonym: str | None = None,
        case_pseudonym: str | None = None,
    ) -> AuditRecord:
        """Append the ``consulted`` record of this read (before anything is shown)."""
        return record_consultation(
            store,
            viewer=self.operator,
            grant=_Grant(self.purpose, self.reason),
            what=what,
            now=dt.datetime.now(dt.UTC),
            channel="cli",
            event_id=event_id,
            subject_pseudonym=subject_pseudonym,
            case_pseudonym=case_pseudonym,
        )


def require_store(settings: HubSettings) -> None:
    """Refuse a read of a data dir that holds no hub, before anything is created in it.

    Opening a SQLite store creates the file, and the keys a read needs are loaded with
    ``create=False``, so a read of the wrong directory says so instead of making up an
    empty hub.

    Raises:
        ConfigError: the settings select a SQLite file that does not exist.
    """
    path = sqlite_path(settings)
    if path is not None and not path.exists():
        raise ConfigError(
            f"no audit database at {path}: no hub has run with this HUB_DATA_DIR "
            f"({settings.data_dir})"
        )


def justify(
    command: str, *, operator: str | None, purpose: str | None, reason: str | None
) -> Consultation:
    """The operator, purpose and reason of a read of personal data, asked for if missing.

    On a terminal (stdin and stderr both), what the options leave out is prompted for;
    otherwise (a script, a pipe) the command is refused, naming what is missing.

    Raises:
        AuditError: something is missing and there is no terminal to ask on, or a value
            is unusable (an unknown purpose, a reason too short).
    """
    missing = [
        flag
        for flag, value in (("--operator", operator), ("--purpose", purpose), ("--reason", reason))
        if value is None
    ]
    if missing and not _interactive():
        raise AuditError(
            f"hub audit {command} shows personal data, so DPA 2018 s62 logs who read it and "
            f"why: expected --operator NAME, --purpose PURPOSE and --reason TEXT, got no "
            f"{', '.join(missing)} (purposes: {', '.join(PURPOSE_NAMES)})"
        )
    name = _name(operator) if operator is not None else _ask("Operator (your name)", _name)
    if purpose is not None:
        chosen = _purpose(purpose)
    else:
        for number, text in enumerate(PURPOSES, 1):
            typer.echo(f"  {number}. {text}", err=True)
        chosen = _ask("Purpose (number or name)", _purpose)
    why = (
        _reason(reason)
        if reason is not None
        else _ask(f"Reason (at least {MIN_REASON} characters)", _reason)
    )
    return Consultation(Operator(name, _os_user()), chosen, why)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container)
        return "unknown"


def _ask(label: str, check: Callable[[str], str]) -> str:
    """Prompt on stderr until ``check`` accepts the answer."""

    def proc(text: str) -> str:
        try:
            return check(text)
        except AuditError as exc:
            raise typer.BadParameter(str(exc)) from None

    answer: str = typer.prompt(label, err=True, value_proc=proc)
    return answer


def _name(text: str) -> str:
    name = " ".join(text.split())
    if not name or len(name) > _MAX_NAME or any(not c.isprintable() for c in name):
        raise AuditError(
            f"--operator: expected your name (1 to {_MAX_NAME} printable characters), "
            f"got {len(name)} characters"
        )
    return name


def _purpose(text: str) -> str:
    wanted = " ".join(text.split()).casefold()
    if wanted in PURPOSE_NAMES:
        return PURPOSE_NAMES[wanted]
    if wanted.isdigit() and 1 <= int(wanted) <= len(PURPOSES):
        return PURPOSES[int(wanted) - 1]
    for purpose in PURPOSES:
        if purpose.casefold() == wanted:
            return purpose
    raise AuditError(
        f"--purpose: expected one of {', '.join(PURPOSE_NAMES)} (or the purpose in full: "
        f"{'; '.join(PURPOSES)}), got {text!r}"
    )


def _reason(text: str) -> str:
    reason = " ".join(text.split())
    if len(reason) < MIN_REASON or len(reason) > _MAX_REASON:
        raise AuditError(
            f"--reason: expected why you need to see this, {MIN_REASON} to {_MAX_REASON} "
            f"characters, got {len(reason)}"
        )
    return reason
