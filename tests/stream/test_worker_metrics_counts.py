"""The worker's per-batch counters (stream/faust_worker/metrics.py) on rows the real pipeline made and the
real sink stored (embedded ClickHouse), without Kafka: what the store refused counts as a dead letter only.

The refusal is planted as in test_store_rejections.py (a token count beyond UInt32 after the stages).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_store_rejections import KEY, PlantOutOfRange, event, lines

from tokentrail.sinks import close_embedded
from tokentrail.stream.batch import Pipeline
from tokentrail.stream.embedded import store_batch
from tokentrail.stream.faust_worker.metrics import WorkerMetrics
from tokentrail.stream.runtime import make_pipeline, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    close_embedded()
    yield open_store(f"chdb://{tmp_path / 'store'}")
    close_embedded()


def sample(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_an_event_the_store_refused_is_a_dead_letter_not_a_stored_event(store):
    """Three events, one refused by the store, one repeated: two events stored (rows counted as the store
    holds them), one store_rejected dead letter, one duplicate; nothing of the refused event counts as stored."""
    client, sink = store
    bad = str(uuid.UUID(int=2))
    standard = make_pipeline(prices=None, allow_ephemeral_key=False, redaction_key=KEY)
    pipeline = Pipeline([*standard.stages, PlantOutOfRange(bad)])
    batch = pipeline.process(lines([event(1), event(2), event(3), event(3)]))
    refused = store_batch(sink, batch.rows, "metrics-counts-test")
    assert refused == 1

    metrics = WorkerMetrics(sink)
    metrics.stored(batch.rows, batch.detections, 0.01)

    assert sample(metrics, "tokentrail_worker_events_stored_total") == 2
    assert sample(metrics, "tokentrail_worker_duplicates_total") == 1
    for table in ("events", "calls", "receipts"):
        (held,) = client.query(f"SELECT count() FROM tokentrail.{table}").result_rows[0]
        assert sample(metrics, "tokentrail_worker_rows_stored_total", table=table) == held, table
    # The topic label is the source up to its last '/' (a worker's source is topic/partition@offset).
    assert sample(metrics, "tokentrail_worker_dead_letters_total", topic="test.jsonl:2", reason="store_rejected") == 1


def test_a_batch_with_nothing_refused_counts_every_row(store):
    """The usual batch: every row the pipeline made is counted for its table, every valid event as stored."""
    _, sink = store
    batch = make_pipeline(prices=None, allow_ephemeral_key=False, redaction_key=KEY).process(
        lines([event(11), event(12)])
    )
    assert store_batch(sink, batch.rows, "metrics-counts-ok") == 0
    metrics = WorkerMetrics(sink)
    metrics.stored(batch.rows, batch.detections, 0.01)
    assert sample(metrics, "tokentrail_worker_events_stored_total") == 2
    for table, table_rows in batch.rows.items():
        assert sample(metrics, "tokentrail_worker_rows_stored_total", table=table) == len(table_rows), table


def test_pipeline_time_per_batch_is_the_growth_of_the_cumulative_stage_times():
    """The pipeline reports cumulative seconds per stage: each batch observes what they grew by, and the
    first batch of a new pipeline process (its totals start again from 0) its own total, never a negative."""
    metrics = WorkerMetrics()
    metrics.processed({"Validate": 0.25, "Redact": 0.5})
    metrics.processed({"Validate": 0.5, "Redact": 1.25})
    assert sample(metrics, "tokentrail_worker_pipeline_seconds_count") == 2
    assert sample(metrics, "tokentrail_worker_pipeline_seconds_sum") == 0.75 + 1.0
    metrics.processed({"Validate": 0.125})  # a new process
    assert sample(metrics, "tokentrail_worker_pipeline_seconds_sum") == 0.75 + 1.0 + 0.125
    metrics.processed({"Validate": 0.375})
    assert sample(metrics, "tokentrail_worker_pipeline_seconds_count") == 4
    assert sample(metrics, "tokentrail_worker_pipeline_seconds_sum") == 0.75 + 1.0 + 0.125 + 0.25
    assert sample(metrics, "tokentrail_worker_stage_seconds_total", stage="Validate") == 0.375
