"""The "tokentrail / Pipeline internals" dashboard: the workers' own Prometheus metrics.

Every other dashboard reads what the workers stored in ClickHouse; this one reads what the workers
say about themselves (stream/faust_worker/metrics.py, scraped by Prometheus: compose's
`prometheus` service, deploy/prometheus/prometheus.yml), so it still shows something when
nothing reaches ClickHouse: readiness, lag, retries, where the time goes. It needs the Prometheus
datasource (`datasource_file`, provisioned next to the ClickHouse one) and is built straight with
grafana-foundation-sdk's Prometheus query builder; its panels are PromQL, not the SQL specs
(`spec.Panel`) the tests run against ClickHouse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from .build import layout, stat_panel, timeseries_panel
from .spec import Panel

__all__ = ["INTERNALS", "INTERNALS_UID", "PROMETHEUS_UID", "PromPanel", "datasource_file", "internals_dashboard"]

INTERNALS_UID = "tokentrail-internals"
PROMETHEUS_UID = "tokentrail-prometheus"
PROMETHEUS_NAME = "tokentrail Prometheus"
JOB = "tokentrail-worker"  # the scrape job of the workers (deploy/prometheus/prometheus.yml)
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
RATE = "[$__rate_interval]"
W = "tokentrail_worker"


@dataclass(frozen=True)
class PromPanel:
    """One panel: PromQL queries (expression, legend) and how to draw them. `width`/`height` as in
    `spec.Panel`, so `build.layout` places both kinds alike."""

    title: str
    queries: tuple[tuple[str, str], ...]
    description: str
    kind: Literal["timeseries", "stat"] = "timeseries"
    unit: str = ""
    width: int = 12
    height: int = 8
    stack: bool = False


def _quantile(q: float, histogram: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({W}_{histogram}_bucket{RATE})))"


INTERNALS: tuple[PromPanel, ...] = (
    PromPanel(
        "Workers ready",
        ((f"sum({W}_ready)", "ready"), (f'count(up{{job="{JOB}"}})', "scraped"), (f'sum(up{{job="{JOB}"}})', "up")),
        "Workers whose /ready says 200, of those Prometheus scrapes. A worker is not ready when its store has "
        "been failing (or an insert hanging) past --ready-sink-failing-seconds, a partition's lag has grown past "
        "--ready-lag-growing-seconds, or its pipeline process is gone; GET /ready on it says which.",
        kind="stat",
        width=6,
        height=5,
    ),
    PromPanel(
        "Consumer lag (messages)",
        ((f"sum({W}_consumer_lag)", "total"),),
        "Messages in Kafka not yet committed by the workers, all partitions.",
        kind="stat",
        width=6,
        height=5,
    ),
    PromPanel(
        "Insert failure streak",
        ((f"max({W}_store_consecutive_failures)", "failed attempts"),),
        "Failed ClickHouse insert attempts since the last success, on the worst worker (0: healthy).",
        kind="stat",
        width=6,
        height=5,
    ),
    PromPanel(
        "Worker restarts (1h)",
        (
            (f'sum(changes(process_start_time_seconds{{job="{JOB}"}}[1h]))', "worker processes"),
            (f"sum(increase({W}_pipeline_process_starts_total[1h]))", "pipeline processes"),
        ),
        "Worker processes started in the last hour (a crash loop shows here), and pipeline processes started.",
        kind="stat",
        width=6,
        height=5,
    ),
    PromPanel(
        "Readiness by worker",
        ((f"{W}_ready", "{{instance}} ready"), (f"{W}_pipeline_process_up", "{{instance}} pipeline process")),
        "1 ready / 0 not, per worker; the pipeline process 1 while it runs.",
    ),
    PromPanel(
        "Consumer lag by partition",
        ((f"sum by (topic, partition) ({W}_consumer_lag)", "{{topic}}/{{partition}}"),),
        "End offset minus the group's committed offset, sampled by the worker that owns the partition.",
    ),
    PromPanel(
        "Events per second",
        (
            (f"sum by (topic) (rate({W}_events_in_total{RATE}))", "in: {{topic}}"),
            (f"sum(rate({W}_events_stored_total{RATE}))", "stored"),
            (f"sum(rate({W}_duplicates_total{RATE}))", "duplicates"),
        ),
        "Messages consumed by topic, new events stored, and valid events dropped as already seen (dedupe).",
    ),
    PromPanel(
        "Dead letters per second by reason",
        ((f"sum by (reason) (rate({W}_dead_letters_total{RATE}))", "{{reason}}"),),
        "Messages that were not valid events (or that the store refused: store_rejected), by reason.",
        stack=True,
    ),
    PromPanel(
        "Time per batch (p50, p95)",
        (
            (_quantile(0.5, "pipeline_seconds"), "pipeline p50"),
            (_quantile(0.95, "pipeline_seconds"), "pipeline p95"),
            (_quantile(0.5, "store_seconds"), "store p50"),
            (_quantile(0.95, "store_seconds"), "store p95"),
        ),
        "Pipeline: the stages, in the pipeline process. Store: every insert of the batch, retries included.",
        unit="s",
    ),
    PromPanel(
        "Batch size (p50, p95)",
        ((_quantile(0.5, "batch_size"), "p50"), (_quantile(0.95, "batch_size"), "p95")),
        "Messages per batch: small batches under load mean --batch-within ends them, not --batch-size.",
    ),
    PromPanel(
        "Store retries and give-ups per second",
        (
            (f"sum(rate({W}_store_retries_total{RATE}))", "retries"),
            (f"sum(rate({W}_store_gave_up_total{RATE}))", "gave up (worker exits)"),
            (f"sum(rate({W}_store_rejected_total{RATE}))", "rows refused"),
        ),
        "Failed insert attempts that were retried, inserts abandoned after --store-max-attempts, rows refused.",
    ),
    PromPanel(
        "Pipeline time by stage",
        ((f"sum by (stage) (rate({W}_stage_seconds_total{RATE}))", "{{stage}}"),),
        "Seconds per second spent in each stage (1 = one core busy): where the pipeline's time goes.",
        unit="s",
        stack=True,
    ),
    PromPanel(
        "Loop detections by kind",
        ((f"sum by (kind) (increase({W}_loop_detections_total{RATE}))", "{{kind}}"),),
        "Loop detections published to the alerts topic.",
        stack=True,
    ),
    PromPanel(
        "Redaction findings by entity",
        ((f"sum by (entity) (increase({W}_redaction_findings_total{RATE}))", "{{entity}}"),),
        "PII and secrets the redact stage found, by entity type (the metric carries the type, never a value).",
        stack=True,
    ),
    PromPanel(
        "Insights job",
        (
            (f"sum by (outcome) (increase({W}_insights_runs_total{RATE}))", "runs {{outcome}}"),
            (_quantile(0.95, "insights_seconds"), "p95 seconds"),
        ),
        "Runs of the variance/changes/budgets job (on the insights leader: one worker at a time) and their duration.",
        width=24,
    ),
)


def _target(ref_id: str, expr: str, legend: str, instant: bool) -> prometheus.Dataquery:
    query = prometheus.Dataquery().ref_id(ref_id).expr(expr).legend_format(legend).datasource(DATASOURCE)
    return query.instant() if instant else query.range()


def _panel(spec: PromPanel, panel_id: int, x: int, y: int) -> Any:
    builder: Any
    if spec.kind == "stat":
        builder = stat_panel(fields="")
    else:
        builder = timeseries_panel(stack=spec.stack, legend_calcs=["mean", "max"])
    for n, (expr, legend) in enumerate(spec.queries):
        builder = builder.with_target(_target(chr(ord("A") + n), expr, legend, instant=spec.kind == "stat"))
    builder = (
        builder.id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .grid_pos(dm.GridPos(h=spec.height, w=spec.width, x=x, y=y))
    )
    return builder.unit(spec.unit) if spec.unit else builder


def _positions() -> list[tuple[int, int]]:
    """Grid positions as `build.layout` places the SQL panels: rows of 24 columns, left to right."""
    geometry = [Panel(p.title, "SELECT 1", "stat", width=p.width, height=p.height) for p in INTERNALS]
    return [(x, y) for _, x, y in layout(tuple(geometry))]


def internals_dashboard() -> dict[str, Any]:
    """The dashboard JSON Grafana provisions from a file, like `build.build_dashboard`'s."""
    builder = (
        db.Dashboard("tokentrail / Pipeline internals")
        .uid(INTERNALS_UID)
        .description("The workers' own metrics (Prometheus): readiness, lag, throughput, retries, time per stage.")
        .tags(["tokentrail", "prometheus"])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("utc")
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            db.DashboardLink("Pipeline").type(dm.DashboardLinkType.LINK).url("/d/tokentrail-pipeline").keep_time(True)
        )
    )
    for panel_id, (panel, (x, y)) in enumerate(zip(INTERNALS, _positions(), strict=True), start=1):
        builder = builder.with_panel(_panel(panel, panel_id, x, y))
    document: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return document


def panel_id(title: str) -> int:
    """A panel's id as `internals_dashboard` assigns it (alert links point at it)."""
    for n, panel in enumerate(INTERNALS, start=1):
        if panel.title == title:
            return n
    raise KeyError(f"{INTERNALS_UID} has no panel {title!r}")


def datasource_file() -> dict[str, Any]:
    """`provisioning/datasources/tokentrail-prometheus.yaml`: the URL from Grafana's environment
    (compose gives the grafana service PROMETHEUS_URL=http://prometheus:9090)."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": PROMETHEUS_NAME,
                "uid": PROMETHEUS_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": "$__env{PROMETHEUS_URL}",
                "editable": False,
                "isDefault": False,
                "jsonData": {"timeInterval": "15s", "httpMethod": "POST"},
            }
        ],
    }
