"""Alert rules, contact points and notification policies in Grafana's two shapes.

grafana-foundation-sdk's alerting builders produce the HTTP provisioning API shape (`folderUID`,
`ruleGroup`, one contact point per integration); file provisioning wants another
(`groups[].rules[]`, `contactPoints[].receivers[]`). Rules are built once with the SDK and
converted, so the file and the API can only differ where Grafana's formats do.

Secrets and URLs are never in these files: contact points say `$__env{VAR}` and Grafana reads the
variable when it provisions the file (`dashboards push` substitutes the same variables itself,
since the HTTP API does not). Grafana interpolates `$` in alert labels and titles too, so those
never contain one; annotations and query models are not interpolated (they carry templates and
macros).

The owners file's part (owner labels, one contact point and route per team) is read when these
functions run, from `owners.current_owners()`: the commands choose it (`--owners FILE`, else
TOKENTRAIL_OWNERS_FILE) with `owners_in_effect`, so changing the file and building again changes them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from grafana_foundation_sdk.builders import alerting as ab
from grafana_foundation_sdk.builders import expr as eb
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as am

from .alert_rules import GROUPS, Rule
from .build import _Query, clickhouse_target
from .catalog import dashboard
from .dash_trace import TRACE_UID
from .owners import contact_point_name, contact_point_settings, current_owners, owner_routes, rules_for
from .spec import DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID

__all__ = [
    "ENV_VARS",
    "CHAT",
    "PAGER",
    "rule_api",
    "rules_api",
    "rules_file",
    "contact_points_api",
    "contact_points_file",
    "policy_api",
    "tokentrail_route",
    "merge_policy_tree",
    "is_tokentrail_route",
    "ROUTE_MATCHER",
    "policies_file",
    "panel_id",
    "ORG_ID",
]

ORG_ID = 1
CHAT, PAGER = "tokentrail-chat", "tokentrail-pagerduty"
# `managed_by` is what tokentrail's branch of a shared notification policy tree matches on (see
# `tokentrail_route`); not "service": query labels carry the emitting service.
TEAM_LABELS = {"component": "tokentrail", "managed_by": "tokentrail"}
ROUTE_MATCHER = ["managed_by", "=", "tokentrail"]
LINK_LABELS = ("tenant", "feature", "model")  # labels a dashboard link carries as var-<name>
# Every secret or URL a contact point needs, by the environment variable that carries it.
ENV_VARS = {
    "TOKENTRAIL_SLACK_WEBHOOK_URL": "Slack incoming-webhook URL for the chat channel",
    "TOKENTRAIL_ALERT_WEBHOOK_URL": "generic webhook receiving every alert as JSON",
    "TOKENTRAIL_ALERT_EMAILS": "email addresses (';'-separated) for the chat route",
    "TOKENTRAIL_PAGERDUTY_KEY": "PagerDuty Events API v2 integration key for severity=page",
}


def _plain(built: Any) -> dict[str, Any]:
    """An SDK object as the JSON-like dict Grafana receives."""
    document: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    return document


def _env(name: str) -> str:
    return f"$__env{{{name}}}"


def panel_id(dashboard_uid: str, title: str) -> int:
    for panel_id_, panel in enumerate(dashboard(dashboard_uid).panels, start=1):
        if panel.title == title:
            return panel_id_
    raise KeyError(f"{dashboard_uid} has no panel {title!r}")


def _annotations(rule: Rule) -> dict[str, str]:
    labels = _label_columns(rule.sql)
    # Label values come from the data (a tenant can name itself `x&var-tenant=other`): Go's
    # `urlquery` (text/template's built-in, url.QueryEscape) encodes every reserved character.
    query = "&".join(f"var-{name}={{{{ urlquery $labels.{name} }}}}" for name in LINK_LABELS if name in labels)
    return {
        "summary": rule.summary,
        "description": rule.description,
        "dashboard": f"/d/{rule.dashboard}" + (f"?{query}" if query else ""),
        # An alert naming a trace links to it (dash_trace.py), encoded like every link.
        **(
            {"trace": f"/d/{TRACE_UID}?var-trace_id={{{{ urlquery $labels.trace_id }}}}"}
            if "trace_id" in labels
            else {}
        ),
        "__dashboardUid__": rule.dashboard,
        "__panelId__": str(panel_id(rule.dashboard, rule.panel)),
    }


def _label_columns(sql: str) -> list[str]:
    """The label columns a rule query selects (the outermost SELECT's names other than `value`)."""
    head = sql.split("FROM", 1)[0].replace("SELECT", "", 1)
    names = [part.strip().split(" AS ")[-1].strip() for part in head.split(",")]
    return [n for n in names if n and n != "value" and n.isidentifier()]


def _data_query(ref_id: str, sql: str, rule: Rule) -> ab.Query:
    model = {
        **clickhouse_target(sql, table_format=True, ref_id=ref_id),
        "intervalMs": rule.interval_ms,
        "maxDataPoints": 43200,
    }
    return (
        ab.Query(ref_id)
        .datasource_uid(DATASOURCE_UID)
        .relative_time_range(am.RelativeTimeRange(from_val=rule.window_seconds, to=0))
        .model(_Query(model))
    )


def _reduce(ref_id: str, of: str) -> ab.Query:
    return (
        ab.Query(ref_id).datasource_uid("__expr__").model(eb.TypeReduce().ref_id(ref_id).expression(of).reducer("last"))
    )


def rule_api(rule: Rule) -> dict[str, Any]:
    """One rule in the HTTP provisioning shape (POST/PUT /api/v1/provisioning/alert-rules)."""
    threshold = (
        eb.TypeThreshold()
        .ref_id("C")
        .expression("B")
        .conditions(
            [
                eb.ExprTypeThresholdConditions().evaluator(
                    eb.ExprTypeThresholdConditionsEvaluator().type(rule.evaluator).params([rule.threshold])
                )
            ]
        )
    )
    builder = (
        ab.Rule(rule.title)
        .uid(rule.uid)
        .org_id(ORG_ID)
        .folder_uid(FOLDER_UID)
        .rule_group(rule.group)
        .condition("C")
        .for_val(rule.for_)
        .no_data_state(rule.no_data)
        .exec_err_state("Error")
        .is_paused(False)
        .labels({**TEAM_LABELS, "severity": rule.severity, **rule.labels})
        .annotations(_annotations(rule))
        .with_query(_data_query("A", rule.sql, rule))
        .with_query(_reduce("B", "A"))
        .with_query(ab.Query("C").datasource_uid("__expr__").model(threshold))
    )
    for ref_id, sql in rule.extras:
        builder = builder.with_query(_data_query(f"{ref_id}_query", sql, rule)).with_query(
            _reduce(ref_id, f"{ref_id}_query")
        )
    return _plain(builder.build())


def rules_api(rules: Iterable[Rule] | None = None) -> list[dict[str, Any]]:
    """Every rule (default: labelled for the owners in effect) in the HTTP provisioning shape."""
    return [rule_api(r) for r in (rules_for(current_owners()) if rules is None else rules)]


def _rule_file(api: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "uid",
        "title",
        "condition",
        "data",
        "noDataState",
        "execErrState",
        "for",
        "labels",
        "annotations",
        "isPaused",
    )
    return {k: api[k] for k in keys if k in api}


def rules_file() -> dict[str, Any]:
    """`provisioning/alerting/rules.yaml`: one group per evaluation interval family."""
    groups, built = [], rules_api()
    for name, interval in GROUPS.items():
        rules = [_rule_file(r) for r in built if r["ruleGroup"] == name]
        groups.append({"orgId": ORG_ID, "name": name, "folder": FOLDER_TITLE, "interval": interval, "rules": rules})
    return {"apiVersion": 1, "groups": groups}


def _contact_points() -> list[tuple[str, ab.ContactPoint]]:
    chat = [
        ab.ContactPoint()
        .uid("tt-slack")
        .name(CHAT)
        .type("slack")
        .settings({"url": _env("TOKENTRAIL_SLACK_WEBHOOK_URL"), "title": '{{ template "slack.default.title" . }}'}),
        ab.ContactPoint()
        .uid("tt-webhook")
        .name(CHAT)
        .type("webhook")
        .settings({"url": _env("TOKENTRAIL_ALERT_WEBHOOK_URL"), "httpMethod": "POST"}),
        ab.ContactPoint()
        .uid("tt-email")
        .name(CHAT)
        .type("email")
        .settings({"addresses": _env("TOKENTRAIL_ALERT_EMAILS"), "singleEmail": True}),
    ]
    pager = [
        ab.ContactPoint()
        .uid("tt-pagerduty")
        .name(PAGER)
        .type("pagerduty")
        .settings(
            {
                "integrationKey": _env("TOKENTRAIL_PAGERDUTY_KEY"),
                "severity": "critical",
                "class": "llm-telemetry",
                "component": "tokentrail",
                "group": "{{ .CommonLabels.alertname }}",
            }
        )
    ]
    return [(CHAT, c) for c in chat] + [(PAGER, p) for p in pager] + _owner_contact_points()


def _owner_contact_points() -> list[tuple[str, ab.ContactPoint]]:
    """One contact point per team of the owners file (none without one)."""
    owners = current_owners()
    points = []
    for team in sorted(owners.teams if owners else [], key=lambda t: t.name):
        kind, settings = contact_point_settings(team)
        name = contact_point_name(team.name)
        points.append((name, ab.ContactPoint().uid(f"tt-owner-{team.name}").name(name).type(kind).settings(settings)))
    return points


def contact_points_api() -> list[dict[str, Any]]:
    """One entry per integration (POST /api/v1/provisioning/contact-points), still with `$__env{}` references."""
    return [_plain(c.build()) for _, c in _contact_points()]


def contact_points_file() -> dict[str, Any]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for point in contact_points_api():
        keys: tuple[str, ...] = ("uid", "type", "settings", "disableResolveMessage")
        receiver = {k: point[k] for k in keys if k in point}
        by_name.setdefault(point["name"], []).append(receiver)
    return {
        "apiVersion": 1,
        "contactPoints": [
            {"orgId": ORG_ID, "name": name, "receivers": receivers} for name, receivers in by_name.items()
        ],
    }


def _route(receiver: str, matchers: list[list[str]]) -> ab.NotificationPolicy:
    return ab.NotificationPolicy().receiver(receiver).object_matchers(matchers)


def tokentrail_route() -> dict[str, Any]:
    """tokentrail's branch of the policy tree: its alerts (managed_by=tokentrail) to chat, pages to PagerDuty.

    `continue` stays false: routes after it (another team's catch-all) do not also get tokentrail's alerts.
    """
    page = (
        _route(PAGER, [["severity", "=", "page"]])
        .group_by(["alertname", "tenant", "trace_id"])
        .repeat_interval("1h")
        .continue_val(True)
    )
    branch = (
        _route(CHAT, [ROUTE_MATCHER])
        .group_by(["grafana_folder", "alertname", "tenant"])
        .group_wait("30s")
        .group_interval("5m")
        .repeat_interval("4h")
        .routes([page])
    )
    route = _plain(branch.build())
    # Each owner's alerts to the owner's contact point, ahead of the central pager (dashboards/owners.py).
    route["routes"] = [*owner_routes(current_owners()), *route["routes"]]
    return route


def is_tokentrail_route(route: dict[str, Any]) -> bool:
    return ROUTE_MATCHER in (route.get("object_matchers") or [])


def merge_policy_tree(existing: dict[str, Any]) -> dict[str, Any]:
    """The organisation's tree with tokentrail's branch added or replaced; every other route untouched.

    The branch keeps its position when present (first occurrence; duplicates are dropped), else it
    goes first so that a foreign catch-all route cannot take tokentrail's alerts.
    """
    tree = copy.deepcopy(existing)
    tree.pop("provenance", None)
    routes = list(tree.get("routes") or [])
    ours = [i for i, route in enumerate(routes) if is_tokentrail_route(route)]
    position = ours[0] if ours else 0
    kept = [route for route in routes if not is_tokentrail_route(route)]
    kept.insert(position, tokentrail_route())
    tree["routes"] = kept
    return tree


def policy_api() -> dict[str, Any]:
    """The whole tree for a Grafana tokentrail owns (file provisioning replaces the org's tree): chat by default."""
    root = (
        ab.NotificationPolicy()
        .receiver(CHAT)
        .group_by(["grafana_folder", "alertname", "tenant"])
        .group_wait("30s")
        .group_interval("5m")
        .repeat_interval("4h")
    )
    return merge_policy_tree(_plain(root.build()))


def policies_file() -> dict[str, Any]:
    return {"apiVersion": 1, "policies": [{"orgId": ORG_ID, **policy_api()}]}
