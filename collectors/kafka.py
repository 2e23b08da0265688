"""The Kafka transport: confluent-kafka producer, keyed by trace_id, with a disk spool behind it.

Runs only on the collector's background thread. An event leaves memory in one of three ways:
delivered (Kafka acknowledged it), spooled (delivery failed, the producer queue was full, the
broker is down, or it was still in flight at close), or dropped because the spool itself is full
(`spool_full`). While the broker is down, new events go straight to the spool; every
`probe_interval` the thread asks the broker for metadata, and once it answers the spool is
replayed oldest segment first.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from ._internal import logger, rate_limited
from .kafka_security import access_failure
from .settings import KafkaSettings
from .spool import Spool
from .transports import Record

# Errors after which we stop producing and spool until the broker answers again.
_BROKER_DOWN = {KafkaError._ALL_BROKERS_DOWN, KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT}


def default_spool_dir(topic: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tokentrail" / "spool" / topic


class KafkaTransport:
    """At-least-once delivery of encoded events to one topic; never blocks the caller."""

    def __init__(self, settings: KafkaSettings | None = None, **overrides: Any) -> None:
        self.settings = settings or KafkaSettings.from_env(**overrides)
        self.topic = self.settings.topic
        self.spool = Spool(self.settings.spool_dir or default_spool_dir(self.topic), self.settings.spool_max_bytes)
        self._producer = self._make_producer()  # a bad setting fails here, at configuration time
        self._inflight: dict[int, bytes] = {}
        self._seq = 0
        self._healthy = True
        self._access_error: str | None = None  # bad credentials or an untrusted certificate: see _on_error
        self._next_probe = 0.0
        self._counts: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()

    def _make_producer(self) -> Producer:
        config: dict[str, Any] = {
            "bootstrap.servers": self.settings.bootstrap_servers,
            "client.id": "tokentrail-collector",
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "enable.idempotence": True,
            # Java's partitioner: Kafka Streams, faust (aiokafka) and other languages' clients agree
            # on the partition of a trace_id, so the worker's per-trace state sits with its events.
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 100_000,
            "queue.buffering.max.kbytes": 128 * 1024,
            "message.timeout.ms": self.settings.message_timeout_ms,
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 1_000,
            "error_cb": self._on_error,
            "logger": logger,
        }
        config.update(self.settings.security.librdkafka_config())
        config.update(self.settings.producer_config)
        try:
            return Producer(config)
        except KafkaException as exc:
            raise ValueError(f"invalid Kafka producer configuration: {exc}") from exc

    # -- Transport ------------------------------------------------------------------------------

    def export(self, batch: Sequence[Record]) -> None:
        self._producer.poll(0)
        if not self._healthy:
            self._to_spool([value for _, value in batch])
            return
        for key, value in batch:
            self._produce(key, value)

    def tick(self) -> None:
        """Serve delivery reports; while down, probe the broker; when up, replay the spool."""
        self._producer.poll(0)
        now = time.monotonic()
        if not self._healthy and now >= self._next_probe:
            self._next_probe = now + self.settings.probe_interval
            self._healthy = self._broker_answers()
            if self._healthy:
                self._access_error = None
                logger.info("tokentrail: Kafka is reachable again; replaying the spool")
        if self._healthy and self.spool.has_pending():
            self._replay_one_segment()

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        self.tick()
        while self._healthy and self.spool.has_pending() and time.monotonic() < deadline:
            if not self._replay_one_segment():
                break
        remaining = self._producer.flush(max(0.0, deadline - time.monotonic()))
        return remaining == 0 and not self.spool.has_pending()

    def close(self, timeout: float) -> None:
        self.flush(timeout)
        self._producer.poll(0)
        if self._inflight:
            # Still queued at exit: the process is going away, so keep them on disk for the next run.
            leftover = list(self._inflight.values())
            self._inflight.clear()
            self._to_spool(leftover)
        self.spool.close()

    def stats(self) -> dict[str, Any]:
        return {
            **self._counts,
            "in_flight": len(self._inflight),
            "spool_bytes": self.spool.size_bytes,
            "broker_up": self._healthy,
            "kafka_access_error": self._access_error,
            "dropped": dict(self._dropped),
        }

    def after_fork(self) -> None:
        # librdkafka's threads do not survive fork: the child needs its own producer.
        self._producer = self._make_producer()
        self._inflight = {}
        self.spool.after_fork()

    # -- internals ------------------------------------------------------------------------------

    def _produce(self, key: str, value: bytes, replayed: bool = False) -> None:
        self._seq += 1
        seq = self._seq
        self._inflight[seq] = value
        callback = partial(self._on_delivery, seq, replayed)
        try:
            self._producer.produce(self.topic, value, key, on_delivery=callback)
        except BufferError:
            self._producer.poll(0)  # serve reports to make room, then try once more
            try:
                self._producer.produce(self.topic, value, key, on_delivery=callback)
            except BufferError:
                self._inflight.pop(seq, None)
                self._to_spool([value])
        except KafkaException as exc:
            self._inflight.pop(seq, None)
            rate_limited.warning("produce", "tokentrail: produce failed: %s", exc)
            self._to_spool([value])

    def _on_delivery(self, seq: int, replayed: bool, err: KafkaError | None, msg: Any) -> None:
        value = self._inflight.pop(seq, None)
        if err is None:
            self._counts["delivered"] += 1
            if replayed:
                self._counts["replayed"] += 1
            return
        if err.code() in _BROKER_DOWN:
            self._mark_down(err)
        else:
            rate_limited.warning("delivery", "tokentrail: delivery failed: %s", err)
        if value is not None:
            self._to_spool([value])

    def _on_error(self, err: KafkaError) -> None:
        refused = access_failure(err.name(), err.str(), self.settings.security)
        if refused is not None:
            # Retrying will not fix this: say it loudly once, and keep saying it in stats().
            if self._access_error is None:
                logger.error("tokentrail: %s. Events go to the spool at %s meanwhile", refused, self.spool.directory)
            self._access_error = refused
            self._mark_down(err)
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._mark_down(err)

    def _mark_down(self, err: KafkaError) -> None:
        if self._healthy:
            rate_limited.warning(
                "broker_down", "tokentrail: Kafka unreachable (%s); spooling to %s", err, self.spool.directory
            )
        self._healthy = False
        self._next_probe = time.monotonic() + self.settings.probe_interval

    def _broker_answers(self) -> bool:
        try:
            metadata = self._producer.list_topics(timeout=1.0)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def _to_spool(self, values: list[bytes]) -> None:
        spooled, refused = self.spool.append(values)
        self._counts["spooled"] += spooled
        if refused:
            self._dropped["spool_full"] += refused
            rate_limited.warning("spool_full", "tokentrail: spool full at %s; dropping events", self.spool.directory)

    def _replay_one_segment(self) -> bool:
        segment = self.spool.claim_oldest()
        if segment is None:
            return False
        for value in segment.values():
            try:
                key = json.loads(value)["trace_id"]
            except (ValueError, KeyError, TypeError):
                key = None
            self._produce(key, value, replayed=True)
            self._producer.poll(0)
        segment.done()  # anything that now fails again comes back to the spool through its callback
        return True
