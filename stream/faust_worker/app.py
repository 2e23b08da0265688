"""`tokentrail worker`: the faust-streaming app that runs the pipeline on Kafka.

A thin adapter (docs/architecture.md): `async for` a batch → the same pure `Pipeline.process` the
embedded runner uses → write to ClickHouse → publish dead letters and detections → acknowledge.
The pipeline runs in a child process (stream/pipeline_process.py), so that while it works on one
batch this process stores and acknowledges the one before: two batches in flight, finished in
order. The batch comes from `unacked_batches` (batches.py), so nothing is acknowledged (and no offset committed)
until the insert has succeeded. Rows the store cannot take are per-event dead letters
(`store_rejected`, stream/store_rejections.py), stored and published like any other; only a failing
store stops the worker: the sink retries an insert `--store-max-attempts` times with backoff, then
the worker records the failure (store_health.py) and exits non-zero, nothing acknowledged, for its
supervisor to restart it. Delivery is at-least-once and storage idempotent (batch dedup tokens, ReplacingMergeTree on
event_id), so a crash or a rebalance replays at most the unacknowledged batches, harmlessly.
Agent concurrency is 1: faust can commit past unprocessed messages otherwise. Scale out with
more partitions and more workers in the same consumer group.

The pieces: `_faust_app` (the app and its settings), `Outputs` (store a batch, publish what it
produced, acknowledge), `BatchAgent` (the agent: batches through the pipeline, inline or in the
pipeline process), and `build_app`, which wires them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokentrail.sinks.outcomes import StoreUnavailable

from ..batch import Inbound, Pipeline, now_utc
from ..detectors import LoopConfig, LoopDetector
from ..embedded import batch_token, store_batch
from ..validate_stage import parse_ts_window_days
from .batches import unacked_batches
from .config import WorkerConfig, require_evidence_key
from .insights_job import InsightsTimer
from .loop_state import TraceKeyedTable
from .messages import as_bytes, dead_letter_message, halt_message_key, halt_record, to_json
from .metrics import WorkerMetrics
from .store_health import StoreHealth

if TYPE_CHECKING:
    from ..pipeline_process import PipelineProcess, Processed

__all__ = ["BatchAgent", "Outputs", "build_app", "run_worker"]

log = logging.getLogger("tokentrail.worker")

# After a fatal batch error: how long faust may take to shut down before the process exits anyway.
CRASH_EXIT_SECONDS = 20.0
CRASH_EXIT_CODE = 70  # EX_SOFTWARE: non-zero, so the supervisor restarts the worker

# Raw bytes in and out: the pipeline decodes and validates itself.
_RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def build_app(config: WorkerConfig, *, pipeline: Any = None, sink: Any = None) -> Any:
    """The faust app with its one agent. `pipeline`/`sink` may be injected (tests inject faults);
    an injected pipeline runs in the worker's own process, as does any with `inline_pipeline`."""
    from tokentrail.redaction import load_key

    from ..pipeline_process import PipelineProcess, PipelineSettings
    from ..runtime import check_key_for_store, make_pipeline, open_store

    key = load_key(config.allow_ephemeral_key)  # no key, no worker: checked before anything connects
    check_key_for_store(config.clickhouse, key)  # an ephemeral key only with an embedded store
    require_evidence_key(config)  # likewise for content receipts (docs/evidence.md, "keys")
    ts_window = parse_ts_window_days(config.ts_window_days)
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)  # faust writes its table metadata here
    partitions = _partition_count(config, config.events_topic) or config.partitions
    app = _faust_app(config, partitions)
    from ..tenant_binding import parse_tenant_topics

    bound = parse_tenant_topics(config.tenant_topics)  # topics of one tenant each (stream/tenant_binding.py)
    for topic in bound:  # the loop-state table is co-partitioned with every topic the agent reads
        if (_partition_count(config, topic) or partitions) != partitions:
            raise ValueError(f"--tenant-topic {topic} needs {partitions} partitions, as {config.events_topic} has")
    # The OTLP topic (docs/otlp.md) is read by the same agent: its spans go through the same batches.
    otlp_topics = (config.otlp_topic,) if config.otlp_topic else ()
    events = app.topic(config.events_topic, *bound, *otlp_topics, partitions=partitions, **_RAW)
    # Loop-detector state, keyed like the events topic (raw trace_id bytes, same partitions, the
    # producer's murmur2 partitioner), so each worker restores exactly the traces it consumes.
    # key_type=bytes makes faust use the raw serializer for keys, in the changelog and in recovery.
    loop_table = app.Table("loop-state", default=None, key_type=bytes, partitions=partitions, use_partitioner=True)
    loops = LoopConfig(halt_on=frozenset(config.halt_on))
    state = TraceKeyedTable(loop_table)
    client = None
    if sink is None:
        # The schema is checked, never migrated, against a server (`tokentrail schema apply` does that).
        client, sink = open_store(config.clickhouse, max_attempts=config.store_max_attempts or None)
    health = StoreHealth(config.data_dir)
    health.resume(sink)
    metrics = WorkerMetrics(sink)
    app.tokentrail_metrics = metrics  # for tests and benchmarks
    outputs = Outputs(
        sink=sink,
        health=health,
        metrics=metrics,
        deadletters=app.topic(config.deadletter_topic, **_RAW),
        alerts=app.topic(config.alerts_topic, **_RAW),
        control=app.topic(config.control_topic, compacting=True, **_RAW),
    )
    if pipeline is None and config.inline_pipeline:
        pipeline = make_pipeline(
            tenant_topics=bound,
            prices=config.prices,
            allow_ephemeral_key=False,
            redaction_key=key,
            loops=loops,
            loop_state=state,
            ts_window=ts_window,
            otlp=config.otlp_settings(),
        )
    engine = None
    if pipeline is None:
        engine = PipelineProcess(
            PipelineSettings(
                tenant_topics=tuple(bound.items()),
                prices=config.prices,
                redaction_key=key,
                halt_on=loops.halt_on,
                ts_window=ts_window,
                otlp=config.otlp_settings(),
            ),
            processes=config.pipeline_processes,
        )
        app.tokentrail_engine = engine  # for benchmarks and tests
    agent = BatchAgent(
        app,
        config,
        outputs,
        loop_table=loop_table,
        state=state,
        pipeline=pipeline,
        engine=engine,
        expiry=LoopDetector(loops, state) if engine is not None else None,  # restored traces never seen again
    )
    app.task(outputs.declare)
    app.agent(events, concurrency=1, name="process")(agent.process)
    if engine is not None:
        app.on_partitions_assigned.connect(agent.forget_moved_traces)
        app.on_before_shutdown.connect(agent.stop_pipeline_process)
    if client is not None and config.insights_interval > 0:
        insights = InsightsTimer(app, config, client, on_run=metrics.insights_run)
        app.timer(interval=config.insights_interval, name="insights")(insights.tick)
    if config.metrics_port is not None:
        from .probe import serve_health

        serve_health(app, config, metrics, outputs, engine)
    app.tokentrail_config = config  # for introspection in tests
    return app


def _faust_app(config: WorkerConfig, partitions: int) -> Any:
    import faust

    from .security import faust_credentials
    from .transport import broker_url

    return faust.App(
        config.group,
        broker=broker_url(config.kafka),  # faust's Kafka transport, cheaper per message
        broker_credentials=faust_credentials(config.kafka_security),
        store="memory://",
        datadir=config.data_dir,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=True,
        topic_disable_leader=True,
        topic_partitions=partitions,
        producer_linger_ms=5,
        # Room for two whole batches: with faust's default (4,096, under one --batch-size) a batch was
        # never ready whole, the consumer paused and batches came out ~1,200 messages long, each paying
        # the fixed cost of its inserts (docs/performance.md, "Pipeline").
        stream_buffer_maxsize=2 * config.batch_size,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        # A crashed worker's partitions move to the others after this long (faust's default is 60 s).
        broker_session_timeout=config.session_timeout,
        broker_heartbeat_interval=max(1.0, config.session_timeout / 5),
    )


@dataclass
class Outputs:
    """Where a processed batch goes: rows to the sink, then dead letters, detections and halts to Kafka."""

    sink: Any
    deadletters: Any
    alerts: Any
    control: Any
    health: StoreHealth | None = None
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    store_rejected: int = 0  # events the store refused, turned into dead letters (tests, benchmarks)
    storing_since: float | None = None  # time.time() when the running store call began (readiness: a hung insert)

    async def declare(self) -> None:
        """The agent's topic is declared by faust; these are only sent to."""
        for topic in (self.deadletters, self.alerts, self.control):
            await topic.maybe_declare()

    async def store(
        self, stream: Any, taken: list[Any], token: str, rows: dict[str, list[dict[str, Any]]], detections: list[Any]
    ) -> None:
        """Write, publish, acknowledge: nothing is acknowledged before its rows are stored.

        Events the store refuses become dead letters (added to `rows["deadletter"]`, so published too).
        """
        # Blocking I/O off the event loop; store_batch returns only once the rows are stored.
        self.storing_since = time.time()
        try:
            refused = await asyncio.get_running_loop().run_in_executor(None, store_batch, self.sink, rows, token)
        except StoreUnavailable as exc:
            if self.health is not None:
                self.health.gave_up(self.sink, exc)
            raise
        finally:
            seconds, self.storing_since = time.time() - self.storing_since, None
        self.metrics.stored(rows, detections, seconds)
        self.store_rejected += refused
        if self.health is not None:
            self.health.stored()
        for row in rows.get("deadletter", []):
            await self.deadletters.send(key=row["source"].encode(), value=dead_letter_message(row))
        for detection in detections:
            key = detection["trace_id"].encode()
            await self.alerts.send(key=key, value=to_json(detection))
            if detection.get("halt"):
                await self.control.send(key=halt_message_key(detection), value=halt_record(detection))
        for event in taken:
            await stream.ack(event)


class BatchAgent:
    """The agent: each batch through the pipeline, inline (`pipeline`) or in the pipeline process (`engine`)."""

    def __init__(
        self,
        app: Any,
        config: WorkerConfig,
        outputs: Outputs,
        *,
        loop_table: Any,
        state: TraceKeyedTable,
        pipeline: Pipeline | None,
        engine: PipelineProcess | None,
        expiry: LoopDetector | None,
    ) -> None:
        self.app, self.config, self.outputs = app, config, outputs
        self.loop_table, self.state = loop_table, state
        self.pipeline, self.engine, self.expiry = pipeline, engine, expiry
        self.finished = itertools.count(1)

    async def process(self, stream: Any) -> None:
        storing: asyncio.Future[None] | None = None
        try:
            async for taken in unacked_batches(stream, self.config.batch_size, self.config.batch_within):
                inbound = [
                    Inbound(f"{e.message.topic}/{e.message.partition}@{e.message.offset}", as_bytes(e.value), now_utc())
                    for e in taken
                ]
                self.outputs.metrics.taken(Counter(e.message.topic for e in taken))
                if self.engine is None:
                    if not await self._process_inline(stream, taken, inbound):
                        return
                    continue
                # Two batches in flight: the pipeline process works on this one while the last is stored.
                partitions = [e.message.partition for e in taken]
                job = asyncio.wrap_future(self.engine.submit(inbound, self._seeds(taken), partitions))
                if storing is not None:
                    await storing  # in order: one batch stored while the next is processed
                storing = asyncio.ensure_future(self._finish(stream, taken, job))
        finally:
            if storing is not None and not storing.done():
                storing.cancel()  # not acknowledged: redelivered after a restart, stored once

    async def _process_inline(self, stream: Any, taken: list[Any], inbound: list[Inbound]) -> bool:
        """Process and store one batch in this process; False when the worker is stopping."""
        assert self.pipeline is not None
        try:
            batch = self.pipeline.process(inbound)
            self.outputs.metrics.processed(self.pipeline.stage_seconds)
            await self.outputs.store(stream, taken, batch_token(inbound), batch.rows, batch.detections)
        except Exception as exc:
            await self._stop_worker(exc)
            return False
        return True

    async def _finish(self, stream: Any, taken: list[Any], job: asyncio.Future[Processed]) -> None:
        """A batch from the pipeline process: store it, then write its trace states to the table."""
        try:
            processed = await job
            self.outputs.metrics.processed(processed.stage_seconds)
            await self.outputs.store(stream, taken, processed.token, processed.rows, processed.detections)
            self._apply_state_changes(processed.state_changes)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._stop_worker(exc)

    def _apply_state_changes(self, changes: dict[str, Any]) -> None:
        for trace, st in changes.items():
            if st is None:
                self.state.pop(trace, None)
            else:
                self.state[trace] = st
        if next(self.finished) % LoopDetector.EXPIRE_EVERY == 0 and self.expiry is not None:
            self.expiry.expire()  # by processing time (the clock), never by event time (issue 11 §3)

    def _seeds(self, taken: list[Any]) -> dict[str, Any]:
        """The table's states for the traces in a batch (messages are keyed by trace_id), every tenant's."""
        return self.state.seeds(e.message.key for e in taken if e.message.key)

    async def _stop_worker(self, exc: BaseException) -> None:
        """A batch could not be finished: stop the whole worker, so that it is restarted.

        Restarting only the agent (faust's default) would keep the pipeline's in-memory state,
        whose dedupe has already seen the failed batches' events: redelivered, they would be
        dropped as duplicates. A restarted worker starts from the committed offsets, afresh.
        """
        what = "the pipeline process died" if isinstance(exc, BrokenProcessPool) else "a batch failed"
        if isinstance(exc, StoreUnavailable):
            stats = getattr(self.outputs.sink, "stats", {})
            what = (
                f"the store kept failing ({int(stats.get('consecutive_failures', 0))} failed attempts since "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(stats.get('failing_since') or time.time()))})"
            )
        log.critical(
            "%s; stopping the worker so that it is restarted (unacknowledged batches are redelivered)",
            what,
            exc_info=exc,
        )
        # faust's orderly shutdown can wait on a busy thread (an insights run) or a stuck client; the
        # supervisor must see the exit either way, so a hard exit follows if it has not happened soon.
        deadline = threading.Timer(CRASH_EXIT_SECONDS, os._exit, args=(CRASH_EXIT_CODE,))
        deadline.daemon = True
        deadline.start()
        await self.app.crash(exc)

    async def forget_moved_traces(self, app: Any, assigned: Any, **kwargs: Any) -> None:
        """On a rebalance: traces this worker gets back may have moved on elsewhere."""
        if self.engine is not None:
            self.engine.forget_state()

    def stop_pipeline_process(self, app: Any, **kwargs: Any) -> None:
        if self.engine is not None:
            self.engine.close()


def _partition_count(config: WorkerConfig, topic: str) -> int | None:
    """Partitions of an existing topic (the state table must match them), or None if it does not exist yet.

    The worker's first Kafka contact: bad credentials or an untrusted certificate stop the start here,
    within a second, naming the cause (stream/faust_worker/security.py).
    """
    from .security import kafka_metadata

    metadata = kafka_metadata(config.kafka, config.kafka_security, topic, timeout=10)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        return None
    return len(found.partitions)


def run_worker(config: WorkerConfig) -> int:
    """Run the worker until SIGTERM/SIGINT; faust commits acknowledged offsets on the way out."""
    import faust

    from ..runtime import tune_gc

    app = build_app(config)
    engine = getattr(app, "tokentrail_engine", None)
    if engine is not None:
        engine.wait_started()  # a pipeline that cannot be built fails the start, not the first batch
    worker = faust.Worker(app, loglevel=config.loglevel, quiet=True)
    # faust's spinner sets the root logger to DEBUG whatever the loglevel, so every library's
    # debug record gets built (~5% of the worker's CPU, measured in benchmarks/pipeline.py).
    worker.spinner = None
    tune_gc()  # the pipeline process does the same
    worker.execute_from_commandline()  # never returns: exits the process when the worker stops
    return 0
