"""The Spend and Loops dashboards: where the money goes, and where it burns for nothing.

Every query reads `calls` / `loop_detections` with FINAL: both are ReplacingMergeTree, and a
re-delivered event that escaped block deduplication must not be paid twice on a chart (see
docs in benchmarks/dashboards.py for what FINAL costs at 10M calls).
"""

from __future__ import annotations

from .rollup_sql import calls_source, top_traces_sql
from .spec import Dashboard, Panel, filters, grafana_text, table, var_in

CALLS = f"{table('calls')} FINAL"
ALL4 = ("tenant", "service", "feature", "model")
CALL_VARS = filters(*ALL4, time=None)


def _calls(*dims: str, partials: tuple[str, ...], timeseries: bool = False, extra: str = "") -> str:
    """Calls in range from the 5-minute rollup where exact, else `calls FINAL` (dashboards/rollup_sql.py)."""
    return calls_source(dims, partials, where=CALL_VARS, timeseries=timeseries, extra=extra)


def _spend_by(column: str) -> Panel:
    return Panel(
        title=f"Cost by {column}",
        description=f"USD per interval, stacked by {column}. Unpriced calls count as 0 here; see 'Unpriced usage'.",
        sql=f"""SELECT time, {column}, sum(p_cost_usd) AS cost_usd
FROM {_calls(column, partials=("cost_usd",), timeseries=True)}
GROUP BY time, {column}
ORDER BY time""",
        shape="timeseries",
        unit="currencyUSD",
        stack=True,
        width=8,
    )


SPEND = Dashboard(
    uid="tokentrail-spend",
    title="tokentrail / Spend",
    description="Cost by tenant, feature and model; burn rate against budget; the most expensive traces; "
    "usage nobody is paying list price for (unpriced models) and what prompt caching saves.",
    textboxes=(("hourly_budget_usd", "Hourly budget (USD)", "5"),),
    panels=(
        Panel(
            title="Spend in range",
            kind="stat",
            shape="stat",
            unit="currencyUSD",
            width=6,
            height=5,
            sql=f"""SELECT sum(p_cost_usd) AS cost_usd, sum(p_calls) AS calls
FROM {_calls(partials=("cost_usd", "calls"))}""",
        ),
        Panel(
            title="Unpriced calls",
            kind="stat",
            shape="stat",
            width=6,
            height=5,
            description="Calls on models with no price (self-hosted, or missing from the price data): "
            "their cost is unknown, not zero.",
            sql=f"""SELECT sum(p_calls) AS unpriced_calls, sum(p_input_tokens) + sum(p_output_tokens) AS unpriced_tokens
FROM {_calls(partials=("calls", "input_tokens", "output_tokens"), extra="NOT priced")}""",
        ),
        Panel(
            title="Input served from cache",
            kind="stat",
            shape="stat",
            unit="percentunit",
            width=6,
            height=5,
            description="Share of input tokens billed at the provider's cached rate.",
            sql=f"""SELECT sum(p_cached_input_tokens) / greatest(sum(p_input_tokens), 1) AS cached_share
FROM {_calls(partials=("cached_input_tokens", "input_tokens"))}""",
        ),
        Panel(
            title="Cached input tokens",
            kind="stat",
            shape="stat",
            unit="short",
            width=6,
            height=5,
            description="Input tokens served from the provider's prompt cache "
            "(billed at a discount, typically 50-90% off).",
            sql=f"""SELECT sum(p_cached_input_tokens) AS cached_input_tokens
FROM {_calls(partials=("cached_input_tokens",))}""",
        ),
        _spend_by("tenant"),
        _spend_by("feature"),
        _spend_by("model"),
        Panel(
            title="Burn rate against hourly budget",
            unit="percentunit",
            width=12,
            description="Spend per hour at each interval's pace, as a share of the 'Hourly budget' variable: "
            "above 100% "
            "the tenant will overrun its hourly budget if the pace holds.",
            sql=f"""SELECT time, tenant,
       sum(p_cost_usd) * 3600 / ($__interval_s)
         / greatest(toFloat64OrZero({grafana_text("hourly_budget_usd")}), 0.000001) AS budget_share
FROM {_calls("tenant", partials=("cost_usd",), timeseries=True)}
GROUP BY time, tenant
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Budget breaches",
            kind="table",
            shape="table",
            width=12,
            min_rows=1,
            description="Episodes where a rolling hour/day window reached a budget "
            "(from the insights job; configure with --budgets). A feature's breach names the feature (and, "
            "with an owners file, its owner).",
            sql=f"""SELECT window_end, scope, key, if(scope = 'feature', key, '') AS feature,
       window, level, spend, threshold
FROM {table("budget_breaches")} FINAL
WHERE $__timeFilter(window_end)
  AND (scope != 'tenant' OR {var_in("tenant", "key")})
  AND (scope != 'feature' OR {var_in("feature", "key")})
ORDER BY window_end DESC
LIMIT 100""",
        ),
        Panel(
            title="Top traces by cost",
            kind="table",
            shape="table",
            width=24,
            height=10,
            description="The 25 traces that cost most in the range (their calls in the range only; "
            "among equal costs, an arbitrary but fixed choice).",
            sql=top_traces_sql(CALL_VARS),
        ),
        Panel(
            title="Unpriced usage",
            width=12,
            unit="short",
            stack=True,
            description="Tokens on models without a price, by model: add them to the price overrides file.",
            sql=f"""SELECT time, model, sum(p_input_tokens) + sum(p_output_tokens) AS tokens
FROM {_calls("model", partials=("input_tokens", "output_tokens"), timeseries=True, extra="NOT priced")}
GROUP BY time, model
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Cached-token savings",
            width=12,
            unit="short",
            stack=True,
            description="Input tokens served from cache per interval, by model: "
            "each one billed at the cached rate, not the full rate.",
            sql=f"""SELECT time, model, sum(p_cached_input_tokens) AS cached_tokens
FROM {_calls("model", partials=("cached_input_tokens",), timeseries=True)}
GROUP BY time, model
HAVING cached_tokens > 0
ORDER BY time""",
            shape="timeseries",
        ),
    ),
)


LOOPS_TABLE = f"{table('loop_detections')} FINAL"
LOOP_FILTER = filters("tenant", "service", "feature", time="detected_at")

LOOPS = Dashboard(
    uid="tokentrail-loops",
    title="tokentrail / Loops",
    description="Token-spend loops: agents repeating the same tool call, cycle, prompt or output with no progress. "
    "Each row is one (trace, kind), updated as the loop keeps burning.",
    panels=(
        Panel(
            title="Loops in range",
            kind="stat",
            shape="stat",
            width=24,
            height=5,
            sql=f"""SELECT count() AS loops, uniqExact(trace_id) AS traces, sum(tokens) AS tokens_burned,
       sum(cost_usd) AS cost_burned_usd
FROM {LOOPS_TABLE}
WHERE {LOOP_FILTER}""",
        ),
        Panel(
            title="Detections by kind",
            stack=True,
            width=12,
            unit="short",
            sql=f"""SELECT $__timeInterval(detected_at) AS time, kind, count() AS detections
FROM {LOOPS_TABLE}
WHERE {LOOP_FILTER}
GROUP BY time, kind
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Tokens burned in loops",
            stack=True,
            width=12,
            unit="short",
            sql=f"""SELECT $__timeInterval(detected_at) AS time, tenant, sum(tokens) AS tokens
FROM {LOOPS_TABLE}
WHERE {LOOP_FILTER}
GROUP BY time, tenant
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Cost burned in loops",
            stack=True,
            width=12,
            unit="currencyUSD",
            sql=f"""SELECT $__timeInterval(detected_at) AS time, feature, sum(cost_usd) AS cost_usd
FROM {LOOPS_TABLE}
WHERE {LOOP_FILTER}
GROUP BY time, feature
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Loops by feature",
            kind="table",
            shape="table",
            width=12,
            sql=f"""SELECT tenant, feature, kind, count() AS loops, sum(repeats) AS repeats, sum(tokens) AS tokens,
       sum(cost_usd) AS cost_usd
FROM {LOOPS_TABLE}
WHERE {LOOP_FILTER}
GROUP BY tenant, feature, kind
ORDER BY cost_usd DESC, tokens DESC""",
        ),
        Panel(
            title="Worst traces, with evidence",
            kind="table",
            shape="table",
            width=24,
            height=12,
            description="The repeating pattern as the detector saw it: "
            "the evidence column is what on-call reads first.",
            sql=f"""SELECT trace_id, tenant, service, feature, kind, repeats, tokens, cost_usd, events_in_trace,
       first_seen, detected_at, if(halt = 1, 'halt sent', '') AS halt, evidence
FROM {LOOPS_TABLE}
WHERE {LOOP_FILTER}
ORDER BY cost_usd DESC, tokens DESC
LIMIT 50""",
        ),
    ),
)
