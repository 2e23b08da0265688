"""The Trace dashboard: its panels show the chosen trace as the store has it, links reach it, hostile ids stay data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from evidence_store import looped_trace, rows

from tokentrail.dashboards.alert_rules import RULES
from tokentrail.dashboards.alerting_provisioning import _label_columns, rules_api
from tokentrail.dashboards.catalog import built_dashboards, dashboard
from tokentrail.dashboards.dash_trace import TRACE_UID
from tokentrail.dashboards.queries import Selection, last, run_panel

RANGE_END = datetime(2026, 11, 20, 14, tzinfo=UTC)


def panels(store, trace_id: str) -> dict[str, list]:
    """Each panel's rows with the `trace_id` variable set, as Grafana would run them."""
    trace = dashboard(TRACE_UID)
    selection = Selection(last(timedelta(days=7), RANGE_END), textboxes={"trace_id": trace_id})
    return {p.title: run_panel(store.client(), trace, p, selection).rows for p in trace.panels}


def test_panels_show_the_trace_as_stored(store):
    """Steps = calls + tool calls in time order; per-call cost sums to the store's; the detection is listed."""
    trace = looped_trace(store)
    shown = panels(store, trace)
    calls, tools, cost = rows(
        store,
        "SELECT (SELECT count() FROM tokentrail.calls FINAL WHERE trace_id = {t:String}),"
        " (SELECT count() FROM tokentrail.tool_calls FINAL WHERE trace_id = {t:String}),"
        " (SELECT toFloat64(sum(cost_usd)) FROM tokentrail.calls FINAL WHERE trace_id = {t:String})",
        t=trace,
    )[0]
    steps = shown["Steps in order"]
    assert len(steps) == calls + tools and [s[0] for s in steps] == sorted(s[0] for s in steps)
    per_call = shown["Tokens and cost per call"]
    assert len(per_call) == calls and abs(per_call[-1][-1] - cost) < 1e-9, "the running cost ends at the total"
    assert [d[0] for d in shown["Detections on this trace"]] == ["tool_cycle"]
    (totals,) = shown["Trace totals and owner"]
    assert totals[4] == calls


def test_hostile_trace_id_is_only_data(store):
    """A trace id that tries to end the string literal finds nothing and runs no SQL of its own."""
    shown = panels(store, "x') OR 1=1 OR trace_id = ('")
    assert all(found == [] for found in shown.values()), shown


def test_links_to_the_trace_dashboard():
    """Every table column named trace_id links here (percent-encoded), and alerts naming a trace do too (urlquery)."""
    linked = 0
    for built in built_dashboards().values():
        for panel in built["panels"]:
            for override in panel.get("fieldConfig", {}).get("overrides", []):
                if override["matcher"]["options"] == "trace_id":
                    (link,) = override["properties"][0]["value"]
                    assert link["url"].startswith(f"/d/{TRACE_UID}?var-trace_id=${{__value.raw:percentencode}}")
                    linked += 1
    assert linked >= 3
    expected = f"/d/{TRACE_UID}?var-trace_id={{{{ urlquery $labels.trace_id }}}}"
    by_uid = {r["uid"]: r["annotations"] for r in rules_api()}
    naming = [r.uid for r in RULES if "trace_id" in _label_columns(r.sql)]
    assert naming and all(by_uid[uid]["trace"] == expected for uid in naming)
    assert all("trace" not in by_uid[r.uid] for r in RULES if r.uid not in naming)
