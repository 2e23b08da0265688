"""The embedded driver: the same pipeline as the faust worker, run in-process over JSON Lines.

`tokentrail replay` and `tokentrail demo` use it. Batches get a deduplication token derived from
where they came from and what they hold, so replaying the same input into the same store is
idempotent even before ClickHouse merges (and ReplacingMergeTree backs that up). An event the store
refuses a row of becomes a dead letter (stream/store_rejections.py), so every line read is
accounted for: `accepted + deadletter + duplicates == read`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

from .batch import Batch, Inbound, Pipeline, now_utc
from .store_rejections import STORE_REJECTED, rejected_dead_letters


class Sink(Protocol):
    """`ClickHouseSink`'s `write_batch`: returns a `WriteResult` (or None: nothing rejected)."""

    def write_batch(self, rows_by_table: dict[str, list[dict[str, Any]]], token: str) -> Any: ...


@dataclass
class RunStats:
    """What this run saw (the report itself is read back from the store)."""

    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    deadletter: int = 0  # invalid messages and events the store refused (store_rejected)
    store_rejected: int = 0  # of which refused by the store
    batches: int = 0
    otlp: dict[str, int] | None = None  # OTLP lines: spans, events, skipped, dead (stream/otlp OtlpCounts)


def read_lines(stream: IO[bytes], source: str) -> Iterator[Inbound]:
    """Each non-empty line of a JSON Lines stream, with `source:line` as its position."""
    for number, line in enumerate(stream, start=1):
        line = line.rstrip(b"\r\n")
        if line.strip():
            yield Inbound(f"{source}:{number}", line, now_utc())


def batch_token(items: list[Inbound]) -> str:
    """The batch's deduplication token: the same messages from the same positions give the same token,
    so a retried insert is dropped by ClickHouse; changed content at a position gives a new one.
    Both drivers use it (the worker's positions are topic/partition@offset)."""
    digest = hashlib.blake2b(digest_size=12)
    for item in items:
        digest.update(item.source.encode())
        digest.update(item.raw)
    return f"{items[0].source}..{items[-1].source}:{digest.hexdigest()}"


class EmbeddedRunner:
    """Feeds inbound messages through the pipeline in batches and writes each batch to the sink."""

    def __init__(self, pipeline: Pipeline, sink: Sink, batch_size: int = 5_000) -> None:
        self.pipeline = pipeline
        self.sink = sink
        self.batch_size = batch_size

    def run(self, items: Iterable[Inbound], progress: Callable[[int], None] | None = None) -> RunStats:
        stats = RunStats()
        pending: list[Inbound] = []
        for item in items:
            pending.append(item)
            if len(pending) >= self.batch_size:
                self._flush(pending, stats, progress)
                pending = []
        if pending:
            self._flush(pending, stats, progress)
        return stats

    def _flush(self, items: list[Inbound], stats: RunStats, progress: Callable[[int], None] | None) -> None:
        batch: Batch = self.pipeline.process(items)
        token = batch_token(items)
        refused = store_batch(self.sink, batch.rows, token)
        stats.read += len(items)
        stats.accepted += len(batch.accepted) - refused
        stats.duplicates += batch.duplicates
        stats.deadletter += len(batch.dead) + refused
        stats.store_rejected += refused
        stats.batches += 1
        if progress is not None:
            progress(len(items))


def store_batch(sink: Sink, rows: dict[str, list[dict[str, Any]]], token: str) -> int:
    """Write a batch; events the store refused become dead letters (appended to `rows["deadletter"]`,
    so a caller publishing dead letters sees them). Returns how many events were refused."""
    letters = rejected_dead_letters(rows, sink.write_batch(rows, token))
    if letters:
        sink.write_batch({"deadletter": letters}, f"{token}:{STORE_REJECTED}")
        rows["deadletter"] = [*rows.get("deadletter", ()), *letters]
    return len(letters)
