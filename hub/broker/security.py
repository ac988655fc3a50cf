"""How the hub and the SDK authenticate to Kafka: plaintext (embedded broker), TLS, SASL.

Production is Apache Kafka with SASL_SSL and SCRAM-SHA-512 (docker-compose.yml, deploy/): each
party is a Kafka user whose ACLs (``hub acl``) let it write only its inbound topic and read
only its outbound topic, so the credentials are what make least privilege real. One model
carries the settings to every client the hub opens (aiokafka producers, consumers and admin
clients, and the faust workers), so no client can quietly connect in plaintext.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from hub.errors import ConfigError

__all__ = ["KafkaSecurity"]

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecurity(BaseModel):
    """Transport security and credentials for one Kafka principal."""

    model_config = ConfigDict(frozen=True)

    protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism | None = None
    username: str | None = None
    password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecurity:
        if self.protocol.startswith("SASL_"):
            missing = [
                name
                for name, value in (
                    ("HUB_KAFKA_SASL_MECHANISM", self.sasl_mechanism),
                    ("HUB_KAFKA_USERNAME", self.username),
                    ("HUB_KAFKA_PASSWORD", self.password),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"{self.protocol} needs {', '.join(missing)}")
        elif self.sasl_mechanism or self.username or self.password:
            raise ValueError(
                f"SASL credentials are set but the security protocol is {self.protocol}: "
                "set HUB_KAFKA_SECURITY_PROTOCOL=SASL_SSL (or drop the credentials)"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("a TLS client certificate needs both its certfile and its keyfile")
        return self

    @property
    def uses_tls(self) -> bool:
        """Whether connections are encrypted."""
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying TLS context (the partnership's CA, or the system's), or None.

        Raises:
            ConfigError: a CA or client certificate file cannot be read.
        """
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None
            )
            if self.ssl_certfile is not None and self.ssl_keyfile is not None:
                context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"Kafka TLS: cannot load the CA or client certificate: {exc}"
            ) from exc
        return context

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.protocol.startswith("SASL_"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = (
                self.password.get_secret_value() if self.password else None
            )
        return kwargs

    def faust_credentials(self) -> Any:
        """Faust's ``broker_credentials`` for the same principal (None for plaintext)."""
        import faust  # the worker side only; the SDK does not need faust loaded

        context = self.ssl_context()
        if self.protocol.startswith("SASL_"):
            return faust.SASLCredentials(
                username=self.username,
                password=self.password.get_secret_value() if self.password else None,
                mechanism=self.sasl_mechanism,
                ssl_context=context,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None
