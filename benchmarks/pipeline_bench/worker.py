"""The real worker, instrumented, as a child process (``pipeline.py _worker``), and its parent handle.

The child is ``build_app`` + ``faust.Worker`` as ``tokentrail worker`` runs them, except that the
sink appends one JSON line per stored batch to a record file: when its rows became visible, how
many messages it held, and how long the pipeline, the sink and chDB's insert took. The parent
reads that file to measure; it never talks to the worker otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from _common import REPO, TimedClient, cpu_seconds, descendants

PIPELINE_SCRIPT = REPO / "benchmarks" / "pipeline.py"
ENV_PROFILE = "TOKENTRAIL_BENCH_PROFILE"  # set by --profile-worker for the sustained run's worker


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

        def submit_and_remember(inbound: list[Any], *args: Any) -> Any:
            future = submit(inbound, *args)
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


class InstrumentedSink:
    """The worker's ClickHouseSink, plus one JSON line per stored batch: when, how many, how long each part took."""

    def __init__(self, inner: Any, client: TimedClient, stages: StageTimes, record: Any, *, record_ts: bool) -> None:
        self.inner, self.client, self.stages, self.record, self.record_ts = inner, client, stages, record, record_ts

    def write_batch(self, rows_by_table: dict[str, list[dict[str, Any]]], token: str) -> Any:
        insert_before = self.client.insert_s
        t0 = time.perf_counter()
        result = self.inner.write_batch(rows_by_table, token)
        visible = time.time()  # the insert is synchronous: the rows are visible now
        totals, spent = self.stages.batch(token)
        entry: dict[str, Any] = {
            "t": visible,
            "inbound": len(rows_by_table.get("receipts", ())) + len(rows_by_table.get("deadletter", ())),
            "events": len(rows_by_table.get("events", ())),
            "pipeline_s": spent,
            "stages_s": totals,
            "write_s": time.perf_counter() - t0,
            "insert_s": self.client.insert_s - insert_before,
        }
        if self.record_ts:
            events = rows_by_table.get("events", ())
            entry["ts"] = [round(r["ts"].timestamp(), 4) for r in events]
            entry["taken"] = events[0]["received_at"].timestamp() if events else visible
        self.record.write(json.dumps(entry) + "\n")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def worker_main(argv: list[str]) -> None:
    """`pipeline.py _worker RECORD_FILE [--record-ts] WORKER-ARGS...`: the real worker, instrumented sink."""
    import faust

    from tokentrail.sinks.writer import ClickHouseSink
    from tokentrail.stream import runtime
    from tokentrail.stream.faust_worker import build_app, parse_args

    record_path = Path(argv[0])
    record_ts = argv[1:2] == ["--record-ts"]
    config = parse_args(argv[2:] if record_ts else argv[1:])
    record = open(record_path, "a", buffering=1)  # line-buffered: the parent reads it while we run
    # The worker opens its own store (its insights timer uses the client) and, with
    # --inline-pipeline, builds its own pipeline: wrap both where build_app gets them.
    stages = StageTimes()
    clients: list[TimedClient] = []
    real_make_pipeline, real_open_store = runtime.make_pipeline, runtime.open_store

    def make_watched_pipeline(*args: Any, **kwargs: Any) -> Any:
        stages.inline.append(real_make_pipeline(*args, **kwargs))
        return stages.inline[-1]

    def open_instrumented_store(dsn: str | None, *, max_attempts: int | None = None) -> tuple[Any, Any]:
        client, _ = real_open_store(dsn, max_attempts=max_attempts)
        clients.append(TimedClient(client))
        return client, InstrumentedSink(ClickHouseSink(clients[-1]), clients[-1], stages, record, record_ts=record_ts)

    runtime.make_pipeline, runtime.open_store = make_watched_pipeline, open_instrumented_store
    profile_to = os.environ.get(ENV_PROFILE)
    if profile_to:  # the event-loop thread only: faust/aiokafka (and an inline pipeline), not the sink's thread
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
            "build_app no longer gets its pipeline and store the way benchmarks/pipeline_bench/worker.py expects"
        )
    # As the worker command does (keep the two in step): no spinner (it sets the root logger to
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
        worker_args = {
            "--kafka": bootstrap,
            "--clickhouse": f"chdb://{self.store}",
            "--events-topic": topic,
            "--deadletter-topic": f"{topic}.deadletter",
            "--alerts-topic": f"{topic}.alerts",
            "--control-topic": f"{topic}.control",
            "--group": f"bench-{uuid.uuid4().hex[:8]}",
            "--batch-size": str(batch_size),
            "--batch-within": str(batch_within),
            "--data-dir": str(workdir / "faust"),
        }
        args = [
            sys.executable,
            str(PIPELINE_SCRIPT),
            "_worker",
            str(self.record),
            *(["--record-ts"] if record_ts else []),
            *(part for pair in worker_args.items() for part in pair),
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
        """Every batch recorded so far (complete lines only: the child may be mid-write)."""
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
        return cpu_seconds(self.proc.pid), sum(cpu_seconds(pid) for pid in descendants(self.proc.pid))

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
