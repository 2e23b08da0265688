-- calls keyed by the hour first: a range of minutes reads the granules of those minutes only.
--
-- Why: calls was ORDER BY (tenant, feature, model, ts, event_id). With a few hundred (tenant,
-- feature, model) groups each granule spans days of one group, so a dashboard reading a few
-- minutes at each end of a 7-day range (the partial rollup buckets, with FINAL) or a 6-hour
-- default range touched a third of the table's granules. Leading with toStartOfHour(ts) makes a
-- time condition prune to the hours it names; readers add the hour condition explicitly
-- (tokentrail.sinks.rollups.hour_sql): ClickHouse does not derive it from a condition on ts.
-- Deduplication is unchanged: toStartOfHour(ts) is a function of ts, which the key already
-- holds, so duplicates (same tenant, feature, model, ts, event_id) still share the whole key.
--
-- How (docs/storage.md, "Migrations 0011 and 0012"): a new table with the new key, every row copied, the
-- copy verified, the two tables exchanged, the old one dropped. Time and space: about one copy of
-- calls. Stop the workers first. Each step that must not run twice carries a guard (`/* if: ... */`,
-- run by tokentrail.sinks.migrations: the statement is skipped when the probe returns 0): it runs
-- only while calls still has the old key, so a run that died halfway resumes (the copy starts over
-- from an emptied table) and a finished one is not repeated. The copy keeps every row, re-delivered
-- duplicates included (insert_deduplicate = 0: identical blocks are not dropped; optimize_on_insert
-- = 0: duplicates in one block are not collapsed), and the check compares FINAL counts.
-- Which copy of a re-delivered event FINAL keeps (ReplacingMergeTree keeps the last inserted; copies
-- can differ in received_at) is kept by reading the parts one after another in their order
-- (max_threads = 1: the copy's blocks are inserted in that order; the tests check it). ClickHouse
-- does not promise that order, so the rollup watermarks are also cleared: readers use FINAL alone
-- until the next refresh rebuilds every rollup from the new table, whichever copy it keeps.
-- Retention: ${ttl_calls} is this apply's (the default, or --ttl-days calls=N): pass the same
-- override as before, or the new table gets the default.

/* if: SELECT count() = 0 FROM system.tables WHERE database = '${database}' AND name = 'calls' AND sorting_key LIKE 'toStartOfHour(ts)%' */
CREATE TABLE IF NOT EXISTS ${database}.calls_rekeyed
(
    event_id             UUID,
    ts                   DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    received_at          DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD),
    trace_id             String DEFAULT '' CODEC(ZSTD(1)),
    span_id              String DEFAULT '' CODEC(ZSTD(1)),
    parent_span_id       String DEFAULT '' CODEC(ZSTD(1)),
    session_id           String DEFAULT '' CODEC(ZSTD(1)),
    tenant               LowCardinality(String),
    service              LowCardinality(String),
    environment          LowCardinality(String) DEFAULT 'production',
    feature              LowCardinality(String),
    user                 String DEFAULT '' CODEC(ZSTD(1)),
    provider             LowCardinality(String),
    model                LowCardinality(String),
    response_model       LowCardinality(String) DEFAULT '',
    prompt_id            LowCardinality(String) DEFAULT '',
    prompt_version       LowCardinality(String) DEFAULT '',
    system_prompt_hash   String DEFAULT '' CODEC(ZSTD(1)),
    prompt_hash          String DEFAULT '' CODEC(ZSTD(1)),
    input_tokens         UInt32 DEFAULT 0,
    cached_input_tokens  UInt32 DEFAULT 0,
    output_tokens        UInt32 DEFAULT 0,
    reasoning_tokens     UInt32 DEFAULT 0,
    cost_usd             Decimal(18, 12) DEFAULT 0,
    priced               Bool DEFAULT false,
    latency_ms           Nullable(Float64),
    ttft_ms              Nullable(Float64),
    status               LowCardinality(String) DEFAULT 'ok',
    finish_reason        LowCardinality(String) DEFAULT '',
    error_type           LowCardinality(String) DEFAULT '',
    tool_call_count      UInt16 DEFAULT 0,
    tool_names           Array(LowCardinality(String)) DEFAULT [],
    output_text          String DEFAULT '' CODEC(ZSTD(3)),
    output_hash          String DEFAULT '' CODEC(ZSTD(1)),
    price_table          LowCardinality(String) DEFAULT '',
    redaction_key_id     LowCardinality(String) DEFAULT '',
    redaction_config     LowCardinality(String) DEFAULT '',
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
PRIMARY KEY (toStartOfHour(ts), tenant, feature, model, ts)
ORDER BY (toStartOfHour(ts), tenant, feature, model, ts, event_id)
TTL toDateTime(received_at) + INTERVAL ${ttl_calls} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

-- A copy that died halfway starts over.
/* if: SELECT count() = 0 FROM system.tables WHERE database = '${database}' AND name = 'calls' AND sorting_key LIKE 'toStartOfHour(ts)%' */
TRUNCATE TABLE IF EXISTS ${database}.calls_rekeyed;

/* if: SELECT count() = 0 FROM system.tables WHERE database = '${database}' AND name = 'calls' AND sorting_key LIKE 'toStartOfHour(ts)%' */
INSERT INTO ${database}.calls_rekeyed
SELECT * FROM ${database}.calls
SETTINGS insert_deduplicate = 0, optimize_on_insert = 0, max_threads = 1;

-- Nothing is exchanged unless the copy holds every event (workers running during the copy fail it here).
/* if: SELECT count() = 0 FROM system.tables WHERE database = '${database}' AND name = 'calls' AND sorting_key LIKE 'toStartOfHour(ts)%' */
SELECT throwIf((SELECT count() FROM ${database}.calls FINAL) != (SELECT count() FROM ${database}.calls_rekeyed FINAL),
    'migration 0011: the copy of calls does not hold the same events; stop the workers and apply again');

/* if: SELECT count() = 0 FROM system.tables WHERE database = '${database}' AND name = 'calls' AND sorting_key LIKE 'toStartOfHour(ts)%' */
EXCHANGE TABLES ${database}.calls AND ${database}.calls_rekeyed;

-- The old rows (now in calls_rekeyed) go.
DROP TABLE IF EXISTS ${database}.calls_rekeyed;

-- The marking view is recreated on the new table (it follows the name on this server; recreating
-- it does not depend on that).
DROP VIEW IF EXISTS ${database}.calls_rollup_dirty_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.calls_rollup_dirty_mv TO ${database}.rollup_dirty
AS SELECT DISTINCT 'calls_rollup' AS rollup, tenant, toStartOfFiveMinutes(ts) AS bucket, now64(3) AS marked_at
FROM ${database}.calls;

-- Every rollup is rebuilt from the new table by the next refresh (see above).
TRUNCATE TABLE IF EXISTS ${database}.rollup_watermark;
