"""The Trace dashboard: one trace (the `trace_id` variable) as `tokentrail trace` shows it.

Steps (model calls and tool calls in time order, tokens and cost per step), the tokens and cost
burned step by step, the detections, PII counts by type, the changes in effect for its feature,
and totals with the owner. Every table row elsewhere that has a `trace_id` column links here
(build.py), and so does every alert that names a trace (alerting_provisioning.py).

The trace id reaches ClickHouse percent-encoded and decoded in SQL (`grafana_text`), like every
variable: a hostile value cannot change the query. Panels filter on `trace_id` only, not on the
time range: a trace is short and its id selects it through the bloom-filter index; a link from an
alert an hour later must still find it.
"""

from __future__ import annotations

from tokentrail.sinks.rollups import hours_sql

from .owners import current_owners, owner_expression
from .spec import FILTER_VARIABLES, Dashboard, Panel, grafana_text, table, var_in

TRACE_UID = "tokentrail-trace"
# Reads by trace id go through the trace_id bloom-filter index, which ClickHouse does not use under
# FINAL: rows are deduplicated with `LIMIT 1 BY event_id` instead (a redelivered event counts once).
CALLS = table("calls")
TOOLS = table("tool_calls")
# No trace chosen: the trace of the latest call in the last hour of the time range, so the dashboard
# opened from the menu shows something (and the benchmark times a real trace). ClickHouse computes
# every scalar subquery even when `if` does not need it, so this one is kept to an hour of `ts`
# (tens of milliseconds on 10M calls); the scalar is a constant when the trace_id index is consulted.
_CHOSEN = grafana_text("trace_id")
# The filter variables narrow it ("the latest trace of this tenant and feature"); links from the
# other dashboards carry them along.
_LAST_HOUR = (
    "ts > ($__toTime) - INTERVAL 1 HOUR AND ts <= ($__toTime) AND "
    + hours_sql("($__toTime) - INTERVAL 1 HOUR", "$__toTime")
    + " AND "
    + " AND ".join(var_in(name) for name in FILTER_VARIABLES)
)
_LATEST = (
    f"(SELECT any(trace_id) FROM {CALLS} WHERE ts = (SELECT max(ts) FROM {CALLS} WHERE {_LAST_HOUR}) AND {_LAST_HOUR})"
)
WITH_TRACE = f"WITH if({_CHOSEN} = '', {_LATEST}, {_CHOSEN}) AS chosen_trace\n"
TRACE = "chosen_trace"


def trace_link(value: str) -> str:
    """A Grafana data-link URL opening this dashboard on the trace in `value` (a `${...}` expression)."""
    return f"/d/{TRACE_UID}?var-trace_id=${{{value}:percentencode}}&${{__url_time_range}}"


STEPS = Panel(
    title="Steps in order",
    shape="table",
    kind="table",
    width=24,
    height=10,
    description="Model calls and tool calls of the trace in time order: requested and answering model, "
    "prompt version, tokens, cost, latency, status. Text is as stored (redacted); "
    "`tokentrail trace ID` prints the same with parent/child order.",
    # ORDER BY after UNION ALL binds to the last SELECT alone in ClickHouse: sort the union as a whole.
    sql=WITH_TRACE
    + f"""SELECT * FROM (
SELECT ts, 'call' AS step, model AS name, response_model AS answered_by,
       concat(prompt_id, if(prompt_version = '', '', concat('@', prompt_version))) AS prompt,
       input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, toFloat64(cost_usd) AS cost_usd,
       latency_ms, status, finish_reason, span_id, parent_span_id
FROM {CALLS}
WHERE trace_id = {TRACE}
LIMIT 1 BY event_id
UNION ALL
SELECT ts, 'tool' AS step, tool_name AS name, '' AS answered_by, '' AS prompt,
       0 AS input_tokens, 0 AS output_tokens, 0 AS cached_input_tokens, 0 AS reasoning_tokens, 0 AS cost_usd,
       duration_ms AS latency_ms, status, '' AS finish_reason, span_id, parent_span_id
FROM {TOOLS}
WHERE trace_id = {TRACE}
LIMIT 1 BY event_id
)
ORDER BY ts, step, span_id""",
)

PER_STEP = Panel(
    title="Tokens and cost per call",
    shape="table",
    kind="table",
    width=12,
    description="Each model call's tokens and cost, and the running cost: a loop shows as a steady climb.",
    sql=WITH_TRACE
    + f"""SELECT ts, model, input_tokens + output_tokens AS tokens, toFloat64(cost_usd) AS cost_usd,
       sum(toFloat64(cost_usd)) OVER (ORDER BY ts, event_id ROWS UNBOUNDED PRECEDING) AS running_cost_usd
FROM (SELECT * FROM {CALLS} WHERE trace_id = {TRACE} LIMIT 1 BY event_id)
ORDER BY ts, event_id""",
)

DETECTIONS = Panel(
    title="Detections on this trace",
    min_rows=0,  # the trace may have none
    shape="table",
    kind="table",
    width=12,
    description="Loop detections: kind, when first seen, repeats, tokens and cost burned, halted or not.",
    sql=WITH_TRACE
    + f"""SELECT kind, first_seen, detected_at, repeats, tokens, toFloat64(cost_usd) AS cost_usd,
       if(halt = 1, 'halted', 'running') AS halted
FROM {table("loop_detections")} FINAL
WHERE trace_id = {TRACE}
ORDER BY first_seen, kind""",
)

PII = Panel(
    title="PII and secrets by type",
    min_rows=0,  # the trace may have none
    shape="table",
    kind="table",
    width=12,
    description="What redaction replaced in this trace, counted by entity type. The values were never stored.",
    sql=WITH_TRACE
    + f"""SELECT type AS event_type, entity, if(is_secret = 1, 'secret', 'pii') AS class, sum(count) AS found
FROM (SELECT * FROM {table("pii_findings")} WHERE trace_id = {TRACE} LIMIT 1 BY event_id, entity)
GROUP BY event_type, entity, class
ORDER BY event_type, entity""",
)

CHANGES = Panel(
    title="Changes in effect",
    min_rows=0,  # the trace may have none
    shape="table",
    kind="table",
    width=12,
    description="Silent model changes, system-prompt changes and prompt rollouts first seen for this trace's "
    "feature up to its last call (`tokentrail changes --around` adds price-table and redaction changes).",
    sql=WITH_TRACE
    + f"""SELECT first_seen, kind, silent, tenant, feature, model, prompt_id, from_value, to_value
FROM {table("changes")} FINAL
WHERE ((feature, tenant) IN (SELECT DISTINCT feature, tenant FROM {CALLS} WHERE trace_id = {TRACE})
       OR (tenant = '' AND feature IN (SELECT DISTINCT feature FROM {CALLS} WHERE trace_id = {TRACE})))
  AND first_seen <= (SELECT max(ts) FROM {CALLS} WHERE trace_id = {TRACE})
ORDER BY first_seen, kind""",
)


def _totals() -> Panel:
    owner = owner_expression(current_owners(), {"tenant", "service", "feature"})
    return Panel(
        title="Trace totals and owner",
        shape="table",
        kind="table",
        width=24,
        height=5,
        description="Calls, tokens, cost and errors of the trace, with the team that owns its feature "
        "(from the owners file at build time; docs/owners.md).",
        sql=WITH_TRACE
        + f"""SELECT tenant, service, feature, {owner} AS owner, count() AS calls, min(ts) AS started,
       max(ts) AS ended, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(toFloat64(cost_usd)) AS cost_usd, countIf(status != 'ok') AS errors
FROM (SELECT * FROM {CALLS} WHERE trace_id = {TRACE} LIMIT 1 BY event_id)
GROUP BY tenant, service, feature""",
    )


TRACE_DASHBOARD = Dashboard(
    uid=TRACE_UID,
    title="tokentrail / Trace",
    description="One trace end to end: steps, tokens and cost per step, detections, PII counts, changes, owner.",
    panels=(_totals(), STEPS, PER_STEP, DETECTIONS, PII, CHANGES),
    variables=FILTER_VARIABLES,
    textboxes=(("trace_id", "Trace ID", ""),),
    time_from="now-7d",
)
