"""`tokentrail dashboards push`: create or update everything in an existing Grafana through grafana-client.

For a Grafana whose provisioning directory we do not control (a shared or hosted instance). It
sends the same objects the files describe, in the HTTP API's shapes: folder, datasource,
dashboards, contact points, the notification policy tree, then the alert rules and their group
intervals. Every step is create-or-update keyed by a fixed uid, so pushing twice changes nothing
the second time. The HTTP API does not read `$__env{...}`, so this module substitutes the
environment itself, and refuses to push when a variable is missing (a Slack contact point with
an empty URL would be accepted and then fail at 3 a.m.).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .alert_rules import GROUPS
from .alerting_provisioning import ENV_VARS, contact_points_api, policy_api, rules_api
from .catalog import built_dashboards
from .provisioning import datasource_file
from .spec import FOLDER_TITLE, FOLDER_UID

__all__ = ["push", "PushReport", "substitute_env", "MissingEnvironment", "DATASOURCE_ENV"]

DATASOURCE_ENV = {
    "CLICKHOUSE_HOST": "ClickHouse host as Grafana reaches it",
    "CLICKHOUSE_HTTP_PORT": "ClickHouse HTTP port (8123)",
    "GRAFANA_CLICKHOUSE_USER": "Grafana's read-only ClickHouse user (provisioning/clickhouse/readonly_user.sql)",
    "GRAFANA_CLICKHOUSE_PASSWORD": "its password",
}
_ENV_REF = re.compile(r"\$__env\{(\w+)\}|\$\{(\w+)\}")


class MissingEnvironment(ValueError):
    """Configuration the push needs is not in the environment."""


def substitute_env(value: Any, env: Mapping[str, str], missing: set[str]) -> Any:
    """Replace `$__env{X}` / `${X}` in every string of a JSON-like value; collect unset names in `missing`."""
    if isinstance(value, str):

        def repl(m: re.Match) -> str:
            name = m.group(1) or m.group(2)
            if name not in env:
                missing.add(name)
                return ""
            return env[name]

        return _ENV_REF.sub(repl, value)
    if isinstance(value, list):
        return [substitute_env(v, env, missing) for v in value]
    if isinstance(value, dict):
        return {k: substitute_env(v, env, missing) for k, v in value.items()}
    return value


@dataclass
class PushReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)

    def render(self) -> str:
        return (
            f"pushed to Grafana: {len(self.created)} created, {len(self.updated)} updated\n"
            + "".join(f"  created {x}\n" for x in self.created)
            + "".join(f"  updated {x}\n" for x in self.updated)
        )


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status_code", None)


def _exists(get: Callable[[], Any]) -> bool:
    try:
        get()
        return True
    except Exception as exc:  # grafana-client raises GrafanaClientError(404) for "not found"
        if _status(exc) == 404:
            return False
        raise


def _datasource(env: Mapping[str, str], missing: set[str]) -> dict[str, Any]:
    body = substitute_env(copy.deepcopy(datasource_file()["datasources"][0]), env, missing)
    body.pop("editable", None)
    return body


def push(api: Any, env: Mapping[str, str] | None = None) -> PushReport:
    """Create or update folder, datasource, dashboards, contact points, policies and alert rules."""
    env = os.environ if env is None else env
    missing: set[str] = set()
    datasource = _datasource(env, missing)
    points = [substitute_env(p, env, missing) for p in contact_points_api()]
    if missing:
        known = {**DATASOURCE_ENV, **ENV_VARS}
        raise MissingEnvironment(
            "set these environment variables before pushing: "
            + "; ".join(f"{name} ({known.get(name, 'referenced by a provisioning file')})" for name in sorted(missing))
        )
    report = PushReport()
    alerting = api.alertingprovisioning

    if _exists(lambda: api.folder.get_folder(FOLDER_UID)):
        api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
        report.updated.append(f"folder {FOLDER_UID}")
    else:
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        report.created.append(f"folder {FOLDER_UID}")

    if _exists(lambda: api.datasource.get_datasource_by_uid(datasource["uid"])):
        api.datasource.update_datasource_by_uid(datasource["uid"], datasource)
        report.updated.append(f"datasource {datasource['uid']}")
    else:
        api.datasource.create_datasource(datasource)
        report.created.append(f"datasource {datasource['uid']}")

    for uid, dashboard in built_dashboards().items():
        api.dashboard.update_dashboard(
            {
                "dashboard": {**dashboard, "id": None},
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "tokentrail dashboards push",
            }
        )
        report.updated.append(f"dashboard {uid}")

    existing = {p.get("uid") for p in alerting.get_contactpoints() or []}
    for point in points:
        if point["uid"] in existing:
            alerting.update_contactpoint(point["uid"], point)
            report.updated.append(f"contact point {point['uid']}")
        else:
            alerting.create_contactpoint(point)
            report.created.append(f"contact point {point['uid']}")

    alerting.set_notification_policy_tree(policy_api())
    report.updated.append("notification policy tree")

    rules = rules_api()
    for rule in rules:
        if _exists(lambda: alerting.get_alertrule(rule["uid"])):
            alerting.update_alertrule(rule["uid"], rule)
            report.updated.append(f"alert rule {rule['uid']}")
        else:
            alerting.create_alertrule(rule)
            report.created.append(f"alert rule {rule['uid']}")
    for group, interval in GROUPS.items():
        members = [r for r in rules if r["ruleGroup"] == group]
        alerting.update_rule_group(
            FOLDER_UID,
            group,
            {"title": group, "folderUid": FOLDER_UID, "interval": _seconds(interval), "rules": members},
        )
        report.updated.append(f"rule group {group} ({interval})")
    return report


def _seconds(interval: str) -> int:
    number, unit = int(interval[:-1]), interval[-1]
    return number * {"s": 1, "m": 60, "h": 3600}[unit]
