"""The benchmark's traffic and its checks: generator lines, producing them, what the store must hold."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ENV_NLP = "TOKENTRAIL_REDACTION_NLP_MODEL"


def generate_lines(events: int, seed: int) -> tuple[list[bytes], Any]:
    """``events`` generator lines over the past hour, and the generator's ``Truth`` about them."""
    from tokentrail.stream.synthetic import GeneratorConfig, Truth, iter_lines

    duration = timedelta(hours=1)
    config = GeneratorConfig(seed=seed, events=events, start=datetime.now(UTC) - duration, duration=duration)
    truth = Truth(config.seed, config.events)
    lines = [line.encode() for line in iter_lines(config, truth)]
    return lines, truth


def expected_store(truth: Any) -> dict[str, int]:
    """What the store must hold after the worker drained every generated line (see STORE_CHECKS)."""
    return {
        "stored": truth.valid_events,
        "distinct": truth.valid_events,
        "dead": sum(truth.malformed.values()),
        "deliveries": truth.valid_events + truth.redeliveries,
    }


# One query per key of expected_store(): FINAL collapses the re-deliveries the generator made.
STORE_CHECKS = {
    "stored": "SELECT count() FROM tokentrail.events FINAL",
    "distinct": "SELECT uniqExact(event_id) FROM tokentrail.events",
    "dead": "SELECT count() FROM tokentrail.deadletter FINAL",
    "deliveries": "SELECT count() FROM (SELECT DISTINCT event_id, source FROM tokentrail.receipts)",
}


def trace_key(line: bytes) -> bytes | None:
    """The Kafka key the collector would give the line: its trace_id (None for malformed lines)."""
    try:
        value = json.loads(line).get("trace_id")
    except (ValueError, AttributeError):
        return None
    return str(value).encode() if value else None


def produce_lines(bootstrap: str, topic: str, lines: list[bytes]) -> float:
    """Produce every line keyed by trace; returns the seconds it took until all were acknowledged."""
    from confluent_kafka import Producer

    # The collector's partitioner (murmur2, as faust's table partitioner expects), batching and compression.
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 200_000,
        }
    )
    t0 = time.perf_counter()
    for line in lines:
        while True:
            try:
                producer.produce(topic, line, trace_key(line))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError("could not produce every line to Kafka")
    return time.perf_counter() - t0


def read_store(store: Path, queries: dict[str, str]) -> dict[str, Any]:
    """One value per query from the embedded store (opened after the worker exited, as chDB needs)."""
    from tokentrail.sinks import close_embedded, connect

    close_embedded()
    client = connect(f"chdb://{store}")
    try:
        return {name: client.query(sql).result_rows[0][0] for name, sql in queries.items()}
    finally:
        close_embedded()


def redactor_description() -> str:
    """Which redactor the worker will build, and with what NER setting."""
    from tokentrail.stream.runtime import make_redactor

    redactor = make_redactor(allow_ephemeral_key=True)
    if redactor is None:
        return "none installed (Redact is a pass-through)"
    return f"{type(redactor).__name__}, {ENV_NLP}={os.environ.get(ENV_NLP, '(unset: auto)')}"
