"""`tokentrail dashboards push --tenant T` against the Grafana stand-in (grafana_standin.py: no Grafana
can run here, so a local mock of its HTTP API, organisations included, answers as Grafana 11.6)."""

from __future__ import annotations

import pytest
from grafana_client import GrafanaApi
from grafana_standin import GrafanaStandIn
from test_dash_push import ENV

from tokentrail.dashboards.catalog import DASHBOARDS
from tokentrail.dashboards.push import push
from tokentrail.dashboards.tenant_push import org_name, push_tenant
from tokentrail.stream.cli import main


@pytest.fixture
def grafana():
    with GrafanaStandIn() as standin:
        yield standin


def test_each_tenant_gets_an_organisation_whose_datasource_reads_as_its_reader(grafana):
    """acme and globex: an organisation each, its datasource logging in as that tenant's reader; the
    main organisation's objects are not touched, and the dashboards' datasource is the org's own."""
    api = GrafanaApi.from_url(grafana.url)
    push(api, ENV)  # the platform team's main organisation, all-tenants reader
    push_tenant(api, "acme", reader_user="reader_acme", env=ENV)
    push_tenant(api, "globex", reader_user="reader_globex", env=ENV)
    acme, globex = grafana.org_id(org_name("acme")), grafana.org_id(org_name("globex"))
    assert sorted(grafana.orgs) == [1, acme, globex] and len({1, acme, globex}) == 3
    for org, user in ((acme, "reader_acme"), (globex, "reader_globex"), (1, ENV["GRAFANA_CLICKHOUSE_USER"])):
        state = grafana.org_state(org)
        (datasource,) = state["datasources"].values()
        assert datasource["jsonData"]["username"] == user, org
        assert set(state["dashboards"]) == {d.uid for d in DASHBOARDS}
        panels = [p for body in state["dashboards"].values() for p in body["dashboard"]["panels"]]
        uids = {t["datasource"]["uid"] for p in panels for t in p.get("targets", [])}
        assert uids == {datasource["uid"]}  # no panel reads through another organisation's datasource


def test_a_second_tenant_push_reuses_the_organisation(grafana):
    """Pushing acme twice: one organisation, found by name, everything updated in place."""
    api = GrafanaApi.from_url(grafana.url)
    first = push_tenant(api, "acme", reader_user="reader_acme", env=ENV)
    second = push_tenant(api, "acme", reader_user="reader_acme", env=ENV)
    assert len(grafana.orgs) == 2
    assert first.created[0].startswith("organisation 'tokentrail acme'")
    assert second.updated[0].startswith("organisation 'tokentrail acme'") and second.created == []


@pytest.mark.parametrize(
    ("tenant", "reader", "message"),
    [("acme' OR 1=1", "reader_acme", "reader role"), ("acme", "reader-acme; DROP", "plain identifier")],
)
def test_a_tenant_or_reader_that_cannot_be_a_role_is_refused_before_any_request(grafana, tenant, reader, message):
    """The tenant must name a reader role (sinks/privileges.py), the reader a plain user name."""
    with pytest.raises(ValueError, match=message):
        push_tenant(GrafanaApi.from_url(grafana.url), tenant, reader_user=reader, env=ENV)
    assert grafana.requests == [] and list(grafana.orgs) == [1]


def test_push_command_with_a_tenant(grafana, monkeypatch, capsys):
    """The command line: --tenant with --reader-user pushes into the tenant's organisation;
    one without the other is refused."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    argv = ["dashboards", "push", "--grafana-url", grafana.url, "--tenant", "acme"]
    assert main(argv) == 2
    assert "--tenant and --reader-user go together" in capsys.readouterr().err
    assert main([*argv, "--reader-user", "reader_acme"]) == 0
    assert "organisation 'tokentrail acme'" in capsys.readouterr().out
    (datasource,) = grafana.org_state(grafana.org_id(org_name("acme")))["datasources"].values()
    assert datasource["jsonData"]["username"] == "reader_acme"
    assert grafana.org_state(1)["datasources"] == {}  # nothing pushed to the main organisation


def test_the_standin_keeps_organisations_apart(grafana):
    """The stand-in itself: a request naming an unknown organisation is refused, as Grafana refuses it."""
    api = GrafanaApi.from_url(grafana.url)
    api.client.s.headers["X-Grafana-Org-Id"] = "42"
    with pytest.raises(Exception) as raised:
        api.folder.get_folder("tokentrail")
    assert getattr(raised.value, "status_code", None) == 401
