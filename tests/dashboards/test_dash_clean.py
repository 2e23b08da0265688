"""On clean traffic (no staged anomalies, no secrets) every alert rule stays quiet and every panel still answers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tokentrail.dashboards.alert_rules import RULES
from tokentrail.dashboards.catalog import all_panels
from tokentrail.dashboards.evaluate import evaluate_alerts, evaluate_rule, render_alerts
from tokentrail.dashboards.queries import Selection, last, run_panel

pytestmark = pytest.mark.slow


def test_no_alert_fires_on_clean_traffic(clean_store):
    """Thresholds sit above ordinary noise: nothing pages or warns at the end of an ordinary hour."""
    firing = evaluate_alerts(clean_store["client"], clean_store["now"])
    assert firing == [], render_alerts(firing, clean_store["now"])


@pytest.mark.parametrize("minutes", [-30, -15, -5])
def test_no_alert_fires_earlier_in_the_hour(clean_store, minutes):
    """Quiet at other evaluation times too (stalled excepted: the data was ingested after these instants)."""
    now = clean_store["now"] + timedelta(minutes=minutes)
    rules = [r for r in RULES if r.uid not in ("tt-pipeline-stalled", "tt-deadletter-rate")]
    assert [a.uid for r in rules for a in evaluate_rule(clean_store["client"], r, now)] == []


def test_panels_answer_on_clean_traffic(clean_store):
    """Every panel query runs; the call-based ones have rows (loops, changes and secrets may be empty here)."""
    selection = Selection(last(timedelta(hours=6), clean_store["now"]))
    empty = []
    for dashboard, _, panel in all_panels():
        result = run_panel(clean_store["client"], dashboard, panel, selection)
        if not result.rows:
            empty.append(f"{dashboard.uid}/{panel.title}")
    assert all(
        name.split("/")[0]
        in ("tokentrail-loops", "tokentrail-changes", "tokentrail-pii", "tokentrail-spend", "tokentrail-trace")
        for name in empty
    ), empty
