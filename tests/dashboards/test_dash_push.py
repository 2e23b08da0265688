"""`tokentrail dashboards push` against a local stand-in for Grafana's HTTP API.

A live Grafana cannot run here (no installable server; no network beyond package registries),
so the stand-in in grafana_standin.py records the requests and checks them against the
provisioning API's contract, answering as Grafana 11.6 does.
"""

from __future__ import annotations

import pytest
from grafana_client import GrafanaApi
from grafana_standin import GrafanaStandIn

from tokentrail.dashboards.alert_rules import RULES
from tokentrail.dashboards.catalog import DASHBOARDS
from tokentrail.stream.cli import main
from tokentrail.dashboards.push import MissingEnvironment, push

ENV = {
    "CLICKHOUSE_HOST": "clickhouse",
    "CLICKHOUSE_HTTP_PORT": "8123",
    "GRAFANA_CLICKHOUSE_USER": "grafana",
    "GRAFANA_CLICKHOUSE_PASSWORD": "s3cret",
    "TOKENTRAIL_SLACK_WEBHOOK_URL": "https://hooks.example.invalid/T/B/X",
    "TOKENTRAIL_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/alerts",
    "TOKENTRAIL_ALERT_EMAILS": "oncall@example.invalid",
    "TOKENTRAIL_PAGERDUTY_KEY": "0123456789abcdef0123456789abcdef",
}


@pytest.fixture
def grafana():
    with GrafanaStandIn() as standin:
        yield standin


def test_push_creates_everything_grafana_accepts(grafana):
    """Folder, datasource, 7 dashboards, 4 contact points, the policy tree and every rule, all accepted."""
    report = push(GrafanaApi.from_url(grafana.url), ENV)
    assert set(grafana.folders) == {"tokentrail"}
    assert grafana.datasources["tokentrail-clickhouse"]["secureJsonData"]["password"] == "s3cret"
    assert set(grafana.dashboards) == {d.uid for d in DASHBOARDS}
    assert {c["type"] for c in grafana.contact_points.values()} == {"webhook", "slack", "pagerduty", "email"}
    assert grafana.contact_points["tt-pagerduty"]["settings"]["integrationKey"] == ENV["TOKENTRAIL_PAGERDUTY_KEY"]
    assert grafana.policy["routes"][0]["receiver"] == "tokentrail-pagerduty"
    assert set(grafana.rules) == {r.uid for r in RULES}
    assert set(grafana.groups.values()) == {60}
    assert all(status for status in report.created) and "folder tokentrail" in report.created


def test_second_push_updates_in_place(grafana):
    """Pushing again creates nothing: every object is updated by its fixed uid."""
    api = GrafanaApi.from_url(grafana.url)
    push(api, ENV)
    first = len(grafana.requests)
    report = push(api, ENV)
    assert report.created == []
    posts = [(m, p) for m, p, _ in grafana.requests[first:] if m == "POST"]
    assert all(p == "/api/dashboards/db" for _, p in posts)  # dashboards are saved with overwrite
    assert len(grafana.rules) == len(RULES) and len(grafana.contact_points) == 4


def test_missing_secret_is_refused_before_any_request(grafana):
    """An unset variable would leave an empty Slack URL: refuse, naming it, and send nothing."""
    env = {k: v for k, v in ENV.items() if k != "TOKENTRAIL_SLACK_WEBHOOK_URL"}
    with pytest.raises(MissingEnvironment, match="TOKENTRAIL_SLACK_WEBHOOK_URL"):
        push(GrafanaApi.from_url(grafana.url), env)
    assert grafana.requests == []


def test_wrong_credentials_surface_as_an_error(grafana):
    """Grafana answers 401; the push stops instead of pretending."""
    url = grafana.url.replace("admin:admin", "admin:nope")
    with pytest.raises(Exception) as failure:
        push(GrafanaApi.from_url(url), ENV)
    assert getattr(failure.value, "status_code", None) == 401


def test_push_command(grafana, monkeypatch, capsys):
    """`tokentrail dashboards push --grafana-url URL` reads the environment and reports what it did."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    assert main(["dashboards", "push", "--grafana-url", grafana.url]) == 0
    out = capsys.readouterr().out
    assert "created" in out and "alert rule tt-loop" in out


def test_push_command_reports_missing_environment(grafana, monkeypatch, capsys):
    """A configuration error exits 2 with the variable to set."""
    for key in ENV:
        monkeypatch.delenv(key, raising=False)
    assert main(["dashboards", "push", "--grafana-url", grafana.url]) == 2
    assert "GRAFANA_CLICKHOUSE_PASSWORD" in capsys.readouterr().err
