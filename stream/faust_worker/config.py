"""The worker's settings: `WorkerConfig`, validated before anything connects, and its command line."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tokentrail.collectors.kafka_security import KafkaSecurity
from tokentrail.collectors.settings import KAFKA_SECURITY_ENV, kafka_security_from_env

ENV_KAFKA = "TOKENTRAIL_KAFKA_BOOTSTRAP"
ENV_METRICS_PORT = "TOKENTRAIL_METRICS_PORT"


@dataclass(frozen=True)
class WorkerConfig:
    """Everything the worker needs; validated before anything connects."""

    kafka: str
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)  # SASL/TLS for every Kafka client
    clickhouse: str | None = None
    events_topic: str = "tokentrail.events"
    deadletter_topic: str = "tokentrail.deadletter"
    alerts_topic: str = "tokentrail.alerts"
    control_topic: str = "tokentrail.control"
    partitions: int = 6  # for a topic the worker has to create
    halt_on: tuple[str, ...] = ()  # loop kinds that publish a halt record to the control topic
    budgets: str | None = None  # spend budgets file (YAML/JSON)
    insights_interval: float = 60.0  # seconds between variance/changes/budget runs; 0 turns them off
    # The insights leader: the member of <group>.insights-leader holding this one-partition topic (insights_job.py).
    insights_leader_topic: str = "tokentrail.insights-leader"
    session_timeout: float = 15.0  # consumer-group session: how fast a dead worker's partitions move
    loglevel: str = "warning"
    group: str = "tokentrail-worker"
    batch_size: int = 5_000  # each table insert costs ~10 ms whatever its size: fewer, bigger batches
    batch_within: float = 0.2  # bounds end-to-end latency when traffic is light
    prices: str | None = None
    data_dir: str = ".tokentrail/worker"
    allow_ephemeral_key: bool = False
    inline_pipeline: bool = False  # run the stages in the worker's own process (one core) instead of a child
    # Child processes the stages run in, child i for the partitions p with p % N == i. Two: the stages
    # are most of a message's CPU, so one child was the bottleneck with cores to spare (docs/performance.md).
    pipeline_processes: int = 2
    # TOPIC=TENANT: the worker also reads TOPIC, and an event from it must name TENANT (stream/tenant_binding.py)
    tenant_topics: tuple[str, ...] = ()
    ts_window_days: str = "400:1"  # BACK:AHEAD days around the time a message is read; outside: ts_out_of_range
    # Tries per insert while the store fails (unreachable, timeouts), with backoff 0.2 s .. 5 s (~90 s for 20);
    # then the worker exits non-zero without acknowledging the batch. 0: retry for as long as it takes.
    store_max_attempts: int = 20
    otlp_topic: str | None = None  # OTLP spans from the OpenTelemetry Collector's kafka exporter (docs/otlp.md)
    otlp_encoding: str = "auto"  # auto (per message), proto or json
    otlp_default_tenant: str = "default"  # the tenant of spans that name none
    # /metrics, /ready and /live on this port (docs/operations.md); None: no HTTP server at all.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in a container, so that Prometheus and probes reach it
    # /ready turns 503 once the store has failed (or one insert has hung) for this long ...
    ready_sink_failing_seconds: float = 60.0
    # ... or a partition's lag has grown (or stood still above 0, nothing committed) for this long; 0: not checked.
    ready_lag_growing_seconds: float = 300.0

    def __post_init__(self) -> None:
        if not self.kafka:
            raise ValueError(f"the worker needs Kafka: pass --kafka host:9092 or set {ENV_KAFKA}")
        if self.pipeline_processes < 1:
            raise ValueError(f"--pipeline-processes must be at least 1, got {self.pipeline_processes}")
        if self.batch_size <= 0 or self.batch_within <= 0:
            raise ValueError("--batch-size and --batch-within must be positive")
        topics = (self.events_topic, self.deadletter_topic, self.alerts_topic, self.control_topic)
        if not all((*topics, self.insights_leader_topic)):
            raise ValueError("topic names must not be empty")
        from ..tenant_binding import parse_tenant_topics

        parse_tenant_topics(self.tenant_topics)  # fail at startup, naming the form
        if isinstance(self.store_max_attempts, bool) or self.store_max_attempts < 0:
            raise ValueError(f"--store-max-attempts must be >= 0 (0: retry forever), got {self.store_max_attempts}")
        from ..validate_stage import parse_ts_window_days

        parse_ts_window_days(self.ts_window_days)  # fail at startup, naming the form
        from ..detectors.loops import KINDS

        if self.budgets:
            from ..insights.budgets import load_budgets

            load_budgets(self.budgets)  # fail at startup, naming the fix
        unknown = set(self.halt_on) - set(KINDS)
        if unknown:
            raise ValueError(f"--halt-on: unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
        if self.otlp_topic is not None and self.otlp_topic in ("", self.events_topic):
            raise ValueError("--otlp-topic must name a topic of its own, not empty and not the events topic")
        self.otlp_settings()  # a bad encoding or default tenant fails here
        self._check_health_settings()

    def _check_health_settings(self) -> None:
        port = self.metrics_port
        if port is not None and (isinstance(port, bool) or not 1 <= port <= 65535):
            raise ValueError(f"--metrics-port must be a port number 1..65535 (or unset: no server), got {port}")
        if not self.metrics_host.strip():
            raise ValueError("--metrics-host must name an address, e.g. 127.0.0.1 or 0.0.0.0")
        if not self.ready_sink_failing_seconds > 0:
            raise ValueError(f"--ready-sink-failing-seconds must be > 0, got {self.ready_sink_failing_seconds}")
        if not self.ready_lag_growing_seconds >= 0:
            raise ValueError(
                f"--ready-lag-growing-seconds must be >= 0 (0: lag not checked), got {self.ready_lag_growing_seconds}"
            )

    def otlp_settings(self) -> Any:
        """The pipeline's OTLP settings (stream.otlp.OtlpSettings), or None without --otlp-topic."""
        from ..otlp import MappingSettings, OtlpSettings

        if not self.otlp_default_tenant.strip():
            raise ValueError("--otlp-default-tenant must not be blank")
        mapping = MappingSettings(default_tenant=self.otlp_default_tenant)
        if self.otlp_topic is None:
            OtlpSettings(encoding=self.otlp_encoding)  # validates the encoding
            return None
        return OtlpSettings(topics=frozenset({self.otlp_topic}), encoding=self.otlp_encoding, mapping=mapping)


def _default(name: str) -> Any:
    """The dataclass's default for a field: the one place worker defaults are written."""
    return WorkerConfig.__dataclass_fields__[name].default


def _env_or_default(env: str, name: str) -> Any:
    return os.environ.get(env, _default(name))


def build_parser() -> argparse.ArgumentParser:
    """The worker's flags; every default comes from `WorkerConfig` (or its environment variable)."""
    parser = argparse.ArgumentParser(
        prog="tokentrail worker", description="the faust stream-processing worker on Kafka"
    )
    parser.add_argument(
        "--kafka", default=os.environ.get(ENV_KAFKA, ""), help=f"bootstrap servers (default ${ENV_KAFKA})"
    )
    _add_kafka_security_flags(parser)
    parser.add_argument(
        "--clickhouse", metavar="DSN", help="ClickHouse DSN (default $TOKENTRAIL_CLICKHOUSE_URL, else embedded)"
    )
    for topic in ("events", "deadletter", "alerts", "control"):
        parser.add_argument(
            f"--{topic}-topic", default=_env_or_default(f"TOKENTRAIL_{topic.upper()}_TOPIC", f"{topic}_topic")
        )
    parser.add_argument(
        "--halt-on",
        default=",".join(_default("halt_on")),
        metavar="KINDS",
        help="comma-separated loop kinds that publish a halt for the trace (kill switch)",
    )
    parser.add_argument(
        "--group", default=_env_or_default("TOKENTRAIL_WORKER_GROUP", "group"), help="consumer group / faust app id"
    )
    parser.add_argument("--batch-size", type=int, default=_default("batch_size"))
    parser.add_argument(
        "--batch-within", type=float, default=_default("batch_within"), help="seconds to wait for a batch to fill"
    )
    parser.add_argument("--prices", default=_default("prices"), help="price overrides file")
    parser.add_argument("--budgets", default=_default("budgets"), help="spend budgets file (YAML/JSON)")
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=_default("session_timeout"),
        help="consumer-group session timeout in seconds",
    )
    parser.add_argument(
        "--insights-interval",
        type=float,
        default=_default("insights_interval"),
        help="seconds between variance/changes/budget runs (0: off)",
    )
    parser.add_argument(
        "--insights-leader-topic",
        default=_env_or_default("TOKENTRAIL_INSIGHTS_LEADER_TOPIC", "insights_leader_topic"),
        help="one-partition topic whose holder in <group>.insights-leader runs the insights (created if missing)",
    )
    parser.add_argument("--data-dir", default=_default("data_dir"))
    parser.add_argument("--allow-ephemeral-key", action="store_true", help="redact with a throwaway key (tests only)")
    parser.add_argument(
        "--inline-pipeline",
        action="store_true",
        help="run the pipeline in the worker's process instead of a child process (one core instead of two)",
    )
    parser.add_argument(
        "--pipeline-processes",
        type=int,
        metavar="N",
        default=_default("pipeline_processes"),
        help="run the pipeline in N child processes, partition p in child p %% N (default %(default)s)",
    )
    parser.add_argument(
        "--ts-window-days",
        metavar="BACK:AHEAD",
        default=_default("ts_window_days"),
        help="accept event times from BACK days before to AHEAD days after the worker reads them "
        f"(default {_default('ts_window_days')}); others are dead letters (ts_out_of_range)",
    )
    parser.add_argument(
        "--store-max-attempts",
        type=int,
        default=_default("store_max_attempts"),
        metavar="N",
        help="tries per insert while ClickHouse fails; then exit non-zero, nothing acknowledged "
        f"(default {_default('store_max_attempts')}; 0: retry forever)",
    )
    parser.add_argument(
        "--tenant-topic",
        action="append",
        default=[],
        metavar="TOPIC=TENANT",
        help="also read TOPIC; its events must name TENANT, others are dead letters (tenant_mismatch). "
        "Repeatable. With ACLs letting only that tenant's principal write TOPIC (docs/security.md)",
    )
    parser.add_argument(
        "--tenant-topics-file", metavar="PATH", help="TOPIC=TENANT lines (# comments), as many --tenant-topic"
    )
    parser.add_argument(
        "--otlp-topic",
        default=os.environ.get("TOKENTRAIL_OTLP_TOPIC") or None,
        metavar="TOPIC",
        help="also consume OpenTelemetry GenAI spans from this topic (the collector's kafka exporter; "
        "default $TOKENTRAIL_OTLP_TOPIC, else off)",
    )
    parser.add_argument(
        "--otlp-encoding",
        choices=("auto", "proto", "json"),
        default=_default("otlp_encoding"),
        help="of the OTLP topic's messages: otlp_proto, otlp_json, or detected per message (auto)",
    )
    parser.add_argument(
        "--otlp-default-tenant",
        default=_env_or_default("TOKENTRAIL_OTLP_DEFAULT_TENANT", "otlp_default_tenant"),
        help="tenant of spans without a tokentrail.tenant attribute",
    )
    _add_health_flags(parser)
    parser.add_argument("--loglevel", default=_default("loglevel"))
    return parser


def _add_health_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("metrics and readiness", "docs/operations.md")
    group.add_argument(
        "--metrics-port",
        type=int,
        default=os.environ.get(ENV_METRICS_PORT) or None,
        metavar="PORT",
        help=f"serve /metrics (Prometheus), /ready and /live on PORT (default ${ENV_METRICS_PORT}, else off)",
    )
    group.add_argument(
        "--metrics-host",
        default=_env_or_default("TOKENTRAIL_METRICS_HOST", "metrics_host"),
        metavar="ADDRESS",
        help=f"address the metrics server binds (default {_default('metrics_host')}; 0.0.0.0 in a container)",
    )
    group.add_argument(
        "--ready-sink-failing-seconds",
        type=float,
        default=_default("ready_sink_failing_seconds"),
        metavar="S",
        help="/ready says 503 once ClickHouse inserts have failed, or one insert has hung, for S seconds "
        f"(default {_default('ready_sink_failing_seconds'):g})",
    )
    group.add_argument(
        "--ready-lag-growing-seconds",
        type=float,
        default=_default("ready_lag_growing_seconds"),
        metavar="S",
        help="/ready says 503 once a partition's consumer lag has grown, or stood above 0 with nothing "
        f"committed, for S seconds (default {_default('ready_lag_growing_seconds'):g}; 0: lag not checked)",
    )


# flag -> KafkaSecurity field; each defaults to its TOKENTRAIL_KAFKA_* variable (docs/security.md#transport).
# There is no password flag: a password on a command line is visible to every user of the machine.
_SECURITY_FLAGS = {
    "--kafka-security-protocol": ("protocol", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    "--kafka-sasl-mechanism": ("sasl_mechanism", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
    "--kafka-sasl-username": ("username", "SASL user"),
    "--kafka-sasl-password-file": ("password_file", "file holding the SASL password"),
    "--kafka-ssl-ca-file": ("ca_file", "PEM CA that signed the brokers' certificates"),
    "--kafka-ssl-cert-file": ("cert_file", "PEM client certificate (brokers requiring TLS client auth)"),
    "--kafka-ssl-key-file": ("key_file", "PEM key of the client certificate"),
}


def _add_kafka_security_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Kafka security", "each flag defaults to its environment variable")
    for flag, (name, text) in _SECURITY_FLAGS.items():
        group.add_argument(flag, dest=f"kafka_{name}", metavar="VALUE", help=f"{text} (${KAFKA_SECURITY_ENV[name]})")


def parse_args(argv: Sequence[str]) -> WorkerConfig:
    """`tokentrail worker` flags -> a validated `WorkerConfig` (ValueError names the fix)."""
    args = build_parser().parse_args(list(argv))
    fields = {name: getattr(args, name) for name in WorkerConfig.__dataclass_fields__ if hasattr(args, name)}
    fields["halt_on"] = tuple(k for k in args.halt_on.split(",") if k)
    fields["kafka_security"] = kafka_security_from_env(
        **{name: getattr(args, f"kafka_{name}") for name, _ in _SECURITY_FLAGS.values()}
    )
    from ..tenant_binding import load_tenant_topics

    from_file = load_tenant_topics(args.tenant_topics_file) if args.tenant_topics_file else []
    fields["tenant_topics"] = tuple(args.tenant_topic) + tuple(from_file)
    return WorkerConfig(**fields)


def require_evidence_key(config: WorkerConfig) -> None:
    """No evidence key, no worker (ValueError names the fix): a worker without one would store
    events whose content no one can ever verify. `--allow-ephemeral-key` (tests) accepts a
    throwaway key, with an embedded store only, as for the redaction key."""
    from tokentrail.redaction.settings import read_secret
    from tokentrail.sinks import resolve_dsn

    from ..evidence.receipts import KEY_ENV, KEY_FILE_ENV, MIN_KEY_CHARS, load_evidence_key
    from ..runtime import is_embedded

    if read_secret(os.environ, KEY_ENV, KEY_FILE_ENV) is None:
        if not config.allow_ephemeral_key:
            raise ValueError(
                f"no evidence key: set {KEY_ENV} (at least {MIN_KEY_CHARS} characters) or {KEY_FILE_ENV} "
                "(a file holding it); the worker stores a keyed hash of every message with it (docs/evidence.md)"
            )
        if not is_embedded(resolve_dsn(config.clickhouse)):
            raise ValueError(
                f"--allow-ephemeral-key with a ClickHouse server: set {KEY_ENV} or {KEY_FILE_ENV}; content hashes "
                "under a throwaway key could never be verified"
            )
    load_evidence_key(config.allow_ephemeral_key)  # a key that is set but unusable fails here, naming why
