"""The Pipeline internals dashboard and the worker alert rules read metrics the worker really serves.

No Prometheus runs here, so the contract is checked from both ends: every metric name in a panel or
rule is one a worker's registry exposes (after counting a batch), and the provisioned files point at
the Prometheus datasource and the scrape job compose runs.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tokentrail.dashboards.dash_internals import INTERNALS, INTERNALS_UID, JOB, PROMETHEUS_UID, internals_dashboard
from tokentrail.dashboards.metric_alerts import METRIC_RULES, rules_file
from tokentrail.dashboards.provisioning_files import PROVISIONING_DIR, generate
from tokentrail.stream.faust_worker.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
METRIC_NAME = re.compile(r"\b(tokentrail_worker_\w+|process_start_time_seconds|up)\b(?=\s*[{\[)])")


class Sink:
    stats = {"inserts": 3, "retries": 1, "gave_up": 0, "rejected": 0, "consecutive_failures": 0, "failing_since": 0.0}


def served_names() -> set[str]:
    """Sample names a worker's /metrics carries once it has counted one batch of each kind."""
    metrics = WorkerMetrics(Sink())
    metrics.taken(Counter({"tokentrail.events": 3}))
    metrics.processed({"Validate": 0.01, "Redact": 0.02})
    rows = {
        "events": [{}],
        "receipts": [{}, {}],
        "deadletter": [{"source": "tokentrail.events/0@7", "reason": "not_json"}],
        "pii_findings": [{"entity": "EMAIL_ADDRESS", "count": 2}],
    }
    metrics.stored(rows, [{"kind": "repeated_tool_call"}], 0.05)
    metrics.consumer_lag.labels("tokentrail.events", "0").set(4)
    metrics.ready.set(1)
    metrics.pipeline_process_up.set(1)
    metrics.insights_run(1.5, True)
    text = metrics.render().decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def queried_names() -> set[str]:
    exprs = [expr for panel in INTERNALS for expr, _ in panel.queries] + [rule.expr for rule in METRIC_RULES]
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


def test_every_metric_the_dashboard_and_rules_query_is_served():
    """A renamed or dropped metric fails here, not as an empty panel in production."""
    queried = queried_names() - {"up"}  # Prometheus's own, per scrape target
    assert {"tokentrail_worker_ready", "tokentrail_worker_consumer_lag", "process_start_time_seconds"} <= queried
    missing = {name for name in queried if name not in served_names()}
    assert not missing, f"queried but not served: {sorted(missing)}"


def test_counts_reach_the_exposition():
    """The batch counted above shows with its labels: dead letters by topic and reason, findings by entity."""
    metrics = WorkerMetrics(Sink())
    rows = {
        "events": [{}],
        "receipts": [{}, {}, {}],
        "deadletter": [{"source": "a.topic/3@9", "reason": "invalid_field"}] * 2,
        "pii_findings": [{"entity": "PHONE_NUMBER", "count": 2}, {"entity": "PHONE_NUMBER", "count": 1}],
    }
    metrics.stored(rows, [], 0.1)
    text = metrics.render().decode()
    assert 'tokentrail_worker_dead_letters_total{reason="invalid_field",topic="a.topic"} 2.0' in text
    assert 'tokentrail_worker_redaction_findings_total{entity="PHONE_NUMBER"} 3.0' in text
    assert "tokentrail_worker_duplicates_total 2.0" in text
    assert "tokentrail_worker_store_retries_total 1.0" in text


def test_two_workers_in_one_process_keep_their_own_counts():
    """One registry per worker: counting in one never shows in the other (and registering twice is fine)."""
    first, second = WorkerMetrics(), WorkerMetrics()
    first.stored({"events": [{}], "receipts": [{}]}, [], 0.01)
    assert b"tokentrail_worker_events_stored_total 1.0" in first.render()
    assert b"tokentrail_worker_events_stored_total 0.0" in second.render()


def test_the_dashboard_is_provisioned_on_the_prometheus_datasource():
    """Generated with the provisioning files (not pushed: `push` creates no Prometheus datasource), every panel
    and target on the provisioned Prometheus datasource."""
    built = internals_dashboard()
    assert f"dashboards/json/{INTERNALS_UID}.json" in generate()
    assert built["title"] == "tokentrail / Pipeline internals"
    assert [p["title"] for p in built["panels"]] == [p.title for p in INTERNALS]
    for panel in built["panels"]:
        assert panel["datasource"]["uid"] == PROMETHEUS_UID and panel["targets"]
        assert all(t["datasource"]["uid"] == PROMETHEUS_UID and t["expr"] for t in panel["targets"])
    (ds,) = yaml.safe_load((PROVISIONING_DIR / "datasources/tokentrail-prometheus.yaml").read_text())["datasources"]
    assert (ds["uid"], ds["type"]) == (PROMETHEUS_UID, "prometheus")
    assert (PROVISIONING_DIR / f"dashboards/json/{INTERNALS_UID}.json").exists()


def test_worker_rules_are_provisioned_and_read_the_compose_scrape_job():
    """Every rule pages, queries Prometheus only, select the job compose scrapes, and link to their panel."""
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert JOB in {job["job_name"] for job in scrape["scrape_configs"]}
    committed = yaml.safe_load((PROVISIONING_DIR / "alerting/internals-rules.yaml").read_text())
    assert committed == rules_file()
    (group,) = committed["groups"]
    titles = {p.title: n for n, p in enumerate(INTERNALS, start=1)}
    panel_of = {r.uid: r.panel for r in METRIC_RULES}  # each rule links to the panel it names
    for rule in group["rules"]:
        query = rule["data"][0]
        assert query["datasourceUid"] == PROMETHEUS_UID and "ts" not in query["model"]["expr"]
        assert rule["labels"]["severity"] == "page" and rule["labels"]["managed_by"] == "tokentrail"
        assert rule["annotations"]["__dashboardUid__"] == INTERNALS_UID
        assert int(rule["annotations"]["__panelId__"]) == titles[panel_of[rule["uid"]]], rule["uid"]
    down = next(r for r in group["rules"] if r["uid"] == "tt-worker-down")
    assert f'job="{JOB}"' in down["data"][0]["model"]["expr"] and down["noDataState"] == "Alerting"
    # A crash loop keeps a replica answering between restarts: its own rule counts process starts.
    restarting = next(r for r in group["rules"] if r["uid"] == "tt-worker-restarting")
    expr = restarting["data"][0]["model"]["expr"]
    assert f'changes(process_start_time_seconds{{job="{JOB}"}}[30m])' in expr
