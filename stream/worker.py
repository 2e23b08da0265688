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

import argparse
import asyncio
import itertools
import json
import logging
import os
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .embedded import batch_token
from .stages import Inbound, now_utc

log = logging.getLogger("tokentrail.worker")

ENV_KAFKA = "TOKENTRAIL_KAFKA_BOOTSTRAP"


@dataclass(frozen=True)
class WorkerConfig:
    """Everything the worker needs; validated before anything connects."""

    kafka: str
    clickhouse: str | None = None
    events_topic: str = "tokentrail.events"
    deadletter_topic: str = "tokentrail.deadletter"
    alerts_topic: str = "tokentrail.alerts"
    control_topic: str = "tokentrail.control"
    partitions: int = 6  # for a topic the worker has to create
    halt_on: tuple[str, ...] = ()  # loop kinds that publish a halt record to the control topic
    budgets: str | None = None  # spend budgets file (YAML/JSON)
    insights_interval: float = 60.0  # seconds between variance/changes/budget runs; 0 turns them off
    session_timeout: float = 15.0  # consumer-group session: how fast a dead worker's partitions move
    loglevel: str = "warning"
    group: str = "tokentrail-worker"
    batch_size: int = 5_000  # each table insert costs ~10 ms whatever its size: fewer, bigger batches
    batch_within: float = 0.2  # bounds end-to-end latency when traffic is light
    prices: str | None = None
    data_dir: str = ".tokentrail/worker"
    allow_ephemeral_key: bool = False
    inline_pipeline: bool = False  # run the stages in the worker's own process (one core) instead of a child

    def __post_init__(self) -> None:
        if not self.kafka:
            raise ValueError(f"the worker needs Kafka: pass --kafka host:9092 or set {ENV_KAFKA}")
        if self.batch_size <= 0 or self.batch_within <= 0:
            raise ValueError("--batch-size and --batch-within must be positive")
        if not all((self.events_topic, self.deadletter_topic, self.alerts_topic, self.control_topic)):
            raise ValueError("topic names must not be empty")
        from .detectors.loops import KINDS

        if self.budgets:
            from .insights.budgets import load_budgets

            load_budgets(self.budgets)  # fail at startup, naming the fix
        unknown = set(self.halt_on) - set(KINDS)
        if unknown:
            raise ValueError(f"--halt-on: unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")


def dead_letter_message(row: dict[str, Any]) -> bytes:
    out = {k: (str(v) if k in ("id", "received_at") else v) for k, v in row.items()}
    return json.dumps(out, ensure_ascii=False).encode()


def build_app(config: WorkerConfig, *, pipeline: Any = None, sink: Any = None) -> Any:
    """The faust app with its one agent. `pipeline`/`sink` may be injected (tests inject faults);
    an injected pipeline runs in the worker's own process, as does any with `inline_pipeline`."""
    from concurrent.futures.process import BrokenProcessPool

    import faust

    from .detectors import LoopConfig, LoopDetector
    from .engine import PipelineProcess, PipelineSettings
    from .kafka_transport import broker_url
    from .runtime import make_pipeline, open_store

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
        from .insights import run_insights

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


def parse_args(argv: Sequence[str]) -> WorkerConfig:
    parser = argparse.ArgumentParser(prog="tokentrail worker", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kafka", default=os.environ.get(ENV_KAFKA, ""), help=f"bootstrap servers (default ${ENV_KAFKA})"
    )
    parser.add_argument(
        "--clickhouse", metavar="DSN", help="ClickHouse DSN (default $TOKENTRAIL_CLICKHOUSE_URL, else embedded)"
    )
    parser.add_argument("--events-topic", default=os.environ.get("TOKENTRAIL_EVENTS_TOPIC", "tokentrail.events"))
    parser.add_argument(
        "--deadletter-topic", default=os.environ.get("TOKENTRAIL_DEADLETTER_TOPIC", "tokentrail.deadletter")
    )
    parser.add_argument("--alerts-topic", default=os.environ.get("TOKENTRAIL_ALERTS_TOPIC", "tokentrail.alerts"))
    parser.add_argument("--control-topic", default=os.environ.get("TOKENTRAIL_CONTROL_TOPIC", "tokentrail.control"))
    parser.add_argument(
        "--halt-on",
        default="",
        metavar="KINDS",
        help="comma-separated loop kinds that publish a halt for the trace (kill switch)",
    )
    parser.add_argument(
        "--group",
        default=os.environ.get("TOKENTRAIL_WORKER_GROUP", "tokentrail-worker"),
        help="consumer group / faust app id",
    )
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--batch-within", type=float, default=0.2, help="seconds to wait for a batch to fill")
    parser.add_argument("--prices", help="price overrides file")
    parser.add_argument("--budgets", help="spend budgets file (YAML/JSON)")
    parser.add_argument("--session-timeout", type=float, default=15.0, help="consumer-group session timeout in seconds")
    parser.add_argument(
        "--insights-interval", type=float, default=60.0, help="seconds between variance/changes/budget runs (0: off)"
    )
    parser.add_argument("--data-dir", default=".tokentrail/worker")
    parser.add_argument("--allow-ephemeral-key", action="store_true", help="redact with a throwaway key (tests only)")
    parser.add_argument(
        "--inline-pipeline",
        action="store_true",
        help="run the pipeline in the worker's process instead of a child process (one core instead of two)",
    )
    parser.add_argument("--loglevel", default="warning")
    args = parser.parse_args(list(argv))
    config = WorkerConfig(
        kafka=args.kafka,
        clickhouse=args.clickhouse,
        events_topic=args.events_topic,
        deadletter_topic=args.deadletter_topic,
        alerts_topic=args.alerts_topic,
        control_topic=args.control_topic,
        halt_on=tuple(k for k in args.halt_on.split(",") if k),
        group=args.group,
        batch_size=args.batch_size,
        batch_within=args.batch_within,
        prices=args.prices,
        data_dir=args.data_dir,
        allow_ephemeral_key=args.allow_ephemeral_key,
        budgets=args.budgets,
        insights_interval=args.insights_interval,
        session_timeout=args.session_timeout,
        loglevel=args.loglevel,
        inline_pipeline=args.inline_pipeline,
    )
    return config


def main(argv: Sequence[str]) -> int:
    """Run the worker until SIGTERM/SIGINT; faust commits acknowledged offsets on the way out."""
    import faust

    from .runtime import tune_gc

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
