"""Shared CLI plumbing: settings, one place that turns ``HubError`` into a clean exit."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from hub.errors import ConfigError, HubError, UnknownPartyError
from hub.settings import HubSettings

if TYPE_CHECKING:
    from hub.policies.model import Party, Protocol

__all__ = [
    "DryRun",
    "echo_json",
    "echo_sweep",
    "fail",
    "handle_errors",
    "load_settings",
    "require_party",
]

#: ``--dry-run`` of the workflow sweeps (``hub marac sweep``, ``pubwatch sweep``, ``policy sweep``)
DryRun = Annotated[bool, typer.Option("--dry-run", help="say what is due without publishing")]

P = ParamSpec("P")
R = TypeVar("R")


def load_settings() -> HubSettings:
    """Build settings once per command; invalid ``HUB_*`` values become a ``ConfigError``."""
    try:
        return HubSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "HUB_" + "_".join(str(p) for p in first["loc"]).upper()
        raise ConfigError(f"setting {name}: {first['msg']}") from exc


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Catch ``HubError`` once: one line a user can act on, exit code 1, no stack trace."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except HubError as exc:
            findings = getattr(exc, "findings", None)
            typer.echo(f"error: {exc}", err=True)
            for finding in findings or ():
                typer.echo(f"  {finding}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper


def echo_json(obj: Any) -> None:
    """One JSON object per line on stdout (dates as ISO strings)."""
    sys.stdout.write(json.dumps(obj, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()


def echo_sweep(
    result: Mapping[str, Any],
    *,
    as_json: bool,
    line: Callable[[Mapping[str, Any]], str],
    notes: Iterable[str] = (),
) -> None:
    """What a workflow sweep did: its result as JSON, or a ``line`` per planned item.

    ``notes`` follow the planned lines; "nothing due" ends the text when nothing was planned.
    """
    if as_json:
        echo_json(result)
        return
    for item in result["planned"]:
        typer.echo(line(item))
    for note in notes:
        typer.echo(note)
    if not result["planned"]:
        typer.echo("nothing due")


def require_party(protocol: Protocol, party: str, *, option: str) -> Party:
    """The protocol's party ``party``, or an error pointing at ``hub policy parties``.

    Raises:
        UnknownPartyError: ``party`` is not declared in the protocol.
    """
    found = protocol.party(party)
    if found is None:
        raise UnknownPartyError(
            f"{option} {party}: expected a party of protocol {protocol.protocol.id}, got an "
            f"undeclared id (`hub policy parties` lists its {len(protocol.parties)} parties)"
        )
    return found
