"""The worker's side of readiness: gather the signals readiness.py judges, and sample consumer lag.

Lag is the broker's truth, not faust's bookkeeping: a small confluent-kafka consumer of the same
group (it never subscribes, so it never joins the group) reads each assigned partition's end
offset and the group's committed offset, off the event loop, every `sample_seconds`. Only the
partitions of the topics the agent reads are sampled (not the loop-state changelog). A timer of
its own, twice a second, beats the heart `/live` listens to: an event loop that stops running timers
is not alive. Not the sampler: it waits on the broker (up to 10 s per request), and a slow broker
must not make a healthy loop look dead and get the worker restarted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .readiness import Readiness, Signals, Thresholds, Verdict, describe

if TYPE_CHECKING:
    from .app import Outputs
    from .config import WorkerConfig
    from .metrics import WorkerMetrics

__all__ = ["WorkerProbe", "pipeline_process_alive", "serve_health"]

log = logging.getLogger("tokentrail.worker")

HEARTBEAT_SECONDS = 0.5  # under 1 s, mode logs no "Timer woke up too late" line each time the loop is busy
LIVE_SILENT_SECONDS = 30.0  # a loop that ran no timer for this long is blocked: /live says 503


def pipeline_process_alive(engine: Any) -> bool:
    """Every pipeline process (stream/pipeline_process.py) still runs."""
    return bool(engine.alive())


class WorkerProbe:
    """Signals for /ready and /live, lag sampling, and the ready gauge."""

    def __init__(
        self, app: Any, config: WorkerConfig, metrics: WorkerMetrics, outputs: Outputs, engine: Any = None
    ) -> None:
        self.app, self.config, self.metrics, self.outputs, self.engine = app, config, metrics, outputs, engine
        self.readiness = Readiness(Thresholds(config.ready_sink_failing_seconds, config.ready_lag_growing_seconds))
        window = config.ready_lag_growing_seconds
        # Enough samples per window for "never went down" to mean something; no busier than twice a second.
        self.sample_seconds = min(10.0, max(0.5, window / 10)) if window > 0 else 10.0
        self.assigned = False  # the consumer has had its first assignment (possibly empty)
        self.heartbeat = time.monotonic()
        self.topics = {config.events_topic, *(t.split("=", 1)[0].strip() for t in config.tenant_topics)}
        if config.otlp_topic:
            self.topics.add(config.otlp_topic)
        self._offsets: Any = None  # the confluent-kafka consumer, made on first use
        # close() may come while a read runs in the executor: the reader then closes the consumer.
        self._offsets_lock = threading.Lock()
        self._reading = self._closed = False
        self._lag_error: str | None = None  # the last failure logged, so a broker outage logs once
        self._labelled: set[tuple[str, str]] = set()
        self._last_reasons: tuple[str, ...] = ()

    # -- signals ---------------------------------------------------------------------------------

    def signals(self) -> Signals:
        engine_started = self.engine is None or (self.engine.started.done() and not self.engine.started.exception())
        alive = None if self.engine is None else pipeline_process_alive(self.engine)
        if alive is not None:
            self.metrics.pipeline_process_up.set(1 if alive else 0)
        stats = getattr(self.outputs.sink, "stats", None) or {}
        return Signals(
            started=self.assigned and engine_started,
            pipeline_alive=alive,
            store_failing_since=float(stats.get("failing_since", 0.0)) or None,
            store_busy_since=self.outputs.storing_since,
        )

    def verdict(self) -> Verdict:
        verdict = self.readiness.check(self.signals())
        self.metrics.ready.set(1 if verdict.ready else 0)
        if verdict.reasons != self._last_reasons:  # log changes, not every probe
            (log.info if verdict.ready else log.warning)("readiness: %s", describe(verdict.reasons))
            self._last_reasons = verdict.reasons
        return verdict

    def live(self) -> tuple[bool, float]:
        """(alive, seconds since the event loop last ran the heartbeat timer)."""
        silent = time.monotonic() - self.heartbeat
        return silent < LIVE_SILENT_SECONDS, silent

    async def on_assigned(self, app: Any, assigned: Any, **kwargs: Any) -> None:
        self.assigned = True

    def on_engine_started(self, future: Any) -> None:
        if not future.cancelled() and future.exception() is None:
            self.metrics.pipeline_process_starts.inc(getattr(self.engine, "processes", 1))

    # -- lag -------------------------------------------------------------------------------------

    async def beat(self) -> None:
        """The heartbeat timer: the event loop ran it (what /live asks)."""
        self.heartbeat = time.monotonic()

    async def sample(self) -> None:
        """The sampler timer: the lag of this worker's partitions, then the gauges."""
        try:
            assigned = self.app.consumer.assignment()  # raises while the consumer is (re)starting
            partitions = sorted((tp.topic, tp.partition) for tp in assigned if tp.topic in self.topics)
            lags = await asyncio.get_running_loop().run_in_executor(None, self._read_lags, partitions)
        except Exception as exc:  # the broker is away: no sample, no verdict on lag from this round
            if str(exc) != self._lag_error:
                log.warning("cannot read consumer lag: %s", exc)
                self._lag_error = str(exc)
            self.verdict()  # the ready gauge still follows the store and the pipeline process
            return
        if self._lag_error is not None:
            log.info("consumer lag readable again")
            self._lag_error = None
        self.readiness.sample_lag({f"{topic}/{partition}": value for (topic, partition), value in lags.items()})
        labels = {(topic, str(partition)) for topic, partition in lags}
        for gone in self._labelled - labels:
            self.metrics.consumer_lag.remove(*gone)
        for (topic, partition), (lag, _) in lags.items():
            self.metrics.consumer_lag.labels(topic, str(partition)).set(lag)
        self._labelled = labels
        self.verdict()  # keeps the ready gauge current even when nobody probes

    def _read_lags(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, int | None]]:
        """(topic, partition) -> (end offset - committed offset, committed offset or None)."""
        if not partitions:
            return {}
        with self._offsets_lock:
            if self._closed:
                return {}
            self._reading = True
        try:
            return self._committed_lags(partitions)
        finally:
            with self._offsets_lock:
                self._reading = False
                if self._closed:
                    self._close_offsets()

    def _committed_lags(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, int | None]]:
        from confluent_kafka import Consumer, TopicPartition

        if self._offsets is None:
            from .security import librdkafka_config

            options = {"group.id": self.config.group, "enable.auto.commit": False}
            self._offsets = Consumer(librdkafka_config(self.config.kafka, self.config.kafka_security, **options))
        committed = self._offsets.committed([TopicPartition(t, p) for t, p in partitions], timeout=10)
        out: dict[tuple[str, int], tuple[int, int | None]] = {}
        for tp in committed:
            low, high = self._offsets.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            offset = tp.offset if tp.offset >= 0 else None  # no commit yet: everything from the start waits
            out[(tp.topic, tp.partition)] = (high - (offset if offset is not None else low), offset)
        return out

    def close(self, *args: Any, **kwargs: Any) -> None:
        with self._offsets_lock:
            self._closed = True
            if not self._reading:  # else the read in flight closes it when it returns
                self._close_offsets()

    def _close_offsets(self) -> None:
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None


def serve_health(app: Any, config: WorkerConfig, metrics: WorkerMetrics, outputs: Outputs, engine: Any) -> None:
    """/metrics, /ready and /live on --metrics-port, from now until the worker stops (docs/operations.md)."""
    from .health_server import HealthServer

    assert config.metrics_port is not None
    probe = WorkerProbe(app, config, metrics, outputs, engine)
    server = HealthServer(metrics, probe, config.metrics_host, config.metrics_port).start()
    if engine is not None:
        engine.started.add_done_callback(probe.on_engine_started)
    app.on_partitions_assigned.connect(probe.on_assigned)
    app.timer(interval=HEARTBEAT_SECONDS, name="heartbeat")(probe.beat)
    app.timer(interval=probe.sample_seconds, name="probe")(probe.sample)
    app.on_before_shutdown.connect(server.close)
    app.on_before_shutdown.connect(probe.close)
    app.tokentrail_probe = probe  # for tests
