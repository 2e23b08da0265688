"""Owners against the stored incident traffic (embedded ClickHouse): the dashboards' owner columns return
each row's owner and nothing else changes, and `alerts check --owners FILE` says who would be paged."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tokentrail.dashboards.catalog import DASHBOARDS, built_dashboards
from tokentrail.dashboards.macros import render
from tokentrail.dashboards.owners import UNOWNED, load_owners, owners_in_effect, routed_team, who_is_paged
from tokentrail.dashboards.queries import Selection, last, panel_interval
from tokentrail.stream.cli import main

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[2] / "dashboards" / "owners.example.yaml"


def run(client, sql):
    result = client.query(sql)
    return list(result.column_names), [list(row) for row in result.result_rows]


def test_owner_columns_name_each_rows_owner_and_change_nothing_else(incident_store):
    """Every table panel, as built with the example owners file, against the store: a table that returns
    `feature` returns `owner` right after it, equal to Owners.owner_of for the row's tenant/service/feature
    (`unowned` when nobody owns it); every other column and the row order are the panel's own."""
    owners = load_owners(EXAMPLE)
    with owners_in_effect(owners):
        built = built_dashboards()
    client, selection = incident_store["client"], Selection(last(timedelta(hours=6), incident_store["now"]))
    seen: set[str] = set()
    for spec in DASHBOARDS:
        panels = {p["title"]: p for p in built[spec.uid]["panels"]}
        variables = selection.variables(spec)
        for panel in (p for p in spec.panels if p.kind == "table"):
            interval = panel_interval(panel, selection.time_range)
            plain = run(client, render(panel.sql, selection.time_range, interval, variables))
            columns, rows = run(
                client, render(panels[panel.title]["targets"][0]["rawSql"], selection.time_range, interval, variables)
            )
            if "feature" not in plain[0]:
                assert (columns, rows) == plain, panel.title  # no feature, no owner column
                continue
            at = columns.index("owner")
            assert columns[at - 1] == "feature" or "owner" in plain[0], (panel.title, columns)
            others = [[v for i, v in enumerate(row) if i != at] for row in rows]
            expected = [[v for i, v in enumerate(row) if plain[0][i] != "owner"] for row in plain[1]]
            assert others == expected, panel.title
            for row in rows:
                given = {c: row[columns.index(c)] for c in ("tenant", "service", "feature") if c in columns}
                team = owners.owner_of(**given)
                assert row[at] == (team.name if team else UNOWNED), (panel.title, given, row[at])
                seen.add(row[at])
    assert {UNOWNED, "support-ai", "northwind-success"} <= seen, seen


def test_alerts_check_says_who_would_be_paged(incident_store, capsys):
    """`alerts check --owners FILE`: each firing alert carries the owner the file gives its labels and is
    printed with its route (owner -> contact point's receiver, or the central one), as JSON too."""
    owners = load_owners(EXAMPLE)
    at = incident_store["now"].isoformat()
    args = ["alerts", "check", "--clickhouse", incident_store["dsn"], "--at", at, "--owners", str(EXAMPLE)]
    assert main([*args, "--json"]) == 0
    alerts = json.loads(capsys.readouterr().out)
    assert alerts
    for alert in alerts:
        labels = alert["labels"]
        team = owners.owner_of(**{c: labels.get(c, "") for c in ("tenant", "service", "feature")})
        assert labels["owner"] == (team.name if team else UNOWNED), (alert["uid"], labels)
        assert alert["route"] == who_is_paged(labels, alert["severity"], owners)
        routed = routed_team(labels, alert["severity"], owners)
        central = "tokentrail-pagerduty" if alert["severity"] == "page" else "tokentrail-chat"
        assert alert["contact_point"] == (f"tokentrail-owner-{routed.name}" if routed else central)
    routes = {a["route"] for a in alerts}
    assert any(" -> support-ai (PagerDuty Support AI)" in r for r in routes), routes
    assert "tt-unowned-surface" in {a["uid"] for a in alerts}

    assert main(args) == 0
    text = capsys.readouterr().out
    assert "-> support-ai (PagerDuty Support AI)] " in text and "owner=support-ai" in text
    assert "[warn -> chat (central), unowned] Unowned model surface" in text
    assert "contact point: tokentrail-owner-support-ai" in text
    routing = text.split("Routing (owner -> contact point -> receiver):\n", 1)[1]
    assert "  support-ai -> tokentrail-owner-support-ai -> PagerDuty Support AI (pages and warnings)\n" in routing
    assert "  northwind-success -> tokentrail-owner-northwind-success -> Slack #northwind-ai (warnings;" in routing
