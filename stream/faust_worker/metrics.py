"""The worker's Prometheus metrics: one registry per worker (never the global default), so a test
can run several workers in one process and each serves only its own.

Counted per batch, never per event where the batch already has the number: events in (by topic),
stored rows (by table), dead letters (by topic and reason), duplicates, loop detections (by
kind), redaction findings (by entity, from the batch's `pii_findings` rows), batch size, pipeline
and store time. Read at scrape time, costing nothing per batch: the sink's counters (inserts,
retries, give-ups, the current failure streak), the pipeline process's cumulative time per stage,
consumer lag per partition (set by the probe's sampler), readiness. Names and meanings are listed
in docs/operations.md; dashboards/dash_internals.py draws them.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..store_rejections import STORE_REJECTED

__all__ = ["WorkerMetrics", "PREFIX"]

PREFIX = "tokentrail_worker"

BATCH_SIZES = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000)
SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
INSIGHTS_SECONDS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _ReadAtScrape(Collector):
    """The sink's counters and the pipeline's stage times, read when Prometheus scrapes."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        stats: dict[str, float] = getattr(self.metrics.sink, "stats", None) or {}
        for key, help_text in (
            ("inserts", "ClickHouse inserts that succeeded (one per table per batch, more when split)"),
            ("retries", "failed ClickHouse insert attempts that were retried"),
            ("gave_up", "inserts abandoned after --store-max-attempts (the worker then exits)"),
            ("rejected", "events the store refused, turned into store_rejected dead letters"),
        ):
            yield CounterMetricFamily(f"{PREFIX}_store_{key}", help_text, value=float(stats.get(key, 0)))
        yield GaugeMetricFamily(
            f"{PREFIX}_store_consecutive_failures",
            "failed insert attempts since the last successful insert (0: healthy)",
            value=float(stats.get("consecutive_failures", 0)),
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_store_failing_since_seconds",
            "Unix time of the first failed attempt since the last successful insert (0: healthy)",
            value=float(stats.get("failing_since", 0.0)),
        )
        stages = CounterMetricFamily(
            f"{PREFIX}_stage_seconds", "time spent in each pipeline stage, cumulative", labels=["stage"]
        )
        for stage, seconds in sorted(self.metrics.stage_seconds.items()):
            stages.add_metric([stage], seconds)
        yield stages


class WorkerMetrics:
    """Every metric of one worker, in its own registry. `sink` is read at scrape time."""

    def __init__(self, sink: Any = None) -> None:
        self.registry = CollectorRegistry()
        self.sink = sink
        self.stage_seconds: dict[str, float] = {}  # cumulative, from the pipeline (process)
        self._stage_total = 0.0
        r = self.registry
        self.events_in = Counter(f"{PREFIX}_events_in", "messages consumed, by topic", ["topic"], registry=r)
        self.events_stored = Counter(f"{PREFIX}_events_stored", "new events stored (events rows)", registry=r)
        self.rows_stored = Counter(f"{PREFIX}_rows_stored", "rows stored, by table", ["table"], registry=r)
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters", "messages dead-lettered, by topic and reason", ["topic", "reason"], registry=r
        )
        self.duplicates = Counter(f"{PREFIX}_duplicates", "events dropped as already seen (dedupe)", registry=r)
        self.loop_detections = Counter(
            f"{PREFIX}_loop_detections", "loop detections published, by kind", ["kind"], registry=r
        )
        self.redaction_findings = Counter(
            f"{PREFIX}_redaction_findings", "PII and secrets replaced, by entity type", ["entity"], registry=r
        )
        self.batch_size = Histogram(f"{PREFIX}_batch_size", "messages per batch", buckets=BATCH_SIZES, registry=r)
        self.pipeline_seconds = Histogram(
            f"{PREFIX}_pipeline_seconds", "time the pipeline's stages took per batch", buckets=SECONDS, registry=r
        )
        self.store_seconds = Histogram(
            f"{PREFIX}_store_seconds", "time to store a batch (inserts and their retries)", buckets=SECONDS, registry=r
        )
        self.consumer_lag = Gauge(
            f"{PREFIX}_consumer_lag", "messages not yet committed, per partition", ["topic", "partition"], registry=r
        )
        self.pipeline_process_up = Gauge(
            f"{PREFIX}_pipeline_process_up", "1 while the pipeline process runs (absent: stages run inline)", registry=r
        )
        self.pipeline_process_starts = Counter(
            f"{PREFIX}_pipeline_process_starts",
            "pipeline processes started (--pipeline-processes per worker run)",
            registry=r,
        )
        self.ready = Gauge(f"{PREFIX}_ready", "1 when /ready says ready, as of the last check", registry=r)
        self.insights_runs = Counter(
            f"{PREFIX}_insights_runs", "insights job runs on this worker, by outcome", ["outcome"], registry=r
        )
        self.insights_seconds = Histogram(
            f"{PREFIX}_insights_seconds", "duration of an insights job run", buckets=INSIGHTS_SECONDS, registry=r
        )
        r.register(_ReadAtScrape(self))
        ProcessCollector(registry=r)  # process_start_time_seconds: restarts show as its changes

    def render(self) -> bytes:
        """The exposition text Prometheus scrapes."""
        return bytes(generate_latest(self.registry))

    # -- per batch -------------------------------------------------------------------------------

    def taken(self, topics: Tally[str]) -> None:
        """A batch was taken from Kafka: messages per topic."""
        total = 0
        for topic, count in topics.items():
            self.events_in.labels(topic).inc(count)
            total += count
        self.batch_size.observe(total)

    def processed(self, stage_seconds: dict[str, float]) -> None:
        """The pipeline finished a batch; `stage_seconds` is its cumulative time per stage."""
        total = sum(stage_seconds.values())
        # Less than before: a new pipeline process, whose totals started again from 0 with this batch.
        self.pipeline_seconds.observe(total - self._stage_total if total >= self._stage_total else total)
        self._stage_total = total
        self.stage_seconds = dict(stage_seconds)

    def stored(self, rows: dict[str, list[dict[str, Any]]], detections: list[dict[str, Any]], seconds: float) -> None:
        """A batch's rows were stored (dead letters the store refused included) in `seconds`."""
        self.store_seconds.observe(seconds)
        refused = _refused_event_ids(rows)
        stored: dict[str, int] = {}
        for table, table_rows in rows.items():
            count = len(table_rows)
            if refused and count:  # the sink withheld every row of a refused event: not stored
                count -= sum(1 for row in table_rows if str(row.get("event_id", "")) in refused)
            stored[table] = count
            if count:
                self.rows_stored.labels(table).inc(count)
        events = stored.get("events", 0)
        self.events_stored.inc(events)
        self.duplicates.inc(max(0, stored.get("receipts", 0) - events))  # a receipt per valid event, seen or not
        dead: Tally[tuple[str, str]] = Tally(
            (str(row.get("source", "")).rsplit("/", 1)[0], str(row.get("reason", "")))
            for row in rows.get("deadletter", ())
        )
        for (topic, reason), count in dead.items():
            self.dead_letters.labels(topic, reason).inc(count)
        findings: Tally[str] = Tally()
        for row in rows.get("pii_findings", ()):
            findings[str(row.get("entity", ""))] += int(row.get("count", 1) or 0)
        for entity, count in findings.items():
            self.redaction_findings.labels(entity).inc(count)
        kinds: Tally[str] = Tally(str(d.get("kind", "")) for d in detections)
        for kind, count in kinds.items():
            self.loop_detections.labels(kind).inc(count)

    # -- the insights job ------------------------------------------------------------------------

    def insights_run(self, seconds: float, succeeded: bool) -> None:
        """InsightsJob's `on_run` hook: one run, how long, whether it stored its results."""
        self.insights_runs.labels("ok" if succeeded else "failed").inc()
        self.insights_seconds.observe(seconds)


def _refused_event_ids(rows: dict[str, list[dict[str, Any]]]) -> set[str]:
    """Events the store refused (store_batch added a `store_rejected` dead letter for each, found by its
    source through the event's receipt): counted as dead letters, not as stored. Empty, at no cost,
    for a batch with none."""
    sources = {row.get("source") for row in rows.get("deadletter", ()) if row.get("reason") == STORE_REJECTED}
    if not sources:
        return set()
    return {str(row["event_id"]) for row in rows.get("receipts", ()) if row.get("source") in sources}
