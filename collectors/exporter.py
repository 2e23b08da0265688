"""The one background thread: takes events off a bounded queue, encodes them, hands batches to the transport.

Caller side (`submit`): one uncontended lock and a deque append, so it costs well under a
microsecond and never waits for I/O. When the queue is full the event is dropped and counted
(`queue_full`). Everything slow — building and encoding events (`encoding.py`), the transport,
delivery reports, the spool — happens on this thread. `flush` and `close` are requests the thread
serves, so the transport is only ever touched from one thread. After `fork`, the child starts with
an empty queue and its own thread (the parent still owns what it had queued).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import Counter, deque
from typing import Any

from ._internal import guarded, rate_limited
from .encoding import encode
from .settings import CollectorSettings
from .transports import Record, Transport


class BatchExporter:
    """Bounded queue + daemon thread in front of a `Transport`."""

    def __init__(self, transport: Transport, settings: CollectorSettings) -> None:
        self.transport = transport
        self.settings = settings
        self._init_runtime_state()
        self._emitted = 0
        self._dropped: Counter[str] = Counter()
        self._closed = False
        _exporters.add(self)

    def _init_runtime_state(self) -> None:
        self._queue: deque[dict[str, Any] | tuple[Any, ...]] = deque()
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        # (flush or close, deadline, set when served, [outcome]) for the exporter thread to serve
        self._requests: deque[tuple[str, float, threading.Event, list[bool]]] = deque()
        self._thread: threading.Thread | None = None

    # -- caller side ----------------------------------------------------------------------------

    def submit(self, event: dict[str, Any] | tuple[Any, ...]) -> bool:
        """Queue one event (or a builder of one, see `encode`); False (counted) if dropped. Never blocks or raises."""
        with self._lock:
            self._emitted += 1
            if self._closed:
                self._dropped["closed"] += 1
                return False
            if len(self._queue) >= self.settings.max_queue:
                self._dropped["queue_full"] += 1
                return False
            self._queue.append(event)
            pending = len(self._queue)
        if self._thread is None:
            self._start()
        if pending >= self.settings.batch_size:
            self._wakeup.set()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued now, waiting at most `timeout` seconds. True if nothing is left."""
        return self._request("flush", timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush, then stop the thread and close the transport. Later events are dropped as `closed`."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        return self._request("close", timeout)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            own: dict[str, Any] = {"emitted": self._emitted, "queued": len(self._queue), "dropped": dict(self._dropped)}
        with guarded("transport stats"):
            for key, value in self.transport.stats().items():
                if key == "dropped":
                    own["dropped"] = dict(Counter(own["dropped"]) + Counter(value))
                else:
                    own[key] = value
        return own

    # -- exporter thread side -------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="tokentrail-collector", daemon=True)
        self._thread.start()

    def _request(self, kind: str, timeout: float) -> bool:
        """Have the exporter thread serve a flush or close; True only if the transport says all went out."""
        deadline = time.monotonic() + timeout
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return self._serve(kind, deadline)  # no thread to ask: do it here, bounded by the timeout
        done, outcome = threading.Event(), [False]
        self._requests.append((kind, deadline, done, outcome))
        self._wakeup.set()
        return done.wait(max(0.0, timeout)) and outcome[0]

    def _run(self) -> None:
        while True:
            self._wakeup.wait(self.settings.flush_interval)
            self._wakeup.clear()
            with guarded("collector exporter"):
                self._export_queued()
                tick = getattr(self.transport, "tick", None)
                if tick is not None:
                    tick()
            while self._requests:
                kind, deadline, done, outcome = self._requests.popleft()
                with guarded(f"collector {kind}"):
                    outcome[0] = self._serve(kind, deadline)
                done.set()
                if kind == "close":
                    return

    def _serve(self, kind: str, deadline: float) -> bool:
        self._export_queued()
        remaining = max(0.0, deadline - time.monotonic())
        if kind == "flush":
            return bool(self.transport.flush(remaining)) and not self._queue
        # After close, what is not delivered is in the spool (or was dropped and counted).
        self.transport.close(remaining)
        return not self._queue

    def _export_queued(self) -> None:
        size, limit = self.settings.batch_size, self.settings.max_event_bytes
        while self._queue:
            batch: list[Record] = []
            while self._queue and len(batch) < size:
                event = self._queue.popleft()
                try:
                    record = encode(event)
                except Exception:
                    self._count_drop("serialize_error")
                    rate_limited.warning("encode", "tokentrail: could not encode an event", exc_info=True)
                    continue
                if len(record[1]) > limit:
                    self._count_drop("too_large")
                    continue
                batch.append(record)
            if batch:
                try:
                    self.transport.export(batch)
                except Exception:
                    self._count_drop("transport_error", len(batch))
                    rate_limited.warning("export", "tokentrail: transport failed to export", exc_info=True)

    def _count_drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._dropped[reason] += n

    def _after_fork_in_child(self) -> None:
        self._init_runtime_state()
        after_fork = getattr(self.transport, "after_fork", None)
        if after_fork is not None:
            with guarded("transport after fork"):
                after_fork()


_exporters: weakref.WeakSet[BatchExporter] = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for exporter in list(_exporters):
        exporter._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
