"""`hub up`, `hub demo`, `hub broker`, `hub publish`, `hub consume`."""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hub.audit.store import open_store, sqlite_path
from hub.broker import EmbeddedBroker
from hub.cli.common import echo_json, handle_errors, load_settings, require_party
from hub.client import HubClient
from hub.client.checkpoints import CHECKPOINT_TYPE, CheckpointCheck
from hub.errors import (
    BrokerError,
    ConfigError,
    EventRefusedError,
    EventValidationError,
    HubError,
    SchemaError,
)
from hub.keys.file_store import FileKeyStore
from hub.log import configure_logging
from hub.models import AuditDecision, AuditRecord, Delivery
from hub.policies.loader import load_protocol
from hub.policies.model import Protocol
from hub.schemas import SchemaRegistry
from hub.settings import HubSettings

if TYPE_CHECKING:
    from hub.web.server import ConsoleServer

# The supervisor (aiokafka's admin client, the policy engine) and the web console (FastAPI)
# are imported by the commands that run them: `hub publish` and `hub consume`, run once per
# event by scripts, do not pay for them.


def _stop_on_signals() -> threading.Event:
    """From now on SIGINT/SIGTERM set the returned event instead of killing the process.

    Installed before anything says "ready": a script that signals as soon as it reads the
    ready line must get a clean stop, not the default action (which left `hub up` dead with
    its workers orphaned).
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _wait_for_signal(check: Any = None, *, stop: threading.Event | None = None) -> None:
    """Block until SIGINT/SIGTERM; ``check()`` runs twice a second (health, restarts)."""
    stop = stop or _stop_on_signals()
    while not stop.wait(0.5):
        if check is not None:
            check()


def _bootstrap(settings: HubSettings) -> str:
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    from hub.agents.supervisor import read_state

    return read_state(settings).bootstrap


def up() -> None:
    """Run the hub: embedded broker (unless HUB_KAFKA_BOOTSTRAP), router workers, audit sink.

    Prints `console ready url=...` (the web console, unless HUB_CONSOLE_PORT=0), then
    `hub ready bootstrap=HOST:PORT` when every worker has its partitions; stops cleanly
    on SIGINT/SIGTERM. A worker that dies is restarted (it resumes from committed offsets),
    after a wait that doubles each time it dies again; one that keeps dying
    (HUB_RESTART_LIMIT deaths within HUB_RESTART_WINDOW) stops the hub with an error.
    An embedded broker that dies is restarted empty on its port, with the workers, and the
    events it took with it are logged as `events_lost`; one that keeps dying, or cannot be
    restarted, stops the hub with an error (exit code 1).
    """
    from hub.agents.supervisor import Supervisor

    settings = load_settings()
    configure_logging(settings.log_level)
    supervisor = Supervisor(settings)
    console = None
    stop = _stop_on_signals()
    try:
        bootstrap = supervisor.start()
        console = _start_console(settings)  # first: `hub ready` means everything is up
        typer.echo(f"hub ready bootstrap={bootstrap}", err=False)
        sys.stdout.flush()

        def heal() -> None:
            for line in supervisor.heal():
                typer.echo(line, err=True)

        _wait_for_signal(heal, stop=stop)
    finally:
        if console is not None:
            console.stop()
        supervisor.stop()
    typer.echo("hub stopped", err=True)


def _start_console(settings: HubSettings) -> ConsoleServer | None:
    """The web console next to the hub (``HUB_CONSOLE_PORT=0``: none); a busy port warns."""
    if not settings.console_port:
        return None
    from hub.web.server import console_server

    try:
        console = console_server(settings)
        typer.echo(f"console ready url={console.start()}")
    except ConfigError as exc:
        typer.echo(f"warning: web console not started: {exc}", err=True)
        return None
    return console


def demo(
    events: Annotated[int, typer.Option(help="how many scenario events to publish", min=1)] = 300,
    rate: Annotated[float, typer.Option(help="events per second", min=0.1)] = 25.0,
    seed: Annotated[int, typer.Option(help="scenario seed (same seed, same traffic)")] = 7,
    keep_running: Annotated[bool, typer.Option(help="stay up after the scenario")] = False,
) -> None:
    """`hub up` plus a realistic North Worcestershire scenario, with a live summary."""
    from hub.agents.supervisor import Supervisor
    from hub.scenarios.demo import run_demo

    settings = load_settings()
    configure_logging("WARNING")
    supervisor = Supervisor(settings)
    try:
        bootstrap = supervisor.start()
        typer.echo(f"hub ready bootstrap={bootstrap}")
        typer.echo(f"playing {events} events of North Worcestershire traffic (seed {seed})")
        store = open_store(settings)
        summary = asyncio.run(
            run_demo(
                bootstrap=bootstrap,
                protocol=supervisor.protocol,
                store=store,
                events=events,
                rate=rate,
                seed=seed,
                keys=FileKeyStore(settings.keys_dir),
                security=settings.kafka_security,
                report=typer.echo,
            )
        )
        typer.echo("")
        typer.echo(
            f"done: {summary.published} published, {summary.decided} decided by the hub "
            f"({summary.expected_rejections} were meant to be refused), "
            f"{summary.notices} rejection notices sent to publishers, "
            f"{summary.checkpoints} signed checkpoints delivered to parties"
        )
        typer.echo("received per party:")
        for party in supervisor.protocol.party_ids:
            typer.echo(f"  {party:42} {summary.received.get(party, 0):5}")
        typer.echo(f"audit store: {settings.audit_db_path}")
        for line in next_steps(sys.argv[0], cwd=Path.cwd()):
            typer.echo(line)
        store.close()
        if keep_running:
            stop = _stop_on_signals()
            typer.echo("hub still running; Ctrl-C to stop")

            def heal() -> None:  # as `hub up`: dead workers, and a dead embedded broker
                for line in supervisor.heal():
                    typer.echo(line, err=True)

            _wait_for_signal(heal, stop=stop)
    finally:
        supervisor.stop()


def hub_command(argv0: str, *, cwd: Path) -> str:
    """How to run this same ``hub`` again from ``cwd``, for hints the user can paste.

    ``make demo`` runs ``.venv/bin/hub``, which is not on PATH unless the venv is active,
    so a hint saying ``hub ...`` would fail there: name the executable as the shell can
    find it (``hub`` only when PATH resolves it to this one).
    """
    path = Path(argv0)
    if path.name != "hub":  # python -m, a test runner: the installed script's name
        return "hub"
    found = shutil.which("hub")
    if found is not None and Path(found).resolve() == path.resolve():
        return "hub"
    try:
        command = str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        command = str(path.resolve())
    return shlex.quote(command if "/" in command else f"./{command}")


def next_steps(argv0: str, *, cwd: Path) -> list[str]:
    """The demo's closing hint: commands that run as pasted, with no hub running."""
    hub = hub_command(argv0, cwd=cwd)
    # Reading the audit shows personal data, so the reader says who and why (DPA 2018 s62).
    reader = '--operator "$(whoami)" --purpose assurance --reason "first look at the demo"'
    lines = [
        "next (the audit store stays after the hub stops):",
        f"  {hub} policy parties   # who the parties are",
        f"  {hub} audit query --decision withheld {reader}   # what was kept from whom, why",
    ]
    if hub != "hub" and (cwd / "Makefile").is_file():
        lines.append("  make shell   # a shell where `hub ...` runs as the docs show")
    return lines


def broker(
    port: Annotated[int | None, typer.Option(help="port (default: a free one)")] = None,
) -> None:
    """Run only the embedded Kafka-compatible broker (Tansu, memory storage)."""
    settings = load_settings()
    configure_logging(settings.log_level)
    embedded = EmbeddedBroker(port=port)
    stop = _stop_on_signals()
    embedded.start()
    typer.echo(f"broker ready bootstrap={embedded.bootstrap}")

    def watch() -> None:
        if embedded.exit_code is not None:  # never stand there with a dead broker
            raise BrokerError(
                f"embedded broker at {embedded.bootstrap} exited with code {embedded.exit_code}"
                " (its records, held in memory, are gone)"
            )

    try:
        _wait_for_signal(watch, stop=stop)
    finally:
        embedded.stop()


def _read_data(path: str, event_type: str, as_party: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise EventValidationError(f"data file {path}: cannot read: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EventValidationError(
            f"data file {path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if isinstance(data, dict) and set(data) == {"type", "source", "data"}:
        if data["type"] != event_type:
            raise EventValidationError(
                f"data file {path}: holds a {data['type']} event, not {event_type}"
            )
        # the hub takes the source from --as (the key that signs); a file naming another
        # party would be published as someone it does not name, silently
        named = str(data["source"]).removeprefix("/parties/")
        if named != as_party:
            raise EventValidationError(
                f"data file {path}: source names {named}, but --as is {as_party}: "
                f"publish it --as {named}, or change the file's source"
            )
        data = data["data"]
    if not isinstance(data, dict):
        raise EventValidationError(
            f"data file {path}: expected a JSON object, got {type(data).__name__}"
        )
    return data


def _check_party(settings: HubSettings, party: str) -> Protocol:
    protocol = load_protocol(settings.protocol)
    require_party(protocol, party, option="--as")
    return protocol


@handle_errors
def publish(
    as_party: Annotated[str, typer.Option("--as", help="publishing party id")],
    event_type: Annotated[str, typer.Option("--type", help="CloudEvents type")],
    data: Annotated[str, typer.Option("--data", help="JSON payload file, or - for stdin")],
    key: Annotated[str | None, typer.Option(help="Kafka key (default: the case ref)")] = None,
    subject: Annotated[str | None, typer.Option(help="ce_subject (default: the key)")] = None,
    event_id: Annotated[str | None, typer.Option("--id", help="event id (default: new)")] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="wait for the hub's decision (default); --no-wait prints only the id",
        ),
    ] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the decision")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="the answer as one JSON object")] = False,
) -> None:
    """Check an event, produce it to hub.in.PARTY, and print the hub's decision.

    Refused before sending (nothing produced, exit 3) when the protocol, or a SafeLives or
    SOCJAG rule, forbids it whatever the hub has seen. Otherwise prints the event id and each
    party's decision: exit 3 when the hub refuses it, 4 when a suspended agreement stopped
    every delivery, 2 when no decision came within --timeout. --no-wait prints only the id.
    """
    settings = load_settings()
    registry = SchemaRegistry()
    if event_type not in registry:
        raise SchemaError(
            f"--type: expected one of {', '.join(registry.types)}, got {event_type!r}"
        )
    protocol = _check_party(settings, as_party)
    payload = _read_data(data, event_type, as_party)
    bootstrap = _bootstrap(settings)

    async def send() -> tuple[str, str]:
        async with HubClient(
            as_party,
            bootstrap=bootstrap,
            keys=FileKeyStore(settings.keys_dir),
            security=settings.kafka_security,
            registry=registry,
            max_event_bytes=settings.max_event_bytes,
            protocol=protocol,
        ) as client:
            message = client.build(event_type, payload, key=key, subject=subject, event_id=event_id)
            origin = await client.send(message)
            return dict(message.headers)["ce_id"].decode(), origin

    try:
        new_id, origin = asyncio.run(send())
    except EventRefusedError as exc:
        if as_json:
            echo_json({"id": None, "type": event_type, "status": "refused", "reason": str(exc)})
        else:
            typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(3) from None
    answer = _PublishAnswer(new_id, event_type, as_party, origin)
    store_path = sqlite_path(settings)
    if wait and store_path is not None and not store_path.exists():
        # the hub's audit store is elsewhere (a hub on another host): nothing here to wait on
        typer.echo(
            f"note: no audit store at {store_path} to read the hub's decision from "
            "(set HUB_DATA_DIR or HUB_AUDIT_URL to the hub's); printing the id only",
            err=True,
        )
        wait = False
    if wait:
        answer.records = _await_decision(settings, new_id, origin, timeout)
    answer.show(as_json=as_json, timeout=timeout)
    if answer.exit_code:
        raise typer.Exit(answer.exit_code)


class _PublishAnswer:
    """What `hub publish` says: the id and the hub's decisions, as one answer on stdout."""

    def __init__(self, event_id: str, event_type: str, party: str, origin: str) -> None:
        self.event_id = event_id
        self.event_type = event_type
        self.party = party
        self.origin = origin
        #: the hub's decisions about this record (None: not waited for; []: none in time)
        self.records: list[AuditRecord] | None = None

    @property
    def status(self) -> str:
        """One of: sent (not waited for), undecided, refused, accepted."""
        if self.records is None:
            return "sent"
        if not self.records:
            return "undecided"
        if any(r.decision == AuditDecision.REJECTED for r in self.records):
            return "refused"
        return "accepted"

    @property
    def refusal(self) -> str | None:
        return next(
            (r.reason for r in self.records or () if r.decision == AuditDecision.REJECTED), None
        )

    @property
    def suspended(self) -> list[str]:
        return sorted(
            {
                r.reason
                for r in self.records or ()
                if r.decision == AuditDecision.WITHHELD and " suspended: " in (r.reason or "")
            }
        )

    @property
    def exit_code(self) -> int:
        if self.status == "undecided":
            return 2
        if self.status == "refused":
            return 3
        records = self.records or ()
        if self.suspended and not any(r.decision == AuditDecision.DELIVERED for r in records):
            return 4  # nothing was shared: the publisher must know, not just read a list
        return 0

    def show(self, *, as_json: bool, timeout: float) -> None:
        """One answer on stdout: text for a person, or one JSON object (``--json``)."""
        if as_json:
            echo_json(
                {
                    "id": self.event_id,
                    "type": self.event_type,
                    "source": self.party,
                    "origin": self.origin,
                    "status": self.status,
                    "reason": self.refusal,
                    "decisions": [
                        {
                            "decision": r.decision.value,
                            "recipient": r.recipient,
                            "rule": r.rule,
                            "reason": r.reason,
                        }
                        for r in self.records or ()
                        if r.decision != AuditDecision.REJECTED
                    ],
                }
            )
            return
        if self.records is None:
            typer.echo(self.event_id)  # --no-wait: the id alone, for scripts
            return
        head = f"event {self.event_id} ({self.event_type} from {self.party})"
        if self.status == "undecided":
            typer.echo(
                f"{head}: published, but no decision from the hub within {timeout:.0f}s "
                f"(is `hub up` running?); look later: hub audit query --event {self.event_id}"
            )
            return
        if self.refusal is not None:
            typer.echo(f"{head}: refused by the hub: {self.refusal}")
            return
        shared = sum(r.decision == AuditDecision.DELIVERED for r in self.records)
        parties = "party" if shared == 1 else "parties"
        typer.echo(f"{head}: accepted by the hub, delivered to {shared} {parties}")
        for r in self.records:
            target = r.recipient or "(nobody)"
            why = f"  {r.reason}" if r.decision != AuditDecision.DELIVERED and r.reason else ""
            typer.echo(f"  {r.decision.value:9} {target:40} {r.rule or '-'}{why}")
        for reason in self.suspended:
            typer.echo(f"warning: {reason}")


def _await_decision(
    settings: HubSettings, event_id: str, origin: str, timeout: float
) -> list[AuditRecord]:
    """The hub's decisions about this very record (found by its Kafka origin); [] if none.

    Matching on the origin, not only the id, means a replayed id reports its own rejection,
    not the decisions about the record that first used the id.
    """
    store = open_store(settings)
    try:
        deadline = time.monotonic() + timeout
        settled = -1
        while True:
            records = [
                r
                for ref in (event_id, f"duplicate:{origin}", f"unparsed:{origin}")
                for r in store.query(event_id=ref)
                if r.origin == origin and r.decision != AuditDecision.ACKNOWLEDGED
            ]
            if records and len(records) == settled:
                return records  # the same records twice in a row: the sink has written them
            settled = len(records)
            if time.monotonic() > deadline:
                return []
            time.sleep(0.2)
    finally:
        store.close()


def _print_delivery(delivery: Delivery, as_json: bool) -> None:
    if as_json:
        echo_json(delivery.model_dump(mode="json"))
        return
    typer.echo(
        f"{delivery.time.isoformat()}  {delivery.type}  from {delivery.source}  "
        f"id={delivery.id}  rule={delivery.rule or '-'}"
    )
    for line in _handling_banner(delivery.data):
        typer.echo(line)
    typer.echo(json.dumps(delivery.data, indent=2, sort_keys=True))


def _handling_banner(data: dict[str, Any]) -> list[str]:
    """SOCJAG handling conditions and legacy grading, shown above the payload."""
    lines: list[str] = []
    conditions = data.get("handling_conditions")
    if isinstance(conditions, dict):
        lines.append(f"  HANDLING CODE C: {conditions.get('conditions', '')}")
        required = conditions.get("requirements") or []
        if required:
            lines.append(f"  YOU MUST MEET: {', '.join(map(str, required))}")
    if data.get("grading_system") == "5x5x5":
        lines.append(f"  GRADED 5x5x5 (LEGACY): {data.get('legacy_grading')}")
    return lines


@handle_errors
def consume(
    as_party: Annotated[str, typer.Option("--as", help="receiving party id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep waiting for more")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    ack: Annotated[bool, typer.Option(help="acknowledge each delivery")] = True,
    notices: Annotated[
        bool,
        typer.Option(
            "--notices",
            "--all",
            help="show every delivery, the hub's signed audit checkpoints too (they are "
            "verified either way)",
        ),
    ] = False,
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key",
            help="verifier key for the audit checkpoints (`hub audit log-key`; default: "
            "this data dir's hub)",
        ),
    ] = None,
) -> None:
    """Print the deliveries for PARTY (minimised for it) and acknowledge each.

    Events come grouped by case, each case in the order its events were published. The
    hub's signed audit checkpoints are verified quietly (exit status 5 if one does not
    verify) and shown only with --notices (or --all).
    """
    settings = load_settings()
    _check_party(settings, as_party)
    bootstrap = _bootstrap(settings)
    inbox = settings.data_dir / "inbox" / f"{as_party}.sqlite3"
    checks = _checkpoint_check(settings, log_key)
    bad: list[str] = []

    def shown(delivery: Delivery) -> bool:
        # Refusal and suspension notices are about the party's own events: always shown.
        return notices or delivery.type != CHECKPOINT_TYPE

    async def run() -> int:
        count = 0
        case: str | None = None
        async with HubClient(
            as_party,
            bootstrap=bootstrap,
            inbox=inbox,
            keys=FileKeyStore(settings.keys_dir),
            security=settings.kafka_security,
        ) as client:
            async for delivery in client.deliveries(follow=follow, ordered=True):
                if delivery.type == CHECKPOINT_TYPE:
                    try:
                        checks.check(delivery)
                    except HubError as exc:
                        bad.append(str(exc))
                        typer.echo(f"warning: audit checkpoint failed: {exc}", err=True)
                if shown(delivery):
                    if not as_json and delivery.key != case and delivery.key:
                        typer.echo(f"== case {delivery.key}")
                    case = delivery.key
                    _print_delivery(delivery, as_json)
                    count += 1
                if ack and delivery.wants_ack:
                    await client.acknowledge(delivery)
            for where in client.rejected:
                typer.echo(f"warning: delivery at {where} failed verification: skipped", err=True)
        return count

    try:
        count = asyncio.run(run())
    except KeyboardInterrupt:
        return
    finally:
        _report_checkpoints(checks, shown_too=notices)
    if count == 0 and not as_json:
        typer.echo(f"no new deliveries for {as_party}", err=True)
    if bad:
        raise typer.Exit(5)  # the hub's log did not verify: a party must not shrug that off


def _checkpoint_check(settings: HubSettings, log_key: str | None) -> CheckpointCheck:
    """The check of the hub's audit checkpoints: a key given, or this data dir's log key."""
    from hub.audit.checkpoint import NoteVerifier, log_signer

    if log_key is not None:
        return CheckpointCheck(NoteVerifier.from_key(log_key))
    try:
        return CheckpointCheck(log_signer(settings).verifier())
    except HubError as exc:  # a party elsewhere: no log key here, and none given
        return CheckpointCheck(None, unavailable=str(exc))


def _report_checkpoints(checks: CheckpointCheck, *, shown_too: bool) -> None:
    """One quiet line about the checkpoints checked, on stderr."""
    if checks.verified:
        more = "" if shown_too else "; --notices shows them"
        typer.echo(
            f"verified {checks.verified} signed audit checkpoint"
            f"{'' if checks.verified == 1 else 's'} (log size {checks.size:,}){more}",
            err=True,
        )
    if checks.unchecked:
        typer.echo(
            f"warning: {checks.unchecked} audit checkpoint(s) not verified: "
            f"{checks.unavailable}; pass --log-key (the output of `hub audit log-key`)",
            err=True,
        )


def register(app: typer.Typer) -> None:
    """Add the runtime commands to the top-level app."""
    app.command("up")(handle_errors(up))
    app.command("demo")(handle_errors(demo))
    app.command("broker")(handle_errors(broker))
    app.command("publish")(publish)
    app.command("consume")(consume)
