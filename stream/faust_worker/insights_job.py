"""Variance, silent changes and budget breaches on a timer, on the one worker that leads the insights.

Leader: the member of the consumer group ``<group>.insights-leader`` that is assigned the single
partition of the leader topic (``--insights-leader-topic``, default ``tokentrail.insights-leader``,
or ``TOKENTRAIL_INSIGHTS_LEADER_TOPIC``; created with one partition if missing). Kafka's group
protocol gives a partition to one member at a time: a rebalance revokes it from the old owner before
giving it to the new one, and a member that stops heartbeating loses it after the session timeout.
Why not "whoever consumes partition 0 of the events topic": faust's assignment moves partitions
during every rebalance of the events group, when two workers (the old owner not yet revoked, the new
one assigned) or none can think they hold it; the leader group is tiny, rebalances only when workers
join or leave, and nothing else depends on it.

A leader that was paused past its session (a long GC, a stuck host) may start one more run before
it learns it lost the partition. That run is harmless: everything it writes has a deterministic key
(variance rows, change and breach ids, first-seen and spend rows), alerts carry stable ids, and the
watermark only moves forward (max). What keeps runs neither repeated nor skipped across restarts and
leader changes is the watermark in the store (`tokentrail.stream.insights.watermark`): each run
starts from it minus the lateness margin, whoever ran the previous one.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .config import WorkerConfig
from .messages import to_json

log = logging.getLogger("tokentrail.worker")


class KafkaLeadership:
    """Am I the insights leader? True while this member of `group` is assigned partition 0 of `topic`.

    A background thread polls the consumer (the group protocol needs it: revocations and heartbeat
    results are delivered by poll); nothing is ever read from the topic. Starts on the first
    `is_leader()` call; `close()` leaves the group at once, so another member takes over without
    waiting for the session timeout.
    """

    POLL_SECONDS = 0.5

    def __init__(self, config: WorkerConfig, *, topic: str | None = None, group: str | None = None) -> None:
        self.config = config
        self.topic: str = topic or config.insights_leader_topic
        self.group = group or f"{config.group}.insights-leader"
        self._leading = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def is_leader(self) -> bool:
        self._start()
        return self._leading.is_set() and not self._stop.is_set()

    def wait(self, timeout: float) -> bool:
        """Block until this member leads or `timeout` passes; whether it leads."""
        self._start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.is_leader():
            time.sleep(0.05)
        return self.is_leader()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            try:
                self._ensure_topic()
            except Exception as exc:  # Kafka unreachable: not the leader now, try again on the next tick
                log.warning("insights leader topic %s not reachable (%s); not leading for now", self.topic, exc)
                return
            self._thread = threading.Thread(target=self._poll, name="insights-leadership", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def _ensure_topic(self) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # re-exported, untyped

        from .security import librdkafka_config

        admin = AdminClient(librdkafka_config(self.config.kafka, self.config.kafka_security))
        if self.topic in admin.list_topics(timeout=10).topics:
            return
        for future in admin.create_topics([NewTopic(self.topic, num_partitions=1)]).values():
            try:
                future.result(15)
            except Exception as exc:  # a racing worker created it first: fine; anything else surfaces on subscribe
                log.info("insights leader topic %s: %s", self.topic, exc)

    def _poll(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        from .security import librdkafka_config

        session_ms = int(self.config.session_timeout * 1000)
        consumer = Consumer(
            librdkafka_config(
                self.config.kafka,
                self.config.kafka_security,
                **{
                    "group.id": self.group,
                    "enable.auto.commit": False,
                    "session.timeout.ms": session_ms,
                    "heartbeat.interval.ms": max(session_ms // 5, 100),
                    # Incremental rebalances: a worker joining or leaving does not move the leadership
                    # unless the leader is the one leaving (assignments are sticky, revoked before moved).
                    "partition.assignment.strategy": "cooperative-sticky",
                },
            )
        )
        mine = TopicPartition(self.topic, 0)

        def holds_mine(partitions: list[Any]) -> bool:
            return any((p.topic, p.partition) == (mine.topic, mine.partition) for p in partitions)

        def assigned(_: Any, partitions: list[Any]) -> None:
            if holds_mine(partitions):
                log.info("insights: this worker leads (%s partition 0 assigned)", self.topic)
                self._leading.set()

        def revoked(_: Any, partitions: list[Any]) -> None:
            if self._leading.is_set() and holds_mine(partitions):
                log.info("insights: this worker no longer leads")
                self._leading.clear()

        consumer.subscribe([self.topic], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
        try:
            while not self._stop.is_set():
                consumer.poll(self.POLL_SECONDS)
        finally:
            self._leading.clear()
            consumer.close()  # leaves the group: the next member is assigned at once

    def close(self) -> None:
        """Stop leading and leave the group (idempotent)."""
        self._stop.set()
        self._leading.clear()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)


class InsightsJob:
    """Variance, silent changes and budget breaches, from the store, incrementally from its watermark.

    New changes and breaches go to the alerts topic before they are stored (at-least-once; each
    alert carries a stable id). Each run re-reads a lateness margin so late events are counted.
    `on_run(seconds, succeeded)`, if given, is called after every run (metrics).
    """

    LATENESS = 600.0  # seconds: a call arriving this late after its window closed is still counted
    FIRST_LOOKBACK = 86_400.0  # seconds of variance and budgets the first run (no watermark) covers

    def __init__(
        self,
        client: Any,
        config: WorkerConfig,
        *,
        on_run: Callable[[float, bool], None] | None = None,
        database: str = "tokentrail",
    ) -> None:
        from confluent_kafka import Producer

        from .security import librdkafka_config

        self.client = client
        self.config = config
        self.on_run = on_run
        self.database = database
        self.producer = Producer(librdkafka_config(config.kafka, config.kafka_security, **{"linger.ms": 5}))
        self._sink: Any = None  # one sink for every run: it caches the tables' shapes

    def run_once(self) -> None:
        """One tick's work: the insights, then the dashboards' rollups."""
        self.run_at(None)
        self.refresh_rollups()

    def run_at(self, now: datetime | None) -> Any:
        """One insights run up to `now` (None: the wall clock); its InsightResult, or None if it failed."""
        from datetime import timedelta

        from tokentrail.sinks.writer import ClickHouseSink

        from ..insights import run_from_watermark

        started, result = time.perf_counter(), None
        try:
            self._sink = self._sink or ClickHouseSink(self.client, database=self.database)
            result = run_from_watermark(
                self.client,
                database=self.database,
                now=now,
                lateness=timedelta(seconds=self.LATENESS),
                first_lookback=timedelta(seconds=self.FIRST_LOOKBACK),
                budgets=self.config.budgets,
                publish=self.publish,
                sink=self._sink,
            )
        except Exception:
            log.exception("insights job failed; the next run starts from the same watermark")
        if self.on_run is not None:
            self.on_run(time.perf_counter() - started, result is not None)
        return result

    def refresh_rollups(self) -> None:
        """The dashboards' rollups, recomputed for the buckets new rows marked (docs/storage.md).

        Runs beside the insights on the same tick (one worker runs it); a failure only leaves the
        panels reading raw rows until the next tick succeeds.
        """
        from tokentrail.sinks import rollups

        try:
            rollups.refresh(self.client)
        except Exception:
            log.exception("rollup refresh failed; retrying on the next tick")

    def publish(self, alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            self.producer.produce(self.config.alerts_topic, to_json(alert), str(alert.get("id", "")).encode())
        if self.producer.flush(30) != 0:
            raise RuntimeError("alerts were not acknowledged by Kafka")


class InsightsTimer:
    """Runs the insights job on its timer, on the insights leader only (`KafkaLeadership`)."""

    def __init__(
        self, app: Any, config: WorkerConfig, client: Any, *, on_run: Callable[[float, bool], None] | None = None
    ) -> None:
        self.app, self.config = app, config
        self.job = InsightsJob(client, config, on_run=on_run)
        self.leadership = KafkaLeadership(config)
        on_shutdown = getattr(app, "on_before_shutdown", None)
        if on_shutdown is not None:
            on_shutdown.connect(self.stop)

    def stop(self, app: Any = None, **kwargs: Any) -> None:
        """Leave the leader group as the worker shuts down, so another worker leads at once."""
        self.leadership.close()

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, self.leadership.is_leader):  # the first call creates the topic
            return
        await loop.run_in_executor(None, self.job.run_once)
