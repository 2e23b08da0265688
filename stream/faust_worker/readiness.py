"""Is the worker doing its job? The verdict `/ready` serves, from signals the worker gathers.

Pure logic over plain values and a clock, so every rule is tested with a fake clock
(tests/stream/test_readiness.py); the worker's side (stream/faust_worker/probe.py) samples the
signals and serves the verdict. Not ready when any of these holds:

- the pipeline process is gone (the worker crashes at its next batch; until then nothing is processed);
- the store has been failing for `sink_failing_seconds`: the sink's first failed attempt since its
  last successful insert (`stats["failing_since"]`), or one insert that has been running that long
  without failing (a hung connection fails nothing, and stores nothing either);
- a partition's consumer lag has been growing, or standing still above 0 with no offset committed,
  for `lag_growing_seconds`, after Burrow's rules for consumer status: over the whole window the lag
  never went down between two samples and ended higher, or the committed offset never moved while
  messages waited. A healthy worker's lag goes up and down with each batch, so neither holds;
- the worker has not started yet (the pipeline process is building its pipeline, or the consumer
  has not joined its group).

Event time plays no part: replaying last year's traffic is as ready as live traffic.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LagHistory", "Readiness", "Signals", "Thresholds", "Verdict"]


@dataclass(frozen=True)
class Thresholds:
    sink_failing_seconds: float = 60.0
    lag_growing_seconds: float = 300.0  # 0: the lag is not checked


@dataclass(frozen=True)
class Signals:
    """What the worker knows at one moment. Times are `time.time()` seconds; None: not happening."""

    started: bool = True
    pipeline_alive: bool | None = None  # None: no pipeline process (the stages run inline)
    store_failing_since: float | None = None
    store_busy_since: float | None = None  # when the insert that is running now began


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reasons: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"ready": self.ready, "reasons": list(self.reasons), **self.details}


@dataclass(frozen=True)
class _Sample:
    at: float
    lag: int
    committed: int | None


class LagHistory:
    """Lag and committed offset per partition, sampled over a little more than the window.

    Written by the event loop (the sampler) and read by the health server's threads (each /ready):
    a lock keeps a read from iterating a dict or deque the sampler is changing."""

    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self._samples: dict[str, deque[_Sample]] = {}
        self._lock = threading.Lock()

    def add(self, at: float, partitions: dict[str, tuple[int, int | None]]) -> None:
        """One sample: partition name -> (lag, committed offset or None). Partitions not named are
        no longer this worker's: their history is dropped (another worker's lag is its own)."""
        with self._lock:
            for gone in set(self._samples) - set(partitions):
                del self._samples[gone]
            for name, (lag, committed) in partitions.items():
                history = self._samples.setdefault(name, deque())
                history.append(_Sample(at, max(0, lag), committed))
                # Keep the newest sample at or before the window's start, and everything after it.
                while len(history) >= 2 and history[1].at <= at - self.window:
                    history.popleft()

    def _snapshot(self) -> dict[str, list[_Sample]]:
        with self._lock:
            return {name: list(history) for name, history in self._samples.items()}

    def lags(self) -> dict[str, int]:
        return {name: samples[-1].lag for name, samples in self._snapshot().items() if samples}

    def troubles(self, now: float) -> list[str]:
        """Why partitions are falling behind, one sentence each; empty when none is."""
        found = []
        for name, samples in sorted(self._snapshot().items()):
            if not samples or samples[0].at > now - self.window or samples[-1].at <= now - self.window:
                continue  # the history does not cover the window yet, or sampling stopped (not ours to judge)
            first, last = samples[0], samples[-1]
            pairs = list(zip(samples, samples[1:], strict=False))
            if min(s.lag for s in samples) > 0 and all(b.lag >= a.lag for a, b in pairs) and last.lag > first.lag:
                found.append(f"consumer lag of {name} grew from {first.lag} to {last.lag} over {now - first.at:.0f}s")
            elif min(s.lag for s in samples) > 0 and len({s.committed for s in samples}) == 1:
                found.append(f"nothing committed on {name} for {now - first.at:.0f}s while {last.lag} messages wait")
        return found


class Readiness:
    """The verdict from the signals and the lag history, by the thresholds, at `clock()`."""

    def __init__(self, thresholds: Thresholds, clock: Callable[[], float] = time.time) -> None:
        self.thresholds = thresholds
        self.clock = clock
        self.lag = LagHistory(thresholds.lag_growing_seconds)

    def sample_lag(self, partitions: dict[str, tuple[int, int | None]]) -> None:
        if self.thresholds.lag_growing_seconds > 0:
            self.lag.add(self.clock(), partitions)

    def check(self, signals: Signals) -> Verdict:
        now = self.clock()
        reasons: list[str] = []
        if not signals.started:
            reasons.append("starting: the consumer has not joined its group or the pipeline is being built")
        if signals.pipeline_alive is False:
            reasons.append("the pipeline process is gone")
        limit = self.thresholds.sink_failing_seconds
        if signals.store_failing_since and now - signals.store_failing_since >= limit:
            reasons.append(f"the store has been failing for {now - signals.store_failing_since:.0f}s")
        elif signals.store_busy_since and now - signals.store_busy_since >= limit:
            reasons.append(f"an insert into the store has been running for {now - signals.store_busy_since:.0f}s")
        if self.thresholds.lag_growing_seconds > 0:
            reasons.extend(self.lag.troubles(now))
        details = {"lag": self.lag.lags()} if self.thresholds.lag_growing_seconds > 0 else {}
        return Verdict(not reasons, tuple(reasons), details)


def describe(reasons: Iterable[str]) -> str:
    """One line for a log: the reasons joined."""
    return "; ".join(reasons) or "ready"
