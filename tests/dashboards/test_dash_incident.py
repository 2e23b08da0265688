"""Every panel and alert query against demo traffic (anomalies and an injected incident) stored by the pipeline."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from decimal import Decimal

import pytest
from dash_seed import ERRATIC_FEATURE, OUTAGE_MODEL

from tokentrail.dashboards.alert_rules import RULES
from tokentrail.dashboards.catalog import all_panels, dashboard
from tokentrail.dashboards.evaluate import evaluate_alerts, render_alerts
from tokentrail.dashboards.queries import Selection, last, run_panel, variable_options
from tokentrail.stream.cli import main

pytestmark = pytest.mark.slow
# Stalled: the incident store is not stale. Store-rejected: the generator's traffic holds nothing the
# contract lets through and the store refuses (tests/stream/test_store_rejections.py fires that rule).
NOT_IN_THE_INCIDENT = {"tt-pipeline-stalled", "tt-store-rejected"}
PANELS = [(f"{d.uid}/{p.title}", d, p) for d, _, p in all_panels()]


@pytest.fixture(scope="module")
def store(incident_store):
    return incident_store


@pytest.fixture(scope="module")
def selection(store):
    return Selection(last(timedelta(hours=6), store["now"]))


def _numbers(row, types):
    return [
        v
        for v, t in zip(row, types, strict=True)
        if t.startswith(("UInt", "Int", "Float", "Decimal", "Nullable(Float", "Nullable(UInt"))
    ]


@pytest.mark.parametrize("name,dash,panel", PANELS, ids=[p[0] for p in PANELS])
def test_panel_returns_its_shape_with_plausible_values(store, selection, name, dash, panel):
    """Time + numbers for time series, one row of numbers for stats, rows for tables; values finite and >= 0."""
    result = run_panel(store["client"], dash, panel, selection)
    assert len(result.rows) >= panel.min_rows, f"{name}: no rows\n{result.sql}"
    assert all(any(v not in (None, "", []) for v in row) for row in result.rows), f"{name}: an empty row"
    numbers = [n for row in result.rows for n in _numbers(row, result.types) if n is not None]
    assert all(math.isfinite(float(n)) for n in numbers), name
    if (
        "lag" not in panel.title
    ):  # lag may be negative: this hour ends a few minutes after ingest (clock skew in real life)
        assert all(n >= 0 for n in numbers), name
    if panel.shape != "table":
        assert any(n > 0 for n in numbers), f"{name}: no non-zero number"
    if panel.shape == "timeseries":
        assert result.types[0].startswith("DateTime"), name
        assert all(
            t.startswith(("LowCardinality(String)", "String")) for t in result.types[1:-1] if not _numbers((0,), [t])
        ), name
        times = [row[0] for row in result.rows]
        assert times == sorted(times), f"{name}: not ordered by time"
        start = selection.time_range.start.replace(tzinfo=None) - timedelta(minutes=1)
        assert all(start <= t <= selection.time_range.end.replace(tzinfo=None) for t in times), name
    elif panel.shape == "stat":
        assert len(result.rows) == 1 and len(_numbers(result.rows[0], result.types)) == len(result.types), name


def test_variables_offer_the_stored_values_and_filter_panels(store, selection):
    """Tenant options come from calls; selecting one tenant narrows a panel to it."""
    client = store["client"]
    tenants = variable_options(client, "tenant", selection.time_range)
    assert set(tenants) == {"northwind", "acme", "globex", "initech"}
    spend = dashboard("tokentrail-spend")
    by_tenant = next(p for p in spend.panels if p.title == "Cost by tenant")
    only_acme = run_panel(client, spend, by_tenant, Selection(selection.time_range, {"tenant": ("acme",)}))
    assert {row[1] for row in only_acme.rows} == {"acme"}
    nobody = run_panel(client, spend, by_tenant, Selection(selection.time_range, {"tenant": ("no-such-tenant",)}))
    assert nobody.rows == []


def test_spend_total_matches_what_the_pipeline_stored(store, selection):
    """The stat panel's spend equals the sum over deduplicated calls (FINAL), in exact decimals."""
    client = store["client"]
    spend = dashboard("tokentrail-spend")
    (row,) = run_panel(client, spend, spend.panels[0], selection).rows
    (total,) = client.query("SELECT sum(cost_usd) FROM tokentrail.calls FINAL").result_rows[0]
    assert row[0] == total and isinstance(total, Decimal) and total > 0


def test_loop_panel_lists_every_staged_loop_with_evidence(store, selection):
    """The worst-traces table holds the generator's four runaway loops, each with its evidence."""
    loops = dashboard("tokentrail-loops")
    worst = next(p for p in loops.panels if p.title.startswith("Worst traces"))
    result = run_panel(store["client"], loops, worst, selection)
    found = {(row[0], row[4]) for row in result.rows}
    assert {(t["trace_id"], t["kind"]) for t in store["truth"].loops} <= found
    evidence = result.columns.index("evidence")
    assert all(row[evidence] for row in result.rows)


def test_changes_panel_shows_the_silent_model_swap(store, selection):
    """The staged response_model swap appears as a silent change from the old snapshot to the new one."""
    changes = dashboard("tokentrail-changes")
    table = next(p for p in changes.panels if p.title == "Changes")
    rows = run_panel(store["client"], changes, table, selection).rows
    swap = store["truth"].model_swap
    assert any(
        r[1] == "response_model" and r[2] == "silent" and (r[8], r[9]) == (swap["from"], swap["to"]) for r in rows
    )


@pytest.fixture(scope="module")
def firing(store):
    return evaluate_alerts(store["client"], store["now"])


def test_every_alert_rule_fires_on_its_scenario(firing):
    """Budgets, spike, loops, secrets, errors, latency, model and prompt changes, variance, dead letters."""
    fired = {a.uid for a in firing}
    assert fired == {r.uid for r in RULES} - NOT_IN_THE_INCIDENT


def test_alert_labels_name_the_culprit(store, firing):
    """Each alert carries what on-call needs: tenant, trace id, model, from/to, cost burned."""
    by_rule: dict[str, list] = {}
    for alert in firing:
        by_rule.setdefault(alert.uid, []).append(alert)
    truth = store["truth"]
    assert {a.labels["tenant"] for a in by_rule["tt-budget-hour"]} == {"acme"}
    assert "acme" in {a.labels["tenant"] for a in by_rule["tt-spend-spike"]}
    loops = {(a.labels["trace_id"], a.labels["kind"]): a for a in by_rule["tt-loop"]}
    assert set(loops) == {(t["trace_id"], t["kind"]) for t in truth.loops}
    for (trace_id, _), alert in loops.items():
        assert alert.values["cost_usd"] is not None and alert.values["tokens"] > 0
        assert trace_id in alert.summary and "burned" in alert.summary and alert.labels["severity"] == "page"
    assert {a.labels["model"] for a in by_rule["tt-error-rate"]} == {OUTAGE_MODEL}
    assert {a.labels["model"] for a in by_rule["tt-latency-p95"]} == {OUTAGE_MODEL}
    (swap,) = by_rule["tt-model-change"]
    assert (swap.labels["tenant"], swap.labels["to_value"]) == (truth.model_swap["tenant"], truth.model_swap["to"])
    (edit,) = by_rule["tt-prompt-change"]
    assert edit.labels["feature"] == truth.prompt_change["feature"]
    assert {a.labels["feature"] for a in by_rule["tt-variance-spike"]} == {ERRATIC_FEATURE}
    assert all(a.labels["trace_id"] for a in by_rule["tt-secret-in-prompt"])
    assert by_rule["tt-budget-hour"][0].annotations["dashboard"] == "/d/tokentrail-spend?var-tenant=acme"


def test_pipeline_stalled_fires_only_after_ten_quiet_minutes(store):
    """No new receipts for 15 minutes pages; a minute after the last event does not."""
    stalled = [r for r in RULES if r.uid == "tt-pipeline-stalled"]
    assert evaluate_alerts(store["client"], store["now"], stalled) == []
    (alert,) = evaluate_alerts(store["client"], store["now"] + timedelta(minutes=15), stalled)
    assert alert.severity == "page" and alert.values["B"] > 600


def test_render_alerts_prints_pages_first_with_labels(store, firing):
    """The terminal summary `tokentrail demo` ends with: pages first, labels, dashboard links."""
    text = render_alerts(firing, store["now"])
    lines = text.strip().splitlines()
    assert "would fire" in lines[0] and "PAGE -> PagerDuty" in lines[1]
    assert "trace_id=" in text and "/d/tokentrail-loops" in text


def test_alerts_check_command_prints_json(store, capsys):
    """`tokentrail alerts check --clickhouse DSN --at T --json` evaluates the same rules."""
    code = main(
        [
            "alerts",
            "check",
            "--clickhouse",
            store["dsn"],
            "--at",
            store["now"].isoformat(),
            "--json",
            "--fail-on-firing",
        ]
    )
    assert code == 1
    alerts = json.loads(capsys.readouterr().out)
    assert {a["uid"] for a in alerts} == {r.uid for r in RULES} - NOT_IN_THE_INCIDENT
