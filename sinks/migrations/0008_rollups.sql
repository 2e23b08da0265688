-- Rollups the dashboards read at wide time ranges, per 5 minutes: model calls by tenant, service,
-- feature, provider, model, priced, status, finish reason and error type (calls_rollup); events
-- by tenant, service, feature, model and type (events_rollup).
-- retention-days: calls_rollup=400 events_rollup=30 rollup_dirty=3 rollup_watermark=30
--
-- Why a job and not a materialized view into an AggregatingMergeTree: a view sees every inserted
-- block, including re-delivered events that `calls` (ReplacingMergeTree) collapses only on merge
-- or under FINAL; summing them in a view would count a re-delivered call twice, forever. So rows
-- here are *computed from `calls FINAL`* by tokentrail.sinks.rollups.refresh, one 5-minute bucket
-- at a time, and a recomputed bucket replaces the previous one (ReplacingMergeTree(computed_at),
-- read with FINAL). The only view, calls_rollup_dirty_mv, records *which* buckets received rows
-- (`rollup_dirty`): duplicates there only mark a bucket twice, which is harmless.
-- Readers (the dashboards) use a bucket from here only if it is entirely inside their range and
-- has not been marked since the last refresh (minus a margin); everything else they read from
-- `calls FINAL`. That makes every sum and count exactly what `calls FINAL` gives, at any moment,
-- whether the job is running or not (if it stops, panels fall back to `calls` and get slower,
-- never wrong). Percentiles (`quantiles` states) are as approximate as `quantile` on raw rows.
-- * Sharding (cluster form): each shard's view marks its own buckets; refresh reads `calls`
--   through the Distributed table, so a bucket's row is computed over all shards.
-- * TTL on computed_at / marked_at (ingest-side), as everywhere: replayed old buckets are kept.
--   rollup_dirty keeps 3 days of marks; refresh rebuilds everything if it last ran longer ago.

CREATE TABLE IF NOT EXISTS ${database}.calls_rollup
(
    bucket               DateTime('UTC') CODEC(Delta, ZSTD),
    tenant               LowCardinality(String),
    service              LowCardinality(String),
    feature              LowCardinality(String),
    provider             LowCardinality(String),
    model                LowCardinality(String),
    priced               Bool,
    status               LowCardinality(String),
    finish_reason        LowCardinality(String),
    error_type           LowCardinality(String),
    calls                UInt64,
    cost_usd             Decimal(38, 12),
    input_tokens         UInt64,
    cached_input_tokens  UInt64,
    output_tokens        UInt64,
    latency              AggregateFunction(quantiles(0.5, 0.95, 0.99), Nullable(Float64)),
    ttft                 AggregateFunction(quantiles(0.5, 0.95), Nullable(Float64)),
    last_ts              DateTime64(3, 'UTC'),
    computed_at          DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, tenant, feature, model, service, provider, priced, status, finish_reason, error_type)
TTL toDateTime(computed_at) + INTERVAL ${ttl_calls_rollup} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS ${database}.events_rollup
(
    bucket       DateTime('UTC') CODEC(Delta, ZSTD),
    tenant       LowCardinality(String),
    service      LowCardinality(String),
    feature      LowCardinality(String),
    model        LowCardinality(String),
    type         LowCardinality(String),
    events       UInt64,
    computed_at  DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (bucket, type, tenant, feature, model, service)
TTL toDateTime(computed_at) + INTERVAL ${ttl_events_rollup} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

-- rollup: which rollup the marked bucket belongs to (calls_rollup, events_rollup). Marked per
-- tenant: a tenant's rollup rows depend only on its own calls, so a reader restricted to one
-- tenant (row policy) needs only, and sees only, its own tenant's marks.
CREATE TABLE IF NOT EXISTS ${database}.rollup_dirty
(
    rollup     LowCardinality(String),
    tenant     LowCardinality(String),
    bucket     DateTime('UTC'),
    marked_at  DateTime64(3, 'UTC') CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(marked_at)
ORDER BY (rollup, marked_at, tenant, bucket)
TTL toDateTime(marked_at) + INTERVAL ${ttl_rollup_dirty} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.calls_rollup_dirty_mv TO ${database}.rollup_dirty
AS SELECT DISTINCT 'calls_rollup' AS rollup, tenant, toStartOfFiveMinutes(ts) AS bucket, now64(3) AS marked_at
FROM ${database}.calls;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.events_rollup_dirty_mv TO ${database}.rollup_dirty
AS SELECT DISTINCT 'events_rollup' AS rollup, tenant, toStartOfFiveMinutes(ts) AS bucket, now64(3) AS marked_at
FROM ${database}.events;

-- One row per rollup: refreshed_before = the server time the last complete refresh started. A
-- watermark gone by TTL (no refresh for 30 days) means the next refresh rebuilds everything.
CREATE TABLE IF NOT EXISTS ${database}.rollup_watermark
(
    name              LowCardinality(String),
    refreshed_before  DateTime64(3, 'UTC'),
    buckets           UInt32,
    updated_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(refreshed_before)
ORDER BY name
TTL toDateTime(updated_at) + INTERVAL ${ttl_rollup_watermark} DAY;
