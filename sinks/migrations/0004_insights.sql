-- Insights computed by the store jobs (tokentrail.stream.insights): output variance per window,
-- silent changes, budget breaches. Grafana panels and alert rules read these tables directly.
-- retention-days: variance=400 changes=730 budget_breaches=400
--
-- Why these choices:
-- * Every row is derived from `calls` by a deterministic job, so each table is keyed by what
--   identifies the insight (not by when it was computed): recomputing a window, or a second job
--   run racing the first, collapses to one row under FINAL and after merges.
-- * variance is ReplacingMergeTree(computed_at): late calls make the job recompute a window, and
--   the newest computation must win. The job only inserts rows whose numbers changed, so a
--   plain count() does not grow on re-runs.
-- * changes and budget_breaches carry a deterministic UUID (change_id / breach_id) derived from
--   the same values as their ORDER BY tail, so alert consumers can deduplicate on it too.
-- * Undefined statistics are NULL, not 0: a stddev of one call, a similarity of one output or a
--   percentile with no latencies does not exist, and Grafana skips NULLs in aggregates.
-- * TTL on the ingest-side time (computed_at / detected_at), as in 0001: a replay of old traffic
--   must not be dropped on arrival.
-- * Money is Decimal(18, 12), the same type as calls.cost_usd, so sums compare exactly.

CREATE TABLE IF NOT EXISTS ${database}.variance
(
    window_start           DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    window_seconds         UInt32,
    tenant                 LowCardinality(String),
    feature                LowCardinality(String),
    prompt_version         LowCardinality(String),
    model                  LowCardinality(String),
    calls                  UInt32,
    output_tokens_mean     Float64,
    output_tokens_stddev   Nullable(Float64),
    output_tokens_cv       Nullable(Float64),
    latency_p50            Nullable(Float64),
    latency_p95            Nullable(Float64),
    distinct_output_ratio  Float64,
    similarity             Nullable(Float64),
    similarity_sample      UInt16,
    tool_path_diversity    Float64,
    computed_at            DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
PRIMARY KEY (tenant, feature, window_seconds, window_start)
ORDER BY (tenant, feature, window_seconds, window_start, prompt_version, model)
TTL toDateTime(computed_at) + INTERVAL ${ttl_variance} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

-- kind: response_model | system_prompt | prompt_version. Group columns that are not part of a
-- kind's key are '' (system_prompt and prompt_version changes are per feature/prompt, not per
-- tenant or model). silent = the change came without a prompt-version bump.
CREATE TABLE IF NOT EXISTS ${database}.changes
(
    change_id       UUID,
    kind            LowCardinality(String),
    silent          Bool,
    tenant          LowCardinality(String),
    feature         LowCardinality(String),
    model           LowCardinality(String),
    prompt_id       LowCardinality(String),
    prompt_version  LowCardinality(String),
    from_value      String CODEC(ZSTD(1)),
    to_value        String CODEC(ZSTD(1)),
    first_seen      DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    detected_at     DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(first_seen)
PRIMARY KEY (tenant, feature, kind)
ORDER BY (tenant, feature, kind, change_id)
TTL toDateTime(detected_at) + INTERVAL ${ttl_changes} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

-- One row per episode: the rolling window ending at window_end is the first whose spend reached
-- the threshold after one that had not. scope: tenant | feature; window: hour | day;
-- level: warning | critical; key: the tenant or feature name the spend belongs to.
CREATE TABLE IF NOT EXISTS ${database}.budget_breaches
(
    breach_id     UUID,
    scope         LowCardinality(String),
    key           LowCardinality(String),
    window        LowCardinality(String),
    level         LowCardinality(String),
    window_start  DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    window_end    DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    spend         Decimal(18, 12),
    threshold     Decimal(18, 12),
    detected_at   DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_end)
PRIMARY KEY (scope, key, window, level, window_end)
ORDER BY (scope, key, window, level, window_end, breach_id)
TTL toDateTime(detected_at) + INTERVAL ${ttl_budget_breaches} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
