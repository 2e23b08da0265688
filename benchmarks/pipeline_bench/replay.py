"""Measurement 1: the embedded replay rate (what `tokentrail replay` runs) and each stage's cost."""

from __future__ import annotations

import io
import tempfile
import time
from typing import Any

from _common import TimedClient, median, median_item


class TimedSink:
    """Adds up the time spent in the sink's ``write_batch``; minus the client's insert time, that is
    the sink's own work (converting values into insert blocks), measured through public calls only."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.write_s = 0.0

    def write_batch(self, rows_by_table: Any, token: str) -> Any:
        t0 = time.perf_counter()
        try:
            return self.inner.write_batch(rows_by_table, token)
        finally:
            self.write_s += time.perf_counter() - t0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def replay_once(blob: bytes, batch_size: int) -> dict[str, Any]:
    """One replay of ``blob`` into a fresh embedded store: elapsed time, counts and where the time went."""
    from tokentrail.sinks import close_embedded, connect, migrations
    from tokentrail.sinks.writer import ClickHouseSink
    from tokentrail.stream import runtime

    built: list[tuple[Any, float]] = []
    real_make_pipeline = runtime.make_pipeline

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
        sink = TimedSink(ClickHouseSink(client))
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
    return {
        "elapsed": elapsed,
        "build_s": build_s,
        "read": stats.read,
        "stored": stored,
        "insert_s": client.insert_s,
        "convert_s": sink.write_s - client.insert_s,
        "stages_s": dict(pipeline.stage_seconds),
    }


def embedded_replay(lines: list[bytes], runs: int, batch_size: int, expected_events: int | None) -> dict[str, Any]:
    """`replay_source` (what `tokentrail replay` runs) into a fresh store, `runs` times; per-stage times too."""
    blob = b"\n".join(lines) + b"\n"
    results = [replay_once(blob, batch_size) for _ in range(runs)]
    middle = median_item(results, key=lambda r: r["elapsed"])
    n = len(lines)
    return {
        "lines": n,
        "batch_size": batch_size,
        "runs": [round(r["read"] / r["elapsed"]) for r in results],
        "lines_per_s": middle["read"] / middle["elapsed"],
        "lines_per_s_after_build": middle["read"] / (middle["elapsed"] - middle["build_s"]),
        "build_s": middle["build_s"],
        "stored": middle["stored"],
        "exact": expected_events is None or all(r["stored"] == expected_events for r in results),
        # Per stage and sink part: the median over the runs of microseconds per inbound line.
        "stages_us": {name: median(r["stages_s"][name] / n * 1e6 for r in results) for name in results[0]["stages_s"]},
        "normalise_us": median(r["convert_s"] / n * 1e6 for r in results),
        "insert_us": median(r["insert_s"] / n * 1e6 for r in results),
        "total_us": middle["elapsed"] / n * 1e6,
    }
