"""Run a whole hub on one machine: broker (embedded unless external), workers, state file.

``hub up`` and ``hub demo`` use this; so do the integration tests, which kill -9 a worker and
start another through it. Workers are separate processes so a crash is a real crash.

The embedded broker is watched too (``heal``). It keeps everything in memory, so when its
process dies every topic, record and committed offset goes with it: running on would leave
the workers fetching from nothing and publishers' acknowledged events silently undecided.
``hub up`` restarts it on the same port (publishers and recipients keep their address),
re-creates the topics, starts every worker afresh (their consumers' state names a broker
that is gone), and logs what was lost (``hub.broker.watch``: ``events_lost`` per partition,
with the ids it can list, and the ``hub_events_lost`` metric). A restart is honest only
because the loss is stated; a broker that keeps dying (``MAX_BROKER_RESTARTS`` within
``BROKER_RESTART_WINDOW_S``), or that cannot be restarted, stops the hub with an error and a
non-zero exit instead. An external broker (``HUB_KAFKA_BOOTSTRAP``) is not ours to restart:
the workers' ``/readyz`` says when it is unreachable.

A router worker, the audit sink or the webhook dispatcher that dies is restarted at once the
first time; one that dies again within ``HUB_RESTART_WINDOW`` waits ``HUB_RESTART_BACKOFF``
seconds, doubled for each further death (at most ``HUB_RESTART_BACKOFF_MAX``). More than
``HUB_RESTART_LIMIT`` deaths of one process within the window is a crash loop (a bad
protocol file, a key it cannot read, a bug): restarting it for ever would hide the fault
behind a log that scrolls, so ``heal`` raises ``CrashLoopError`` and ``hub up`` stops with
that error and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from pydantic import BaseModel, SecretStr

from hub.agents.datadir_lock import DataDirLock
from hub.broker import EmbeddedBroker
from hub.broker.lost_log import GRACE_ENV, GRACE_S
from hub.broker.security import KafkaSecurity
from hub.broker.topics import all_topics, ensure_topics
from hub.broker.watch import (
    BrokerWatch,
    LostTotals,
    PartitionView,
    WorkerSnapshot,
    count_losses,
    lost_path,
    read_snapshots,
    view_path,
)
from hub.errors import BrokerError, ConfigError, CrashLoopError
from hub.keys.file_store import FileKeyStore, write_private_file
from hub.keys.model import KeySuite
from hub.keys.store import ensure_dev_keys
from hub.log import get_logger
from hub.policies.loader import load_protocol
from hub.settings import HubSettings
from hub.webhooks.config import WebhookConfig

__all__ = ["HubState", "Supervisor", "broker_answers", "read_state"]

_log = get_logger("supervisor")

#: broker deaths tolerated within ``BROKER_RESTART_WINDOW_S``; one more stops the hub
MAX_BROKER_RESTARTS = 3
BROKER_RESTART_WINDOW_S = 600.0

#: the processes ``heal`` restarts, as its messages and the crash-loop error name them
WORKER = "router worker"
SINK = "audit sink"
DISPATCHER = "webhook dispatcher"
#: ``hub.federation.link_worker``: one per peer in ``HUB_FEDERATION_LINKS`` (role "link PEER")
LINK = "federation link"


class HubState(BaseModel):
    """What a running hub writes to ``<data_dir>/hub.json`` for the CLI and SDK to find it."""

    bootstrap: str
    embedded: bool
    pid: int
    #: the embedded broker's process (None: an external broker); it changes when one restarts
    broker_pid: int | None = None
    workers: list[int]
    started_at: dt.datetime
    protocol_hash: str


def read_state(settings: HubSettings) -> HubState:
    """The running hub's state, or a ``ConfigError`` that says how to start one."""
    path = settings.state_file
    if not path.exists():
        raise ConfigError(
            f"no running hub found in {settings.data_dir.resolve()}: start one with `hub up` "
            "(or set HUB_KAFKA_BOOTSTRAP / HUB_DATA_DIR)"
        )
    state = HubState.model_validate_json(path.read_text())
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        raise ConfigError(
            f"the hub that wrote {path} (pid {state.pid}) is no longer running: "
            "start one with `hub up`"
        ) from None
    except PermissionError:
        pass
    return state


class Supervisor:
    """Owns the broker and worker processes of one hub."""

    def __init__(self, settings: HubSettings, *, worker_log: Path | None = None) -> None:
        self.settings = settings
        self.protocol = load_protocol(settings.protocol)
        self.broker: EmbeddedBroker | None = None
        self.bootstrap = settings.kafka_bootstrap or ""
        self.workers: list[subprocess.Popen[bytes]] = []
        #: worker pid -> slot (0, 1, ...): the Nth slot serves metrics on HUB_METRICS_PORT + N
        self.slots: dict[int, int] = {}
        #: the webhook dispatcher process, when any party has a webhook (``hub webhooks add``)
        self.webhooks: subprocess.Popen[bytes] | None = None
        #: the audit sink process (``HUB_AUDIT_SINK=process``; None: a task in each worker)
        self.sink: subprocess.Popen[bytes] | None = None
        #: peer -> its federation link process (``HUB_FEDERATION_LINKS``, issue 20)
        self.links: dict[str, subprocess.Popen[bytes]] = {}
        self._link_peers = self._checked_links()
        self.worker_log = worker_log or settings.data_dir / "worker.log"
        #: ``hub up``'s own look at the embedded broker, for the loss count after it dies
        self.watch: BrokerWatch | None = None
        self._broker_deaths: list[float] = []
        #: process role -> monotonic times of its deaths within ``restart_window``
        self._deaths: dict[str, list[float]] = {}
        #: role -> when its pending restart is due (one entry per dead worker slot too)
        self._due: dict[str, float] = {}
        #: one hub per data dir: held from ``start`` to ``stop`` (``hub.agents.datadir_lock``)
        self._lock = DataDirLock(settings.data_dir, state_file=settings.state_file)

    def _checked_links(self) -> list[str]:
        """The peers of ``HUB_FEDERATION_LINKS``, each a peer hub of the protocol.

        Raises:
            ConfigError: a malformed entry, or a peer the protocol does not name as one.
        """
        from hub.federation.peer import peer_hub_id

        peers = list(self.settings.federation_peers)
        for peer in peers:
            peer_hub_id(
                self.protocol, peer, path=self.settings.protocol, source="HUB_FEDERATION_LINKS"
            )
        return peers

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, *, timeout: float = 90.0) -> str:
        """Start everything and wait until every worker has its partitions."""
        data_dir = self.settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()  # before anything: a second hub must touch nothing of the first
        if not self.settings.kafka_bootstrap:
            self.broker = EmbeddedBroker(log_path=data_dir / "broker.log")
            self.bootstrap = self.broker.start()
            # Tansu's memory storage keeps every record, and each fetch lists all of a
            # partition's stored batches: a demo is fine, steady traffic slows it by the hour
            _log.warning(
                "embedded_broker",
                storage="memory, no retention",
                advice="for development, demos and tests; set HUB_KAFKA_BOOTSTRAP for production",
            )
        ensure_dev_keys(
            FileKeyStore(self.settings.keys_dir),
            # a peer hub's keys are pinned from its export (hub keys import --peer), never made
            [p for p in self.protocol.party_ids if not self.protocol.is_peer(p)],
            suite=KeySuite(self.protocol.crypto.suite),
            extra_suites=[KeySuite(s) for s in self.protocol.crypto.suites[1:]],
        )
        asyncio.run(
            ensure_topics(
                self.bootstrap,
                all_topics(self.protocol.party_ids),
                partitions=self.settings.partitions,
                security=self.settings.kafka_security,
            )
        )
        # snapshots left by an earlier run describe another broker's offsets
        read_snapshots(self.settings.data_dir / "workers", remove=True)
        self._start_sink()
        for _ in range(self.settings.workers):
            self.start_worker()
        self.wait_ready(timeout=timeout)
        if WebhookConfig(self.settings.webhooks_path).endpoints():
            self.webhooks = self._spawn("hub.webhooks", self._env())
        self._write_state()
        for peer in self._link_peers:
            self._start_link(peer)
        self._start_watch()
        return self.bootstrap

    def _start_link(self, peer: str) -> None:
        env = self._env()
        env["HUB_LINK_PEER"] = peer  # hub.federation.link_worker.LINK_PEER_ENV
        self.links[peer] = self._spawn("hub.federation.link_worker", env)
        _log.info("federation_link_started", peer=peer, pid=self.links[peer].pid)

    def _start_sink(self) -> None:
        if self.settings.audit_sink == "process":
            self.sink = self._spawn("hub.agents.sink_worker", self._env())
            _log.info("audit_sink_started", pid=self.sink.pid)

    def _start_watch(self) -> None:
        if self.broker is None:
            return  # an external broker keeps its records: nothing to count on its loss
        self.watch = BrokerWatch(
            self.bootstrap,
            path=view_path(self.settings.data_dir),
            security=self.settings.kafka_security,
        )
        self.watch.start()

    def heal(self) -> list[str]:
        """Restart what died (with backoff), say what was noticed; ``hub up`` calls it often.

        A restarted worker resumes from its group's committed offsets; a restarted dispatcher
        from each party's committed offsets, so nothing is skipped (at-least-once, and the
        receivers recognise repeats by event id). A first death is restarted at once, a
        repeated one after a backoff (the module docstring has the rule).

        Raises:
            BrokerError: the embedded broker died too often or cannot be restarted.
            CrashLoopError: a process died more than ``restart_limit`` times within
                ``restart_window``: the hub must stop rather than restart it for ever.
        """
        said: list[str] = []
        if self.broker is not None and self.broker.exit_code is not None:
            said.append(self._recover_broker())
        now = time.monotonic()
        for proc in [w for w in self.workers if w.poll() is not None]:
            self.workers.remove(proc)
            self._ready_marker(proc.pid).unlink(missing_ok=True)
            slot = self.slots.pop(proc.pid, 0)
            said.append(self._died(f"{WORKER} {slot}", proc, now=now))
        if self.webhooks is not None and self.webhooks.poll() is not None:
            said.append(self._died(DISPATCHER, self.webhooks, now=now))
            self.webhooks = None
        if self.sink is not None and self.sink.poll() is not None:
            said.append(self._died(SINK, self.sink, now=now))
            self.sink = None
        for peer, proc in list(self.links.items()):
            if proc.poll() is not None:
                del self.links[peer]
                said.append(self._died(f"{LINK} {peer}", proc, now=now))
        for line in said:
            _log.warning("process_restarted", detail=line)
        for role, due in sorted(self._due.items(), key=lambda item: item[1]):
            if due <= now:
                del self._due[role]
                self._restart(role)
        return said

    def _died(self, role: str, proc: subprocess.Popen[bytes], *, now: float) -> str:
        """Count a death of ``role``, schedule its restart; what to say about it.

        Raises:
            CrashLoopError: more than ``restart_limit`` deaths within ``restart_window``.
        """
        settings = self.settings
        # a worker's slot is ours, its pid is the reader's; a link is named by its peer
        name = role if role.startswith(LINK) else role.rstrip("0123456789 ")
        deaths = [t for t in self._deaths.get(role, []) if now - t < settings.restart_window]
        deaths.append(now)
        self._deaths[role] = deaths
        if len(deaths) > settings.restart_limit:
            _log.critical(
                "crash_loop",
                process=name,
                pid=proc.pid,
                exit_code=proc.returncode,
                deaths=len(deaths),
                window_s=settings.restart_window,
                log=str(self.worker_log),
            )
            raise CrashLoopError(
                f"{name} {proc.pid} exited ({proc.returncode}), its {len(deaths)}th death within "
                f"{settings.restart_window:.0f}s (HUB_RESTART_LIMIT={settings.restart_limit}): "
                f"a crash loop; stopping the hub rather than restart it for ever; "
                f"see {self.worker_log}"
            )
        # the first death restarts at once (a one-off crash); each further one waits twice
        # as long as the one before, so a process that cannot start does not spin
        delay = 0.0
        if len(deaths) > 1:
            delay = min(
                settings.restart_backoff * 2 ** (len(deaths) - 2), settings.restart_backoff_max
            )
        self._due[role] = now + delay
        when = "restarting" if delay == 0 else f"restarting in {delay:.1f}s"
        return (
            f"{name} {proc.pid} exited ({proc.returncode}): {when} "
            f"(death {len(deaths)} of at most {settings.restart_limit} "
            f"within {settings.restart_window:.0f}s)"
        )

    def _restart(self, role: str) -> None:
        if role.startswith(WORKER):
            self.start_worker()
        elif role.startswith(f"{LINK} "):
            self._start_link(role.removeprefix(f"{LINK} "))
        elif role == DISPATCHER:
            self.webhooks = self._spawn("hub.webhooks", self._env())
        else:
            self._start_sink()

    def _recover_broker(self) -> str:
        """The embedded broker died: restart it on its port and count what it took with it.

        Raises:
            BrokerError: it died too often, or cannot be restarted: the hub must stop.
        """
        broker = self.broker
        assert broker is not None  # noqa: S101 - heal checked
        code = broker.exit_code
        now = time.monotonic()
        self._broker_deaths = [
            t for t in self._broker_deaths if now - t < BROKER_RESTART_WINDOW_S
        ] + [now]
        _log.critical(
            "broker_died", exit_code=code, bootstrap=self.bootstrap, log=str(broker.log_path)
        )
        view = self.watch.stop() if self.watch is not None else {}
        self.watch = None
        # Every client's state (group generation, offsets, fetch positions) names a broker
        # that is gone: the workers and the dispatcher start afresh. Their last snapshots
        # stay on disk, which is what they are for.
        self._kill_all()
        snapshots = read_snapshots(self.settings.data_dir / "workers", remove=True)
        deaths = len(self._broker_deaths)
        if deaths > MAX_BROKER_RESTARTS:
            self._report_losses(view, snapshots, restarted=False)
            raise BrokerError(
                f"embedded broker died {deaths} times within {BROKER_RESTART_WINDOW_S:.0f}s "
                f"(last exit code {code}): stopping the hub rather than run without a broker; "
                f"see {broker.log_path}"
            )
        try:
            broker.start()
            asyncio.run(
                ensure_topics(
                    self.bootstrap,
                    all_topics(self.protocol.party_ids),
                    partitions=self.settings.partitions,
                    security=self.settings.kafka_security,
                )
            )
        except BrokerError as exc:
            self._report_losses(view, snapshots, restarted=False)
            raise BrokerError(
                f"embedded broker died (exit code {code}) and could not be restarted on "
                f"{self.bootstrap}: {exc}; stopping the hub"
            ) from exc
        lost = self._report_losses(view, snapshots, restarted=True)
        self._start_sink()
        for _ in range(self.settings.workers):
            self.start_worker()
        self.wait_ready()
        if WebhookConfig(self.settings.webhooks_path).endpoints():
            self.webhooks = self._spawn("hub.webhooks", self._env())
        self._write_state()
        for peer in self._link_peers:
            self._start_link(peer)
        self._start_watch()
        _log.warning("broker_restarted", bootstrap=self.bootstrap, restarts=deaths, lost=lost)
        return (
            f"embedded broker exited ({code}): restarted empty on {self.bootstrap}; "
            f"{lost} events it held were never decided and are lost (see events_lost in the log)"
        )

    def _report_losses(
        self,
        view: dict[str, PartitionView],
        snapshots: list[WorkerSnapshot],
        *,
        restarted: bool,
    ) -> int:
        """Log ``events_lost`` per partition and in total, add to the metric; return the total."""
        from hub.audit.store import AuditStore, open_store

        def decided_in(store: AuditStore) -> Callable[[str, str], bool]:
            def decided(source: str, event_id: str) -> bool:
                # an event is its (source, id): another party's event may share the id
                party = source.removeprefix("/parties/")
                return any(r.publisher == party for r in store.query(event_id=event_id))

            return decided

        try:
            store = open_store(self.settings)
        except Exception as exc:  # the count goes on without it: fetched events count as lost
            _log.warning("events_lost_store_unavailable", error=repr(exc))
            losses = count_losses(view, snapshots, decided=lambda _s, _i: False)
        else:
            try:
                losses = count_losses(view, snapshots, decided=decided_in(store))
            finally:
                store.close()
        for loss in losses:
            _log.error(
                "events_lost",
                topic=loss.topic,
                partition=loss.partition,
                first_offset=loss.first,
                last_offset=loss.last,
                count=loss.count,
                events=[{"offset": o, "source": s, "id": i} for o, s, i in loss.listed],
                unlisted=loss.unlisted,
            )
        total = sum(loss.count for loss in losses)
        LostTotals(lost_path(self.settings.data_dir)).add(losses)
        _log.error(
            "events_lost_total",
            count=total,
            listed=sum(len(loss.listed) for loss in losses),
            partitions=len(losses),
            broker_restarted=restarted,
        )
        return total

    def _kill_all(self) -> None:
        """Kill -9 the workers, the webhook dispatcher and the sink (their broker is gone)."""
        procs = (
            list(self.workers)
            + ([self.webhooks] if self.webhooks is not None else [])
            + ([self.sink] if self.sink is not None else [])
            + list(self.links.values())
        )
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        for proc in procs:
            proc.wait()
            self._ready_marker(proc.pid).unlink(missing_ok=True)
        self.workers.clear()
        self.webhooks = None
        self.sink = None
        self.links.clear()
        self._due.clear()  # the broker's recovery starts every process afresh

    def metrics_port(self, pid: int) -> int | None:
        """Where a worker serves ``/metrics``, ``/healthz``, ``/readyz`` (None: disabled)."""
        if not self.settings.metrics_port or pid not in self.slots:
            return None
        return self.settings.metrics_port + self.slots[pid]

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start one more router worker process in the hub's consumer group."""
        live = {self.slots.get(w.pid) for w in self.workers if w.poll() is None}
        slot = next(n for n in range(len(self.workers) + 1) if n not in live)
        env = self._env()
        if self.settings.metrics_port:
            env["HUB_METRICS_PORT"] = str(self.settings.metrics_port + slot)
        proc = self._spawn("hub.agents.worker", env)
        self.workers.append(proc)
        self.slots[proc.pid] = slot
        _log.info("worker_started", pid=proc.pid, slot=slot)
        return proc

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # the worker gets exactly this hub's settings, however they were given to us
        for name, value in self.settings.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, Path):
                value = value.resolve()
            env[f"HUB_{name.upper()}"] = str(value)
        env["HUB_KAFKA_BOOTSTRAP"] = self.bootstrap
        if self.broker is not None and self.settings.lost_log_grace is None:
            # the embedded Tansu answers a fetch past a lost log's end with nothing: watch
            env[GRACE_ENV] = str(GRACE_S)
        return env

    def _spawn(self, module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.worker_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.worker_log, "ab") as log:
            return subprocess.Popen(  # noqa: S603 - our own module, this interpreter
                [sys.executable, "-m", module],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def wait_ready(self, *, timeout: float = 90.0) -> None:
        """Wait until every live worker has reported a completed rebalance."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [w for w in self.workers if w.poll() is not None]
            if dead:
                raise BrokerError(
                    f"router worker {dead[0].pid} exited with code {dead[0].returncode} "
                    f"during start: see {self.worker_log}"
                )
            if all(self._ready_marker(w.pid).exists() for w in self.workers):
                return
            time.sleep(0.1)
        raise BrokerError(f"router workers not ready within {timeout:.0f}s: see {self.worker_log}")

    def _ready_marker(self, pid: int) -> Path:
        return self.settings.data_dir / "workers" / f"{pid}.ready"

    def kill_worker(self, index: int = 0) -> int:
        """Kill -9 a worker (fault injection); returns its pid."""
        proc = self.workers.pop(index)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self._ready_marker(proc.pid).unlink(missing_ok=True)
        return proc.pid

    def kill_sink(self) -> int:
        """Kill -9 the audit sink process (fault injection); returns its pid.

        Raises:
            ConfigError: the sink runs inside the workers (``HUB_AUDIT_SINK=worker``).
        """
        proc = self.sink
        if proc is None:
            raise ConfigError("no audit sink process: HUB_AUDIT_SINK=worker runs it in workers")
        self.sink = None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return proc.pid

    def start_sink(self) -> None:
        """Start the audit sink process again (after ``kill_sink``)."""
        self._start_sink()

    def terminate_worker(self, index: int = 0, *, timeout: float = 60.0) -> tuple[int, int]:
        """SIGTERM a worker and wait for it to drain and exit; returns (pid, exit code)."""
        proc = self.workers.pop(index)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        self._ready_marker(proc.pid).unlink(missing_ok=True)
        return proc.pid, code

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop workers gracefully (SIGTERM), then the broker; remove the state file."""
        self._due.clear()
        if self.watch is not None:
            self.watch.stop()
            self.watch = None
        if self.webhooks is not None:
            _terminate(self.webhooks, timeout=timeout)
            self.webhooks = None
        for proc in self.links.values():  # each stops after the batch in hand
            _terminate(proc, timeout=timeout)
        self.links.clear()
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self._ready_marker(proc.pid).unlink(missing_ok=True)
        self.workers.clear()
        if self.sink is not None:  # after the workers: it writes what they produced last
            _terminate(self.sink, timeout=timeout)
            self.sink = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self._lock.held:  # a hub refused for a busy data dir leaves the running one's file
            self.settings.state_file.unlink(missing_ok=True)
            self._lock.release()

    def alive(self, *, timeout: float = 5.0) -> bool:
        """Whether every process runs and the broker answers a metadata request.

        The broker, embedded or external, is asked (``broker_answers``): a process that runs
        is not a broker that serves (a frozen or wedged broker, a lost network). A process
        waiting out its restart backoff counts as down.
        """
        if self.broker is not None and self.broker.exit_code is not None:
            return False
        if self._due or (self.sink is not None and self.sink.poll() is not None):
            return False
        if any(w.poll() is not None for w in self.workers):
            return False
        if any(link.poll() is not None for link in self.links.values()):
            return False
        return broker_answers(
            self.bootstrap, security=self.settings.kafka_security, timeout=timeout
        )

    def _write_state(self) -> None:
        state = HubState(
            bootstrap=self.bootstrap,
            embedded=self.broker is not None,
            pid=os.getpid(),
            broker_pid=self.broker.pid if self.broker is not None else None,
            workers=[w.pid for w in self.workers],
            started_at=dt.datetime.now(dt.UTC),
            protocol_hash=self.protocol.content_hash,
        )
        # atomically: ``hub status`` and the tests read it while a restart rewrites it
        write_private_file(
            self.settings.state_file, json.dumps(state.model_dump(mode="json"), indent=2).encode()
        )


def broker_answers(
    bootstrap: str, *, security: KafkaSecurity | None = None, timeout: float = 5.0
) -> bool:
    """Whether the broker at ``bootstrap`` answers a metadata request within ``timeout`` s."""

    async def ask() -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout * 1000),
            **(security or KafkaSecurity()).client_kwargs(),
        )
        try:
            await admin.start()
            await admin.list_topics()
        finally:
            await admin.close()

    async def bounded() -> None:
        await asyncio.wait_for(ask(), timeout)

    try:
        asyncio.run(bounded())
    except Exception:  # any failure to answer is the answer: it does not serve
        return False
    return True


def _terminate(proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
