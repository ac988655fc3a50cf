"""Where the state the router workers share lives: SQLite in the data dir, or PostgreSQL.

The state: seen event ids (``SeenEvents``), the workflow registers (``FlagRegister``,
``BanRegister``, ``AgreementAlerts``, ``AsbRegister``, ``StrategicRegister``), and case keys
with their tombstones and legal holds (``CaseKeys``). ``HUB_STATE_URL`` picks the backend for
all of them at once:

- unset (the embedded default: ``make demo``, one host): SQLite files in the data dir, which
  every worker of the hub opens (same host, same directory);
- ``postgresql://...``: one PostgreSQL database shared by workers on any number of hosts
  (``hub.state.postgres``); a worker's data dir then holds nothing another worker needs.

Callers ask here (``open_seen``, ``open_flag_register``, ...) instead of naming a file; the
object they get is the SQLite class or its PostgreSQL twin, which is a subclass with the same
methods (``tests/unit/test_state_contract.py`` runs one suite against both).

Why the default is not derived from ``HUB_AUDIT_URL``: a hub that already keeps its audit log
in PostgreSQL but its state in SQLite would, on upgrade, silently start from empty registers
and an empty keyring, and the case keys that sealed every stored delivery's escrow would be
left behind in a file nobody reads. Moving state is a decision, so it is a setting of its
own, and ``hub state migrate`` (``hub.state.migrate``) copies a data dir's state across
once; the docs (Scaling out) say how to point both at one database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hub.errors import ConfigError

if TYPE_CHECKING:
    from hub.agents.seen import SeenEvents
    from hub.durable import GroupSync
    from hub.federation.ownership import OwnershipRegister
    from hub.federation.proofs import ProofRegister
    from hub.keys.cases import CaseKeys
    from hub.settings import HubSettings
    from hub.strategic.register import StrategicRegister
    from hub.workflows.agreements import AgreementAlerts
    from hub.workflows.asb.register import AsbRegister
    from hub.workflows.bans import BanRegister
    from hub.workflows.register import FlagRegister

__all__ = [
    "has_state",
    "open_agreement_alerts",
    "open_asb_register",
    "open_ban_register",
    "open_case_keys",
    "open_flag_register",
    "open_ownership_register",
    "open_proof_register",
    "open_seen",
    "open_strategic_register",
    "state_url",
]

_POSTGRES_PREFIXES = ("postgresql://", "postgresql+", "postgres://")


def state_url(settings: HubSettings) -> str | None:
    """The PostgreSQL URL shared state lives in, or None for SQLite in the data dir.

    Raises:
        ConfigError: ``HUB_STATE_URL`` is set to something else than a PostgreSQL URL, or
            the PostgreSQL driver (the [postgres] extra) is not installed.
    """
    url = settings.state_url
    if not url:
        return None
    if not url.startswith(_POSTGRES_PREFIXES):
        scheme = url.split(":", 1)[0]  # only the scheme: a URL may carry a password
        raise ConfigError(
            f"HUB_STATE_URL: expected postgresql://... (or unset for SQLite in the data "
            f"dir), got a {scheme!r} URL"
        )
    try:
        import psycopg  # noqa: F401 - only whether the extra is installed
    except ImportError as exc:
        raise ConfigError(
            "HUB_STATE_URL names PostgreSQL: expected the psycopg driver, not installed; "
            "install the hub with its [postgres] extra (pip install 'hub[postgres]')"
        ) from exc
    return url


def has_state(settings: HubSettings) -> bool:
    """Whether the registers may exist: a read that must never create the hub's files asks.

    Always True for PostgreSQL (its tables are created by whichever opens them first).
    """
    return state_url(settings) is not None or settings.register_path.exists()


def open_seen(settings: HubSettings, *, group: GroupSync | None = None) -> SeenEvents:
    """The seen-event store (``hub.agents.seen``) the settings select."""
    url = state_url(settings)
    if url is None:
        from hub.agents.seen import SeenEvents

        return SeenEvents(settings.seen_path, group=group)
    from hub.state.postgres import PostgresSeenEvents

    return PostgresSeenEvents(url, group=group)


def open_flag_register(settings: HubSettings, *, group: GroupSync | None = None) -> FlagRegister:
    """The MARAC flag register the settings select."""
    url = state_url(settings)
    if url is None:
        from hub.workflows.register import FlagRegister

        return FlagRegister(settings.register_path, group=group)
    from hub.state.postgres import PostgresFlagRegister

    return PostgresFlagRegister(url, group=group)


def open_ban_register(settings: HubSettings, *, group: GroupSync | None = None) -> BanRegister:
    """The Pub Watch ban register the settings select."""
    url = state_url(settings)
    if url is None:
        from hub.workflows.bans import BanRegister

        return BanRegister(settings.register_path, group=group)
    from hub.state.postgres import PostgresBanRegister

    return PostgresBanRegister(url, group=group)


def open_agreement_alerts(settings: HubSettings) -> AgreementAlerts:
    """The agreement alert register the settings select."""
    url = state_url(settings)
    if url is None:
        from hub.workflows.agreements import AgreementAlerts

        return AgreementAlerts(settings.register_path)
    from hub.state.postgres import PostgresAgreementAlerts

    return PostgresAgreementAlerts(url)


def open_ownership_register(
    settings: HubSettings, *, group: GroupSync | None = None
) -> OwnershipRegister:
    """The federation ownership register (cases moved to or from a peer hub) the settings select."""
    url = state_url(settings)
    if url is None:
        from hub.federation.ownership import OwnershipRegister

        return OwnershipRegister(settings.register_path, group=group)
    from hub.state.postgres import PostgresOwnershipRegister

    return PostgresOwnershipRegister(url, group=group)


def open_proof_register(settings: HubSettings, *, group: GroupSync | None = None) -> ProofRegister:
    """The register of peers' verified hand-over proofs (``hub audit proof --peer``)."""
    url = state_url(settings)
    if url is None:
        from hub.federation.proofs import ProofRegister

        return ProofRegister(settings.register_path, group=group)
    from hub.state.postgres import PostgresProofRegister

    return PostgresProofRegister(url, group=group)


def open_asb_register(settings: HubSettings, *, group: GroupSync | None = None) -> AsbRegister:
    """The ASB Case Review register the settings select."""
    url = state_url(settings)
    if url is None:
        from hub.workflows.asb.register import AsbRegister

        return AsbRegister(settings.register_path, group=group)
    from hub.state.postgres import PostgresAsbRegister

    return PostgresAsbRegister(url, group=group)


def open_strategic_register(
    settings: HubSettings, *, group: GroupSync | None = None
) -> StrategicRegister:
    """The s17A register (submissions, alerts sent, releases) the settings select."""
    url = state_url(settings)
    if url is None:
        from hub.strategic.register import StrategicRegister

        return StrategicRegister(settings.register_path, group=group)
    from hub.state.postgres import PostgresStrategicRegister

    return PostgresStrategicRegister(url, group=group)


def open_case_keys(
    settings: HubSettings,
    *,
    pseudonymise: Callable[[str], str],
    group: GroupSync | None = None,
) -> CaseKeys:
    """Case keys, tombstones and legal holds (``hub.keys.cases``) the settings select."""
    url = state_url(settings)
    if url is None:
        from hub.keys.cases import CaseKeys

        return CaseKeys(settings.keys_dir, pseudonymise=pseudonymise, group=group)
    from hub.state.postgres import PostgresCaseKeys

    return PostgresCaseKeys(url, pseudonymise=pseudonymise, group=group)
