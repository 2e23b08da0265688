"""Alert rules over the workers' own metrics (Prometheus), next to the ClickHouse rules of alert_rules.py.

The ClickHouse rules see only what was stored; these see the workers themselves, so they page even
when nothing reaches ClickHouse, and they read nothing about event time: a worker is not ready
(its /ready says 503: store failing, lag growing, pipeline process gone) or not there at all.
Same skeleton as the ClickHouse rules (A = the query, B = reduce(A, last), C = threshold(B)),
the same folder, labels and notification policy (alerting_provisioning.py); provisioned as a file
of their own, `provisioning/alerting/internals-rules.yaml`, because they need the Prometheus
datasource (dash_internals.py) that `dashboards push` does not create.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import alerting as ab
from grafana_foundation_sdk.builders import expr as eb
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as am

from .alerting_provisioning import ORG_ID, TEAM_LABELS
from .build import _Query
from .dash_internals import INTERNALS_UID, JOB, PROMETHEUS_UID, W, panel_id
from .owners import UNOWNED
from .spec import FOLDER_TITLE, FOLDER_UID

__all__ = ["METRIC_RULES", "MetricRule", "GROUP", "rules_file"]

GROUP = "pipeline-internals"


@dataclass(frozen=True)
class MetricRule:
    uid: str
    title: str
    severity: Literal["page", "warning"]
    expr: str  # PromQL, one series per alert instance (its labels become the alert's)
    threshold: float
    evaluator: Literal["gt", "lt"]
    for_: str
    summary: str
    description: str
    panel: str  # on the internals dashboard
    no_data: Literal["OK", "NoData", "Alerting"] = "OK"


METRIC_RULES: tuple[MetricRule, ...] = (
    MetricRule(
        uid="tt-worker-not-ready",
        title="Worker not ready",
        severity="page",
        expr=f"min by (instance) ({W}_ready)",
        threshold=1,
        evaluator="lt",
        for_="5m",
        summary="Worker {{ $labels.instance }} has not been ready for 5 minutes",
        description="Its /ready answers 503 and says why: the store has been failing (or an insert hanging) past "
        "--ready-sink-failing-seconds, a partition's lag has kept growing past --ready-lag-growing-seconds, or "
        "its pipeline process is gone. Ask it (curl http://INSTANCE/ready), then see the Pipeline internals "
        "dashboard. Reads the worker's own state, never event time.",
        panel="Readiness by worker",
    ),
    MetricRule(
        uid="tt-worker-down",
        title="Worker down",
        severity="page",
        expr=f'min by (instance) (up{{job="{JOB}"}})',
        threshold=1,
        evaluator="lt",
        for_="5m",
        summary="Worker {{ $labels.instance }} has not answered Prometheus for 5 minutes",
        description="A worker Prometheus still discovers has not answered its scrape (a wedged process, a network "
        "fault), or no worker is scraped at all (no data). A replica whose container has stopped or is between "
        "restarts leaves the worker DNS name instead of showing as down: with several replicas see the Workers "
        "ready panel (ready of scraped) and Worker restarts (1h) for a crash loop.",
        panel="Workers ready",
        no_data="Alerting",
    ),
    MetricRule(
        uid="tt-worker-restarting",
        title="Worker restarting",
        severity="page",
        expr=f'max by (instance) (changes(process_start_time_seconds{{job="{JOB}"}}[30m]))',
        threshold=3,
        evaluator="gt",
        for_="0s",
        summary="Worker {{ $labels.instance }} started {{ $values.B.Value }} times in 30 minutes",
        description="A crash loop: the worker exits and its container restarts it (a fatal batch error, a store "
        "that refuses its schema, a bad flag after a deploy). Between restarts it is neither down (it answers "
        "while it runs) nor long unready, so the two rules above can stay quiet. Read its last log lines "
        "(docker compose logs worker) and its exit code: 70 after a failed batch, 2 for a bad flag or key.",
        panel="Worker restarts (1h)",
    ),
)


def _query(rule: MetricRule) -> ab.Query:
    model = {
        "refId": "A",
        "datasource": {"type": "prometheus", "uid": PROMETHEUS_UID},
        "expr": rule.expr,
        "instant": True,
        "range": False,
        "intervalMs": 60_000,
        "maxDataPoints": 43200,
    }
    return (
        ab.Query("A")
        .datasource_uid(PROMETHEUS_UID)
        .relative_time_range(am.RelativeTimeRange(from_val=600, to=0))
        .model(_Query(model))
    )


def rule_api(rule: MetricRule) -> dict[str, Any]:
    """One rule in the HTTP provisioning shape, like alerting_provisioning.rule_api."""
    evaluator = eb.ExprTypeThresholdConditionsEvaluator().type(rule.evaluator).params([rule.threshold])
    threshold = (
        eb.TypeThreshold()
        .ref_id("C")
        .expression("B")
        .conditions([eb.ExprTypeThresholdConditions().evaluator(evaluator)])
    )
    reduce = eb.TypeReduce().ref_id("B").expression("A").reducer("last")
    builder = (
        ab.Rule(rule.title)
        .uid(rule.uid)
        .org_id(ORG_ID)
        .folder_uid(FOLDER_UID)
        .rule_group(GROUP)
        .condition("C")
        .for_val(rule.for_)
        .no_data_state(rule.no_data)
        .exec_err_state("Error")
        .is_paused(False)
        .labels({**TEAM_LABELS, "severity": rule.severity, "owner": UNOWNED})
        .annotations(
            {
                "summary": rule.summary,
                "description": rule.description,
                "dashboard": f"/d/{INTERNALS_UID}",
                "__dashboardUid__": INTERNALS_UID,
                "__panelId__": str(panel_id(rule.panel)),
            }
        )
        .with_query(_query(rule))
        .with_query(ab.Query("B").datasource_uid("__expr__").model(reduce))
        .with_query(ab.Query("C").datasource_uid("__expr__").model(threshold))
    )
    document: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return document


def rules_file() -> dict[str, Any]:
    """`provisioning/alerting/internals-rules.yaml`: one group, evaluated every minute."""
    keys = ("uid", "title", "condition", "data", "noDataState", "execErrState", "for", "labels", "annotations")
    rules = [{k: api[k] for k in (*keys, "isPaused") if k in api} for api in map(rule_api, METRIC_RULES)]
    group = {"orgId": ORG_ID, "name": GROUP, "folder": FOLDER_TITLE, "interval": "1m", "rules": rules}
    return {"apiVersion": 1, "groups": [group]}
