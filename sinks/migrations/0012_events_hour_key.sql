-- events keyed by the hour first, as 0011 did for calls, for the same reason: `events` was ORDER BY
-- (tenant, type, ts, event_id), a few dozen (tenant, type) groups whose granules span days, so
-- the few minutes at each end of a 7-day range (the events rollup's partial buckets, read with
-- FINAL) touched most of the table's granules. Readers name the hours next to ts
-- (tokentrail.sinks.rollups.hours_sql). Deduplication is unchanged (the hour is a function of ts).
--
-- The steps, guards, lock and their reasons are 0011's (docs/storage.md, "Migrations 0011 and
-- 0012"): a copy of every row (duplicates included, parts in order), checked against FINAL before
-- the exchange; the marking view recreated on the new table; the rollup watermarks cleared, so
-- every rollup is rebuilt from the new tables by the next refresh. Stop the workers first.
-- Retention: ${ttl_events} is this apply's (the default, or --ttl-days events=N).

/* if: SELECT count() = 0 FROM system.tables WHERE database = '${database}' AND name = 'events' AND sorting_key LIKE 'toStartOfHour(ts)%' */
CREATE TABLE IF NOT EXISTS ${database}.events_rekeyed
(
    event_id        UUID,
    type            LowCardinality(String),
    ts              DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    received_at     DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD),
    trace_id        String DEFAULT '' CODEC(ZSTD(1)),
    span_id         String DEFAULT '' CODEC(ZSTD(1)),
    parent_span_id  String DEFAULT '' CODEC(ZSTD(1)),
    session_id      String DEFAULT '' CODEC(ZSTD(1)),
    tenant          LowCardinality(String),
    service         LowCardinality(String),
    environment     LowCardinality(String) DEFAULT 'production',
    feature         LowCardinality(String),
    user            String DEFAULT '' CODEC(ZSTD(1)),
    provider        LowCardinality(String) DEFAULT '',
    model           LowCardinality(String) DEFAULT '',
    payload         String DEFAULT '' CODEC(ZSTD(3)),
    content_parts   Array(LowCardinality(String)) DEFAULT [],
    content_hmacs   Array(String) DEFAULT [] CODEC(ZSTD(1)),
    content_key_id  LowCardinality(String) DEFAULT '',
    redaction_key_id LowCardinality(String) DEFAULT '',
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
PRIMARY KEY (toStartOfHour(ts), tenant, type, ts)
ORDER BY (toStartOfHour(ts), tenant, type, ts, event_id)
TTL toDateTime(received_at) + INTERVAL ${ttl_events} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

/* if: SELECT count() = 0 FROM system.tables WHERE database = '${database}' AND name = 'events' AND sorting_key LIKE 'toStartOfHour(ts)%' */
TRUNCATE TABLE IF EXISTS ${database}.events_rekeyed;

/* if: SELECT count() = 0 FROM system.tables WHERE database = '${database}' AND name = 'events' AND sorting_key LIKE 'toStartOfHour(ts)%' */
INSERT INTO ${database}.events_rekeyed
SELECT * FROM ${database}.events
SETTINGS insert_deduplicate = 0, optimize_on_insert = 0, max_threads = 1;

/* if: SELECT count() = 0 FROM system.tables WHERE database = '${database}' AND name = 'events' AND sorting_key LIKE 'toStartOfHour(ts)%' */
SELECT throwIf((SELECT count() FROM ${database}.events FINAL) != (SELECT count() FROM ${database}.events_rekeyed FINAL),
    'migration 0012: the copy of events does not hold the same events; stop the workers and apply again');

/* if: SELECT count() = 0 FROM system.tables WHERE database = '${database}' AND name = 'events' AND sorting_key LIKE 'toStartOfHour(ts)%' */
EXCHANGE TABLES ${database}.events AND ${database}.events_rekeyed;

DROP TABLE IF EXISTS ${database}.events_rekeyed;

DROP VIEW IF EXISTS ${database}.events_rollup_dirty_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.events_rollup_dirty_mv TO ${database}.rollup_dirty
AS SELECT DISTINCT 'events_rollup' AS rollup, tenant, toStartOfFiveMinutes(ts) AS bucket, now64(3) AS marked_at
FROM ${database}.events;

TRUNCATE TABLE IF EXISTS ${database}.rollup_watermark;
