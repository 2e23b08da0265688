"""The shipped access SQL: roles, the reader's profile, grants and per-tenant row policies.

The embedded engine (chDB) runs as a user without access management and has no writable access
storage: ``CREATE ROLE`` is refused (the first test pins that, so this file notices the day it
changes), and passing a users/config file through chDB's connection string did not enable it
either. So these tests check what can be checked here: every generated statement parses
(``formatQuery``, ClickHouse's own parser), the row-policy predicates select exactly one
tenant's rows on the real migrated tables, every table is covered, and hostile tenant names
are refused. Applying the SQL to a ClickHouse server is left to a deployment with one.
"""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tokentrail.sinks import ClickHouseSink
from tokentrail.sinks.privileges import (
    SHARED_TABLES,
    TENANT_PREDICATES,
    UNSCOPED_TABLES,
    ReaderLimits,
    reader_user_sql,
    render_access_sql,
    tenant_role,
)

TENANTS = ["acme", "globex-eu", "initech.prod"]


def parses(clickhouse, statement: str) -> str:
    """ClickHouse's parser's canonical form of ``statement`` (raises on a syntax error)."""
    return str(clickhouse.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0])


def test_embedded_engine_refuses_access_management(clickhouse):
    """Why the statements are parsed, not run: chDB refuses CREATE ROLE."""
    with pytest.raises(DatabaseError, match="ACCESS_DENIED|ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND"):
        clickhouse.command("CREATE ROLE IF NOT EXISTS tokentrail_probe")


def test_every_statement_parses(clickhouse, db):
    """Each rendered statement (and each reader user's) is valid ClickHouse SQL of the expected kind."""
    statements = render_access_sql(TENANTS, database=db)
    statements += reader_user_sql("grafana_acme", tenant="acme", password_sha256_hex=hashlib.sha256(b"pw").hexdigest())
    statements += reader_user_sql("grafana_ops", tenant=None, password_sha256_hex="A" * 64)
    kinds = set()
    for statement in statements:
        formatted = parses(clickhouse, statement)
        kinds.add(" ".join(formatted.split()[:2]))
    assert {
        "CREATE ROLE",
        "CREATE SETTINGS",
        "CREATE ROW",
        "GRANT CREATE",
        "GRANT INSERT",
        "CREATE USER",
        "SET DEFAULT",
    } <= kinds
    with pytest.raises(DatabaseError):
        parses(clickhouse, "CREATE ROW POLICY p ON t FOR SELECT USING tenant = 'a' TO")  # the parser does refuse


def test_reader_profile_pins_the_limits(clickhouse):
    """readonly = 1 CONST and each limit bounded by MAX, as the parser reads it."""
    limits = ReaderLimits(max_execution_time=20, max_memory_usage=10**9, max_result_rows=50_000)
    (profile,) = [s for s in render_access_sql([], limits=limits) if s.startswith("CREATE SETTINGS PROFILE")]
    formatted = parses(clickhouse, profile)
    for expected in (
        "readonly = 1 CONST",
        "max_execution_time = 20 MAX 20",
        "max_memory_usage = 1000000000 MAX 1000000000",
    ):
        assert expected in formatted
    assert "max_result_rows = 50000 MAX 50000" in formatted and "TO tokentrail_reader" in formatted
    with pytest.raises(ValueError):
        ReaderLimits(max_execution_time=0)


def test_every_table_has_a_tenant_decision(clickhouse, db):
    """Every table the migrations create is tenant-filtered, platform-only or bookkeeping: a new one forces a choice."""
    tables = {t for t in clickhouse.query(f"SHOW TABLES FROM {db}").result_columns[0] if not t.endswith("_mv")}
    assert tables == set(TENANT_PREDICATES) | set(UNSCOPED_TABLES) | set(SHARED_TABLES) | {"schema_migrations"}
    statements = render_access_sql(["acme"], database=db)
    for table in (*TENANT_PREDICATES, *UNSCOPED_TABLES):
        assert any(f"tokentrail_unscoped ON {db}.{table} " in s for s in statements)
    for table in TENANT_PREDICATES:
        assert any(
            s.startswith(f"CREATE ROW POLICY OR REPLACE `tokentrail_tenant_acme` ON {db}.{table} ") for s in statements
        )
    tenant_grant = next(s for s in statements if s.startswith("GRANT") and s.endswith(tenant_role("acme")))
    assert all(f"{db}.{table}" not in tenant_grant for table in (*UNSCOPED_TABLES, "schema_migrations"))


def test_writer_may_insert_everywhere_and_read_only_what_it_needs(db):
    """The writer's grant: INSERT on every data table, SELECT only where the worker and insights job read."""
    grant = next(s for s in render_access_sql([], database=db) if s.endswith("TO tokentrail_writer"))
    granted = re.findall(r"\b(SELECT|INSERT) ON (\w+)\.(\w+)", grant)
    assert {database for _, database, _ in granted} == {db}
    selects = {table for kind, _, table in granted if kind == "SELECT"}
    inserts = {table for kind, _, table in granted if kind == "INSERT"}
    assert selects == {
        *("calls", "variance", "changes", "budget_breaches", "schema_migrations"),  # insights, version check
        *("insights_first_seen", "insights_spend", "insights_watermark"),  # the insights job's state
        *("events", "rollup_dirty", "rollup_watermark", "trace_totals"),  # the rollup refresh
    }
    assert inserts == set(TENANT_PREDICATES) | set(UNSCOPED_TABLES) | set(SHARED_TABLES)
    # The one ALTER: the trace totals' refresh deletes a recomputed trace's previous rows (migration 0013).
    assert re.findall(r"\bALTER \w+ ON \w+\.\w+", grant) == [f"ALTER DELETE ON {db}.trace_totals"]
    assert "CREATE" not in grant and "DROP" not in grant


def test_policy_predicates_select_one_tenants_rows(clickhouse, db, rows):
    """Run each tenant predicate as a WHERE on real rows of two tenants: it returns exactly that tenant's rows."""
    sink = ClickHouseSink(clickhouse, database=db)
    batch = {
        table: [make(tenant="acme"), make(tenant="globex-eu"), make(tenant="globex-eu")]
        for table, make in rows.items()
        if table in TENANT_PREDICATES
    }
    sink.write_batch(batch, token="t")
    breaches = [
        {"breach_id": uuid.uuid4(), "scope": scope, "key": key, "window": "day", "level": "warning",
         "window_start": rows["calls"]()["ts"], "window_end": rows["calls"]()["ts"], "spend": 2, "threshold": 1}
        for scope, key in [("tenant", "acme"), ("tenant", "globex-eu"), ("feature", "acme")]
    ]  # fmt: skip
    sink.write_batch({"budget_breaches": breaches}, token="b")
    for table, predicate in TENANT_PREDICATES.items():
        if table not in batch and table != "budget_breaches":
            continue
        acme = clickhouse.command(f"SELECT count() FROM {db}.{table} WHERE {predicate.format(tenant=repr('acme'))}")
        assert int(acme) == 1, table


@pytest.mark.parametrize("tenant", ["\\' OR 1=1) --", "a'b", "", "x" * 65, "a b", "`x`", "-lead"])
def test_hostile_tenant_names_are_refused(tenant):
    """A tenant name that would need quoting in a role name or a literal never reaches the SQL."""
    with pytest.raises(ValueError, match="tenant"):
        render_access_sql([tenant])


def test_bad_user_inputs_are_refused():
    """Users are identifiers and passwords arrive only as a SHA-256 hex digest."""
    with pytest.raises(ValueError, match="user name"):
        reader_user_sql("bad-user", tenant="acme", password_sha256_hex="0" * 64)
    with pytest.raises(ValueError, match="SHA-256"):
        reader_user_sql("grafana", tenant="acme", password_sha256_hex="hunter2")
    with pytest.raises(ValueError, match="twice"):
        render_access_sql(["acme", "acme"])
