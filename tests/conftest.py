"""Shared fixtures: one embedded broker for the session, one running hub on it.

The broker is the real Tansu binary on a random loopback port; the hub is the real
supervisor with real worker processes. Tests wait on conditions with deadlines (the audit
store, the topics), never on fixed sleeps.

``make test`` runs the suite in parallel (pytest-xdist, ``--dist loadfile``): each worker is
a pytest session of its own, so ``broker`` and ``hub`` are one per worker, on that worker's
random port and under its own ``tmp_path_factory`` directory; a module's tests all run on
one worker, so a module-scoped fixture starts once. A test needs nothing more for xdist:
take ``hub`` (and ``unique`` references), ``tmp_path`` for files, ``free_port()`` for a port.

A test that needs a hub with other settings, or that kills, freezes or restarts a process or
the broker, starts a broker of its own and says why in its docstring. Two hubs on one broker
would share its topics (``hub.in.*``, ``hub.audit``...) and the router's consumer group, each
taking the other's partitions and events.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import sqlite3
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.conn import AIOKafkaConnection

from hub.agents.supervisor import Supervisor
from hub.audit.sqlite import SQLiteAuditStore
from hub.broker import EmbeddedBroker
from hub.client import HubClient
from hub.keys.file_store import FileKeyStore
from hub.models import AuditRecord, Delivery
from hub.scenarios.north_worcs import Scenario
from hub.settings import HubSettings

pytest_plugins = ["tests.postgres"]

T = TypeVar("T")

#: aiokafka producers, consumers and connections made in this process so far (a count)
_kafka_made = [0]


def _count_instances(cls: type) -> None:
    """Count every instance of ``cls`` made from now on in ``_kafka_made``."""
    original: Callable[..., None] = cls.__dict__["__init__"]  # each of the three has its own

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        _kafka_made[0] += 1
        original(self, *args, **kwargs)

    cls.__init__ = init  # type: ignore[misc]  # a wrapper with the same signature


for _cls in (AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaConnection):
    _count_instances(_cls)


@pytest.fixture(autouse=True)
def _kafka_clients_closed(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that leaves an aiokafka producer, consumer or connection unclosed fails itself.

    Such an object sits in a reference cycle, so it goes only when the garbage collector
    gets to it, in whatever later test of the same xdist worker is running then; its
    ResourceWarning (an error under ``filterwarnings``) failed that innocent test and named
    nothing of the one at fault. After each test that made any aiokafka object, a collection
    here finds what it left.

    Everything that lived before the test is frozen (``gc.freeze``) for its length, so that
    collection looks only at what the test made: a full one over a worker's whole heap (a
    few hundred thousand objects, 0.13 s each) was a tenth of an integration file's time.
    What the test made is all a leak of its own can be; the rest is thawed after it.
    """
    made = _kafka_made[0]
    gc.freeze()
    try:
        yield
        if _kafka_made[0] == made:
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            gc.collect()
    finally:
        gc.unfreeze()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    if leaked:
        pytest.fail(
            f"{request.node.nodeid} left {len(leaked)} resource(s) unclosed, expected every "
            "aiokafka client stopped and every connection closed: " + "; ".join(leaked[:5]),
            pytrace=False,
        )


@pytest.fixture(autouse=True, scope="session")
def _cheap_console_password_hashes() -> Iterator[None]:
    """Console passwords are hashed with Argon2id at its cheapest in the test process.

    The production parameters (argon2-cffi's defaults, RFC 9106: 64 MiB, 3 passes, 4 lanes)
    cost 0.17 s of CPU per hash and per sign-in by design, and the console tests add and sign
    in accounts a few hundred times. The hash stays Argon2id, so what a test asserts of the
    accounts file holds; a ``hub console`` started as a process of its own keeps the real
    parameters.
    """
    from argon2 import PasswordHasher

    from hub.web import accounts

    real = accounts._HASHER
    accounts._HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    yield
    accounts._HASHER = real


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HUB_* setting leaks in from the developer's shell (httpx's clean environ)."""
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)


#: seconds each costly test file took in a recorded full run (scripts/file_costs.py)
FILE_COSTS = Path(__file__).with_name("file_costs.json")
#: the test files that use the shared ``hub`` fixture (``pytest_collection_modifyitems``)
_SHARED_HUB_FILES: set[Path] = set()


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, hand out test files in the order collected (``pytest_collection_modifyitems``).

    xdist's own order for ``--dist loadfile`` is by number of tests, most first: the
    scenario and fault files (a few tests of a minute each) went last, and one worker was
    left running them long after the other had finished.
    """
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Costliest files first, each file's tests in their own order (longest job first).

    A file is one xdist work unit (``--dist loadfile``) and a worker runs its units one after
    another, so the files that take a minute or more start first and the many short ones
    fill in behind them, leaving no worker alone with a long file at the end. The costs are
    recorded ones (``FILE_COSTS``), so every worker sorts the same collection the same way,
    as xdist requires; a file not listed there costs 0 and keeps its collected place among
    the others. Only the order of files changes: every test still runs.

    The files that use the shared ``hub`` come first, together (costliest first among
    them): an xdist worker takes work units in this order, so each worker's files of the
    shared hub are the first it runs, and ``pytest_runtest_teardown`` stops the hub after
    the last of them instead of leaving it idle to the end of the session (an idle hub
    costs about a sixth of a core: its consumers fetch every 50 ms, ``hub.broker.fetch``).
    """
    if not items:
        return
    costs: dict[str, float] = json.loads(FILE_COSTS.read_text())["files"]
    rootdir = config.rootpath

    def cost(item: pytest.Item) -> float:
        try:
            relative = Path(item.path).relative_to(rootdir).as_posix()
        except ValueError:
            return 0.0
        return float(costs.get(relative, 0.0))

    shared = _SHARED_HUB_FILES
    shared.clear()
    shared.update(item.path for item in items if "hub" in getattr(item, "fixturenames", ()))
    order = {id(item): n for n, item in enumerate(items)}
    items.sort(key=lambda item: (item.path not in shared, -cost(item), order[id(item)]))


def outbox_empty(data_dir: Path) -> bool:
    """Whether the router's audit outbox is empty: the store confirmed every record it made.

    The router keeps each audit message there from before it is produced until it sees the
    store hold its records (``hub.agents.outbox``), so this is its own view, read at once
    (the ``hub_audit_lag`` gauge is refreshed once a second and can be a second stale).
    """
    db = sqlite3.connect(f"file:{data_dir / 'audit-outbox.sqlite3'}?mode=ro", uri=True)
    try:
        (count,) = db.execute("SELECT count(*) FROM audit_outbox").fetchone()
    finally:
        db.close()
    return int(count) == 0


def wait_for(check: Callable[[], T | None], *, timeout: float = 30.0, what: str = "") -> T:
    """Poll ``check`` until it returns a truthy value; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what or check}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The embedded Kafka-protocol broker for the whole session."""
    embedded = EmbeddedBroker()
    embedded.start()
    yield embedded
    embedded.stop()


class RunningHub:
    """A hub under test: supervisor, settings and helpers to observe it."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.settings = supervisor.settings
        self.bootstrap = supervisor.bootstrap
        self.keys = FileKeyStore(self.settings.keys_dir)

    def store(self) -> SQLiteAuditStore:
        return SQLiteAuditStore(self.settings.audit_db_path)

    def records(self, event_id: str) -> list[AuditRecord]:
        if not self.settings.audit_db_path.exists():
            return []
        with self.store() as store:
            return store.query(event_id=event_id)

    def wait_records(
        self, event_id: str, *, at_least: int = 1, timeout: float = 30.0
    ) -> list[AuditRecord]:
        """Audit records of an event, once the sink has written at least ``at_least``."""
        return wait_for(
            lambda: r if len(r := self.records(event_id)) >= at_least else None,
            timeout=timeout,
            what=f"audit records of {event_id}",
        )

    def decided(self, ids: list[str]) -> int:
        """How many of these events the audit store already has a decision for."""
        with self.store() as store:
            return sum(store.has_event(i) for i in ids)

    def publish_scenario(
        self, published: list[str], *, events: int, seed: int, pause: float = 0.01
    ) -> None:
        """Publish seeded North Worcestershire traffic as a stream (``pause`` between events),
        appending each event id as the broker accepts it (tests read it from another thread).
        """

        async def run() -> None:
            clients: dict[str, HubClient] = {}
            try:
                for item in Scenario(seed=seed).events(events):
                    client = clients.setdefault(
                        item.publisher,
                        HubClient(item.publisher, bootstrap=self.bootstrap, keys=self.keys),
                    )
                    published.append(
                        await client.publish(
                            item.event_type, item.data, key=item.key, subject=item.subject
                        )
                    )
                    await asyncio.sleep(pause)
            finally:
                for client in clients.values():
                    await client.close()

        asyncio.run(run())

    def env(self) -> dict[str, str]:
        env = {
            "HUB_DATA_DIR": str(self.settings.data_dir),
            "HUB_PROTOCOL": str(self.settings.protocol),
        }
        if self.settings.protocol_cache is not None:
            env["HUB_PROTOCOL_CACHE"] = str(self.settings.protocol_cache)
        return env

    def publish(self, party: str, event_type: str, data: dict[str, Any], **kw: Any) -> str:
        async def run() -> str:
            async with HubClient(party, bootstrap=self.bootstrap, keys=self.keys) as client:
                return await client.publish(event_type, data, **kw)

        return asyncio.run(run())

    def deliveries(
        self,
        party: str,
        *,
        timeout: float = 20.0,
        until: Callable[[list[Delivery]], bool] | None = None,
    ) -> list[Delivery]:
        """Everything on hub.out.<party> so far, read with a fresh consumer group.

        With ``until``, keeps reading until the predicate holds or the deadline passes.
        """

        async def run() -> list[Delivery]:
            got: list[Delivery] = []
            deadline = time.monotonic() + timeout
            group = f"test-{uuid.uuid4().hex[:8]}"
            while True:
                got = []
                async with HubClient(
                    party, bootstrap=self.bootstrap, group_id=group, keys=self.keys
                ) as c:
                    async for d in c.deliveries(follow=False, poll_timeout=0.2):
                        got.append(d)
                group = f"test-{uuid.uuid4().hex[:8]}"
                if until is None or until(got) or time.monotonic() > deadline:
                    return got
                await asyncio.sleep(0.2)

        return asyncio.run(run())


#: Settings every hub a test starts runs with, unless the test gives its own. Tansu answers a
#: consumer's JoinGroup only after half its session timeout (5 s of the default 10, each time
#: a router worker or the audit sink joins: every hub's start), and hands a killed worker's
#: partitions on only after all of it. 4 s still leaves four of the workers' 1 s heartbeats
#: per session. Nothing a test asserts depends on the length.
#:
#: One partition per hub topic, not the default 3: each of a hub's 61 topics gets that many
#: partitions on Tansu, and every fetch of an idle consumer (20 a second, ``hub.broker.fetch``)
#: walks all of them: an idle hub cost 18% of a core at 3, 11% at 1, and its broker started
#: in half the CPU. Every party's inbound topic is still a partition of its own to move
#: between workers; a test about events of one topic on several partitions or workers sets
#: its own count (``test_scale_out``, ``test_operations``, ``test_graceful_shutdown``,
#: ``test_consume_view``).
TEST_HUB_SETTINGS: dict[str, Any] = {
    "session_timeout": 4.0,
    "partitions": 1,
    # the tests' hubs run on an embedded broker they did not start (hub up watches its own
    # for lost logs with 5 s of grace, none on Kafka: hub.broker.lost_log); 1 s, to be quick
    "lost_log_grace": 1.0,
}


@pytest.fixture(autouse=True, scope="session")
def _protocol_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The hubs and CLI commands the tests start share one protocol parse cache.

    Each hub process and most commands load the protocol: parsing its YAML is about 0.15 s
    of CPU each time, 0.004 s read from the cache (``hub.policies.loader``), in some 400
    processes of a full run. Set in ``TEST_HUB_SETTINGS`` (hence ``hub_test_env`` and the
    hubs' ``env()``); the loader's own tests parse, in this process, without it.
    """
    TEST_HUB_SETTINGS["protocol_cache"] = tmp_path_factory.getbasetemp() / "protocol-cache"


def hub_test_env() -> dict[str, str]:
    """``TEST_HUB_SETTINGS`` as ``HUB_*`` variables, for a test that runs ``hub up`` itself."""
    return {f"HUB_{name.upper()}": str(value) for name, value in TEST_HUB_SETTINGS.items()}


def start_hub(broker_bootstrap: str, data_dir: Path, **overrides: Any) -> RunningHub:
    settings = HubSettings(
        data_dir=data_dir, kafka_bootstrap=broker_bootstrap, **{**TEST_HUB_SETTINGS, **overrides}
    )
    supervisor = Supervisor(settings)
    supervisor.start()
    return RunningHub(supervisor)


@contextmanager
def hub_on_own_broker(data_dir: Path, **overrides: Any) -> Iterator[RunningHub]:
    """A hub on a broker of its own, stopped with it: for a test that kills a worker or the
    broker, or whose settings differ from the shared hub's (two hubs on one broker would share
    topics and consumer groups).
    """
    with EmbeddedBroker() as broker:
        running = start_hub(broker.bootstrap, data_dir, **overrides)
        try:
            yield running
        finally:
            running.supervisor.stop()


class _SharedHub:
    """The session's shared hub once a test has asked for it, and whether it runs now."""

    running: RunningHub | None = None
    up = False

    @classmethod
    def stop(cls) -> None:
        if cls.running is not None and cls.up:
            cls.up = False
            cls.running.supervisor.stop()


@pytest.fixture(scope="session")
def hub(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    """One running hub (one worker) on the session broker.

    Stopped after the last test file that uses it (``pytest_runtest_teardown``), and started
    again, on its own data dir and broker as ``hub up`` restarts, should a later file use it.
    """
    _SharedHub.running = start_hub(broker.bootstrap, tmp_path_factory.mktemp("hub"))
    _SharedHub.up = True
    try:
        yield _SharedHub.running
    finally:
        _SharedHub.stop()
        _SharedHub.running = None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start the shared hub again for a file that uses it, if an earlier file stopped it."""
    running = _SharedHub.running
    if running is not None and not _SharedHub.up and item.path in _SHARED_HUB_FILES:
        running.supervisor = Supervisor(running.settings)
        running.supervisor.start()
        _SharedHub.up = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Stop the shared hub once the next test is in a file that does not use it.

    After the test's own teardown, so a module's fixtures on the hub are gone first. The
    last test of a session (``nextitem`` None) leaves it to the fixture's own teardown.
    """
    try:
        return (yield)
    finally:
        if nextitem is not None and nextitem.path not in _SHARED_HUB_FILES:
            _SharedHub.stop()


def unique(prefix: str) -> str:
    """A reference no other test uses (so tests on one hub never see each other's data)."""
    return f"{prefix}-{uuid.uuid4().hex[:10].upper()}"


def event_ids_on(bootstrap: str, topic: str) -> dict[str, int]:
    """Each event id (``ce_id``) on ``topic``, and how many messages carry it, read to the end.

    On ``hub.out.<party>`` this is what the party itself reads: a second delivery of an event
    is a second message there, whatever the audit store (one record per id) says. The end is
    ``hub.broker.offsets.end_offsets`` (Tansu's listed end offset can be short).
    """
    return event_ids_on_topics(bootstrap, [topic])[topic]


def event_ids_on_topics(bootstrap: str, topics: Sequence[str]) -> dict[str, dict[str, int]]:
    """``event_ids_on`` for several topics, read by one consumer (one client, one end probe)."""
    found: dict[str, dict[str, int]] = {topic: {} for topic in topics}
    for record in records_on(bootstrap, topics):
        counts = found[record.topic]
        event_id = dict(record.headers or ()).get("ce_id", b"").decode()
        counts[event_id] = counts.get(event_id, 0) + 1
    return found


def records_on(bootstrap: str, topics: Sequence[str]) -> list[Any]:
    """Every record on ``topics`` from the beginning to their end as of now, one consumer.

    The end is ``hub.broker.offsets.end_offsets`` (Tansu's listed end offset can be short);
    records are aiokafka ``ConsumerRecord``s, in fetch order.
    """
    from aiokafka import TopicPartition

    from hub.broker.offsets import end_offsets

    async def read() -> list[Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer.topics()  # a metadata refresh
            tps = [
                TopicPartition(topic, p)
                for topic in topics
                for p in consumer.partitions_for_topic(topic) or ()
            ]
            if not tps:
                return []
            consumer.assign(tps)
            ends = await end_offsets(consumer, tps)
            await consumer.seek_to_beginning(*tps)
            found: list[Any] = []

            async def behind() -> bool:
                return any([await consumer.position(tp) < ends[tp] for tp in tps])

            while await behind():
                batch = await consumer.getmany(*tps, timeout_ms=500)
                found.extend(r for records in batch.values() for r in records)
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())
