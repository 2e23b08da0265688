"""`tokentrail alerts check`: evaluate every provisioned alert rule against ClickHouse, as Grafana would.

For each rule: expand its queries' macros for the rule's relative time range ending at `now`
(the plugin's expansion, see `macros`), run them, turn each result into Grafana's "numeric data"
(string columns are labels, the one number column the value; two rows with the same labels is
an error, as in Grafana), reduce with `last`, apply the threshold, and render the annotations
with the instance's labels and `$values`. What fires is what Grafana would send to the
notification policy; no Grafana is needed, which is also how the tests check the rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

from .alert_rules import Rule
from .alerting_provisioning import CHAT, PAGER, rule_api
from .macros import TimeRange, expand_macros
from .owners import Owners, contact_point_name, current_owners, routed_team, rules_for, who_is_paged
from .spec import FOLDER_TITLE

__all__ = [
    "FiringAlert",
    "evaluate_alerts",
    "evaluate_rule",
    "render_alerts",
    "render_routing",
    "render_template",
    "contact_point_of",
    "RuleError",
]

Labels = tuple[tuple[str, str], ...]


class RuleError(RuntimeError):
    """A rule Grafana would put in its Error state (bad query, ambiguous result)."""


@dataclass
class FiringAlert:
    uid: str
    title: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    values: dict[str, float | None] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", self.title)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        number = float(value)
        return None if math.isnan(number) else number
    raise RuleError(f"value column holds {type(value).__name__}, not a number")


_NUMERIC = re.compile(r"^(Nullable\()?(U?Int\d+|Float\d+|Decimal.*)\)?$")


def numeric_data(client: Any, sql: str) -> dict[Labels, float | None]:
    """Run one query and convert it as Grafana's SSE does for a table: labels -> number."""
    result = client.query(sql)
    if not result.result_rows:
        return {}  # Grafana: NoData (the embedded engine reports no column types for an empty result)
    names, types = list(result.column_names), [t.name for t in result.column_types]
    numeric = [i for i, t in enumerate(types) if _NUMERIC.match(t)]
    if len(numeric) != 1:
        raise RuleError(f"a rule query must return exactly one number column, got {len(numeric)} in {names}")
    out: dict[Labels, float | None] = {}
    for row in result.result_rows:
        labels = tuple((names[i], str(row[i])) for i in range(len(names)) if i not in numeric)
        if labels in out:
            raise RuleError(f"two rows with the same labels {dict(labels)}: Grafana rejects duplicate series")
        out[labels] = _number(row[numeric[0]])
    return out


def _passes(value: float | None, evaluator: str, threshold: float) -> bool:
    if value is None:
        return False
    return value > threshold if evaluator == "gt" else value < threshold


def evaluate_rule(client: Any, rule: Rule, now: datetime) -> list[FiringAlert]:
    """The instances of one rule that are firing at `now` (pending periods are not modelled: rules use for=0s)."""
    time_range = TimeRange(now - timedelta(seconds=rule.window_seconds), now)

    def sql(text: str) -> str:
        return expand_macros(text, time_range, rule.interval_ms)

    main = numeric_data(client, sql(rule.sql))
    extras = {ref: numeric_data(client, sql(text)) for ref, text in rule.extras}
    static = {"alertname": rule.title, "grafana_folder": FOLDER_TITLE, **rule_api(rule)["labels"]}
    annotations = rule_api(rule)["annotations"]
    if not main:
        if rule.no_data != "Alerting":
            return []
        labels = {**static, "datasource_uid": "tokentrail-clickhouse", "ref_id": "A"}
        return [FiringAlert(rule.uid, rule.title, rule.severity, labels, {"summary": f"{rule.title}: no data"}, {})]
    firing = []
    for series, value in sorted(main.items()):
        if not _passes(value, rule.evaluator, rule.threshold):
            continue
        values: dict[str, float | None] = {"B": value, "C": 1.0}
        values.update({ref: found.get(series) for ref, found in extras.items()})
        instance = {**static, **dict(series)}
        rendered = {k: render_template(v, instance, values) for k, v in annotations.items() if not k.startswith("__")}
        firing.append(FiringAlert(rule.uid, rule.title, rule.severity, instance, rendered, values))
    return firing


def evaluate_alerts(client: Any, now: datetime | None = None, rules: Iterable[Rule] | None = None) -> list[FiringAlert]:
    """Every firing instance of every rule at `now` (default: the wall clock), pages first.

    `rules` default: every provisioned rule, labelled for the owners in effect (`owners.current_owners`).
    """
    now = now or datetime.now(UTC)
    chosen = rules_for(current_owners()) if rules is None else rules
    alerts = [alert for r in chosen for alert in evaluate_rule(client, r, now)]
    return sorted(alerts, key=lambda a: (a.severity != "page", a.uid, sorted(a.labels.items())))


# -- annotation templates --------------------------------------------------------------------------

_ACTION = re.compile(r"{{\s*(.*?)\s*}}")
_VALUE = r"\$values\.(\w+)\.Value"


def _go_number(value: float | None) -> str:
    """How Go's text/template prints a float64: %v, i.e. shortest repr, 'e' notation for large exponents."""
    if value is None:
        return "<no value>"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _value(ref: str, values: dict[str, float | None]) -> float | None:
    if ref not in values:
        raise KeyError(f"no $values.{ref}")
    return values[ref]


def render_template(template: str, labels: dict[str, str], values: dict[str, float | None]) -> str:
    """The subset of Grafana's annotation templating the provisioned rules use; anything else is refused."""

    def action(match: re.Match[str]) -> str:
        body = match.group(1)
        if m := re.fullmatch(r"\$labels\.(\w+)", body):
            return labels.get(m.group(1), "")
        if m := re.fullmatch(r"urlquery\s+\$labels\.(\w+)", body):
            # text/template's built-in urlquery is url.QueryEscape: only A-Z a-z 0-9 - _ . ~ kept, space as +.
            return quote_plus(labels.get(m.group(1), ""), safe="")
        if m := re.fullmatch(_VALUE, body):
            return _go_number(_value(m.group(1), values))
        if m := re.fullmatch(r'printf\s+"([^"]*)"\s+' + _VALUE, body):
            value = _value(m.group(2), values)
            return "%!f(<nil>)" if value is None else m.group(1) % value
        if m := re.fullmatch(r"humanizePercentage\s+" + _VALUE, body):
            value = _value(m.group(1), values)
            return "" if value is None else f"{value * 100:.4g}%"
        raise ValueError(f"template action {{{{ {body} }}}} is not supported by the evaluator")

    return _ACTION.sub(action, template)


def render_alerts(alerts: list[FiringAlert], now: datetime | None = None, per_rule: int = 5) -> str:
    """Terminal rendering for `alerts check` and the end of `tokentrail demo` (at most `per_rule` instances each).

    Each alert starts with where the provisioned policy sends it, for the owners in effect:
    `[PAGE -> support-ai (PagerDuty Support AI)]`, `[warn -> chat (central), unowned]`.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    if not alerts:
        return f"\nAlerts that would fire at {stamp}: none\n"
    lines = [f"\nAlerts that would fire at {stamp}: {len(alerts)}"]
    shown: dict[str, int] = {}
    owners = current_owners()
    for alert in alerts:
        shown[alert.uid] = shown.get(alert.uid, 0) + 1
        if shown[alert.uid] > per_rule:
            continue
        route = who_is_paged(alert.labels, alert.severity, owners)  # the provisioned routes, in words
        lines.append(f"  [{route}] {alert.title}: {alert.summary}")
        hidden_labels = ("alertname", "grafana_folder", "severity", "component", "managed_by")
        keys = [k for k in alert.labels if k not in hidden_labels]
        if keys:
            lines.append("      " + "  ".join(f"{k}={alert.labels[k]}" for k in keys))
        if alert.annotations.get("dashboard"):
            lines.append(f"      dashboard: {alert.annotations['dashboard']}")
        if owners is not None:
            lines.append(f"      contact point: {contact_point_of(alert.labels, alert.severity, owners)}")
    hidden = {uid: n - per_rule for uid, n in shown.items() if n > per_rule}
    for uid, n in hidden.items():
        lines.append(f"  ... and {n} more instance(s) of {uid}")
    return "\n".join(lines) + "\n"


def contact_point_of(labels: dict[str, str], severity: str, owners: Owners | None) -> str:
    """The contact point the provisioned policy delivers the alert to (the routes of `tokentrail_route`)."""
    team = routed_team(labels, severity, owners)
    if team is not None:
        return contact_point_name(team.name)
    return PAGER if severity == "page" else CHAT


def render_routing(owners: Owners | None) -> str:
    """Who would be paged, per owner: owner -> contact point -> receiver, as the provisioned policy routes."""
    lines = ["\nRouting (owner -> contact point -> receiver):"]
    for team in sorted(owners.teams if owners is not None else [], key=lambda t: t.name):
        point, receiver = contact_point_name(team.name), team.receiver_summary()
        if team.escalation == "page":
            lines.append(f"  {team.name} -> {point} -> {receiver} (pages and warnings)")
        else:
            lines.append(
                f"  {team.name} -> {point} -> {receiver} (warnings; its pages -> {PAGER} -> PagerDuty central)"
            )
    lines.append(f"  unowned -> {PAGER} -> PagerDuty central (pages); {CHAT} -> chat (warnings)")
    return "\n".join(lines) + "\n"
