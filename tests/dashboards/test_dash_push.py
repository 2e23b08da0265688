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
from tokentrail.dashboards.alerting_provisioning import merge_policy_tree, rules_api, tokentrail_route
from tokentrail.dashboards.catalog import DASHBOARDS
from tokentrail.dashboards.provisioning_files import DatasourceTLS, datasource_file
from tokentrail.dashboards.push import MissingEnvironment, push
from tokentrail.stream.cli import main

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
    (ours,) = grafana.policy["routes"]
    assert ours["object_matchers"] == [["managed_by", "=", "tokentrail"]] and ours["receiver"] == "tokentrail-chat"
    assert ours["routes"][0]["receiver"] == "tokentrail-pagerduty"
    assert grafana.policy["receiver"] == "grafana-default-email"  # the org's root is not ours to change
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


FOREIGN_ROUTE = {
    "receiver": "grafana-default-email",
    "object_matchers": [["team", "=", "payments"]],
    "group_by": ["alertname"],
    "routes": [{"object_matchers": [["severity", "=", "critical"]], "continue": True}],
}


def test_push_merges_into_a_shared_policy_tree(grafana):
    """Another team's route and the org's root survive two pushes; tokentrail's branch appears exactly once."""
    grafana.policy = {
        "receiver": "grafana-default-email",
        "group_by": ["grafana_folder"],
        "repeat_interval": "12h",
        "routes": [FOREIGN_ROUTE],
    }
    api = GrafanaApi.from_url(grafana.url)
    push(api, ENV)
    push(api, ENV)
    routes = grafana.policy["routes"]
    assert FOREIGN_ROUTE in routes
    assert [r for r in routes if r != FOREIGN_ROUTE] == [tokentrail_route()]
    assert grafana.policy["repeat_interval"] == "12h" and grafana.policy["group_by"] == ["grafana_folder"]
    assert grafana.policy_headers.get("X-Disable-Provenance") == "true"  # other teams can still edit theirs


def test_push_updates_a_stale_tokentrail_branch_in_place(grafana):
    """An older tokentrail branch is replaced where it stands; routes around it keep their order."""
    stale = {"receiver": "grafana-default-email", "object_matchers": [["managed_by", "=", "tokentrail"]]}
    after = {**FOREIGN_ROUTE, "object_matchers": [["team", "=", "search"]]}
    grafana.policy = {"receiver": "grafana-default-email", "routes": [FOREIGN_ROUTE, stale, after, stale]}
    push(GrafanaApi.from_url(grafana.url), ENV)
    assert grafana.policy["routes"] == [FOREIGN_ROUTE, tokentrail_route(), after]


def test_merge_policy_tree_leaves_the_input_alone():
    """The merge works on a copy: the tree read from Grafana is not mutated."""
    tree = {"receiver": "x", "routes": [FOREIGN_ROUTE], "provenance": "file"}
    merged = merge_policy_tree(tree)
    assert tree == {"receiver": "x", "routes": [FOREIGN_ROUTE], "provenance": "file"}
    assert "provenance" not in merged and merged["routes"][1] == FOREIGN_ROUTE


def test_every_rule_carries_the_label_tokentrails_route_matches():
    """A rule without managed_by=tokentrail would fall through to another team's routing."""
    assert all(r["labels"]["managed_by"] == "tokentrail" for r in rules_api())


def test_plain_http_clickhouse_gives_an_insecure_datasource(grafana):
    """The compose default: no TLS settings at all."""
    push(GrafanaApi.from_url(grafana.url), ENV)
    ds = grafana.datasources["tokentrail-clickhouse"]
    assert ds["jsonData"]["secure"] is False
    assert "tlsAuthWithCACert" not in ds["jsonData"] and "tlsCACert" not in ds["secureJsonData"]


def test_https_clickhouse_gives_a_secure_datasource_trusting_the_ca(grafana, tmp_path):
    """An https:// DSN and a CA file: secure, tlsAuthWithCACert, and the CA's PEM sent in secureJsonData."""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    env = {**ENV, "TOKENTRAIL_CLICKHOUSE_URL": "https://tokentrail@clickhouse:8443", "CLICKHOUSE_CA_FILE": str(ca)}
    push(GrafanaApi.from_url(grafana.url), env)
    ds = grafana.datasources["tokentrail-clickhouse"]
    assert ds["jsonData"]["secure"] is True and ds["jsonData"]["tlsAuthWithCACert"] is True
    assert ds["secureJsonData"]["tlsCACert"] == ca.read_text()


def test_secure_without_a_ca_trusts_the_system_roots(grafana):
    """CLICKHOUSE_SECURE=true alone: TLS, no CA pinned."""
    push(GrafanaApi.from_url(grafana.url), {**ENV, "CLICKHOUSE_SECURE": "true"})
    ds = grafana.datasources["tokentrail-clickhouse"]
    assert ds["jsonData"]["secure"] is True and "tlsCACert" not in ds["secureJsonData"]


def test_unreadable_ca_or_ca_for_plain_http_is_refused_before_any_request(grafana, tmp_path):
    """A CA that cannot be read, or a CA for an http:// server, is a configuration error: nothing is sent."""
    api = GrafanaApi.from_url(grafana.url)
    missing = {**ENV, "CLICKHOUSE_SECURE": "true", "CLICKHOUSE_CA_FILE": str(tmp_path / "absent.pem")}
    with pytest.raises(MissingEnvironment, match="absent.pem"):
        push(api, missing)
    plain = {**ENV, "TOKENTRAIL_CLICKHOUSE_URL": "http://clickhouse:8123", "CLICKHOUSE_CA_FILE": str(tmp_path)}
    with pytest.raises(MissingEnvironment, match="plain HTTP"):
        push(api, plain)
    assert grafana.requests == []


def test_tls_datasource_file_reads_the_ca_through_grafana_file_reference():
    """The file form: Grafana reads the CA itself at provisioning time ($__file{path})."""
    (ds,) = datasource_file(DatasourceTLS("/etc/grafana/clickhouse-ca.pem"))["datasources"]
    assert ds["jsonData"]["secure"] is True and ds["jsonData"]["tlsAuthWithCACert"] is True
    assert ds["secureJsonData"]["tlsCACert"] == "$__file{/etc/grafana/clickhouse-ca.pem}"
