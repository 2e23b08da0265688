"""Every environment variable the collector reads, in one place, validated loudly at init time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .kafka_security import KafkaSecurity

ENV_BOOTSTRAP = "TOKENTRAIL_KAFKA_BOOTSTRAP"
ENV_TOPIC = "TOKENTRAIL_EVENTS_TOPIC"
ENV_SPOOL_DIR = "TOKENTRAIL_SPOOL_DIR"
ENV_SERVICE = "TOKENTRAIL_SERVICE"
ENV_ENVIRONMENT = "TOKENTRAIL_ENVIRONMENT"
ENV_TENANT = "TOKENTRAIL_TENANT"

DEFAULT_TOPIC = "tokentrail.events"

# KafkaSecurity field -> the variable it is read from (docs/security.md#transport).
KAFKA_SECURITY_ENV = {
    "protocol": "TOKENTRAIL_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "TOKENTRAIL_KAFKA_SASL_MECHANISM",
    "username": "TOKENTRAIL_KAFKA_SASL_USERNAME",
    "password": "TOKENTRAIL_KAFKA_SASL_PASSWORD",
    "password_file": "TOKENTRAIL_KAFKA_SASL_PASSWORD_FILE",
    "ca_file": "TOKENTRAIL_KAFKA_SSL_CA_FILE",
    "cert_file": "TOKENTRAIL_KAFKA_SSL_CERT_FILE",
    "key_file": "TOKENTRAIL_KAFKA_SSL_KEY_FILE",
}


@dataclass(frozen=True)
class CollectorSettings:
    """How the collector batches and bounds its memory. Every bound is a drop counter, not a wait."""

    max_queue: int = 20_000  # events waiting for the background thread; beyond it: drop `queue_full`
    batch_size: int = 512  # the exporter thread wakes when this many are waiting ...
    flush_interval: float = 0.2  # ... or after this many seconds
    max_event_bytes: int = 1024 * 1024  # docs/events.md: larger events are invalid; drop `too_large`

    def __post_init__(self) -> None:
        for name in ("max_queue", "batch_size", "max_event_bytes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"CollectorSettings.{name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.flush_interval > 0:
            raise ValueError(f"CollectorSettings.flush_interval must be > 0 seconds, got {self.flush_interval!r}")


@dataclass(frozen=True)
class KafkaSettings:
    """Producer settings tuned for telemetry: batch and compress, bounded local memory, fail fast to the spool."""

    bootstrap_servers: str
    topic: str = DEFAULT_TOPIC
    spool_dir: Path | None = None  # None: a per-service folder under ~/.cache/tokentrail/spool
    spool_max_bytes: int = 256 * 1024 * 1024
    message_timeout_ms: int = 15_000  # after this, an undelivered event goes to the spool
    probe_interval: float = 2.0  # how often the exporter thread checks whether a down broker is back
    producer_config: dict[str, object] = field(default_factory=dict)  # extra librdkafka settings
    security: KafkaSecurity = field(default_factory=KafkaSecurity)  # SASL/TLS; from_env reads TOKENTRAIL_KAFKA_*

    def __post_init__(self) -> None:
        if not self.bootstrap_servers or not isinstance(self.bootstrap_servers, str):
            raise ValueError(
                f"Kafka bootstrap servers are required: pass bootstrap_servers='host:9092' or set {ENV_BOOTSTRAP}"
            )
        if not self.topic:
            raise ValueError(f"Kafka topic must be a non-empty string (or set {ENV_TOPIC})")
        if self.spool_max_bytes <= 0:
            raise ValueError("spool_max_bytes must be positive")

    @classmethod
    def from_env(cls, **overrides: object) -> KafkaSettings:
        values: dict[str, object] = {
            "bootstrap_servers": os.environ.get(ENV_BOOTSTRAP, ""),
            "topic": os.environ.get(ENV_TOPIC, DEFAULT_TOPIC),
        }
        if os.environ.get(ENV_SPOOL_DIR):
            values["spool_dir"] = Path(os.environ[ENV_SPOOL_DIR])
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("security") is None:
            values["security"] = kafka_security_from_env()
        return cls(**values)  # type: ignore[arg-type]


def kafka_security_from_env(**overrides: str | Path | None) -> KafkaSecurity:
    """`KafkaSecurity` from the TOKENTRAIL_KAFKA_* variables; a non-None override (a flag) beats its variable.

    A password file given as an override replaces a password from the environment, and the
    reverse, so a flag never clashes with a variable. Raises ValueError naming what to fix.
    """
    unknown = set(overrides) - set(KAFKA_SECURITY_ENV)
    if unknown:
        raise TypeError(f"kafka_security_from_env: unknown settings {sorted(unknown)}")
    values: dict[str, str | Path | None] = {
        name: os.environ.get(env) or None for name, env in KAFKA_SECURITY_ENV.items()
    }
    given = {name: value for name, value in overrides.items() if value is not None}
    if "password_file" in given:
        values["password"] = None
    if "password" in given:
        values["password_file"] = None
    values.update(given)
    return KafkaSecurity(
        protocol=str(values["protocol"] or "PLAINTEXT"),
        sasl_mechanism=_text(values["sasl_mechanism"]),
        username=_text(values["username"]),
        password=_text(values["password"]),
        password_file=values["password_file"],
        ca_file=values["ca_file"],
        cert_file=values["cert_file"],
        key_file=values["key_file"],
    )


def _text(value: str | Path | None) -> str | None:
    return None if value is None else str(value)


def env_default(name: str, fallback: str | None = None) -> str | None:
    return os.environ.get(name) or fallback
