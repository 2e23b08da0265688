"""`tokentrail dashboards push`: create or update everything in an existing Grafana through grafana-client.

For a Grafana whose provisioning directory we do not control (a shared or hosted instance). It
sends the same objects the files describe, in the HTTP API's shapes: folder, datasource,
dashboards, contact points, tokentrail's branch of the notification policy tree (merged into the
organisation's tree, never replacing it), then the alert rules and their group intervals. Every
step is create-or-update keyed by a fixed uid, so pushing twice changes nothing the second time.
The HTTP API does not read `$__env{...}`, so this module substitutes the environment itself
(and reads `$__file{...}`), and refuses to push when a variable is missing (a Slack contact point with
an empty URL would be accepted and then fail at 3 a.m.).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .alert_rules import GROUPS
from .alerting_provisioning import ENV_VARS, contact_points_api, merge_policy_tree, rules_api
from .catalog import built_dashboards
from .owners import current_owners
from .provisioning_files import datasource_file, datasource_tls_from_env
from .spec import FOLDER_TITLE, FOLDER_UID

__all__ = ["push", "PushReport", "substitute_env", "MissingEnvironment", "DATASOURCE_ENV", "DATASOURCE_TLS_ENV"]

DATASOURCE_ENV = {
    "CLICKHOUSE_HOST": "ClickHouse host as Grafana reaches it",
    "CLICKHOUSE_HTTP_PORT": "ClickHouse HTTP port (8123)",
    "GRAFANA_CLICKHOUSE_USER": "Grafana's read-only ClickHouse user (provisioning/clickhouse/readonly_user.sql)",
    "GRAFANA_CLICKHOUSE_PASSWORD": "its password",
}
# Optional: a TLS ClickHouse (see provisioning.datasource_tls_from_env).
DATASOURCE_TLS_ENV = {
    "TOKENTRAIL_CLICKHOUSE_URL": "the project's ClickHouse DSN: https:// makes the datasource secure",
    "CLICKHOUSE_SECURE": "true: the datasource uses TLS whatever the DSN says",
    "CLICKHOUSE_CA_FILE": "PEM file of the CA that signed ClickHouse's certificate (read by push)",
}
_ENV_REF = re.compile(r"\$__env\{(\w+)\}|\$\{(\w+)\}")
_FILE_REF = re.compile(r"\$__file\{([^}]+)\}")


class MissingEnvironment(ValueError):
    """Configuration the push needs is not in the environment."""


def substitute_env(value: Any, env: Mapping[str, str], missing: set[str]) -> Any:
    """Replace `$__env{X}` / `${X}` in every string of a JSON-like value; collect unset names in `missing`."""
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
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


def _read_file_refs(value: Any) -> Any:
    """Replace `$__file{path}` (Grafana reads the file when provisioning; the HTTP API does not)."""
    if isinstance(value, str):

        def read(m: re.Match[str]) -> str:
            try:
                return Path(m.group(1)).read_text()
            except OSError as exc:
                raise MissingEnvironment(f"cannot read {m.group(1)} for the datasource: {exc}") from None

        return _FILE_REF.sub(read, value)
    if isinstance(value, dict):
        return {k: _read_file_refs(v) for k, v in value.items()}
    return value


def _datasource(env: Mapping[str, str], missing: set[str]) -> dict[str, Any]:
    try:
        tls = datasource_tls_from_env(env)
    except ValueError as exc:
        raise MissingEnvironment(str(exc)) from None
    body = substitute_env(copy.deepcopy(datasource_file(tls)["datasources"][0]), env, missing)
    body.pop("editable", None)
    resolved: dict[str, Any] = _read_file_refs(body)
    return resolved


def push(api: Any, env: Mapping[str, str] | None = None) -> PushReport:
    """Create or update folder, datasource, dashboards, contact points, policies and alert rules."""
    env = os.environ if env is None else env
    missing: set[str] = set()
    datasource = _datasource(env, missing)
    points = [substitute_env(p, env, missing) for p in contact_points_api()]
    if missing:
        known = {**DATASOURCE_ENV, **ENV_VARS, **_owner_env_vars()}
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

    # Merge, never replace: the tree is the whole organisation's, other teams route through it too.
    # No provenance, so those teams can still edit their routes in the UI afterwards.
    tree = merge_policy_tree(alerting.get_notification_policy_tree() or {})
    alerting.set_notification_policy_tree(tree, disable_provenance=True)
    report.updated.append("notification policy tree (tokentrail's route)")

    rules = rules_api()
    for rule in rules:
        uid = rule["uid"]
        if _exists(partial(alerting.get_alertrule, uid)):
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


def _owner_env_vars() -> dict[str, str]:
    """The variables the owners file's receivers name, described for the missing-environment message."""
    owners = current_owners()
    described = {}
    for team in owners.teams if owners is not None else []:
        for field_name, value in team.receiver.model_dump().items():
            if field_name.endswith("_env"):
                described[value] = f"the owners file's {team.receiver.type} receiver of team {team.name}"
    return described


def _seconds(interval: str) -> int:
    number, unit = int(interval[:-1]), interval[-1]
    return number * {"s": 1, "m": 60, "h": 3600}[unit]
