-- Evidence: keyed hashes of raw content on each event, and what produced each call's numbers.
--
-- Why columns and not a table: every event already has one `events` row (tenant-scoped by the
-- row policies), and a hash belongs to exactly that event. content_parts[i] names the part
-- (`message[0]:system`, `output[0]`, `tool_call[0].arguments`, `tool.arguments`, `tool.result`)
-- whose HMAC-SHA256 under the evidence key is content_hmacs[i]; content_key_id names that key
-- (never the key). The text itself is never stored here (docs/evidence.md, the threat model).
-- price_table / redaction_key_id / redaction_config on calls record what priced and redacted
-- each call, so a change of price table or redaction settings is visible in the store.
-- ADD COLUMN IF NOT EXISTS: safe to re-run; old rows read the defaults.

ALTER TABLE ${database}.events
    ADD COLUMN IF NOT EXISTS content_parts Array(LowCardinality(String)) DEFAULT [],
    ADD COLUMN IF NOT EXISTS content_hmacs Array(String) DEFAULT [] CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS content_key_id LowCardinality(String) DEFAULT '';

ALTER TABLE ${database}.calls
    ADD COLUMN IF NOT EXISTS price_table LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS redaction_key_id LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS redaction_config LowCardinality(String) DEFAULT '';
