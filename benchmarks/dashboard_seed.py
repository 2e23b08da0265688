"""Seed a store with 10 million model calls (and the tables that grow with them) in SQL, for benchmarks/dashboards.py.

Why SQL (`INSERT ... SELECT FROM numbers()`): Python would need an hour to build 10M rows; the
engine writes them in about a minute. The distributions follow what the demo generator produces
and what production traffic looks like: traces of 1-9 calls close together in time, a diurnal
rate, Zipf-like tenants, features with their own model mix, log-normal token counts and
latencies, ~1.5% errors, ~3% truncations, a self-hosted unpriced model, prompt caching. A
slice of re-delivered rows (same event_id, different part) makes FINAL do real work.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["seed_calls", "seed_side_tables", "seed_events", "DAYS"]

DAYS = 7
TENANTS = [
    "northwind",
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "tyrell",
    "cyberdyne",
    "soylent",
    "wonka",
]
FEATURES = [  # feature, service, prompt_id, versions, models (provider:model)
    ("order-support", "order-agent", "order_assistant", ["v2", "v3"], ["openai:gpt-4o", "openai:gpt-4o-mini"]),
    (
        "refund-drafts",
        "support-writer",
        "refund_email",
        ["v4"],
        ["anthropic:claude-sonnet-4-0", "anthropic:claude-3-5-haiku-latest"],
    ),
    ("code-review", "review-bot", "pr_reviewer", ["v7"], ["anthropic:claude-sonnet-4-0", "openai:gpt-4.1"]),
    ("sql-analyst", "analytics-agent", "sql_agent", ["v2"], ["openai:o3-mini", "openai:gpt-4.1"]),
    ("ticket-triage", "helpdesk", "ticket_classifier", ["v2", "v3"], ["openai:gpt-4o-mini", "google:gemini-2.0-flash"]),
    (
        "search-summaries",
        "search-api",
        "search_summary",
        ["v1"],
        ["google:gemini-2.0-flash", "google:gemini-1.5-flash"],
    ),
    ("internal-qa", "kb-bot", "kb_answer", ["v1"], ["vllm:acme-llama-70b-ft", "openai:gpt-4o-mini"]),
    ("sales-assistant", "crm-copilot", "sales_helper", ["v5"], ["anthropic:claude-3-5-sonnet-latest", "openai:gpt-4o"]),
]
RATES = {  # USD per token: input, cached input, output
    "gpt-4o": (2.5e-6, 1.25e-6, 10e-6),
    "gpt-4o-mini": (0.15e-6, 0.075e-6, 0.6e-6),
    "gpt-4.1": (2e-6, 0.5e-6, 8e-6),
    "o3-mini": (1.1e-6, 0.55e-6, 4.4e-6),
    "claude-sonnet-4-0": (3e-6, 0.3e-6, 15e-6),
    "claude-3-5-haiku-latest": (0.8e-6, 0.08e-6, 4e-6),
    "claude-3-5-sonnet-latest": (3e-6, 0.3e-6, 15e-6),
    "gemini-2.0-flash": (0.1e-6, 0.025e-6, 0.4e-6),
    "gemini-1.5-flash": (0.075e-6, 0.01875e-6, 0.3e-6),
    "acme-llama-70b-ft": (0.0, 0.0, 0.0),
}
FINISH = ["stop", "tool_calls", "length"]
ERRORS = ["rate_limit_error", "timeout", "overloaded_error", "APIConnectionError"]


def _array(values: list[Any]) -> str:
    return "[" + ", ".join(repr(v) if isinstance(v, str) else f"{v!r}" for v in values) + "]"


def seed_calls(
    client: Any, calls: int, *, db: str = "tokentrail", batch: int = 2_000_000, duplicates: float = 0.01
) -> float:
    """Insert `calls` rows spread over the last DAYS days (ending now); returns seconds taken."""
    started = time.perf_counter()
    models = sorted(RATES)
    feature_models = [[f"{m.split(':')[1]}" for m in f[4]] for f in FEATURES]
    feature_providers = [[f"{m.split(':')[0]}" for m in f[4]] for f in FEATURES]
    span_ms = DAYS * 86_400_000
    traces = calls // 5  # ~5 calls per trace on average
    for offset in range(0, calls, batch):
        n = min(batch, calls - offset)
        client.command(f"""
INSERT INTO {db}.calls (event_id, ts, received_at, trace_id, span_id, session_id, tenant, service, environment, feature,
    user, provider, model, response_model, prompt_id, prompt_version, system_prompt_hash, prompt_hash, input_tokens,
    cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, priced, latency_ms, ttft_ms, status, finish_reason,
    error_type, tool_call_count, tool_names, output_text, output_hash)
WITH
    number + {offset} AS i,
    intDiv(i * {traces}, {calls}) AS trace,
    (cityHash64(trace, 1) % 1000000) / 1e6 AS r_tenant,
    (cityHash64(trace, 2) % 1000000) / 1e6 AS r_feature,
    (cityHash64(trace, 3) % 1000000) / 1e6 AS r_model,
    (cityHash64(i, 4) % 1000000) / 1e6 AS r_call,
    -- Zipf-like tenants: weight 1/rank
    arrayCumSum(arrayMap(k -> 1 / k, range(1, {len(TENANTS) + 1}))) AS tw,
    {_array(TENANTS)}[arrayFirstIndex(x -> x >= r_tenant * tw[{len(TENANTS)}], tw)] AS tenant_,
    toUInt8(floor(r_feature * {len(FEATURES)}) + 1) AS f,
    {_array([f[0] for f in FEATURES])}[f] AS feature_,
    {_array([f[1] for f in FEATURES])}[f] AS service_,
    {_array([f[2] for f in FEATURES])}[f] AS prompt_id_,
    if(r_model < 0.7, 1, 2) AS m,
    arrayElement({feature_models}, f)[m] AS model_,
    arrayElement({feature_providers}, f)[m] AS provider_,
    indexOf({_array(models)}, model_) AS mi,
    -- diurnal rate: more traces in the working day (time is the trace's position, warped by a sine)
    (trace / {traces}) AS p,
    toUInt64(({span_ms} * (p - 0.08 * sin(2 * pi() * p * {DAYS}) / (2 * pi() * {DAYS})))) AS at_ms,
    now64(3) - toIntervalMillisecond({span_ms} - least(at_ms + (i % 9) * 1500, {span_ms})) AS ts_,
    r_call < 0.015 AS failed,
    toUInt32(if(failed, 0, 150 + randLogNormal(6.6, 0.8))) AS input_,
    toUInt32(if(failed, 0, randLogNormal(4.8, 1.0))) AS output_,
    toUInt32(if(model_ = 'o3-mini' AND NOT failed, 128 + rand(5) % 1920, 0)) AS reasoning_,
    toUInt32(if(provider_ != 'vllm' AND r_call > 0.25, intDiv(input_ * 3, 5 * 64) * 64, 0)) AS cached_,
    {_array([RATES[m][0] for m in models])}[mi] AS rate_in,
    {_array([RATES[m][1] for m in models])}[mi] AS rate_cached,
    {_array([RATES[m][2] for m in models])}[mi] AS rate_out,
    toFloat64(
        if(failed AND r_call < 0.004, 30000 + rand(6) % 30000, 200 + randLogNormal(6.3, 0.6) + output_ * 12)
    ) AS latency_
SELECT
    generateUUIDv4(i), ts_, ts_ + toIntervalMillisecond(200 + rand(7) % 3000), lower(hex(sipHash128(trace))),
    lower(hex(cityHash64(i))), concat(tenant_, '-session-', toString(trace % 60)),
    tenant_, service_, 'production', feature_,
    concat(tenant_, '-user-', toString(cityHash64(trace, 9) % 300)), provider_, model_,
    if(failed, '', concat(model_, '-2024-08-06')), prompt_id_,
    {_array([f[3] for f in FEATURES])}[f][1 + (trace % length({_array([f[3] for f in FEATURES])}[f]))],
    lower(hex(cityHash64(prompt_id_))), lower(hex(cityHash64(i, 10))),
    input_, cached_, output_ + reasoning_, reasoning_,
    toDecimal128(
        (greatest(input_ - cached_, 0) * rate_in + cached_ * rate_cached + (output_ + reasoning_) * rate_out), 12
    ),
    provider_ != 'vllm', latency_, if(failed, NULL, latency_ * 0.3),
    if(failed, 'error', 'ok'), if(failed, 'error', {_array(FINISH)}[1 + (r_call > 0.5) + (r_call > 0.97)]),
    if(failed, {_array(ERRORS)}[1 + (i % 4)], ''), toUInt16(r_call > 0.5), if(r_call > 0.5, ['search_orders'], []),
    '', lower(hex(cityHash64(i, 11)))
FROM numbers({n})""")
    if duplicates:
        # Re-deliveries that escaped block deduplication: same rows again, in their own part.
        step = max(int(1 / duplicates), 1)
        client.command(f"INSERT INTO {db}.calls SELECT * FROM {db}.calls WHERE cityHash64(event_id) % {step} = 0")
    return time.perf_counter() - started


def seed_events(client: Any, *, db: str = "tokentrail") -> float:
    """One prompt and one output event per call plus one tool_call event per tool call (payload left empty)."""
    started = time.perf_counter()
    client.command(f"""INSERT INTO {db}.events (event_id, type, ts, received_at, trace_id, span_id, tenant,
            service, feature, provider, model)
        SELECT generateUUIDv4(cityHash64(event_id, t)), t,
               if(t = 'prompt', ts - toIntervalMillisecond(toUInt32(ifNull(latency_ms, 0))), ts), received_at, trace_id,
               span_id, tenant, service, feature, provider, if(t = 'tool_call', '', model)
        FROM {db}.calls
        ARRAY JOIN arrayConcat(['prompt', 'output'], arrayMap(x -> 'tool_call', tool_names)) AS t""")
    return time.perf_counter() - started


def seed_side_tables(client: Any, calls: int, *, db: str = "tokentrail") -> float:
    """The tables that grow with traffic, in the proportions the pipeline writes them."""
    started = time.perf_counter()
    span = f"toIntervalMillisecond(rand(1) % {DAYS * 86_400_000})"
    # ~2.7 events per call (prompt, output, some tool calls): one receipt each; 1% dead letters.
    client.command(f"""INSERT INTO {db}.receipts (event_id, source, received_at)
        SELECT generateUUIDv4(number), concat('tokentrail.events/', toString(number % 6), '@', toString(number)),
               now64(3) - {span} FROM numbers({int(calls * 2.7)})""")
    client.command(f"""INSERT INTO {db}.deadletter (id, received_at, reason, field, detail, source, payload)
        SELECT generateUUIDv4(number), now64(3) - {span},
               ['not_json', 'missing_field', 'invalid_value', 'unknown_type', 'unsupported_schema_version']
                   [1 + number % 5],
               '', 'detail', concat('tokentrail.events/0@', toString(number)), '{{"broken": true'
        FROM numbers({int(calls * 0.027)})""")
    client.command(f"""INSERT INTO {db}.pii_findings (event_id, entity, count, is_secret, ts, type, trace_id, tenant,
            service, feature)
        SELECT generateUUIDv4(number), e, 1 + rand(2) % 3,
               e IN ('PASSWORD', 'JWT', 'OPENAI_API_KEY', 'AWS_ACCESS_KEY_ID'),
               now64(3) - {span}, ['prompt', 'output', 'tool_call'][1 + rand(3) % 3], lower(hex(sipHash128(number))),
               {_array(TENANTS)}[1 + rand(4) % {len(TENANTS)}], s, f
        FROM numbers({int(calls * 0.03)})
        ARRAY JOIN [['EMAIL_ADDRESS', 'PHONE_NUMBER', 'PERSON', 'IP_ADDRESS', 'PASSWORD', 'JWT', 'OPENAI_API_KEY',
                     'AWS_ACCESS_KEY_ID', 'CREDIT_CARD'][1 + number % 9]] AS e,
                   [{_array([f[1] for f in FEATURES])}[1 + number % {len(FEATURES)}]] AS s,
                   [{_array([f[0] for f in FEATURES])}[1 + number % {len(FEATURES)}]] AS f""")
    client.command(f"""INSERT INTO {db}.loop_detections (detection_id, version, trace_id, tenant, service,
            feature, kind, repeats, tokens, cost_usd, trace_started, first_seen, detected_at, event_id,
            events_in_trace, evidence)
        SELECT generateUUIDv4(number), 8, lower(hex(sipHash128(number, 5))),
               {_array(TENANTS)}[1 + number % {len(TENANTS)}],
               {_array([f[1] for f in FEATURES])}[1 + number % {len(FEATURES)}],
               {_array([f[0] for f in FEATURES])}[1 + number % {len(FEATURES)}],
               ['repeated_tool_call', 'tool_cycle', 'repeated_prompt', 'repeated_output'][1 + number % 4],
               8 + number % 20, 5000 + rand(6) % 50000, toDecimal128((rand(7) % 100000) / 1e6, 12),
               t, t, t + INTERVAL 2 MINUTE, generateUUIDv4(number + 1), 20 + number % 40,
               '{{"pattern": "get_order_status(order_id=7781) -> same result"}}'
        FROM (SELECT number, now64(3) - {span} AS t FROM numbers({max(calls // 10_000, 10)}))""")
    # One variance row per 5-minute window per (tenant, feature, version, model) with traffic.
    client.command(f"""INSERT INTO {db}.variance (window_start, window_seconds, tenant, feature, prompt_version,
            model, calls, output_tokens_mean, output_tokens_stddev, output_tokens_cv, latency_p50, latency_p95,
            distinct_output_ratio, similarity, similarity_sample, tool_path_diversity)
        SELECT toStartOfFiveMinutes(ts), 300, tenant, feature, prompt_version, model, count(), avg(output_tokens),
               stddevPop(output_tokens), stddevPop(output_tokens) / nullIf(avg(output_tokens), 0),
               quantile(0.5)(latency_ms), quantile(0.95)(latency_ms), 0.9, 0.1, least(count(), 50), 0.2
        FROM {db}.calls GROUP BY 1, 3, 4, 5, 6""")
    client.command(f"""INSERT INTO {db}.changes (change_id, kind, silent, tenant, feature, model, prompt_id,
            prompt_version, from_value, to_value, first_seen)
        SELECT generateUUIDv4(number), ['response_model', 'system_prompt', 'prompt_version'][1 + number % 3],
               number % 3 != 2,
               if(number % 3 = 0, {_array(TENANTS)}[1 + number % {len(TENANTS)}], ''),
               {_array([f[0] for f in FEATURES])}[1 + number % {len(FEATURES)}],
               if(number % 3 = 0, 'gpt-4o', ''), '', '', 'a', 'b', now64(3) - {span} FROM numbers(40)""")
    client.command(f"""INSERT INTO {db}.budget_breaches (breach_id, scope, key, window, level, window_start,
            window_end, spend, threshold)
        SELECT generateUUIDv4(number), 'tenant', {_array(TENANTS)}[1 + number % {len(TENANTS)}],
               ['hour', 'day'][1 + number % 2], ['warning', 'critical'][1 + intDiv(number, 2) % 2],
               t - INTERVAL 1 HOUR, t, 120, 100
        FROM (SELECT number, toStartOfFiveMinutes(now64(3) - {span}) AS t FROM numbers(200))""")
    return time.perf_counter() - started
