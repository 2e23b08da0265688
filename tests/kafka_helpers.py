"""Reading back what tests produced to Kafka (tests/ is on sys.path through its conftest.py)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[tuple[bytes | None, bytes]]:
    """Every (key, value) on ``topic`` from the start, once ``expected`` arrived or at ``timeout``.

    After ``expected`` it keeps reading for one more second: more than expected would mean
    duplicates, and the test must see them. A fresh group each call, so nothing is committed.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{topic}-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[tuple[bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out += [(m.key(), m.value()) for m in consumer.consume(5000, 0.5) if not m.error()]
        out += [(m.key(), m.value()) for m in consumer.consume(5000, 1.0) if not m.error()]
    finally:
        consumer.close()
    return out


def consume_events(
    bootstrap: str, topic: str, expected: int, timeout: float = 60.0
) -> list[tuple[str, dict[str, Any]]]:
    """:func:`consume_all` for topics of JSON events keyed by trace_id: (trace_id, event) pairs."""
    return [
        ((key or b"").decode(), json.loads(value)) for key, value in consume_all(bootstrap, topic, expected, timeout)
    ]
