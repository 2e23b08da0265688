-- Receipts: one row per delivery of a valid event, keyed by where it came from.
-- retention-days: receipts=30
--
-- Why: "duplicates" must be a number read from the store, and stable when the same input is
-- replayed. A delivery is identified by its source position (`file.jsonl:17`,
-- `tokentrail.events/2@1234`): a worker re-reading the same offset after a crash, or the same
-- file replayed twice, is the same delivery and collapses here; an event re-sent by its
-- producer arrives at a new position and counts. duplicates = distinct deliveries - distinct
-- event_ids.

CREATE TABLE IF NOT EXISTS ${database}.receipts
(
    event_id     UUID,
    source       String CODEC(ZSTD(1)),
    received_at  DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (event_id, source)
TTL toDateTime(received_at) + INTERVAL ${ttl_receipts} DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
