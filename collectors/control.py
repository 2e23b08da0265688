"""The kill switch: the processor publishes halt records for looping traces; collectors honour them.

Opt-in. A `HaltListener` reads the compacted control topic (`tokentrail.control`, keyed by
trace_id) on a daemon thread from its beginning, so a process that starts late still knows every
recent halt, and keeps the set of halted trace ids in memory (bounded by age). The check on the
caller's path is one dict lookup.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from ._internal import logger, rate_limited

DEFAULT_CONTROL_TOPIC = "tokentrail.control"


class TraceHalted(RuntimeError):
    """Raised by `model_call` for a trace the processor has halted (a detected token-spend loop)."""

    def __init__(self, trace_id: str, record: dict[str, Any]) -> None:
        self.trace_id = trace_id
        self.record = record
        kind = record.get("kind", "loop")
        super().__init__(
            f"trace {trace_id} was halted by tokentrail: {kind} detected after {record.get('repeats', '?')} repeats"
        )


class HaltListener:
    """Consumes the control topic in the background and answers `halted(trace_id)`."""

    def __init__(
        self, bootstrap_servers: str, topic: str = DEFAULT_CONTROL_TOPIC, max_age_s: float = 24 * 3600
    ) -> None:
        from confluent_kafka import Consumer

        if not bootstrap_servers:
            raise ValueError("the kill switch needs Kafka: pass bootstrap_servers='host:9092'")
        self.topic = topic
        self.max_age_s = max_age_s
        self._halted: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                # Every process reads the whole (compacted) topic: a private group, nothing committed.
                "group.id": f"tokentrail-halts-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 2000,
                "logger": logger,
            }
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, name="tokentrail-halts", daemon=True)
        self._thread.start()

    def halted(self, trace_id: str) -> dict[str, Any] | None:
        """The halt record for the trace, or None."""
        entry = self._halted.get(trace_id)
        return entry[1] if entry is not None else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for message in self._consumer.consume(num_messages=500, timeout=0.2):
                    if message.error() is None:
                        self._apply(message.key(), message.value())
                self._forget_old()
            except Exception:
                rate_limited.warning("halts", "tokentrail: kill-switch listener error", exc_info=True)
                time.sleep(1)
        self._consumer.close()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        trace_id = key.decode("utf-8", "replace")
        if value is None:  # a tombstone lifts the halt
            self._halted.pop(trace_id, None)
            return
        record = json.loads(value)
        if record.get("halt"):
            self._halted[trace_id] = (time.monotonic(), record)
        else:
            self._halted.pop(trace_id, None)

    def _forget_old(self) -> None:
        horizon = time.monotonic() - self.max_age_s
        for trace_id in [t for t, (seen, _) in self._halted.items() if seen < horizon]:
            del self._halted[trace_id]
