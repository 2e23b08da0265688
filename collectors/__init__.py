"""tokentrail's collector: what a service imports to emit LLM telemetry.

    import tokentrail.collectors as tt
    tt.init(service="order-agent", tenant="northwind", kafka="kafka:9092")
    with tt.trace(feature="order-support"):
        with tt.model_call(provider="openai", model="gpt-4o", messages=msgs) as call:
            resp = client.chat.completions.create(...)
            call.finish(response_model=resp.model, output=..., usage=...)

Until `init()` runs, every function here is a cheap no-op. Importing this package pulls in only
pydantic-free, stdlib-and-confluent-kafka code; the contract models live in `.events`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .client import Collector, ModelCall, ToolCall, TraceScope
from .control import TraceHalted
from .kafka_security import KafkaSecurity
from .noop import NonRecordingCollector
from .settings import (
    ENV_BOOTSTRAP,
    ENV_ENVIRONMENT,
    ENV_SERVICE,
    ENV_TENANT,
    CollectorSettings,
    KafkaSettings,
    env_default,
)
from .transports import ConsoleTransport, InMemoryTransport, JsonlFileTransport, Transport

__all__ = [
    "Collector",
    "CollectorSettings",
    "ConsoleTransport",
    "InMemoryTransport",
    "JsonlFileTransport",
    "KafkaSecurity",
    "KafkaSettings",
    "ModelCall",
    "ToolCall",
    "TraceHalted",
    "TraceScope",
    "Transport",
    "close",
    "flush",
    "get_collector",
    "init",
    "model_call",
    "stats",
    "tool_call",
    "trace",
]

_collector: Collector | NonRecordingCollector = NonRecordingCollector()


def init(
    *,
    service: str | None = None,
    environment: str | None = None,
    tenant: str | None = None,
    kafka: str | None = None,
    topic: str | None = None,
    spool_dir: str | Path | None = None,
    jsonl_path: str | Path | None = None,
    transport: Transport | None = None,
    settings: CollectorSettings | None = None,
    kafka_security: KafkaSecurity | None = None,
) -> Collector:
    """Configure the module-level collector. Raises ValueError (at startup, not later) on bad settings.

    Transport: the one given; else a JSON Lines file if `jsonl_path`; else Kafka at `kafka` or
    $TOKENTRAIL_KAFKA_BOOTSTRAP, secured by `kafka_security` (SASL/TLS), else by the
    TOKENTRAIL_KAFKA_SECURITY_PROTOCOL, _SASL_* and _SSL_* variables (docs/security.md#transport).
    """
    global _collector
    service = service or env_default(ENV_SERVICE)
    if not service:
        raise ValueError(f"tokentrail.collectors.init needs service='your-service-name' (or set {ENV_SERVICE})")
    if transport is None:
        if jsonl_path is not None:
            transport = JsonlFileTransport(jsonl_path)
        else:
            from .kafka import KafkaTransport

            if not (kafka or env_default(ENV_BOOTSTRAP)):
                raise ValueError(
                    "tokentrail.collectors.init needs a destination: kafka='host:9092' (or set "
                    f"{ENV_BOOTSTRAP}), jsonl_path='events.jsonl', or transport=..."
                )
            transport = KafkaTransport(
                KafkaSettings.from_env(
                    bootstrap_servers=kafka, topic=topic, spool_dir=spool_dir, security=kafka_security
                )
            )
    previous = _collector
    _collector = Collector(
        service=service,
        transport=transport,
        environment=environment or env_default(ENV_ENVIRONMENT, "production") or "production",
        tenant=tenant or env_default(ENV_TENANT),
        settings=settings,
    )
    previous.close()
    return _collector


def get_collector() -> Collector | NonRecordingCollector:
    return _collector


def trace(**kwargs: Any) -> Any:
    return _collector.trace(**kwargs)


def model_call(**kwargs: Any) -> Any:
    return _collector.model_call(**kwargs)


def tool_call(name: Any = None, **kwargs: Any) -> Any:
    return _collector.tool_call(name, **kwargs)


def flush(timeout: float = 5.0) -> bool:
    return _collector.flush(timeout)


def close(timeout: float = 5.0) -> bool:
    return _collector.close(timeout)


def stats() -> dict[str, Any]:
    return _collector.stats()
