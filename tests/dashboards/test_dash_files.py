"""The committed provisioning files: what the code generates, in Grafana's file formats, wired together."""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from tokentrail.dashboards.alert_rules import RULES
from tokentrail.dashboards.build import SDK_VERSION
from tokentrail.dashboards.catalog import DASHBOARDS
from tokentrail.dashboards.evaluate import render_template
from tokentrail.dashboards.provisioning_files import PROVISIONING_DIR, check
from tokentrail.dashboards.spec import (
    ALL_SENTINEL,
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    FILTER_VARIABLES,
    GRAFANA_VERSION,
)
from tokentrail.sinks import close_embedded, connect

ENV_REF = re.compile(r"^\$__env\{[A-Z0-9_]+\}$")


def load(rel: str):
    text = (PROVISIONING_DIR / rel).read_text()
    return json.loads(text) if rel.endswith(".json") else yaml.safe_load(text)


def test_committed_files_are_what_the_code_generates():
    """A change to the dashboard or alert code must be followed by `tokentrail dashboards build`."""
    assert check() == [], "run `tokentrail dashboards build` and commit the provisioning files"


def test_sdk_build_targets_the_grafana_version_compose_runs():
    """grafana-foundation-sdk carries an epoch per Grafana schema: the 11.6 build emits schemaVersion 41."""
    assert version("grafana-foundation-sdk") == SDK_VERSION
    assert GRAFANA_VERSION == "11.6"
    for d in DASHBOARDS:
        assert load(f"dashboards/json/{d.uid}.json")["schemaVersion"] == 41
    compose = Path(__file__).resolve().parents[2] / "compose.yaml"
    if compose.exists():  # compose.yaml belongs to the stack; when present it must run the same minor
        assert re.search(r"grafana/grafana:11\.6\.\d+", compose.read_text())


def test_datasource_is_the_clickhouse_plugin_with_credentials_from_the_environment():
    """Fixed uid (panels and rules reference it), plugin v4 settings, no secret in the file."""
    (ds,) = load("datasources/tokentrail-clickhouse.yaml")["datasources"]
    assert (ds["type"], ds["uid"]) == (DATASOURCE_TYPE, DATASOURCE_UID)
    assert ENV_REF.match(ds["jsonData"]["host"]) and ENV_REF.match(ds["jsonData"]["username"])
    assert ENV_REF.match(ds["secureJsonData"]["password"])
    assert ds["jsonData"]["defaultDatabase"] == "tokentrail"


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=[d.uid for d in DASHBOARDS])
def test_dashboard_json_has_variables_panels_and_change_annotations(dashboard):
    """Each dashboard: the four filter variables, ClickHouse raw-SQL targets, a sane grid, change markers."""
    doc = load(f"dashboards/json/{dashboard.uid}.json")
    names = [v["name"] for v in doc["templating"]["list"]]
    assert set(FILTER_VARIABLES) <= set(names)
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            assert var["includeAll"] and var["multi"] and var["allValue"] == ALL_SENTINEL
    cells = set()
    for panel in doc["panels"]:
        (target,) = panel["targets"]
        assert target["datasource"]["uid"] == DATASOURCE_UID and target["editorType"] == "sql" and target["rawSql"]
        assert target["format"] == (0 if panel["type"] == "timeseries" else 1)
        # Variables reach SQL only percent-encoded inside a literal (spec.grafana_text): no quoting formats.
        refs = re.findall(r"\$\{[^}]*\}|\[\[[^\]]*\]\]|\$(?!__)\w+", target["rawSql"])
        assert all(re.fullmatch(r"\$\{\w+:percentencode\}", ref) for ref in refs), refs
        grid = panel["gridPos"]
        mine = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert grid["x"] + grid["w"] <= 24 and not (mine & cells), f"{panel['title']} overlaps"
        cells |= mine
    annotations = [a["name"] for a in doc["annotations"].get("list", [])]
    assert ("Model and prompt changes" in annotations) == (dashboard.uid != "tokentrail-changes")


def test_alert_rules_file_shape():
    """groups[].rules[] with A (ClickHouse) -> B (reduce) -> C (threshold) and the condition on C."""
    groups = load("alerting/rules.yaml")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert {r["uid"] for r in rules} == {r.uid for r in RULES}
    assert all(g["folder"] == "tokentrail" and g["orgId"] == 1 and g["interval"] for g in groups)
    for rule in rules:
        refs = {q["refId"]: q for q in rule["data"]}
        assert rule["condition"] == "C"
        assert refs["A"]["datasourceUid"] == DATASOURCE_UID and refs["A"]["relativeTimeRange"]["from"] > 0
        assert refs["B"]["model"]["type"] == "reduce" and refs["B"]["model"]["expression"] == "A"
        assert refs["C"]["model"]["type"] == "threshold" and refs["C"]["model"]["expression"] == "B"
        assert rule["labels"]["severity"] in ("page", "warning")
        # Grafana interpolates environment variables in labels and titles (not annotations, not models).
        assert "$" not in rule["title"] and not any("$" in v for v in rule["labels"].values())


def test_alert_annotations_link_to_a_provisioned_panel_and_render():
    """__dashboardUid__/__panelId__ point at a real panel; summaries render with this project's templating subset."""
    dashboards = {d.uid: load(f"dashboards/json/{d.uid}.json") for d in DASHBOARDS}
    for group in load("alerting/rules.yaml")["groups"]:
        for rule in group["rules"]:
            notes = rule["annotations"]
            panels = {p["id"] for p in dashboards[notes["__dashboardUid__"]]["panels"]}
            assert int(notes["__panelId__"]) in panels
            refs = {q["refId"] for q in rule["data"]}
            values = {ref: 1.5 for ref in refs}
            labels = {
                name: "x"
                for name in (
                    "tenant",
                    "feature",
                    "trace_id",
                    "kind",
                    "model",
                    "provider",
                    "service",
                    "from_value",
                    "to_value",
                    "prompt_id",
                    "prompt_version",
                    "budget_window",
                )
            }
            for key in ("summary", "description", "dashboard"):
                rendered = render_template(notes[key], labels, values)
                assert "{{" not in rendered and "<no value>" not in rendered


def test_contact_points_cover_the_four_integrations_with_secrets_from_the_environment():
    """Webhook, Slack, PagerDuty and email; every URL and key is an $__env reference."""
    points = load("alerting/contact-points.yaml")["contactPoints"]
    receivers = {r["type"]: r for p in points for r in p["receivers"]}
    assert set(receivers) == {"webhook", "slack", "pagerduty", "email"}
    assert ENV_REF.match(receivers["webhook"]["settings"]["url"])
    assert ENV_REF.match(receivers["slack"]["settings"]["url"])
    assert ENV_REF.match(receivers["pagerduty"]["settings"]["integrationKey"])
    assert ENV_REF.match(receivers["email"]["settings"]["addresses"])
    text = (PROVISIONING_DIR / "alerting/contact-points.yaml").read_text()
    assert "http" not in text.replace("httpMethod", "")


def test_policies_route_tokentrail_alerts_to_chat_and_pages_to_pagerduty():
    """tokentrail's branch (managed_by=tokentrail) goes to chat; severity=page under it to PagerDuty."""
    (policy,) = load("alerting/policies.yaml")["policies"]
    names = {p["name"] for p in load("alerting/contact-points.yaml")["contactPoints"]}
    assert policy["receiver"] == "tokentrail-chat" and policy["receiver"] in names
    (branch,) = policy["routes"]
    assert branch["object_matchers"] == [["managed_by", "=", "tokentrail"]] and branch["receiver"] == "tokentrail-chat"
    (page,) = branch["routes"]
    assert page["object_matchers"] == [["severity", "=", "page"]] and page["receiver"] == "tokentrail-pagerduty"
    assert page["receiver"] in names and page["continue"] is True


@pytest.fixture(scope="module")
def engine():
    close_embedded()
    yield connect("chdb://memory")
    close_embedded()


def test_readonly_user_sql_parses_in_clickhouse(engine):
    """The grants file cannot run on embedded chDB (no access control), but ClickHouse's parser accepts it."""
    text = (
        (PROVISIONING_DIR / "clickhouse/readonly_user.sql").read_text().replace("${GRAFANA_CLICKHOUSE_PASSWORD}", "pw")
    )
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    statements = [s.strip() for s in body.split(";") if s.strip()]
    assert len(statements) == 5
    for statement in statements:
        formatted = engine.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]
        assert formatted.split()[0] in ("CREATE", "GRANT")
