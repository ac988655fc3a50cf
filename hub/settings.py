"""Settings: environment ``HUB_*`` and an optional ``hub.toml``, read once by the CLI.

Nothing reads the environment at import time; callers build ``HubSettings()`` when they
start, so tests can give each run its own data dir and broker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hub.broker.security import KafkaSecurity
from hub.errors import ConfigError

__all__ = ["HubSettings", "default_protocol_path"]


def default_protocol_path() -> Path:
    """The reference North Worcestershire protocol shipped with the package."""
    return Path(__file__).parent / "policies" / "north-worcestershire.yaml"


class HubSettings(BaseSettings):
    """Runtime configuration of a hub process."""

    model_config = SettingsConfigDict(
        env_prefix="HUB_", toml_file="hub.toml", extra="ignore", frozen=True
    )

    data_dir: Path = Field(
        default=Path(".hub"),
        description="state: audit db, keys, pseudonym key, registers, logs, hub.json (the "
        "running hub's address)",
    )
    kafka_bootstrap: str | None = Field(
        default=None, description="external Kafka bootstrap servers; unset = embedded broker"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="how clients connect to Kafka; production: SASL_SSL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism, with a SASL_* security protocol"
    )
    kafka_username: str | None = Field(default=None, description="the Kafka principal (SASL)")
    kafka_password: SecretStr | None = Field(
        default=None, description="the Kafka principal's password (SASL)"
    )
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle for broker TLS")
    kafka_ssl_certfile: Path | None = Field(default=None, description="TLS client certificate")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="TLS client key")
    protocol: Path = Field(
        default_factory=default_protocol_path,
        description="the sharing protocol file; default: the reference North Worcestershire "
        "protocol shipped in hub/policies",
    )
    protocol_cache: Path | None = Field(
        default=None,
        description="a directory, private to this user, where each process keeps the protocol "
        "files it parses, by content (SHA-256), for the next process to read instead of "
        "parsing the YAML again (about 0.15 s of CPU a process); unset = none (the tests use one)",
    )
    partitions: int = Field(default=3, ge=1, description="partitions per hub topic")
    workers: int = Field(default=1, ge=1, description="router worker processes started by hub up")
    max_event_bytes: int = Field(
        default=256 * 1024, ge=1024, description="largest inbound payload (encoded Avro)"
    )
    quarantine_max_bytes: int = Field(
        default=900_000,  # hub.agents.routing.QUARANTINE_MAX_BYTES
        ge=64 * 1024,
        le=1_000_000,
        description="largest record (key, value, headers) copied to hub.quarantine; a larger "
        "one is kept as a truncated copy with its length and SHA-256 (faust's producer refuses "
        "requests over 1,000,000 bytes)",
    )
    audit_url: str | None = Field(
        default=None, description="audit store URL; unset = SQLite in the data dir"
    )
    state_url: str | None = Field(
        default=None,
        description="where the state router workers share lives (seen event ids, the "
        "registers, case keys and legal holds): unset = SQLite files in the data dir (one "
        "host); postgresql://... = that database, shared by workers on many hosts. Never "
        "taken from audit_url: switching moves no state (see Scaling out)",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="HMAC key for subject pseudonyms; unset = generated in the data dir (0600)",
    )
    audit_stream_key: SecretStr | None = Field(
        default=None,
        description="HMAC key authenticating hub.audit messages (hex, 32+ bytes); unset = "
        "generated in the data dir. Every router and audit sink of one hub needs the same key",
    )
    rebalance_timeout: float = Field(default=3.0, gt=0, description="consumer group rebalance (s)")
    session_timeout: float = Field(default=10.0, gt=0, description="worker liveness timeout (s)")
    malloc_arenas: int = Field(
        default=1,
        ge=0,
        description="glibc malloc arenas in a worker, set before its first thread (0 = glibc's "
        "default, 8 per core); one slows the growth of a worker's memory under steady load "
        "(hub.agents.allocator; see Benchmarks)",
    )
    max_in_flight: int = Field(
        default=256,
        ge=1,
        description="events a worker routes ahead of the broker's acknowledgements",
    )
    audit_sink: Literal["process", "worker"] = Field(
        default="process",
        description="where hub.audit is written to the store: its own process started by "
        "hub up (routing and audit writing do not share one event loop), or a task in each "
        "router worker",
    )
    route_batch: int = Field(
        default=64,
        ge=1,
        description="events the route loop takes at a time when that many are ready; their "
        "audit records go to the broker as one message, before their deliveries",
    )
    poll_records: int = Field(
        default=50,
        ge=1,
        description="records a worker takes from the broker at a time; bounds its memory "
        "when it catches up a backlog",
    )
    producer_linger: float = Field(
        default=0.005,
        ge=0,
        le=1.0,
        description="seconds a router worker's producer holds a new batch open for more "
        "records to the same partition (faust producer_linger): fewer, larger produce "
        "requests; 0 = send at once (hub.agents.transport.TrackingProducer)",
    )
    producer_batch_bytes: int = Field(
        default=512 * 1024,
        ge=16 * 1024,
        le=1_000_000,
        description="bytes a router worker's producer gathers per partition before a batch "
        "is full (aiokafka max_batch_size, 16 KiB by default): with a full batch, a send "
        "waits for a produce round trip; at most the broker's message.max.bytes",
    )
    lost_log_grace: float | None = Field(
        default=None,
        gt=0,
        le=300,
        description="seconds a consumer's position may stay past the end of its partition's "
        "log (the broker lost the records below it) before the consumer reads that partition "
        "again from its start (hub.broker.lost_log). Unset: 1 with the embedded broker hub up "
        "starts (Tansu answers a fetch past a log's end with nothing), no watch with Kafka "
        "(which answers OFFSET_OUT_OF_RANGE itself, and whose new leader's high watermark may "
        "trail its log for up to replica.lag.time.max.ms). Set it for a Tansu started apart "
        "from hub up; an SDK client reads HUB_LOST_LOG_GRACE itself",
    )
    audit_outage_limit: float = Field(
        default=10.0,
        gt=0,
        description="seconds the audit store may lag the oldest unconfirmed audit message "
        "(whatever the cause) before delivery pauses; also when that message is produced again",
    )
    audit_busy_timeout: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="seconds a write to a SQLite audit store waits for a lock another process "
        "holds (a backup, an operator's query) before it fails and the sink retries it",
    )
    checkpoint_every: int = Field(default=500, ge=1, description="records per checkpoint")
    checkpoint_interval: float = Field(
        default=3.0,
        gt=0,
        description="seconds a record waits at most for a signed checkpoint (traffic or not)",
    )
    clock_file: Path | None = Field(
        default=None,
        description="drills and tests only: a file holding the hub's current time (ISO 8601)",
    )
    workflow_interval: float = Field(
        default=60.0,
        ge=0,
        description="seconds between MARAC workflow sweeps in each worker; 0 = only on demand",
    )
    federation_links: str | None = Field(
        default=None,
        description="peer hubs hub up links this hub to, as PEER=HOST:PORT[,PEER=HOST:PORT]: "
        "for each, a hub federation link process carries hub.out.PEER to the peer's broker "
        "at HOST:PORT (PEER a peer-hub party of the protocol); unset = no link",
    )
    federation_security: Path | None = Field(
        default=None,
        description="a JSON file (keep it 0600) of the Kafka security each federation link "
        'uses on its peer\'s broker, by peer: {"swcsp-hub": {"protocol": "SASL_SSL", '
        '"sasl_mechanism": "SCRAM-SHA-512", "username": ..., "password": ..., "ssl_cafile": '
        "...}}, the account the peer's cluster gives this hub (Write on hub.in.<this hub's "
        "id> only); a peer not in it, or unset: PLAINTEXT",
    )
    console_host: str = Field(default="127.0.0.1", description="address the web console binds")
    console_port: int = Field(
        default=8089, ge=0, le=65535, description="web console port; 0 = `hub up` starts none"
    )
    console_accounts: Path | None = Field(
        default=None,
        description="console accounts (TOML); unset = <data_dir>/console-accounts.toml",
    )
    console_session_lifetime: float = Field(
        default=1800.0, gt=0, description="seconds a console sign-in lasts"
    )
    console_secret: SecretStr | None = Field(
        default=None, description="key signing console sessions; unset = generated in data dir"
    )
    ingress_body_timeout: float = Field(
        default=10.0,
        gt=0,
        description="seconds an ingress client has to send its whole request body, signed in "
        "or not (also how long an idle connection is kept); a slower one gets 408 and is closed",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="address the workers' metrics and health endpoint binds"
    )
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="/metrics, /healthz and /readyz port of the first worker (the Nth worker "
        "of hub up gets port + N - 1); 0 = none (compose: 9464 per container)",
    )
    restart_backoff: float = Field(
        default=1.0,
        gt=0,
        description="hub up: a process (router worker, audit sink, webhook dispatcher) that "
        "dies is restarted at once; one that dies again within restart_window waits this many "
        "seconds, doubled for each further death (up to restart_backoff_max)",
    )
    restart_backoff_max: float = Field(
        default=60.0, gt=0, description="hub up: longest wait before restarting a process (s)"
    )
    restart_limit: int = Field(
        default=5,
        ge=1,
        description="hub up: restarts of one process within restart_window; one more death "
        "is a crash loop, and the hub stops with an error instead of restarting it for ever",
    )
    restart_window: float = Field(
        default=600.0, gt=0, description="hub up: seconds over which a process's deaths count"
    )
    webhook_max_attempts: int = Field(
        default=6, ge=1, description="POSTs of one delivery before it is dead-lettered"
    )
    webhook_backoff: float = Field(
        default=1.0, gt=0, description="first retry delay (s); doubles per attempt, full jitter"
    )
    webhook_backoff_max: float = Field(default=300.0, gt=0, description="longest retry delay (s)")
    webhook_timeout: float = Field(default=10.0, gt=0, description="seconds per webhook POST")
    log_level: str = Field(default="INFO", description="log level (DEBUG, INFO, WARNING, ...)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init arguments, then the environment, then ``hub.toml``."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def federation_peers(self) -> dict[str, str]:
        """``federation_links`` as peer id -> the peer's bootstrap (empty when unset).

        Raises:
            ConfigError: an entry that is not PEER=HOST:PORT, or a peer named twice.
        """
        peers: dict[str, str] = {}
        for entry in filter(None, (e.strip() for e in (self.federation_links or "").split(","))):
            peer, _, bootstrap = entry.partition("=")
            peer, bootstrap = peer.strip(), bootstrap.strip()
            if not peer or ":" not in bootstrap or peer in peers:
                raise ConfigError(
                    f"HUB_FEDERATION_LINKS: expected PEER=HOST:PORT entries, each peer once, "
                    f"separated by commas; got {entry!r}"
                )
            peers[peer] = bootstrap
        return peers

    @property
    def audit_db_path(self) -> Path:
        """SQLite audit database used when ``audit_url`` is unset."""
        return self.data_dir / "audit.sqlite3"

    @property
    def kafka_security(self) -> KafkaSecurity:
        """The Kafka credentials and TLS settings, checked as a whole.

        Raises:
            ConfigError: an incomplete combination (e.g. SASL_SSL without a password).
        """
        try:
            return KafkaSecurity(
                protocol=self.kafka_security_protocol,
                sasl_mechanism=self.kafka_sasl_mechanism,
                username=self.kafka_username,
                password=self.kafka_password,
                ssl_cafile=self.kafka_ssl_cafile,
                ssl_certfile=self.kafka_ssl_certfile,
                ssl_keyfile=self.kafka_ssl_keyfile,
            )
        except ValidationError as exc:
            raise ConfigError(f"Kafka security: {exc.errors()[0]['msg']}") from exc

    @property
    def register_path(self) -> Path:
        """The MARAC flag register (workflow state: status, review dates, referrals)."""
        return self.data_dir / "workflows.sqlite3"

    @property
    def seen_path(self) -> Path:
        """Event ids already accepted, with the record that first carried each (the router)."""
        return self.data_dir / "seen-events.sqlite3"

    @property
    def keys_dir(self) -> Path:
        """Development key store (private keys 0600) and per-case secrets."""
        return self.data_dir / "keys"

    @property
    def console_accounts_path(self) -> Path:
        """The console's accounts file (names, roles, parties, password hashes)."""
        return self.console_accounts or self.data_dir / "console-accounts.toml"

    @property
    def webhooks_path(self) -> Path:
        """Party -> webhook endpoint and signing secret (0600; ``hub webhooks add``)."""
        return self.data_dir / "webhooks.json"

    @property
    def state_file(self) -> Path:
        """Where a running hub writes its broker address (read by publish/consume)."""
        return self.data_dir / "hub.json"
