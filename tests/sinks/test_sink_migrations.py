"""Versioned migrations: idempotent apply, bookkeeping, retention parameters, adding a file."""

from __future__ import annotations

import shutil
import uuid
from importlib import resources

import pytest

from tokentrail.sinks import apply, available, default_ttl_days, migrations, pending

CORE_TABLES = {"events", "calls", "tool_calls", "deadletter", "receipts"}


@pytest.fixture
def fresh(clickhouse):
    """A db name that does not exist yet."""
    name = f"tt_{uuid.uuid4().hex[:12]}"
    yield name
    clickhouse.command(f"DROP DATABASE IF EXISTS {name}")


def tables(clickhouse, db) -> set[str]:
    return set(clickhouse.query(f"SHOW TABLES FROM {db}").result_columns[0])


def show_create(clickhouse, db, table) -> str:
    return clickhouse.command(f"SHOW CREATE TABLE {db}.{table}").replace("\\n", "\n").replace("\\'", "'")


def test_apply_then_reapply_is_idempotent(clickhouse, fresh):
    """First apply runs every migration; the second runs none and changes nothing."""
    assert [m.version for m in pending(clickhouse, database=fresh)] == [m.version for m in available()]
    assert apply(clickhouse, database=fresh) == [m.version for m in available()]
    declared = set(default_ttl_days())  # every migration declares the retention of the tables it creates
    views = {t for t in tables(clickhouse, fresh) if t.endswith("_mv")}  # materialized views store nothing
    assert tables(clickhouse, fresh) - views == declared | {"schema_migrations"} and CORE_TABLES <= declared
    assert apply(clickhouse, database=fresh) == []
    assert pending(clickhouse, database=fresh) == []
    recorded = clickhouse.query(f"SELECT version, name FROM {fresh}.schema_migrations ORDER BY version").result_rows
    assert recorded == [(m.version, m.name) for m in available()] and recorded[:2] == [(1, "core"), (2, "receipts")]


def test_core_tables_have_the_agreed_columns(clickhouse, db):
    """Column names are the contract with the stream processor."""
    expected = {
        "events": [
            "event_id",
            "type",
            "ts",
            "received_at",
            "trace_id",
            "span_id",
            "parent_span_id",
            "session_id",
            "tenant",
            "service",
            "environment",
            "feature",
            "user",
            "provider",
            "model",
            "payload",
        ],
        "calls": [
            "event_id",
            "ts",
            "received_at",
            "trace_id",
            "span_id",
            "parent_span_id",
            "session_id",
            "tenant",
            "service",
            "environment",
            "feature",
            "user",
            "provider",
            "model",
            "response_model",
            "prompt_id",
            "prompt_version",
            "system_prompt_hash",
            "prompt_hash",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "reasoning_tokens",
            "cost_usd",
            "priced",
            "latency_ms",
            "ttft_ms",
            "status",
            "finish_reason",
            "error_type",
            "tool_call_count",
            "tool_names",
            "output_text",
            "output_hash",
        ],
        "tool_calls": [
            "event_id",
            "ts",
            "received_at",
            "trace_id",
            "span_id",
            "parent_span_id",
            "tenant",
            "service",
            "environment",
            "feature",
            "tool_name",
            "call_id",
            "arguments",
            "result",
            "status",
            "duration_ms",
        ],
        "deadletter": ["id", "received_at", "reason", "field", "detail", "source", "payload"],
        "receipts": ["event_id", "source", "received_at"],
    }
    # Added later (0006 evidence, 0007 redaction key), after the columns above.
    expected["events"] += ["content_parts", "content_hmacs", "content_key_id", "redaction_key_id"]
    expected["calls"] += ["price_table", "redaction_key_id", "redaction_config"]
    expected["tool_calls"] += ["redaction_key_id"]
    expected["deadletter"] += ["redaction_key_id"]
    for table, columns in expected.items():
        described = clickhouse.query(f"DESCRIBE TABLE {db}.{table}").result_columns[0]
        assert list(described) == columns, table


def test_ddl_follows_the_storage_conventions(clickhouse, db):
    """Engine, dedup window, TTL, partitioning, codecs and the trace_id skip index are in place."""
    ddl = show_create(clickhouse, db, "calls")
    for fragment in (
        "ENGINE = ReplacingMergeTree",
        "non_replicated_deduplication_window = 1000",
        "ttl_only_drop_parts = 1",
        "PARTITION BY toYYYYMM(ts)",
        "PRIMARY KEY (toStartOfHour(ts), tenant, feature, model, ts)",  # the hour first: 0011
        "ORDER BY (toStartOfHour(ts), tenant, feature, model, ts, event_id)",
        "`tenant` LowCardinality(String)",
        "`ts` DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1))",
        "`cost_usd` Decimal(18, 12)",
        "`output_text` String DEFAULT '' CODEC(ZSTD(3))",
        "INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1",
        "TTL toDateTime(received_at) + toIntervalDay(400)",
    ):
        assert fragment in ddl, fragment


def test_default_retention_reaches_the_ddl(clickhouse, db):
    """Each table's TTL is its declared default."""
    core = {"events": 30, "calls": 400, "tool_calls": 400, "deadletter": 30, "receipts": 30}
    assert {t: d for t, d in default_ttl_days().items() if t in core} == core
    for table, days in default_ttl_days().items():
        assert f"toIntervalDay({days})" in show_create(clickhouse, db, table)


def test_ttl_parameter_reaches_the_ddl(clickhouse, fresh):
    """ttl_days overrides the default in the CREATE TABLE statement."""
    apply(clickhouse, database=fresh, ttl_days={"events": 7, "deadletter": 90})
    assert "TTL toDateTime(received_at) + toIntervalDay(7)" in show_create(clickhouse, fresh, "events")
    assert "toIntervalDay(90)" in show_create(clickhouse, fresh, "deadletter")
    assert "toIntervalDay(400)" in show_create(clickhouse, fresh, "calls")


def test_ttl_change_on_existing_tables(clickhouse, db):
    """Retention is policy: a later apply with other ttl_days alters existing tables in place."""
    assert apply(clickhouse, database=db, ttl_days={"calls": 90}) == []
    assert "toIntervalDay(90)" in show_create(clickhouse, db, "calls")
    assert "toIntervalDay(30)" in show_create(clickhouse, db, "events")


@pytest.mark.parametrize(
    "ttl_days, message",
    [
        ({"nope": 3}, "unknown table 'nope'"),
        ({"events": 0}, ">= 1"),
        ({"events": "30"}, ">= 1"),
        ({"events": True}, ">= 1"),
    ],
)
def test_bad_ttl_days_raise(clickhouse, fresh, ttl_days, message):
    """Retention settings are validated before anything is created."""
    with pytest.raises(ValueError, match=message):
        apply(clickhouse, database=fresh, ttl_days=ttl_days)
    assert clickhouse.command(f"EXISTS DATABASE {fresh}") == 0


def test_bad_database_name_raises(clickhouse):
    """The db name is interpolated into DDL, so only identifiers are accepted."""
    with pytest.raises(ValueError, match="identifier"):
        apply(clickhouse, database="x; DROP TABLE y")


def test_adding_a_migration_is_one_file(clickhouse, db, tmp_path, monkeypatch):
    """A new NNNN_*.sql file is applied on top, with its declared retention and overrides."""
    shipped = resources.files("tokentrail.sinks.migrations")
    for entry in shipped.iterdir():
        if entry.name.endswith(".sql"):
            shutil.copy(str(entry), tmp_path / entry.name)
    (tmp_path / "0099_alerts.sql").write_text(
        "-- retention-days: alerts=90\n"
        "CREATE TABLE IF NOT EXISTS ${database}.alerts (id UUID, ts DateTime64(3, 'UTC'))\n"
        "ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ts) ORDER BY id\n"
        "TTL toDateTime(ts) + INTERVAL ${ttl_alerts} DAY;\n"
    )
    monkeypatch.setattr(migrations, "available", lambda: migrations.load(tmp_path))
    assert [m.name for m in pending(clickhouse, database=db)] == ["alerts"]
    assert apply(clickhouse, database=db, ttl_days={"alerts": 14}) == [99]
    assert "toIntervalDay(14)" in show_create(clickhouse, db, "alerts")
    assert apply(clickhouse, database=db) == []


def test_edited_migration_is_warned_about(clickhouse, db, tmp_path, monkeypatch, caplog):
    """Changing an applied file does not re-run it, but says so."""
    shipped = resources.files("tokentrail.sinks.migrations").joinpath("0001_core.sql").read_text()
    (tmp_path / "0001_core.sql").write_text(shipped + "\n-- a corrected comment\n")
    monkeypatch.setattr(migrations, "available", lambda: migrations.load(tmp_path))
    assert apply(clickhouse, database=db) == []
    assert "changed after it was applied" not in caplog.text  # comments may be corrected
    edited = shipped.replace("DEFAULT 'production'", "DEFAULT 'prod'", 1)
    (tmp_path / "0001_core.sql").write_text(edited)
    assert apply(clickhouse, database=db) == []
    assert "changed after it was applied" in caplog.text
