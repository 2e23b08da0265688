"""`tokentrail worker`: the faust-streaming app that runs the pipeline on Kafka.

A thin adapter (DESIGN.md): `async for` a batch → the same pure `Pipeline.process` the embedded
runner uses → write to ClickHouse → publish dead letters and detections → acknowledge. The
pipeline runs in a child process (stream/engine.py), so that while it works on one batch this
process stores and acknowledges the one before: two batches in flight, finished in order. The
batch comes from `noack_take`, so nothing is acknowledged (and no offset committed) until the
insert has succeeded; the sink retries failed inserts with backoff for as long as it takes.
Delivery is at-least-once and storage idempotent (batch dedup tokens, ReplacingMergeTree on
event_id), so a crash or a rebalance replays at most the unacknowledged batches, harmlessly.
Agent concurrency is 1: faust can commit past unprocessed messages otherwise. Scale out with
more partitions and more workers in the same consumer group.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import MutableMapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..embedded import batch_token
from ..stages import Inbound, now_utc
from .config import WorkerConfig

log = logging.getLogger("tokentrail.worker")


def dead_letter_message(row: dict[str, Any]) -> bytes:
    out = {k: (str(v) if k in ("id", "received_at") else v) for k, v in row.items()}
    return json.dumps(out, ensure_ascii=False).encode()


def build_app(config: WorkerConfig, *, pipeline: Any = None, sink: Any = None) -> Any:
    """The faust app with its one agent. `pipeline`/`sink` may be injected (tests inject faults);
    an injected pipeline runs in the worker's own process, as does any with `inline_pipeline`."""
    from concurrent.futures.process import BrokenProcessPool

    import faust

    from ..detectors import LoopConfig, LoopDetector
    from ..pipeline_process import PipelineProcess, PipelineSettings
    from ..runtime import make_pipeline, open_store
    from .transport import broker_url

    key = _redaction_key(config)  # no key, no worker: checked before anything connects
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)  # faust writes its table metadata here
    partitions = _partition_count(config.kafka, config.events_topic) or config.partitions
    app = faust.App(
        config.group,
        broker=broker_url(config.kafka),  # faust's Kafka transport, cheaper per message
        store="memory://",
        datadir=config.data_dir,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=True,
        topic_disable_leader=True,
        topic_partitions=partitions,
        producer_linger_ms=5,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        # A crashed worker's partitions move to the others after this long (faust's default is 60 s).
        broker_session_timeout=config.session_timeout,
        broker_heartbeat_interval=max(1.0, config.session_timeout / 5),
    )
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    events = app.topic(config.events_topic, partitions=partitions, **raw)
    deadletters = app.topic(config.deadletter_topic, **raw)
    alerts = app.topic(config.alerts_topic, **raw)
    control = app.topic(config.control_topic, compacting=True, **raw)
    # Loop-detector state, keyed like the events topic (raw trace_id bytes, same partitions, the
    # producer's murmur2 partitioner), so each worker restores exactly the traces it consumes.
    # key_type=bytes makes faust use the raw serializer for keys, in the changelog and in recovery.
    loop_table = app.Table("loop-state", default=None, key_type=bytes, partitions=partitions, use_partitioner=True)
    loops = LoopConfig(halt_on=frozenset(config.halt_on))
    state = TraceKeyedTable(loop_table)
    engine = None
    if pipeline is None and config.inline_pipeline:
        pipeline = make_pipeline(
            prices=config.prices, allow_ephemeral_key=False, redaction_key=key, loops=loops, loop_state=state
        )
    elif pipeline is None:
        engine = PipelineProcess(PipelineSettings(prices=config.prices, redaction_key=key, halt_on=loops.halt_on))
        app.tokentrail_engine = engine  # for benchmarks and tests
        expiry = LoopDetector(loops, state)  # traces restored from the table that never come again
    client = None
    if sink is None:
        client, sink = open_store(config.clickhouse)

    @app.task
    async def declare_topics() -> None:
        # The agent's topic is declared by faust; these are only sent to.
        for topic in (deadletters, alerts, control):
            await topic.maybe_declare()

    async def store(stream: Any, taken: list, token: str, rows: dict, detections: list) -> None:
        """Write, publish, acknowledge: nothing is acknowledged before its rows are stored."""
        # Blocking I/O off the event loop; write_batch returns only once the rows are stored.
        await asyncio.get_running_loop().run_in_executor(None, sink.write_batch, rows, token)
        for row in rows.get("deadletter", []):
            await deadletters.send(key=row["source"].encode(), value=dead_letter_message(row))
        for detection in detections:
            key = detection["trace_id"].encode()
            await alerts.send(key=key, value=to_json(detection))
            if detection.get("halt"):
                await control.send(key=key, value=halt_record(detection))
        for event in taken:
            await stream.ack(event)

    async def stop_worker(exc: BaseException) -> None:
        """A batch could not be finished: stop the whole worker, so that it is restarted.

        Restarting only the agent (faust's default) would keep the pipeline's in-memory state,
        whose dedupe has already seen the failed batches' events: redelivered, they would be
        dropped as duplicates. A restarted worker starts from the committed offsets, afresh.
        """
        what = "the pipeline process died" if isinstance(exc, BrokenProcessPool) else "a batch failed"
        log.critical(
            "%s; stopping the worker so that it is restarted (unacknowledged batches are redelivered)",
            what,
            exc_info=exc,
        )
        await app.crash(exc)

    async def finish(stream: Any, taken: list, job: Any) -> None:
        """A batch from the pipeline process: store it, then write its trace states to the table."""
        try:
            processed = await job
            await store(stream, taken, processed.token, processed.rows, processed.detections)
            for trace, st in processed.state_changes.items():
                if st is None:
                    state.pop(trace, None)
                else:
                    state[trace] = st
            latest = [st["last_ms"] for st in processed.state_changes.values() if st]
            if next(finished) % LoopDetector.EXPIRE_EVERY == 0 and latest:
                expiry.expire(max(latest))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await stop_worker(exc)

    finished = itertools.count(1)

    def seeds(taken: list) -> dict[str, Any]:
        """The table's state for the traces in a batch (messages are keyed by trace_id)."""
        out: dict[str, Any] = {}
        for key in {e.message.key for e in taken if e.message.key}:
            st = loop_table.get(key)
            if st is not None:
                out[key.decode("utf-8", "replace")] = st
        return out

    @app.agent(events, concurrency=1)
    async def process(stream: Any) -> None:
        storing: asyncio.Future | None = None
        try:
            async for taken in stream.noack_take(config.batch_size, within=config.batch_within):
                inbound = [
                    Inbound(
                        f"{e.message.topic}/{e.message.partition}@{e.message.offset}", _as_bytes(e.value), now_utc()
                    )
                    for e in taken
                ]
                if engine is None:
                    try:
                        batch = pipeline.process(inbound)
                        await store(stream, taken, batch_token(inbound), batch.rows, batch.detections)
                    except Exception as exc:
                        await stop_worker(exc)
                        return
                    continue
                # Two batches in flight: the pipeline process works on this one while the last is stored.
                job = asyncio.wrap_future(engine.submit(inbound, seeds(taken)))
                if storing is not None:
                    await storing  # in order: one batch stored while the next is processed
                storing = asyncio.ensure_future(finish(stream, taken, job))
        finally:
            if storing is not None and not storing.done():
                storing.cancel()  # not acknowledged: redelivered after a restart, stored once

    if engine is not None:

        @app.on_partitions_assigned.connect
        async def forget_moved_traces(app: Any, assigned: Any, **kwargs: Any) -> None:
            engine.forget_state()  # traces this worker gets back may have moved on elsewhere

        @app.on_before_shutdown.connect
        def stop_pipeline_process(app: Any, **kwargs: Any) -> None:
            engine.close()

    if client is not None and config.insights_interval > 0:
        insights = InsightsJob(client, config)

        @app.timer(interval=config.insights_interval)
        async def run_insights_job() -> None:
            # One worker computes the store-wide insights: the one consuming partition 0.
            from faust.types import TP

            if TP(config.events_topic, 0) not in app.assignor.assigned_actives():
                return
            await asyncio.get_running_loop().run_in_executor(None, insights.run_once)

    app.tokentrail_config = config  # for introspection in tests
    return app


def _redaction_key(config: WorkerConfig) -> bytes | None:
    try:
        from tokentrail.redaction import load_key
    except ImportError:  # redaction not installed: the pipeline's redact stage is a pass-through
        return None
    return load_key(config.allow_ephemeral_key)


class InsightsJob:
    """Variance, silent changes and budget breaches, recomputed from the store on a timer.

    New changes and breaches go to the alerts topic before they are stored (at-least-once; each
    alert carries a stable id). Each run re-reads a lateness margin so late events are counted.
    """

    LATENESS = timedelta(minutes=10)
    FIRST_LOOKBACK = timedelta(days=1)

    def __init__(self, client: Any, config: WorkerConfig) -> None:
        from confluent_kafka import Producer

        self.client = client
        self.config = config
        self.producer = Producer({"bootstrap.servers": config.kafka, "linger.ms": 5})
        self.last_now: datetime | None = None

    def run_once(self) -> None:
        from ..insights import run_insights

        now = now_utc()
        since = (self.last_now - self.LATENESS) if self.last_now else now - self.FIRST_LOOKBACK
        try:
            run_insights(self.client, now=now, since=since, budgets=self.config.budgets, publish=self.publish)
            self.last_now = now
        except Exception:
            log.exception("insights job failed; retrying on the next tick")

    def publish(self, alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            self.producer.produce(self.config.alerts_topic, to_json(alert), str(alert.get("id", "")).encode())
        if self.producer.flush(30) != 0:
            raise RuntimeError("alerts were not acknowledged by Kafka")


class TraceKeyedTable(MutableMapping):
    """The faust Table seen as a str-keyed mapping: keys go to Kafka as the raw trace_id bytes."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        value = self.table.get(key.encode())
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Any:
        return (k.decode() if isinstance(k, bytes) else k for k in list(self.table.keys()))

    def __len__(self) -> int:
        return len(self.table)


def to_json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, default=str, sort_keys=True).encode()


def halt_record(detection: dict[str, Any]) -> bytes:
    """What a collector's kill switch reads from the control topic (compacted, keyed by trace)."""
    return to_json(
        {
            "trace_id": detection["trace_id"],
            "halt": True,
            "kind": detection["kind"],
            "repeats": detection["repeats"],
            "detection_id": detection["detection_id"],
            "detected_at": detection["detected_at"],
        }
    )


def _partition_count(bootstrap: str, topic: str) -> int | None:
    """Partitions of an existing topic (the state table must match them), or None if it does not exist yet."""
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    except Exception as exc:
        raise ValueError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        return None
    return len(found.partitions)


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return b"" if value is None else str(value).encode()


def main(argv: Sequence[str]) -> int:
    """Run the worker until SIGTERM/SIGINT; faust commits acknowledged offsets on the way out."""
    import faust

    from ..runtime import tune_gc
    from .config import parse_args

    config = parse_args(argv)
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
