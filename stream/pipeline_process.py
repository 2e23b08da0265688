"""The pipeline in processes of their own, so that a worker uses more than one core.

A worker is one Python process, and Python runs one thread at a time: faust's consuming and
acknowledging, the pipeline's stages and the sink's inserts took turns on one core. Here the
stages (validate, dedupe, redact, price, build rows, detect loops) run in a child process, while
the worker's own process consumes the next batch, stores the previous one and acknowledges it.
The child gets raw messages and returns rows, detections and the loop detector's state changes;
it does no I/O. Measured in benchmarks/pipeline.py (docs/performance.md, "Pipeline").

Loop-detector state stays in the worker's faust table (changelog, recovery, rebalancing all
unchanged). The child keeps the states it produced in a bounded cache, which is always at least
as new as the table, because the table is written from the child's own results; with each batch
the worker sends the table's state for that batch's traces, which the child uses only for
traces it has not seen (after a restart). On a rebalance the worker tells the child to forget
its cache, since another worker may have moved those traces on.

With `processes` > 1 (`tokentrail worker --pipeline-processes N`) a batch is split by Kafka
partition, partition p going to child p % N, and the children work on their parts at once. A
partition is what one worker of a consumer group owns, so each child sees every message its
partitions carry, exactly as a worker would: the re-deliveries its dedupe must catch and every
event of the traces its loop detector follows (messages are keyed by trace id, the state table
is co-partitioned with the topics). The parts' rows, detections and state changes are merged in
the worker; the batch's dedup token is the whole batch's.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from tokentrail.collectors.event_bounds import DEFAULT_TS_WINDOW, TsWindow

from .batch import Inbound
from .embedded import batch_token
from .otlp.stage import OtlpSettings

__all__ = ["PipelineProcess", "PipelineSettings", "Processed", "StateCache"]

log = logging.getLogger("tokentrail.worker")


@dataclass(frozen=True)
class PipelineSettings:
    """What the child needs to build the same pipeline the worker would have built."""

    prices: str | None
    redaction_key: bytes | None  # the worker's key, so pseudonyms are the worker's, not a child's own
    halt_on: frozenset[str] = frozenset()
    state_capacity: int = 200_000  # traces kept in the child; far more than two batches can touch
    tenant_topics: tuple[tuple[str, str], ...] = ()  # (topic, tenant) bindings: stream/tenant_binding.py
    ts_window: TsWindow = DEFAULT_TS_WINDOW  # event times accepted around the time the worker read them
    otlp: OtlpSettings | None = None  # the OTLP topic and mapping defaults (docs/otlp.md)


@dataclass
class Processed:
    """One batch's outcome: what the worker stores, publishes and writes back to its state table."""

    rows: dict[str, list[dict[str, Any]]]
    detections: list[dict[str, Any]]
    token: str  # the batch's dedup token (embedded.batch_token), hashed here rather than in the worker
    state_changes: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # None: the trace expired
    stage_seconds: dict[str, float] = field(default_factory=dict)  # cumulative, per stage (benchmarks)


class StateCache(MutableMapping[str, dict[str, Any]]):
    """The loop detector's state in the child: newest first, bounded, and a record of what changed.

    Evicting the least recently touched trace is not a change: the worker's table keeps it, and
    sends it back (`seed`) if that trace comes again.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.changes: dict[str, dict[str, Any] | None] = {}

    def seed(self, states: dict[str, dict[str, Any]]) -> None:
        for trace, state in states.items():
            if trace not in self._data:
                self._put(trace, state)

    def take_changes(self) -> dict[str, dict[str, Any] | None]:
        changes, self.changes = self.changes, {}
        return changes

    def clear(self) -> None:
        self._data.clear()
        self.changes.clear()

    def _put(self, trace: str, state: dict[str, Any]) -> None:
        self._data[trace] = state
        self._data.move_to_end(trace)
        if len(self._data) > self.capacity:
            self._data.popitem(last=False)

    def __getitem__(self, trace: str) -> dict[str, Any]:
        return self._data[trace]

    def __setitem__(self, trace: str, state: dict[str, Any]) -> None:
        self._put(trace, state)
        self.changes[trace] = state

    def __delitem__(self, trace: str) -> None:
        del self._data[trace]
        self.changes[trace] = None

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)


# -- the child process ---------------------------------------------------------------------------

_pipeline: Any = None
_state: StateCache | None = None


def _start(settings: PipelineSettings, parent: int) -> None:
    global _pipeline, _state
    from .detectors import LoopConfig
    from .runtime import make_pipeline, tune_gc

    # The worker decides when to stop: Ctrl-C in a terminal reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), name="exit-with-worker", daemon=True).start()

    _state = StateCache(settings.state_capacity)
    _pipeline = make_pipeline(
        prices=settings.prices,
        allow_ephemeral_key=False,
        redaction_key=settings.redaction_key,
        loops=LoopConfig(halt_on=settings.halt_on),
        loop_state=_state,
        tenant_topics=dict(settings.tenant_topics),
        ts_window=settings.ts_window,
        otlp=settings.otlp,
    )
    tune_gc()


def _exit_with(parent: int) -> None:
    """A SIGKILLed worker cannot stop its pipeline process, and the process's own copy of the
    task queue keeps it from ever seeing end-of-file: it leaves when it is no longer the worker's child."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _ready() -> bool:
    return _pipeline is not None


def _process(inbound: list[Inbound], seeds: dict[str, dict[str, Any]], forget: bool) -> Processed:
    assert _pipeline is not None and _state is not None, "the pipeline process was not started"
    if forget:
        _state.clear()
    _state.seed(seeds)
    try:
        batch = _pipeline.process(inbound)
    except BaseException:
        _state.clear()  # half-updated states must not reach the table with a later batch
        raise
    return Processed(
        batch.rows, batch.detections, batch_token(inbound), _state.take_changes(), dict(_pipeline.stage_seconds)
    )


# -- the worker's side ---------------------------------------------------------------------------


class PipelineProcess:
    """The child processes and the calls into them. Each child processes its parts one at a time, in order."""

    def __init__(self, settings: PipelineSettings, processes: int = 1) -> None:
        if processes < 1:
            raise ValueError(f"--pipeline-processes must be at least 1, got {processes}")
        # Spawned, not forked: the worker runs threads (aiokafka, the sink's executor) that fork would copy mid-flight.
        spawn = multiprocessing.get_context("spawn")
        self._executors = [
            ProcessPoolExecutor(1, mp_context=spawn, initializer=_start, initargs=(settings, os.getpid()))
            for _ in range(processes)
        ]
        self._forget = [False] * processes
        self._stage_seconds: list[dict[str, float]] = [{} for _ in range(processes)]  # each child's latest totals
        # Every child builds its pipeline now, while faust starts; `started` is done when all have.
        self.started = _all_of([executor.submit(_ready) for executor in self._executors])

    @property
    def processes(self) -> int:
        return len(self._executors)

    def submit(
        self, inbound: list[Inbound], seeds: dict[str, dict[str, Any]], partitions: Sequence[int] | None = None
    ) -> Future[Processed]:
        """Queue a batch; the future gives its `Processed`. `seeds`: the state table's entries for its
        traces; `partitions`: each message's Kafka partition (needed with more than one child)."""
        if len(self._executors) == 1 or not inbound:
            return self._part(0, inbound, seeds)
        if partitions is None or len(partitions) != len(inbound):
            raise ValueError("with several pipeline processes every message needs its partition")
        parts: list[list[Inbound]] = [[] for _ in self._executors]
        for item, partition in zip(inbound, partitions, strict=True):
            parts[partition % len(parts)].append(item)
        # Each child gets every seed: it uses only those of traces it has not seen, and a trace's
        # messages always reach the same child, so a seed for another child's trace is never read.
        jobs = [self._part(i, part, seeds) for i, part in enumerate(parts) if part]
        return _merged(jobs, batch_token(inbound), self._stage_seconds)

    def _part(self, child: int, inbound: list[Inbound], seeds: dict[str, dict[str, Any]]) -> Future[Processed]:
        forget, self._forget[child] = self._forget[child], False
        try:
            job = self._executors[child].submit(_process, inbound, seeds, forget)
        except BrokenProcessPool as exc:
            # A child that died while idle breaks its pool, and the pool then refuses work at once.
            # Failing the batch's future instead (as a child dying mid-batch does) lets the agent
            # stop the worker; raised here, it would only crash the agent, which faust restarts.
            job = Future()
            job.set_exception(exc)
        job.add_done_callback(lambda done: self._remember_totals(child, done))
        return job

    def _remember_totals(self, child: int, job: Future[Processed]) -> None:
        if not job.cancelled() and job.exception() is None:
            self._stage_seconds[child] = job.result().stage_seconds

    def wait_started(self, timeout: float = 300) -> None:
        """Block until every child has built its pipeline; a failure there (a configuration the
        child rejects) is raised here, as the ValueError the command line reports."""
        try:
            self.started.result(timeout)
        except BrokenProcessPool:
            raise ValueError("the pipeline process could not build the pipeline; its error is logged above") from None

    def alive(self) -> bool:
        """Every child still runs. Read from the pools themselves: a killed child marks its pool broken
        (`_broken`) and empties its process table; the worker would learn of it only at its next batch."""
        return all(_pool_alive(executor) for executor in self._executors)

    def forget_state(self) -> None:
        """The next batch starts from the state table alone (after a rebalance)."""
        self._forget = [True] * len(self._executors)

    def close(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)


def _pool_alive(executor: ProcessPoolExecutor) -> bool:
    # Called from the health server's threads while the pool's own thread may empty the table: a copy.
    processes = list((getattr(executor, "_processes", None) or {}).copy().values())
    return not getattr(executor, "_broken", False) and any(p.is_alive() for p in processes)


def _all_of(jobs: list[Future[Any]]) -> Future[None]:
    """Done when every job is; failed with the first failure seen."""
    combined: Future[None] = Future()
    pending = [len(jobs)]
    lock = threading.Lock()

    def finished(job: Future[Any]) -> None:
        with lock:
            pending[0] -= 1
            if combined.done():
                return
            if job.cancelled():
                combined.cancel()  # the pool was shut down (the worker is stopping): not a failure
            elif job.exception() is not None:
                combined.set_exception(job.exception())
            elif pending[0] == 0:
                combined.set_result(None)

    for job in jobs:
        job.add_done_callback(finished)
    return combined


def _merged(jobs: list[Future[Processed]], token: str, totals: list[dict[str, float]]) -> Future[Processed]:
    """One batch's `Processed` from its parts: rows, detections and state changes joined, the token
    the whole batch's, stage times every child's totals added up (as one child's would be)."""
    merged: Future[Processed] = Future()

    def join(done: Future[None]) -> None:
        if done.cancelled():
            merged.cancel()  # as a one-child batch's future would be: the worker is stopping
            return
        if done.exception() is not None:
            merged.set_exception(done.exception())
            return
        rows: dict[str, list[dict[str, Any]]] = {}
        detections: list[dict[str, Any]] = []
        changes: dict[str, dict[str, Any] | None] = {}
        for job in jobs:
            part = job.result()
            for table, table_rows in part.rows.items():
                rows.setdefault(table, []).extend(table_rows)
            detections.extend(part.detections)
            changes.update(part.state_changes)
        stage_seconds: dict[str, float] = {}
        for child in totals:
            for stage, seconds in child.items():
                stage_seconds[stage] = stage_seconds.get(stage, 0.0) + seconds
        merged.set_result(Processed(rows, detections, token, changes, stage_seconds))

    _all_of(list(jobs)).add_done_callback(join)
    return merged
