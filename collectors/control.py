"""The kill switch: the processor publishes halt records for looping traces; collectors honour them.

Opt-in. A `HaltListener` reads the compacted control topic (`tokentrail.control`) on a daemon
thread from its beginning, so a process that starts late still knows every recent halt, and keeps
the set of halted (tenant, trace) pairs in memory (bounded by age). The check on the caller's path
is one dict lookup.

Tenants are kept apart: a halt names the tenant whose trace looped, and a collector honours it
only for a trace of that tenant. Two tenants may use the same trace id (ids come from the
services, or from an incoming request); halting by trace id alone let one tenant's loop stop
another's agent. The record is keyed by `halt_key(tenant, trace_id)` (tenant, NUL, trace id: a
tenant label cannot hold NUL), so compaction keeps one record per tenant's trace, and the record
carries both fields too.

Compatibility, for a rolling upgrade:
- a halt from an older worker is keyed by the trace id alone and names no tenant; it cannot say
  whose trace it is, so this listener ignores it (a missed halt, never a wrong one);
- an older collector reads a new record's key as a trace id, which matches none of its traces:
  it halts nothing until upgraded (again missed, never wrong).
So the kill switch works once the worker and its collectors both run this version; nothing is
halted wrongly on the way there. Events on the events topic keep their key (the trace id alone,
collectors/kafka.py): partitioning, and so the worker's per-trace state placement, is unchanged.
"""

from __future__ import annotations

import json
import threading
import time
import unicodedata
import uuid
from typing import Any

from ._internal import logger, rate_limited
from .kafka_security import KafkaSecurity, access_failure

DEFAULT_CONTROL_TOPIC = "tokentrail.control"


def _nfc(label: str) -> str:
    # The processor stores labels NFC-normalised; a collector's own tenant may not be.
    return label if unicodedata.is_normalized("NFC", label) else unicodedata.normalize("NFC", label)


def halt_key(tenant: str, trace_id: str) -> bytes:
    """The control topic's message key for a halt of `tenant`'s trace `trace_id`."""
    return f"{_nfc(tenant)}\x00{trace_id}".encode()


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
        self,
        bootstrap_servers: str,
        topic: str = DEFAULT_CONTROL_TOPIC,
        max_age_s: float = 24 * 3600,
        *,
        security: KafkaSecurity | None = None,
    ) -> None:
        from confluent_kafka import Consumer

        if not bootstrap_servers:
            raise ValueError("the kill switch needs Kafka: pass bootstrap_servers='host:9092'")
        self.topic = topic
        self.max_age_s = max_age_s
        self._halted: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}  # (tenant, trace_id) ->
        self._stop = threading.Event()
        self._security = security or KafkaSecurity()
        self._refused: str | None = None
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                # Every process reads the whole (compacted) topic: a private group, nothing committed.
                "group.id": f"tokentrail-halts-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 2000,
                "logger": logger,
                "error_cb": self._on_error,
                **self._security.librdkafka_config(),
            }
        )
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, name="tokentrail-halts", daemon=True)
        self._thread.start()

    def halted(self, trace_id: str, tenant: str) -> dict[str, Any] | None:
        """The halt record for `tenant`'s trace `trace_id`, or None (a halt of another tenant's
        trace with the same id is not this trace's)."""
        if not self._halted:  # the common case, on every model call's thread: nothing is halted
            return None
        entry = self._halted.get((_nfc(tenant), trace_id))
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

    def _on_error(self, err: Any) -> None:
        refused = access_failure(err.name(), err.str(), self._security)
        if refused is not None and self._refused is None:  # once: librdkafka repeats it every reconnect
            self._refused = refused
            logger.error("tokentrail: the kill switch cannot read %s: %s", self.topic, refused)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        tenant, sep, trace_id = key.decode("utf-8", "replace").partition("\x00")
        if not sep:  # an older worker's halt, keyed by trace alone: whose trace it is is unknown
            rate_limited.warning("halt_without_tenant", "tokentrail: ignoring a halt record that names no tenant")
            return
        pair = (tenant, trace_id)
        if value is None:  # a tombstone lifts the halt
            self._halted.pop(pair, None)
            return
        record = json.loads(value)
        if record.get("halt") and record.get("tenant") == tenant and record.get("trace_id") == trace_id:
            self._halted[pair] = (time.monotonic(), record)
        else:
            self._halted.pop(pair, None)

    def _forget_old(self) -> None:
        horizon = time.monotonic() - self.max_age_s
        for pair in [p for p, (seen, _) in self._halted.items() if seen < horizon]:
            del self._halted[pair]
