-- What redaction found: one row per (event, entity type) with how many values were replaced.
-- retention-days: pii_findings=400
--
-- Why counts and not values: the values are exactly what must never be stored. Counts by entity
-- type, tenant, service and time are what the PII dashboard and the "secrets in prompts" alert
-- need. Keyed by (event_id, entity) so a re-delivered event is counted once.

CREATE TABLE IF NOT EXISTS ${database}.pii_findings
(
    event_id     UUID,
    entity       LowCardinality(String),
    count        UInt32,
    is_secret    UInt8,
    ts           DateTime64(3, 'UTC') CODEC(Delta, ZSTD),
    type         LowCardinality(String),
    trace_id     String CODEC(ZSTD(1)),
    tenant       LowCardinality(String),
    service      LowCardinality(String),
    feature      LowCardinality(String),
    received_at  DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, entity, ts, event_id)
TTL toDateTime(received_at) + INTERVAL ${ttl_pii_findings} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
