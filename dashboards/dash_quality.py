"""The Reliability, Variance and Changes dashboards: is the model answering, consistently, and did it change.

Reliability reads `calls` FINAL. Variance and Changes read the insight tables the store job
writes (`variance`, `changes`, both ReplacingMergeTree keyed by what identifies the insight, so
FINAL collapses recomputed windows to their newest computation).
"""

from __future__ import annotations

from .rollup_sql import calls_source, histogram_quantile, latency_source
from .spec import Annotation, Dashboard, Panel, filters, table

ALL4 = ("tenant", "service", "feature", "model")
CALL_VARS = filters(*ALL4, time=None)


def _calls(*dims: str, partials: tuple[str, ...], timeseries: bool = False, extra: str = "") -> str:
    """Calls in range from the 5-minute rollup where exact, else `calls FINAL` (dashboards/rollup_sql.py)."""
    return calls_source(dims, partials, where=CALL_VARS, timeseries=timeseries, extra=extra)


def _histograms(partial: str, *dims: str, timeseries: bool = False) -> str:
    """Per (`time`,) `dims`, the merged histogram `h` of `partial` (latency, ttft) over the calls in range
    (latency_rollup where exact, else `calls FINAL`; percentiles from it: dashboards/rollup_sql.py)."""
    keys = ", ".join((["time"] if timeseries else []) + list(dims))
    source = latency_source(dims, (partial,), where=CALL_VARS, timeseries=timeseries)
    group = f" GROUP BY {keys}" if keys else ""
    return f"(SELECT {keys + ', ' if keys else ''}sumMap(p_{partial}) AS h FROM {source}{group})"


def _q(q: float) -> str:
    return histogram_quantile("h", q)


RELIABILITY = Dashboard(
    uid="tokentrail-reliability",
    title="tokentrail / Reliability",
    description="Calls, errors, latency, time to first token and finish reasons per provider and model.",
    panels=(
        Panel(
            title="Calls in range",
            kind="stat",
            shape="stat",
            width=24,
            height=5,
            description="Latency p95: the upper bound of the 5%-wide bin holding it (never below the exact value, "
            "less than 5% above).",
            # One source (latency_rollup holds errors since migration 0014): two sources were twice the
            # branches to plan.
            sql=f"""SELECT sum(p_calls) AS calls, sum(p_errors) AS errors,
       sum(p_errors) / greatest(sum(p_calls), 1) AS error_rate, {histogram_quantile("sumMap(p_latency)", 0.95)}
         AS latency_p95_ms
FROM {latency_source((), ("calls", "errors", "latency"), where=CALL_VARS, timeseries=False)}""",
        ),
        Panel(
            title="Calls by model",
            stack=True,
            unit="short",
            width=12,
            sql=f"""SELECT time, model, sum(p_calls) AS calls
FROM {_calls("model", partials=("calls",), timeseries=True)}
GROUP BY time, model
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Error rate by provider and model",
            unit="percentunit",
            width=12,
            sql=f"""SELECT time, concat(provider, ' / ', model) AS provider_model,
       sum(p_errors) / sum(p_calls) AS error_rate
FROM {_calls("provider", "model", partials=("errors", "calls"), timeseries=True)}
GROUP BY time, provider_model
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Latency p50 / p95 / p99",
            unit="ms",
            width=12,
            description="Upper bounds of the 5%-wide latency bins holding each percentile (< 5% above exact).",
            sql=f"""SELECT time, {_q(0.5)} AS p50, {_q(0.95)} AS p95, {_q(0.99)} AS p99
FROM {_histograms("latency", timeseries=True)}
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Latency p95 by model",
            unit="ms",
            width=12,
            description="Upper bound of the 5%-wide latency bin holding the p95 (< 5% above the exact value).",
            sql=f"""SELECT time, model, {_q(0.95)} AS latency_p95
FROM {_histograms("latency", "model", timeseries=True)}
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Time to first token p50 / p95 by model",
            unit="ms",
            width=12,
            description="Calls that report a time to first token. Upper bounds of the 5%-wide bins holding "
            "each percentile.",
            sql=f"""SELECT time, model, {_q(0.5)} AS ttft_p50, {_q(0.95)} AS ttft_p95
FROM {_histograms("ttft", "model", timeseries=True)}
WHERE NOT empty(h)
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Finish reasons",
            stack=True,
            unit="short",
            width=12,
            description="'length' means truncated output; 'error' a failed call; 'tool_calls' an agent step.",
            sql=f"""SELECT time, finish_reason, sum(p_calls) AS calls
FROM {_calls("finish_reason", partials=("calls",), timeseries=True)}
GROUP BY time, finish_reason
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Errors by provider, model and type",
            kind="table",
            shape="table",
            width=24,
            sql=f"""SELECT provider, model, error_type, sum(p_calls) AS errors, max(p_last_ts) AS last_seen
FROM {_calls("provider", "model", "error_type", partials=("calls", "last_ts"), extra="status = 'error'")}
GROUP BY provider, model, error_type
ORDER BY errors DESC
LIMIT 50""",
        ),
    ),
)

VARIANCE_TABLE = f"{table('variance')} FINAL"
VARIANCE_FILTER = filters("tenant", "feature", "model", time="window_start")


def _variance_metric(title: str, expression: str, unit: str, description: str) -> Panel:
    return Panel(
        title=title,
        unit=unit,
        width=12,
        description=description,
        sql=f"""SELECT $__timeInterval(window_start) AS time, concat(feature, ' ', prompt_version) AS feature_version,
       {expression} AS value
FROM {VARIANCE_TABLE}
WHERE {VARIANCE_FILTER}
GROUP BY time, feature_version
ORDER BY time""",
        shape="timeseries",
    )


def _weighted(column: str) -> str:
    """Call-weighted mean over windows and groups; NULL (undefined) statistics are left out."""
    return f"sumIf({column} * calls, {column} IS NOT NULL) / nullIf(sumIf(calls, {column} IS NOT NULL), 0)"


VARIANCE = Dashboard(
    uid="tokentrail-variance",
    title="tokentrail / Variance",
    description="How consistent the outputs are per feature and prompt version: "
    "similarity (1 = every answer the same), "
    "distinct-output ratio and the coefficient of variation of output tokens, per 5-minute window.",
    panels=(
        _variance_metric(
            "Output similarity",
            _weighted("similarity"),
            "percentunit",
            "Mean pairwise MinHash similarity of outputs: a sudden drop means answers diverged.",
        ),
        _variance_metric(
            "Distinct-output ratio",
            _weighted("distinct_output_ratio"),
            "percentunit",
            "Distinct normalised outputs / calls.",
        ),
        _variance_metric(
            "Output-token CV",
            _weighted("output_tokens_cv"),
            "short",
            "Standard deviation / mean of output tokens: length instability.",
        ),
        _variance_metric("Calls measured", "sum(calls)", "short", "Calls behind each point: small windows are noisy."),
        Panel(
            title="By feature, prompt version and model",
            kind="table",
            shape="table",
            width=24,
            height=10,
            sql=f"""SELECT feature, prompt_version, model, sum(calls) AS total_calls,
       {_weighted("similarity")} AS similarity,
       {_weighted("distinct_output_ratio")} AS distinct_output_ratio,
       {_weighted("output_tokens_cv")} AS output_tokens_cv,
       sum(output_tokens_mean * calls) / sum(calls) AS output_tokens_mean,
       max(window_start) AS last_window
FROM {VARIANCE_TABLE}
WHERE {VARIANCE_FILTER}
GROUP BY feature, prompt_version, model
ORDER BY feature, prompt_version, model""",
        ),
    ),
)

CHANGES_TABLE = f"{table('changes')} FINAL"
CHANGE_FILTER = filters("tenant", "feature", "model", time="first_seen", blank_ok=True)

CHANGES_ANNOTATION = Annotation(
    name="Model and prompt changes",
    sql=f"""SELECT first_seen AS time,
       concat(if(silent, 'silent ', ''), kind, ' change: ', feature, if(tenant = '', '', concat(' @ ', tenant)),
              ' ', from_value, ' -> ', to_value) AS text,
       [kind, feature] AS tags
FROM {CHANGES_TABLE}
WHERE {CHANGE_FILTER}
ORDER BY time""",
)

CHANGES = Dashboard(
    uid="tokentrail-changes",
    title="tokentrail / Changes",
    description="Silent changes: a provider serving a new snapshot under the same model name, a system prompt edited "
    "without a version bump, and announced prompt-version bumps. Also drawn as annotations on every dashboard.",
    panels=(
        Panel(
            title="Changes in range",
            kind="stat",
            shape="stat",
            width=24,
            height=5,
            sql=f"""SELECT count() AS changes, countIf(silent) AS silent,
       countIf(kind = 'response_model') AS model_changes, countIf(kind != 'response_model') AS prompt_changes
FROM {CHANGES_TABLE}
WHERE {CHANGE_FILTER}""",
        ),
        Panel(
            title="Changes",
            kind="table",
            shape="table",
            width=24,
            height=10,
            sql=f"""SELECT first_seen, kind, if(silent, 'silent', 'announced') AS how, tenant, feature, model,
       prompt_id, prompt_version, from_value, to_value, detected_at
FROM {CHANGES_TABLE}
WHERE {CHANGE_FILTER}
ORDER BY first_seen DESC
LIMIT 200""",
        ),
        Panel(
            title="Changes over time",
            kind="timeseries",
            stack=True,
            unit="short",
            width=24,
            sql=f"""SELECT $__timeInterval(first_seen) AS time, kind, count() AS changes
FROM {CHANGES_TABLE}
WHERE {CHANGE_FILTER}
GROUP BY time, kind
ORDER BY time""",
            shape="timeseries",
        ),
    ),
)
