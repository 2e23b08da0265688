"""Drive the embedded pipeline the way `tokentrail replay` does, and keep what reached the sink.

`tokentrail replay` is `make_pipeline` + `EmbeddedRunner` + `read_lines` into a `ClickHouseSink`
(`stream/runtime.py`); the fuzz suite builds the pipeline once per session (Presidio takes seconds
to load) and runs each example through a fresh runner on it, into a real embedded chDB store.
`RecordingSink` hands every batch to that store and keeps a copy of the rows and of the store's answer.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

from tokentrail.stream.embedded import EmbeddedRunner, RunStats, read_lines

# Reasons a dead letter may carry: docs/events.md ("Validity") plus the store's own refusal.
DEAD_LETTER_REASONS = frozenset(
    {
        "not_json",
        "not_object",
        "too_large",
        "too_deep",
        "unsupported_schema_version",
        "unknown_type",
        "missing_field",
        "wrong_type",
        "invalid_value",
        "out_of_range",
        "not_finite",
        "too_long",
        "forbidden_character",
        "blank",
        "ts_out_of_range",
        "store_rejected",
        "tenant_mismatch",  # only with --tenant-topic bindings (stream/tenant_binding.py)
    }
)


@dataclass
class RecordingSink:
    """The real sink, plus a copy of every batch handed to it and of what it answered."""

    inner: Any
    batches: list[dict[str, list[dict[str, Any]]]] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)

    def write_batch(self, rows_by_table: dict[str, list[dict[str, Any]]], token: str) -> Any:
        self.batches.append({table: [dict(row) for row in rows] for table, rows in rows_by_table.items()})
        result = self.inner.write_batch(rows_by_table, token)
        self.results.append(result)
        return result

    def rows(self, table: str) -> list[dict[str, Any]]:
        return [row for batch in self.batches for row in batch.get(table, [])]

    def rejections(self) -> list[Any]:
        return [rejection for result in self.results for rejection in getattr(result, "rejected", [])]

    def text(self) -> str:
        """Everything handed to the sink as one string, to search for planted values."""
        return json.dumps(self.batches, ensure_ascii=False, default=str)


@dataclass
class Outcome:
    stats: RunStats
    sink: RecordingSink
    lines: int


def run_lines(pipeline: Any, store_sink: Any, lines: list[bytes], batch_size: int = 5_000) -> Outcome:
    """Feed `lines` (each one line of JSON Lines; no newline inside) through the pipeline into the store."""
    sink = RecordingSink(store_sink)
    runner = EmbeddedRunner(pipeline, sink, batch_size=batch_size)
    data = b"\n".join(lines) + b"\n"
    stats = runner.run(read_lines(io.BytesIO(data), "fuzz.jsonl"))
    return Outcome(stats, sink, sum(1 for line in data.split(b"\n") if line.rstrip(b"\r").strip()))


def one_line(raw: bytes) -> bytes:
    """`raw` made safe to put on one JSON Lines line (a newline inside would make two messages)."""
    return raw.replace(b"\r", b" ").replace(b"\n", b" ")


def check_accounting(outcome: Outcome) -> None:
    """Every line read is accepted, a dead letter or a duplicate; every dead letter has a documented reason;
    and the store takes every row it is handed (the contract's bounds are what the columns hold)."""
    stats = outcome.stats
    assert stats.read == outcome.lines, f"read {stats.read} of {outcome.lines} lines"
    assert stats.accepted + stats.deadletter + stats.duplicates == stats.read, stats
    reasons = {row["reason"] for row in outcome.sink.rows("deadletter")}
    assert reasons <= DEAD_LETTER_REASONS, f"undocumented dead-letter reasons {reasons - DEAD_LETTER_REASONS}"
    assert not outcome.sink.rejections(), f"the store refused rows: {outcome.sink.rejections()}"


def stored_event_ids(outcome: Outcome) -> set[str]:
    return {str(row["event_id"]) for row in outcome.sink.rows("events")}
