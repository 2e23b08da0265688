"""Throughput and latency of the stream pipeline: real Kafka -> `tokentrail worker` -> ClickHouse (embedded chDB).

    .venv/bin/python benchmarks/pipeline.py                      # starts a local Kafka broker (scripts/kafka_broker.py)
    .venv/bin/python benchmarks/pipeline.py --kafka 127.0.0.1:9092 --events 100000 --latency-seconds 30
    TOKENTRAIL_BENCH_KAFKA=127.0.0.1:9092 .venv/bin/python benchmarks/pipeline.py --json out.json
    .venv/bin/python benchmarks/pipeline.py --skip latency --profile-worker worker.prof   # where the worker's time goes

What it measures, in this order (figures and their reading in docs/performance.md, "Pipeline"):

1. Embedded replay rate and per-stage cost: `replay_source` (what `tokentrail replay` runs:
   EmbeddedRunner, batches of 5,000) over the first `--replay-lines` generator lines into a fresh
   embedded store, `--replay-runs` times; lines/s (median). Each pipeline stage (Validate, Dedupe,
   Redact, PriceCalls, BuildRows and whatever detectors the pipeline has) is timed inside those
   runs, as are the sink's value normalisation and chDB's insert: microseconds per inbound line.
2. Sustained throughput: `--events` generator lines (with the generator's 1% malformed lines and
   1% re-deliveries) are produced into a fresh topic with `--partitions` partitions *before* the
   worker starts, so the worker drains a backlog as fast as it can. The worker is the real one
   (`build_app` + `faust.Worker`, run as a child process `pipeline.py _worker ...`, which starts
   its own pipeline process) with an instrumented sink: after each `write_batch` returns (the
   insert is synchronous, so the rows are visible) it appends the wall time, row counts and stage
   times to a record file. Sustained rate = messages in all batches but the first / (last batch
   time - first batch time); the rate including the worker's start-up, the CPU per message of
   the worker process and of its pipeline process, and a per-message breakdown of the worker's
   wall time are also given. Afterwards the store must hold exactly the generator's distinct
   events, dead letters and deliveries. Then the same drain once more with `--inline-pipeline`
   (the stages in the worker's own process), side by side (`--skip inline` leaves it out).
3. End-to-end latency: a `Collector` with the Kafka transport records model calls (a prompt and
   an output event each) at `--rate` events/s, paced by a deadline loop, for `--latency-seconds`.
   Latency of an event = time its batch was stored - the event's `ts` (set by the collector when
   the call is entered and finished). Reported: p50/p99/max, split into "until the worker took
   the batch" (collector buffering, Kafka, the worker's batch window) and "pipeline + insert".
   Run once per `--batch-within` value (default: the worker's default, 0.2, and 0.1).

The worker runs with the worker's own defaults (`WorkerConfig`: `--batch-size` 5000, and for the
sustained run `--batch-within` 0.2) unless overridden here, and with the same process settings as
`tokentrail worker`'s `main()` (no faust spinner, `runtime.tune_gc()`).

Goals (issue): >= 5,000 events/s sustained, p99 <= 2 s at 1,000 events/s, on a 2-core machine
without NER (so `--nlp-model none` is the default here). The latency goal holds if the p99 of at
least one `--batch-within` run is within it. Exit status 1 if a goal is missed or a store check
fails (a benchmark that loses events is not measuring the pipeline). Everything shares the
machine's cores with the broker (and with the collector, in the latency run): that is the
deployment being measured, on a small box.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
ENV_KAFKA = "TOKENTRAIL_BENCH_KAFKA"
ENV_NLP = "TOKENTRAIL_REDACTION_NLP_MODEL"
ENV_KEY = "TOKENTRAIL_REDACTION_KEY"
ENV_PROFILE = "TOKENTRAIL_BENCH_PROFILE"  # set by --profile-worker for the sustained run's worker
GOAL_SUSTAINED = 5_000.0  # events/s
GOAL_P99 = 2.0  # seconds, at GOAL_RATE
GOAL_RATE = 1_000  # events/s offered in the latency run


# ---------------------------------------------------------------------------- shared helpers


class TimedClient:
    """A clickhouse-connect client wrapper that adds up the time spent inside `insert`."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.insert_s = 0.0

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self._real.insert(*args, **kwargs)
        finally:
            self.insert_s += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def trace_key(line: bytes) -> bytes | None:
    try:
        value = json.loads(line).get("trace_id")
    except (ValueError, AttributeError):
        return None
    return str(value).encode() if value else None


def generate_lines(events: int, seed: int) -> tuple[list[bytes], Any]:
    from tokentrail.stream.synthetic import GeneratorConfig, Truth, iter_lines

    duration = timedelta(hours=1)
    config = GeneratorConfig(seed=seed, events=events, start=datetime.now(UTC) - duration, duration=duration)
    truth = Truth(config.seed, config.events)
    lines = [line.encode() for line in iter_lines(config, truth)]
    return lines, truth


def redactor_description() -> str:
    from tokentrail.stream.runtime import make_redactor

    redactor = make_redactor(allow_ephemeral_key=True)
    if redactor is None:
        return "none installed (Redact is a pass-through)"
    return f"{type(redactor).__name__}, {ENV_NLP}={os.environ.get(ENV_NLP, '(unset: auto)')}"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- 1+2. embedded replay, per stage


def embedded_replay(lines: list[bytes], runs: int, batch_size: int, expected_events: int | None) -> dict[str, Any]:
    """`replay_source` (what `tokentrail replay` runs) into a fresh store, `runs` times; per-stage times too."""
    from tokentrail.sinks import close_embedded, connect, migrations
    from tokentrail.sinks.writer import ClickHouseSink
    from tokentrail.stream import runtime

    blob = b"\n".join(lines) + b"\n"
    results = []
    real_make_pipeline = runtime.make_pipeline
    for _ in range(runs):
        built: list[tuple[Any, float]] = []

        def make_timed_pipeline(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            pipeline = real_make_pipeline(*args, **kwargs)  # it adds up its stages' times itself
            built.append((pipeline, time.perf_counter() - t0))
            return pipeline

        with tempfile.TemporaryDirectory(prefix="tt-bench-replay-") as tmp:
            close_embedded()
            real = connect(f"chdb://{tmp}")
            migrations.apply(real)
            client = TimedClient(real)
            sink = ClickHouseSink(client)
            prepare_s = 0.0
            original_prepare = sink._prepare

            def timed_prepare(table: str, rows: Any) -> Any:
                nonlocal prepare_s
                t0 = time.perf_counter()
                try:
                    return original_prepare(table, rows)
                finally:
                    prepare_s += time.perf_counter() - t0

            sink._prepare = timed_prepare  # type: ignore[method-assign]
            runtime.make_pipeline = make_timed_pipeline
            try:
                t0 = time.perf_counter()
                stats = runtime.replay_source(io.BytesIO(blob), "bench", client, sink, batch_size=batch_size)
                elapsed = time.perf_counter() - t0
            finally:
                runtime.make_pipeline = real_make_pipeline
            stored = real.query("SELECT count() FROM tokentrail.events FINAL").result_rows[0][0]
            close_embedded()
        pipeline, build_s = built[0]
        results.append(
            {
                "elapsed": elapsed,
                "build_s": build_s,
                "read": stats.read,
                "stored": stored,
                "insert_s": client.insert_s,
                "prepare_s": prepare_s,
                "stages_s": dict(pipeline.stage_seconds),
            }
        )
    median = sorted(results, key=lambda r: r["elapsed"])[len(results) // 2]
    n = len(lines)
    return {
        "lines": n,
        "batch_size": batch_size,
        "runs": [round(r["read"] / r["elapsed"]) for r in results],
        "lines_per_s": median["read"] / median["elapsed"],
        "lines_per_s_after_build": median["read"] / (median["elapsed"] - median["build_s"]),
        "build_s": median["build_s"],
        "stored": median["stored"],
        "exact": expected_events is None or all(r["stored"] == expected_events for r in results),
        # Per stage and sink part: the median over the runs of microseconds per inbound line.
        "stages_us": {
            name: statistics.median(r["stages_s"][name] / n * 1e6 for r in results) for name in results[0]["stages_s"]
        },
        "normalise_us": statistics.median(r["prepare_s"] / n * 1e6 for r in results),
        "insert_us": statistics.median(r["insert_s"] / n * 1e6 for r in results),
        "total_us": median["elapsed"] / n * 1e6,
    }


# ---------------------------------------------------------------------------- the worker child


class StageTimes:
    """Each stored batch's stage times, from the pipeline that processed it.

    The pipeline adds up its stages' times itself (`Pipeline.stage_seconds`). In the worker's
    default mode it runs in the pipeline process, whose results carry those totals and the batch's
    dedup token: the submit is wrapped to find each batch's result again when the sink stores it.
    With --inline-pipeline it is the worker's own pipeline, built through runtime.make_pipeline.
    """

    def __init__(self) -> None:
        self.inline: list[Any] = []
        self.results: dict[str, Any] = {}
        self.previous: dict[str, float] = {}

    def watch(self, engine: Any) -> None:
        submit = engine.submit

        def remember(future: Any) -> None:
            if future.exception() is None:
                self.results[future.result().token] = future.result()

        def submit_and_remember(inbound: list, seeds: dict) -> Any:
            future = submit(inbound, seeds)
            future.add_done_callback(remember)
            return future

        engine.submit = submit_and_remember

    def batch(self, token: str) -> tuple[dict[str, float], float]:
        """(cumulative seconds per stage, seconds this batch took in the pipeline)."""
        if self.inline:
            totals = dict(self.inline[0].stage_seconds)
        else:
            totals = dict(self.results.pop(token).stage_seconds)
        spent = sum(totals.values()) - sum(self.previous.values())
        self.previous = totals
        return totals, spent


def worker_main(argv: list[str]) -> None:
    """`pipeline.py _worker RECORD_FILE [--record-ts] WORKER-ARGS...`: the real worker, instrumented sink."""
    import faust

    from tokentrail.sinks.writer import ClickHouseSink
    from tokentrail.stream import runtime
    from tokentrail.stream.faust_worker import build_app, parse_args

    record_path = Path(argv[0])
    record_ts = argv[1:2] == ["--record-ts"]
    config = parse_args(argv[2:] if record_ts else argv[1:])
    # The worker opens its own store (its insights timer uses the client) and, with
    # --inline-pipeline, builds its own pipeline: wrap both where build_app gets them.
    stages = StageTimes()
    clients: list[TimedClient] = []
    real_make_pipeline, real_open_store = runtime.make_pipeline, runtime.open_store

    def make_watched_pipeline(*args: Any, **kwargs: Any) -> Any:
        stages.inline.append(real_make_pipeline(*args, **kwargs))
        return stages.inline[-1]

    def open_instrumented_store(dsn: str | None) -> tuple[Any, Any]:
        client, _ = real_open_store(dsn)
        clients.append(TimedClient(client))
        return client, InstrumentedSink(ClickHouseSink(clients[-1]))

    record = open(record_path, "a", buffering=1)

    class InstrumentedSink:
        """The worker's ClickHouseSink, plus one JSON line per stored batch: when, how many, how long each part took."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def write_batch(self, rows_by_table: dict[str, list[dict]], token: str) -> None:
            client = clients[0]
            insert_before = client.insert_s
            t0 = time.perf_counter()
            self.inner.write_batch(rows_by_table, token)
            visible = time.time()
            totals, spent = stages.batch(token)
            entry: dict[str, Any] = {
                "t": visible,
                "inbound": len(rows_by_table.get("receipts", ())) + len(rows_by_table.get("deadletter", ())),
                "events": len(rows_by_table.get("events", ())),
                "pipeline_s": spent,
                "stages_s": totals,
                "write_s": time.perf_counter() - t0,
                "insert_s": client.insert_s - insert_before,
            }
            if record_ts:
                events = rows_by_table.get("events", ())
                entry["ts"] = [round(r["ts"].timestamp(), 4) for r in events]
                entry["taken"] = events[0]["received_at"].timestamp() if events else visible
            record.write(json.dumps(entry) + "\n")

    runtime.make_pipeline, runtime.open_store = make_watched_pipeline, open_instrumented_store
    profile_to = os.environ.get(ENV_PROFILE)
    if (
        profile_to
    ):  # the event-loop thread only: faust/aiokafka (and the pipeline with --inline-pipeline), not the sink's thread
        import atexit
        import cProfile

        profiler = cProfile.Profile()
        atexit.register(lambda: (profiler.disable(), profiler.dump_stats(profile_to)))
        profiler.enable()
    app = build_app(config)
    engine = getattr(app, "tokentrail_engine", None)
    if engine is not None:
        stages.watch(engine)
    if not clients or (engine is None) == (not stages.inline):
        raise SystemExit(
            "build_app no longer gets its pipeline and store the way benchmarks/pipeline.py expects: update it"
        )
    # As stream/worker.py main() does (keep the two in step): no spinner (it sets the root logger to
    # DEBUG), and freeze the start-up objects and collect less often.
    worker = faust.Worker(app, loglevel=config.loglevel, quiet=True)
    worker.spinner = None
    runtime.tune_gc()
    worker.execute_from_commandline()


class WorkerProcess:
    """The instrumented worker as a child process, and its record file."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        workdir: Path,
        *,
        batch_size: int,
        batch_within: float,
        record_ts: bool,
        profile: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.store = workdir / "store"
        self.record = workdir / "batches.jsonl"
        self.record.touch()
        self.log_path = workdir / "worker.log"
        group = f"bench-{uuid.uuid4().hex[:8]}"
        args = [
            sys.executable,
            str(Path(__file__).resolve()),
            "_worker",
            str(self.record),
            *(["--record-ts"] if record_ts else []),
            "--kafka",
            bootstrap,
            "--clickhouse",
            f"chdb://{self.store}",
            "--events-topic",
            topic,
            "--deadletter-topic",
            f"{topic}.deadletter",
            "--alerts-topic",
            f"{topic}.alerts",
            "--control-topic",
            f"{topic}.control",
            "--group",
            group,
            "--batch-size",
            str(batch_size),
            "--batch-within",
            str(batch_within),
            "--data-dir",
            str(workdir / "faust"),
            "--allow-ephemeral-key",
            *extra,
        ]
        self._log = open(self.log_path, "wb")
        self.started = time.time()
        self.proc = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **({ENV_PROFILE: profile} if profile else {})},
        )
        self._offset = 0
        self.batches: list[dict[str, Any]] = []

    def poll_batches(self) -> list[dict[str, Any]]:
        with open(self.record, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        self.batches += [json.loads(line) for line in complete.splitlines() if line.strip()]
        return self.batches

    def inbound(self) -> int:
        return sum(b["inbound"] for b in self.poll_batches())

    def wait_inbound(self, expected: int, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while self.inbound() < expected:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.proc.returncode} while waiting for {what}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"timed out after {timeout:.0f}s waiting for {what} ({self.inbound()} of {expected} messages "
                    f"stored); the worker's log ends:\n{self.tail()}"
                )
            time.sleep(0.05)

    def cpu_seconds(self) -> tuple[float, float]:
        """User + system CPU so far of the worker process (all its threads, chDB's included) and of
        its child processes (the pipeline process, multiprocessing's resource tracker)."""
        return _cpu_of(self.proc.pid), sum(_cpu_of(pid) for pid in _descendants(self.proc.pid))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        self.poll_batches()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            for child in map(int, children.read_text().split()):
                found += [child, *_descendants(child)]
        except (OSError, ValueError):
            continue
    return found


def read_store(store: Path, queries: dict[str, str]) -> dict[str, Any]:
    from tokentrail.sinks import close_embedded, connect

    close_embedded()
    client = connect(f"chdb://{store}")
    try:
        return {name: client.query(sql).result_rows[0][0] for name, sql in queries.items()}
    finally:
        close_embedded()


def produce_lines(bootstrap: str, topic: str, lines: list[bytes]) -> float:
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


# ---------------------------------------------------------------------------- 3. sustained


def sustained(
    bootstrap: str,
    lines: list[bytes],
    truth: Any,
    *,
    partitions: int,
    batch_size: int,
    batch_within: float,
    timeout: float,
    profile: str | None = None,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    from kafka_broker import create_topic

    topic = create_topic(bootstrap, f"bench-sustained-{uuid.uuid4().hex[:8]}", partitions)
    log(
        f"sustained{' ' + ' '.join(extra) if extra else ''}: producing {len(lines):,} lines into {topic} ({partitions} partitions)"
    )
    produce_s = produce_lines(bootstrap, topic, lines)
    with tempfile.TemporaryDirectory(prefix="tt-bench-sustained-") as tmp:
        log("sustained: starting the worker on the backlog")
        worker = WorkerProcess(
            bootstrap,
            topic,
            Path(tmp),
            batch_size=batch_size,
            batch_within=batch_within,
            record_ts=False,
            profile=profile,
            extra=extra,
        )
        try:
            worker.wait_inbound(1, 120, "the first batch")
            cpu_first, t_cpu_first = worker.cpu_seconds(), time.time()
            worker.wait_inbound(len(lines), timeout, "the backlog to be stored")
            cpu, t_cpu = worker.cpu_seconds(), time.time()
        except BaseException:
            worker.stop()
            raise
        worker.stop()
        batches = worker.batches
        counts = read_store(
            worker.store,
            {
                "stored": "SELECT count() FROM tokentrail.events FINAL",
                "distinct": "SELECT uniqExact(event_id) FROM tokentrail.events",
                "dead": "SELECT count() FROM tokentrail.deadletter FINAL",
                "deliveries": "SELECT count() FROM (SELECT DISTINCT event_id, source FROM tokentrail.receipts)",
            },
        )
    first, last = batches[0], batches[-1]
    messages = sum(b["inbound"] for b in batches)
    events = sum(b["events"] for b in batches)
    span = last["t"] - first["t"]
    expected = {
        "stored": truth.valid_events,
        "distinct": truth.valid_events,
        "dead": sum(truth.malformed.values()),
        "deliveries": truth.valid_events + truth.redeliveries,
    }
    wall = [b["t"] - a["t"] for a, b in zip(batches, batches[1:])]
    measured = messages - first["inbound"]
    (own_first, children_first), (own, children) = cpu_first, cpu
    total_first, total = own_first + children_first, own + children
    parallel = children - children_first > 0.05 * (own - own_first)  # the pipeline ran in its own process
    per_msg = {
        "pipeline": sum(b["pipeline_s"] for b in batches[1:]) / measured * 1e6,
        "normalise": sum(b["write_s"] - b["insert_s"] for b in batches[1:]) / measured * 1e6,
        "insert": sum(b["insert_s"] for b in batches[1:]) / measured * 1e6,
    }
    # The rest of the worker's wall time: faust/Kafka, and (pipeline process) waiting for its results.
    on_worker_path = sum(b["write_s"] for b in batches[1:]) / measured * 1e6 + (0 if parallel else per_msg["pipeline"])
    per_msg["kafka+faust"] = sum(wall) / measured * 1e6 - on_worker_path
    return {
        "topic_partitions": partitions,
        "batch_size": batch_size,
        "batch_within": batch_within,
        "lines": len(lines),
        "produce_s": produce_s,
        "batches": len(batches),
        "batch_median": statistics.median(b["inbound"] for b in batches),
        "messages_per_s": measured / span,
        "events_per_s": (events - first["events"]) / span,
        "messages_per_s_with_startup": messages / (last["t"] - worker.started),
        "startup_s": first["t"] - worker.started,
        "drain_s": span,
        "pipeline_process": parallel,
        "worker_cpu_s": total,
        "worker_cpu_share": total / (last["t"] - worker.started),
        "worker_cpu_share_draining": (total - total_first) / (t_cpu - t_cpu_first),
        # CPU per message is steadier than wall time on a shared machine (it ignores time spent runnable but not running).
        "worker_cpu_us_per_msg": (total - total_first) / measured * 1e6,
        "worker_cpu_split_us": {
            "worker process": (own - own_first) / measured * 1e6,
            "pipeline process": (children - children_first) / measured * 1e6,
        },
        # Where one batch's wall time goes (per message, batches after the first).
        "per_msg_us": per_msg,
        "worker_stages_us": {
            name: (last["stages_s"][name] - first["stages_s"].get(name, 0.0)) / (messages - first["inbound"]) * 1e6
            for name in last["stages_s"]
        },
        "store": counts,
        "expected": expected,
        "exact": counts == expected,
    }


# ---------------------------------------------------------------------------- 4. latency

SYSTEM = (
    "You are Northwind's order-support assistant. Answer questions about orders, shipping and returns "
    "using only the tools provided. Keep answers under 120 words and cite the order number you looked up."
)
MODELS = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-0"), ("openai", "gpt-4o-mini")]


def latency(
    bootstrap: str, *, rate: int, seconds: float, batch_within: float, partitions: int, batch_size: int
) -> dict[str, Any]:
    from kafka_broker import create_topic

    import tokentrail.collectors as tt
    from tokentrail.collectors.kafka import KafkaTransport

    topic = create_topic(bootstrap, f"bench-latency-{uuid.uuid4().hex[:8]}", partitions)
    with tempfile.TemporaryDirectory(prefix="tt-bench-latency-") as tmp:
        workdir = Path(tmp)
        worker = WorkerProcess(
            bootstrap, topic, workdir, batch_size=batch_size, batch_within=batch_within, record_ts=True
        )
        collector = tt.Collector(
            service="bench",
            transport=KafkaTransport(
                tt.KafkaSettings(bootstrap_servers=bootstrap, topic=topic, spool_dir=workdir / "spool")
            ),
            register_atexit=False,
            settings=tt.CollectorSettings(max_queue=100_000),
        )

        def call(i: int) -> None:
            provider, model = MODELS[i % len(MODELS)]
            messages = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Where is order #{100000 + i}? It was due yesterday."},
            ]
            with collector.trace(feature=f"feature-{i % 5}", tenant=f"tenant-{i % 4}", user_id=f"user-{i % 97}"):
                with collector.model_call(provider=provider, model=model, messages=messages) as c:
                    c.finish(
                        response_model=model,
                        output=f"Order #{100000 + i} left the warehouse today and arrives tomorrow.",
                        finish_reason="stop",
                        usage={"input_tokens": 400 + i % 300, "output_tokens": 30 + i % 60},
                    )

        try:
            # Warm-up: the worker has joined its group and written a batch before the clock starts.
            log(f"latency (--batch-within {batch_within}): waiting for the worker")
            for i in range(20):
                call(i)
            collector.flush(30)
            worker.wait_inbound(40, 120, "the warm-up events")
            calls_wanted = int(rate * seconds / 2)  # a model call is two events
            interval = 2.0 / rate
            log(f"latency (--batch-within {batch_within}): {rate} events/s for {seconds:.0f} s")
            measure_from = time.time()
            t0 = time.perf_counter()
            lag_max = 0.0
            for i in range(calls_wanted):
                target = t0 + i * interval
                now = time.perf_counter()
                if target > now:
                    time.sleep(target - now)
                else:
                    lag_max = max(lag_max, now - target)
                call(1000 + i)
            emit_s = time.perf_counter() - t0
            collector.flush(30)
            delivered = collector.stats().get("delivered")
            worker.wait_inbound(40 + 2 * calls_wanted, 120, "every measured event")
            worker.stop()
        except BaseException:
            worker.stop()
            raise
        finally:
            collector.close()
        stored = read_store(worker.store, {"distinct": "SELECT uniqExact(event_id) FROM tokentrail.events"})["distinct"]
    total, waiting, processing = [], [], []
    for b in worker.batches:
        for ts in b["ts"]:
            if ts >= measure_from - 0.01:  # ts is rounded to 0.1 ms; the warm-up ended seconds before
                total.append(b["t"] - ts)
                waiting.append(b["taken"] - ts)
                processing.append(b["t"] - b["taken"])
    measured = [b for b in worker.batches if b["ts"] and b["ts"][-1] >= measure_from - 0.01]
    return {
        "batch_within": batch_within,
        "batch_median": statistics.median(b["inbound"] for b in measured),
        "batch_ms_median": statistics.median((b["pipeline_s"] + b["write_s"]) * 1e3 for b in measured),
        "insert_ms_median": statistics.median(b["insert_s"] * 1e3 for b in measured),
        "offered_rate": 2 * calls_wanted / emit_s,
        "pacing_lag_max_s": lag_max,
        "events": len(total),
        "p50": pct(total, 50),
        "p99": pct(total, 99),
        "max": max(total),
        "taken_p50": pct(waiting, 50),
        "taken_p99": pct(waiting, 99),
        "processing_p50": pct(processing, 50),
        "processing_p99": pct(processing, 99),
        "delivered": delivered,
        "stored_distinct": stored,
        "exact": stored == 40 + 2 * calls_wanted and len(total) == 2 * calls_wanted,
    }


# ---------------------------------------------------------------------------- main


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def versions() -> str:
    from importlib import metadata

    names = ("faust-streaming", "aiokafka", "chdb", "clickhouse-connect", "confluent-kafka")
    return ", ".join(f"{n} {metadata.version(n)}" for n in names)


def main(argv: list[str]) -> int:
    from tokentrail.stream.faust_worker import WorkerConfig  # the worker's defaults are the benchmark's defaults

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kafka", default=os.environ.get(ENV_KAFKA), help=f"broker to use (default ${ENV_KAFKA}, else start one)"
    )
    parser.add_argument("--events", type=int, default=50_000, help="generator events for the sustained run")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=WorkerConfig.batch_size,
        help="the worker's --batch-size (default: its default)",
    )
    parser.add_argument("--rate", type=int, default=GOAL_RATE, help="offered load of the latency run, events/s")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument(
        "--batch-within",
        type=float,
        nargs="+",
        default=[WorkerConfig.batch_within, 0.1],
        help="one latency run per value (default: the worker's default and 0.1)",
    )
    parser.add_argument(
        "--sustained-batch-within",
        type=float,
        default=WorkerConfig.batch_within,
        help="the sustained run's --batch-within (default: the worker's default)",
    )
    parser.add_argument(
        "--replay-lines",
        type=int,
        default=10_000,
        help="replay (and per-stage profile) over the first N generated lines",
    )
    parser.add_argument("--replay-runs", type=int, default=3)
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["replay", "sustained", "inline", "latency"],
        help="inline: the second sustained run, with the pipeline in the worker's process (--inline-pipeline)",
    )
    parser.add_argument(
        "--nlp-model",
        default="none",
        help=f"{ENV_NLP} for this run and its worker: none (the goals' setting, pattern-only redaction), auto, or a spaCy model",
    )
    parser.add_argument(
        "--profile-worker",
        metavar="FILE",
        help="cProfile the sustained run's worker (event-loop thread) into FILE (slows it)",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(SCRIPTS))
    os.environ[ENV_NLP] = args.nlp_model  # inherited by the worker processes
    if not os.environ.get(ENV_KEY) and not os.environ.get(ENV_KEY + "_FILE"):
        os.environ[ENV_KEY] = secrets.token_hex(32)  # a throwaway pseudonym key (no ephemeral-key warnings)
    results: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(),
        "redactor": redactor_description(),
        "loadavg_before": os.getloadavg(),
    }
    started = time.monotonic()
    log(f"generating {args.events:,} events (seed {args.seed})")
    lines, truth = generate_lines(args.events, args.seed)

    if "replay" not in args.skip:
        log(f"embedded replay x{args.replay_runs}")
        whole = args.replay_lines >= len(lines)
        results["replay"] = embedded_replay(
            lines[: args.replay_lines], args.replay_runs, 5_000, truth.valid_events if whole else None
        )

    broker = None
    if not {"sustained", "latency"} <= set(args.skip):
        bootstrap = args.kafka
        if not bootstrap:
            from kafka_broker import KafkaBroker

            log("starting a Kafka broker")
            broker = KafkaBroker().start()
            bootstrap = broker.bootstrap
        try:
            if "sustained" not in args.skip:
                results["sustained"] = sustained(
                    bootstrap,
                    lines,
                    truth,
                    partitions=args.partitions,
                    batch_size=args.batch_size,
                    batch_within=args.sustained_batch_within,
                    timeout=max(120.0, len(lines) / 200),
                    profile=args.profile_worker,
                )
                if "inline" not in args.skip:  # side by side: what the pipeline process buys
                    results["sustained_inline"] = sustained(
                        bootstrap,
                        lines,
                        truth,
                        partitions=args.partitions,
                        batch_size=args.batch_size,
                        batch_within=args.sustained_batch_within,
                        timeout=max(120.0, len(lines) / 200),
                        extra=("--inline-pipeline",),
                    )
            if "latency" not in args.skip:
                results["latency"] = [
                    latency(
                        bootstrap,
                        rate=args.rate,
                        seconds=args.latency_seconds,
                        batch_within=w,
                        partitions=args.partitions,
                        batch_size=args.batch_size,
                    )
                    for w in args.batch_within
                ]
        finally:
            if broker is not None:
                broker.close()
    results["elapsed_s"] = time.monotonic() - started
    results["loadavg_after"] = os.getloadavg()
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    exact = (
        results.get("sustained", {}).get("exact", True)
        and results.get("sustained_inline", {}).get("exact", True)
        and results.get("replay", {}).get("exact", True)
        and all(r["exact"] for r in results.get("latency", []))
    )
    goals = (
        results.get("sustained", {}).get("messages_per_s", GOAL_SUSTAINED) >= GOAL_SUSTAINED
        and min((r["p99"] for r in results.get("latency", [])), default=0.0) <= GOAL_P99
    )
    if not exact:
        print("\nFAILED: the store does not hold exactly the events sent (see the store checks above)")
    return 0 if exact and goals else 1


def report(r: dict[str, Any]) -> None:
    out = print
    out(f"\nPipeline benchmark: {r['machine']}")
    out(f"{r['versions']}; redactor: {r['redactor']}")
    out(
        f"run took {r['elapsed_s']:.0f} s; load average (1 min) {r['loadavg_before'][0]:.1f} before, {r['loadavg_after'][0]:.1f} after\n"
    )
    rows: list[tuple[str, str, str, str]] = []
    if "sustained" in r:
        s = r["sustained"]
        rows.append(
            (
                "Sustained, Kafka -> worker -> ClickHouse",
                f"{s['messages_per_s']:,.0f} events/s",
                f">= {GOAL_SUSTAINED:,.0f}",
                "yes" if s["messages_per_s"] >= GOAL_SUSTAINED else "NO",
            )
        )
        rows.append(("  same, including worker start-up", f"{s['messages_per_s_with_startup']:,.0f} events/s", "", ""))
    if "sustained_inline" in r:
        s = r["sustained_inline"]
        rows.append(("  same, pipeline in the worker's process", f"{s['messages_per_s']:,.0f} events/s", "", ""))
    for lat in r.get("latency", []):
        rows.append(
            (
                f"Latency p50 / p99 / max, --batch-within {lat['batch_within']}",
                f"{lat['p50']:.2f} / {lat['p99']:.2f} / {lat['max']:.2f} s",
                f"p99 <= {GOAL_P99:.0f} s",
                "yes" if lat["p99"] <= GOAL_P99 else "NO",
            )
        )
    if "replay" in r:
        rows.append(("Embedded replay (tokentrail replay path)", f"{r['replay']['lines_per_s']:,.0f} events/s", "", ""))
    widths = [max(len(row[i]) for row in rows + [("what", "measured", "goal", "holds")]) for i in range(4)]
    for row in [("what", "measured", "goal", "holds"), tuple("-" * w for w in widths), *rows]:
        out("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())

    for key, title in (("sustained", "Sustained"), ("sustained_inline", "Sustained, --inline-pipeline")):
        if key not in r:
            continue
        s = r[key]
        out(
            f"\n{title}: {s['lines']:,} lines ({s['expected']['stored']:,} distinct events, {s['expected']['dead']:,} malformed, "
            f"{s['expected']['deliveries'] - s['expected']['stored']:,} re-deliveries) pre-produced to {s['topic_partitions']} partitions "
            f"in {s['produce_s']:.1f} s; worker --batch-size {s['batch_size']} --batch-within {s['batch_within']}; worker start-up to first stored batch {s['startup_s']:.1f} s, drained in {s['drain_s']:.1f} s "
            f"({s['batches']} batches, median {s['batch_median']:,.0f} messages); distinct events stored/s {s['events_per_s']:,.0f}."
        )
        split = s["worker_cpu_split_us"]
        out(
            f"  worker CPU {s['worker_cpu_s']:.1f} s: {s['worker_cpu_share']:.0%} of one core over its lifetime, "
            f"{s['worker_cpu_share_draining']:.0%} while draining = {s['worker_cpu_us_per_msg']:.0f} us of CPU per message "
            f"(worker process {split['worker process']:.0f}, pipeline process {split['pipeline process']:.0f})"
        )
        pm = dict(s["per_msg_us"])
        if s["pipeline_process"]:
            busy = pm.pop("pipeline")
            out(
                "  worker process wall time per message: "
                + ", ".join(f"{k} {v:.0f} us" for k, v in pm.items())
                + f" (total {sum(pm.values()):.0f} us; 'kafka+faust' includes waiting for the pipeline process, "
                f"busy {busy:.0f} us per message in parallel)"
            )
        else:
            out(
                "  worker wall time per message: "
                + ", ".join(f"{k} {v:.0f} us" for k, v in pm.items())
                + f" (total {sum(pm.values()):.0f} us)"
            )
        out("  pipeline per message: " + ", ".join(f"{k} {v:.0f} us" for k, v in s["worker_stages_us"].items()))
        out(f"  store check: {s['store']} expected {s['expected']}: {'exact' if s['exact'] else 'MISMATCH'}")
    for lat in r.get("latency", []):
        out(
            f"\nLatency, --batch-within {lat['batch_within']}: offered {lat['offered_rate']:,.0f} events/s "
            f"(pacing fell behind by at most {lat['pacing_lag_max_s'] * 1000:.0f} ms), {lat['events']:,} events measured; "
            f"until the worker took the batch p50 {lat['taken_p50']:.2f} s / p99 {lat['taken_p99']:.2f} s, "
            f"pipeline + insert p50 {lat['processing_p50']:.2f} s / p99 {lat['processing_p99']:.2f} s; "
            f"median batch {lat['batch_median']:,.0f} messages, {lat['batch_ms_median']:.0f} ms to process and store "
            f"(of which {lat['insert_ms_median']:.0f} ms in chDB inserts); "
            f"store check: {lat['stored_distinct']:,} distinct events {'(exact)' if lat['exact'] else '(MISMATCH)'}"
        )
    if "replay" in r:
        rp = r["replay"]
        out(
            f"\nEmbedded replay: {rp['lines']:,} lines in batches of {rp['batch_size']:,}, runs {rp['runs']} lines/s (median "
            f"{rp['lines_per_s']:,.0f}; {rp['lines_per_s_after_build']:,.0f} without the {rp['build_s']:.1f} s spent building the pipeline)"
        )
        out("Cost per inbound message, in-process (no Kafka), microseconds, median of the replay runs:")
        for name, us in rp["stages_us"].items():
            out(f"  {name:<24} {us:8.1f}")
        out(f"  {'pipeline total':<24} {sum(rp['stages_us'].values()):8.1f}")
        out(f"  {'sink: normalise values':<24} {rp['normalise_us']:8.1f}")
        out(f"  {'sink: chDB insert':<24} {rp['insert_us']:8.1f}")
        out(f"  {'replay, all in':<24} {rp['total_us']:8.1f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["_worker"]:
        worker_main(sys.argv[2:])
    else:
        sys.exit(main(sys.argv[1:]))
