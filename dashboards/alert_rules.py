"""The alert rules that page on-call, as plain data: SQL, reduce, threshold, labels, annotations.

Each rule is Grafana-managed over the ClickHouse datasource and has the same skeleton:
A = the SQL (one row per alert instance: string columns become labels, one number column named
`value`), B = reduce(A, last), C = threshold(B), C is the condition. Extra queries (`extras`) return
the same label columns plus another number, reduced under their own refId, so annotations can say
"burned $0.41 in 14 repeats" through `$values` (Grafana renders every reduce result whose labels
match the instance). Rules use only `$__fromTime`/`$__toTime`/`$__timeFilter`: the relative time
range is the rule's window, and no dashboard variable exists in alerting.

Why the regression conditions live in the SQL (value = the metric when regressed, else 0) rather
than in a math expression: Grafana 11.6's threshold has no ">= baseline x 3" form, and one SQL
statement keeps the baseline and the recent window consistent. The thresholds below are
calibrated on the demo generator: every scenario built to fire does (tests/dashboards/test_dash_incident.py),
clean traffic stays quiet (tests/dashboards/test_dash_clean.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .spec import CALLS_TIME_FILTER, SINCE_LAST_STORED, SINCE_LAST_STORED_FROM, table

__all__ = ["Rule", "RULES", "GROUPS", "rule"]

CALLS = f"{table('calls')} FINAL"
RECENT = "($__toTime) - INTERVAL {minutes} MINUTE"


@dataclass(frozen=True)
class Rule:
    uid: str
    title: str
    group: str
    severity: Literal["page", "warning"]
    sql: str
    threshold: float
    window_seconds: int
    summary: str
    description: str
    dashboard: str
    panel: str  # the panel (by title) the alert links to
    extras: tuple[tuple[str, str], ...] = ()  # (refId, SQL with the same labels and a `value`)
    evaluator: Literal["gt", "lt"] = "gt"
    for_: str = "0s"
    no_data: Literal["OK", "NoData", "Alerting"] = "OK"
    interval_ms: int = 60_000
    labels: dict[str, str] = field(default_factory=dict)


def _budget(window: str, adjective: str, seconds: int) -> Rule:
    return Rule(
        uid=f"tt-budget-{window}",
        title=f"Tenant over its {adjective} budget",
        group="spend",
        severity="page",
        window_seconds=seconds,
        threshold=0,
        dashboard="tokentrail-spend",
        panel="Budget breaches",
        sql=f"""SELECT key AS tenant, toFloat64(max(spend)) AS value
FROM {table("budget_breaches")} FINAL
WHERE scope = 'tenant' AND window = '{window}' AND level = 'critical' AND $__timeFilter(window_end)
GROUP BY tenant""",
        extras=(
            (
                "budget",
                f"""SELECT key AS tenant, toFloat64(max(threshold)) AS value
FROM {table("budget_breaches")} FINAL
WHERE scope = 'tenant' AND window = '{window}' AND level = 'critical' AND $__timeFilter(window_end)
GROUP BY tenant""",
            ),
        ),
        summary=f'Tenant {{{{ $labels.tenant }}}} spent ${{{{ printf "%.2f" $values.B.Value }}}} '
        f"in a rolling {window}, "
        f'over its ${{{{ printf "%.2f" $values.budget.Value }}}} budget',
        description="The insights job found a rolling-window spend at or above the critical budget "
        "(tokentrail --budgets). "
        "Check the Spend dashboard for the feature and traces driving it; halt runaway traces via the control topic.",
    )


RULES: tuple[Rule, ...] = (
    _budget("hour", "hourly", 3600),
    _budget("day", "daily", 86400),
    Rule(
        uid="tt-budget-warning",
        title="Tenant nearing its budget",
        group="spend",
        severity="warning",
        window_seconds=3600,
        threshold=0,
        dashboard="tokentrail-spend",
        panel="Budget breaches",
        sql=f"""SELECT key AS tenant, window AS budget_window, toFloat64(max(spend)) AS value
FROM {table("budget_breaches")} FINAL
WHERE scope = 'tenant' AND level = 'warning' AND $__timeFilter(window_end)
GROUP BY tenant, budget_window""",
        summary="Tenant {{ $labels.tenant }} passed the warning level of its {{ $labels.budget_window }} budget "
        '(${{ printf "%.2f" $values.B.Value }} spent)',
        description="Spend reached the warning level of the tenant's budget; the critical level pages.",
    ),
    Rule(
        uid="tt-spend-spike",
        title="Spend spike against trailing baseline",
        group="spend",
        severity="warning",
        window_seconds=6 * 3600,
        threshold=2.0,
        dashboard="tokentrail-spend",
        panel="Cost by tenant",
        sql=f"""SELECT tenant, value FROM (
    SELECT tenant,
           toFloat64(sumIf(cost_usd, ts > {RECENT.format(minutes=20)})) AS recent_usd,
           toFloat64(sumIf(cost_usd, ts <= {RECENT.format(minutes=20)})) AS baseline_usd,
           dateDiff('second', greatest(min(ts), ($__fromTime)), {RECENT.format(minutes=20)}) AS baseline_seconds,
           if(baseline_seconds >= 1200 AND recent_usd >= 0.25,
              (recent_usd / 1200) / greatest(baseline_usd / baseline_seconds, 0.000000001), 0) AS value
    FROM {CALLS}
    WHERE {CALLS_TIME_FILTER}
    GROUP BY tenant
)""",
        summary='Tenant {{ $labels.tenant }} is spending {{ printf "%.1f" $values.B.Value }}x its trailing rate '
        "(last 20 minutes)",
        description="Spend per second over the last 20 minutes against the rate over the rest of the last 6 hours "
        "(at least 20 minutes of history and $0.25 recent spend). Look for a new feature, a loop or a model change.",
    ),
    Rule(
        uid="tt-loop",
        title="Token-spend loop detected",
        group="safety",
        severity="page",
        window_seconds=3600,
        threshold=0,
        dashboard="tokentrail-loops",
        panel="Worst traces, with evidence",
        sql=f"""SELECT tenant, service, feature, trace_id, kind, toFloat64(max(repeats)) AS value
FROM {table("loop_detections")} FINAL
WHERE $__timeFilter(detected_at)
GROUP BY tenant, service, feature, trace_id, kind""",
        extras=(
            (
                "cost_usd",
                f"""SELECT tenant, service, feature, trace_id, kind, toFloat64(max(cost_usd)) AS value
FROM {table("loop_detections")} FINAL
WHERE $__timeFilter(detected_at)
GROUP BY tenant, service, feature, trace_id, kind""",
            ),
            (
                "tokens",
                f"""SELECT tenant, service, feature, trace_id, kind, toFloat64(max(tokens)) AS value
FROM {table("loop_detections")} FINAL
WHERE $__timeFilter(detected_at)
GROUP BY tenant, service, feature, trace_id, kind""",
            ),
        ),
        summary="{{ $labels.kind }} loop in trace {{ $labels.trace_id }} "
        "({{ $labels.tenant }} / {{ $labels.feature }}): "
        '{{ printf "%.0f" $values.B.Value }} repeats, {{ printf "%.0f" $values.tokens.Value }} tokens, '
        '${{ printf "%.4f" $values.cost_usd.Value }} burned',
        description="An agent is repeating itself with no progress. The evidence column on the Loops dashboard "
        "shows the repeating call; a halt signal for the trace can be sent on the control topic (kill switch).",
    ),
    Rule(
        uid="tt-secret-in-prompt",
        title="Secret sent in a prompt",
        group="safety",
        severity="warning",
        window_seconds=900,
        threshold=0,
        dashboard="tokentrail-pii",
        panel="Traces with secrets",
        sql=f"""SELECT tenant, service, feature, trace_id, toFloat64(sum(count)) AS value
FROM {table("pii_findings")} FINAL
WHERE $__timeFilter(ts) AND is_secret = 1 AND type = 'prompt'
GROUP BY tenant, service, feature, trace_id""",
        summary='{{ printf "%.0f" $values.B.Value }} secret(s) in a prompt of trace {{ $labels.trace_id }} '
        "({{ $labels.tenant }} / {{ $labels.service }} / {{ $labels.feature }})",
        description="Redaction replaced a credential before storage, but the prompt itself went to the model provider: "
        "rotate the credential and find where it entered the prompt (user input, tool result, template).",
    ),
    Rule(
        uid="tt-error-rate",
        title="Error-rate regression",
        group="quality",
        severity="warning",
        window_seconds=3 * 3600,
        threshold=0,
        dashboard="tokentrail-reliability",
        panel="Error rate by provider and model",
        sql=f"""SELECT provider, model, value FROM (
    SELECT provider, model,
           countIf(ts > {RECENT.format(minutes=10)}) AS recent_calls,
           countIf(ts > {RECENT.format(minutes=10)} AND status = 'error') AS recent_errors,
           countIf(ts <= {RECENT.format(minutes=10)}) AS baseline_calls,
           countIf(ts <= {RECENT.format(minutes=10)} AND status = 'error') AS baseline_errors,
           recent_errors / greatest(recent_calls, 1) AS recent_rate,
           baseline_errors / greatest(baseline_calls, 1) AS baseline_rate,
           if(recent_calls >= 20 AND recent_errors >= 5 AND recent_rate > greatest(3 * baseline_rate, 0.05),
              recent_rate, 0) AS value
    FROM {CALLS}
    WHERE {CALLS_TIME_FILTER}
    GROUP BY provider, model
)""",
        summary="{{ $labels.provider }} / {{ $labels.model }} failing {{ humanizePercentage $values.B.Value }} "
        "of calls (last 10 minutes)",
        description="Error rate over the last 10 minutes is above 5% and more than 3x the rate over the previous "
        "3 hours (at least 20 calls and 5 errors). Check the provider's status and the error types table.",
    ),
    Rule(
        uid="tt-latency-p95",
        title="p95 latency regression",
        group="quality",
        severity="warning",
        window_seconds=3 * 3600,
        threshold=0,
        dashboard="tokentrail-reliability",
        panel="Latency p95 by model",
        sql=f"""SELECT provider, model, value FROM (
    SELECT provider, model,
           countIf(ts > {RECENT.format(minutes=10)}) AS recent_calls,
           quantileIf(0.95)(latency_ms, ts > {RECENT.format(minutes=10)}) AS recent_p95,
           quantileIf(0.95)(latency_ms, ts <= {RECENT.format(minutes=10)}) AS baseline_p95,
           if(recent_calls >= 20 AND recent_p95 > 2 * baseline_p95 AND recent_p95 > baseline_p95 + 1000,
              recent_p95, 0) AS value
    FROM {CALLS}
    WHERE {CALLS_TIME_FILTER} AND latency_ms IS NOT NULL
    GROUP BY provider, model
)""",
        summary='{{ $labels.provider }} / {{ $labels.model }} p95 latency {{ printf "%.0f" $values.B.Value }} ms '
        "(last 10 minutes)",
        description="p95 latency over the last 10 minutes is more than twice (and a second above) the p95 of the "
        "previous 3 hours.",
    ),
    Rule(
        uid="tt-model-change",
        title="Silent model change",
        group="quality",
        severity="warning",
        window_seconds=6 * 3600,
        threshold=0,
        dashboard="tokentrail-changes",
        panel="Changes",
        sql=f"""SELECT tenant, feature, model, from_value, to_value, toFloat64(count()) AS value
FROM {table("changes")} FINAL
WHERE kind = 'response_model' AND silent AND $__timeFilter(first_seen)
GROUP BY tenant, feature, model, from_value, to_value""",
        summary="{{ $labels.model }} for {{ $labels.tenant }} / {{ $labels.feature }} is now served as "
        "{{ $labels.to_value }} "
        "(was {{ $labels.from_value }})",
        description="The provider swapped the snapshot behind the model name: outputs, cost and latency may shift. "
        "Compare the Variance dashboard before and after.",
    ),
    Rule(
        uid="tt-prompt-change",
        title="System prompt changed without a version bump",
        group="quality",
        severity="warning",
        window_seconds=6 * 3600,
        threshold=0,
        dashboard="tokentrail-changes",
        panel="Changes",
        sql=f"""SELECT feature, prompt_id, prompt_version, from_value, to_value, toFloat64(count()) AS value
FROM {table("changes")} FINAL
WHERE kind = 'system_prompt' AND silent AND $__timeFilter(first_seen)
GROUP BY feature, prompt_id, prompt_version, from_value, to_value""",
        summary="System prompt of {{ $labels.prompt_id }} {{ $labels.prompt_version }} ({{ $labels.feature }}) changed "
        "without a version bump",
        description="Two different system prompts now run under the same prompt version: evaluations and variance "
        "per version mix them.",
    ),
    Rule(
        uid="tt-variance-spike",
        title="Output variance spike",
        group="quality",
        severity="warning",
        window_seconds=6 * 3600,
        threshold=0,
        dashboard="tokentrail-variance",
        panel="Output-token CV",
        sql=f"""SELECT feature, prompt_version, value FROM (
    SELECT feature, prompt_version,
           sumIf(calls, window_start >= {RECENT.format(minutes=15)}) AS recent_calls,
           sumIf(calls, window_start < {RECENT.format(minutes=15)}) AS baseline_calls,
           quantileExactWeightedIf(0.5)(output_tokens_cv, calls,
               window_start >= {RECENT.format(minutes=15)} AND output_tokens_cv IS NOT NULL) AS recent_cv,
           quantileExactWeightedIf(0.5)(output_tokens_cv, calls,
               window_start < {RECENT.format(minutes=15)} AND output_tokens_cv IS NOT NULL) AS baseline_cv,
           quantileExactWeightedIf(0.75)(output_tokens_cv, calls,
               window_start < {RECENT.format(minutes=15)} AND output_tokens_cv IS NOT NULL) AS baseline_cv_p75,
           if(recent_calls >= 60 AND baseline_calls >= 150
              AND recent_cv >= 2 * baseline_cv AND recent_cv >= baseline_cv_p75 + 0.6,
              recent_cv, 0) AS value
    FROM {table("variance")} FINAL
    WHERE $__timeFilter(window_start)
    GROUP BY feature, prompt_version
)""",
        summary="Output-token CV of {{ $labels.feature }} {{ $labels.prompt_version }} jumped to "
        '{{ printf "%.2f" $values.B.Value }}',
        description="Output lengths became much less consistent: the median (call-weighted) output-token CV of the "
        "5-minute windows of the last 15 minutes is at least twice the median of the previous 6 hours and 0.6 above "
        "their upper quartile. Medians and quartiles, because one window with a single very long answer is not a "
        "spike, and agents whose answers alternate between short tool steps and long reports swing by nature; "
        "at least 60 recent and 150 earlier calls. Often a model or prompt change: "
        "check the Changes dashboard.",
    ),
    Rule(
        uid="tt-deadletter-rate",
        title="Dead-letter rate",
        group="pipeline",
        severity="warning",
        window_seconds=600,
        threshold=0.05,
        dashboard="tokentrail-pipeline",
        panel="Dead letters by reason",
        sql=f"""SELECT if(dead + accepted >= 50, dead / (dead + accepted), 0) AS value FROM (
    SELECT (SELECT count() FROM {table("deadletter")} FINAL WHERE $__timeFilter(received_at)) AS dead,
           (SELECT count() FROM {table("receipts")} WHERE $__timeFilter(received_at)) AS accepted
)""",
        summary="{{ humanizePercentage $values.B.Value }} of incoming lines went to the dead-letter table "
        "(last 10 minutes)",
        description="A producer is sending events the contract rejects (see reasons on the Pipeline dashboard); valid "
        "events keep flowing. Each rejected line is stored in the deadletter table with its reason, field and "
        "source position, its payload redacted like any event (PII and secrets replaced): enough to find and fix "
        "the producer, not to replay the original. Both sides are counted by arrival time; receipts without "
        "FINAL (a duplicate receipt needs the same source position inserted under two batch tokens, and would "
        "move a rate by nothing visible).",
    ),
    Rule(
        uid="tt-pipeline-stalled",
        title="Pipeline stalled",
        group="pipeline",
        severity="page",
        window_seconds=3600,
        threshold=600,
        dashboard="tokentrail-pipeline",
        panel="Seconds since the last event",
        no_data="Alerting",
        # Arrival time only, never event time (dashboards/spec.py, SINCE_LAST_STORED): a replay of last
        # year's traffic is as fresh as live traffic. An hour with nothing stored reads 3600.
        sql=f"SELECT toFloat64({SINCE_LAST_STORED}) AS value\n{SINCE_LAST_STORED_FROM}",
        summary='No event stored for {{ printf "%.0f" $values.B.Value }} seconds (3600: an hour or more)',
        description="Nothing reached ClickHouse for 10 minutes, by arrival time (the store's clock when each batch "
        "of events was inserted), so old event times in a replay change nothing. Check the workers "
        "(their /ready says why: store failing, lag growing, pipeline process gone; the 'tokentrail / Pipeline "
        "internals' dashboard), Kafka and ClickHouse. On a deployment with no traffic yet, silence this rule.",
    ),
    Rule(
        uid="tt-store-rejected",
        title="Events refused by the store",
        group="pipeline",
        severity="warning",
        window_seconds=600,
        threshold=0,
        dashboard="tokentrail-pipeline",
        panel="Dead letters by reason",
        sql=f"""SELECT toFloat64(count()) AS value
FROM {table("deadletter")} FINAL
WHERE reason = 'store_rejected' AND $__timeFilter(received_at)""",
        summary='{{ printf "%.0f" $values.B.Value }} valid events refused by ClickHouse (last 10 minutes)',
        description="Events that passed validation had a row ClickHouse could not take (the dead letter's field "
        "names table.column, its detail the store's reason). Each became a dead letter with reason store_rejected "
        "and the stream went on, but the contract should have kept such values out (docs/events.md, the bounds): "
        "a gap between the contract and the schema to fix. A store that fails outright (unreachable, read-only) "
        "stores nothing at all and pages as 'Pipeline stalled'; the worker logs its retries and, after "
        "--store-max-attempts, exits non-zero with its failure count kept in <data-dir>/store-health.json.",
    ),
)

# Every alert carries an `owner` label, from the owners file when there is one (dashboards/owners.py,
# docs/owners.md); imported here, after Rule exists, because owners builds on it.
from .owners import current_owners, owned_rules  # noqa: E402

UNLABELLED_RULES = RULES  # before the owner label: `owners.rules_for(owners)` labels these for any owners file
RULES = owned_rules(RULES, current_owners())

GROUPS = {"spend": "1m", "safety": "1m", "quality": "1m", "pipeline": "1m"}


def rule(uid: str) -> Rule:
    for r in RULES:
        if r.uid == uid:
            return r
    raise KeyError(f"no alert rule {uid!r}; known: {[r.uid for r in RULES]}")
