"""The cluster form of the schema (`schema sql --cluster`): it parses, and it is the single-node schema.

No ClickHouse cluster (nor Keeper) runs here, and chDB cannot create Replicated or Distributed
tables without one. So every generated statement is checked with ClickHouse's own parser
(``formatQuery``), and the cluster form's local tables are shown to be the single-node tables:
each is created in chDB with its engine swapped back to the non-replicated one (the only change
the test makes) and compared with the migrated table column by column, key by key.
Running the DDL on a real cluster is ``scripts/cluster-smoke`` (needs Docker).
"""

from __future__ import annotations

import re
import uuid

import pytest

from tokentrail.sinks import apply
from tokentrail.sinks.cluster import SHARDING_KEYS, cluster_form, local_name, split_guard
from tokentrail.sinks.migrations import schema_sql

CLUSTER = "tokentrail"
_REPLICATED = re.compile(r"ENGINE = Replicated(\w+)\('([^']*)', '([^']*)'(?:, ([^)]*))?\)")


def parses(clickhouse, statement: str) -> str:
    """ClickHouse's parser's canonical form of ``statement`` (raises on a syntax error)."""
    return str(clickhouse.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0])


def created_tables(statements: list[str]) -> list[str]:
    return [m.group(1) for s in statements if (m := re.match(r"CREATE TABLE IF NOT EXISTS \w+\.(\w+)", s))]


@pytest.mark.parametrize("cluster", [None, CLUSTER])
def test_every_statement_of_both_forms_parses(clickhouse, cluster):
    """ClickHouse's parser accepts each statement `schema sql [--cluster]` prints, and formats it back."""
    statements = schema_sql(cluster=cluster)
    assert len(statements) > 10
    for statement in statements:
        probe, body = split_guard(statement)
        if probe is not None:  # a guard's probe is run by apply too
            assert parses(clickhouse, probe).startswith("SELECT")
        canonical = parses(clickhouse, body)
        assert canonical.split()[0] in ("CREATE", "ALTER", "TRUNCATE", "INSERT", "SELECT", "EXCHANGE", "DROP")
        if cluster and canonical.split()[0] not in ("INSERT", "SELECT"):  # data statements run from one node
            assert f"ON CLUSTER {cluster}" in canonical, statement[:80]


def test_single_node_form_is_what_apply_creates(clickhouse):
    """`schema sql` without --cluster lists exactly the tables `apply` creates (it is not a second schema)."""
    name = f"tt_{uuid.uuid4().hex[:12]}"
    apply(clickhouse, database=name)
    try:
        made = {row[0] for row in clickhouse.query(f"SHOW TABLES FROM {name}").result_rows}
        assert set(created_tables(schema_sql(database=name))) | views(schema_sql(database=name)) == made
    finally:
        clickhouse.command(f"DROP DATABASE IF EXISTS {name}")


def views(statements: list[str]) -> set[str]:
    return {m.group(1) for s in statements if (m := re.match(r"CREATE MATERIALIZED VIEW IF NOT EXISTS \w+\.(\w+)", s))}


def test_every_table_is_replicated_local_plus_distributed_sharded_as_declared():
    """Each table becomes a Replicated local ON CLUSTER (own Keeper path, {shard}/{replica}) and a Distributed one."""
    statements = schema_sql(cluster=CLUSTER)
    tables = [t for t in created_tables(schema_sql()) if t in SHARDING_KEYS]
    assert set(created_tables(schema_sql())) <= set(SHARDING_KEYS)
    paths = []
    for table in tables:
        local = next(
            s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS tokentrail.{local_name(table)} ")
        )
        engine = _REPLICATED.search(local)
        assert engine, local[-400:]
        assert engine.group(2) == f"/clickhouse/tables/{{shard}}/{{database}}/{local_name(table)}"
        assert engine.group(3) == "{replica}"
        paths.append(engine.group(2))
        assert "non_replicated_deduplication_window" not in local
        distributed = next(s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS tokentrail.{table} "))
        assert distributed.endswith(
            f"ENGINE = Distributed({CLUSTER}, tokentrail, {local_name(table)}, {SHARDING_KEYS[table]})"
        )
        assert f"AS tokentrail.{local_name(table)}" in distributed
    assert len(set(paths)) == len(paths)


def test_dedup_keys_stay_on_one_shard():
    """The sharding key reads only columns that a row's duplicates share: tenant/trace for events, else the key."""
    for table in ("events", "calls", "tool_calls", "pii_findings", "loop_detections"):
        assert SHARDING_KEYS[table] == "cityHash64(tenant, trace_id)"
    assert SHARDING_KEYS["receipts"] == "cityHash64(event_id)"
    assert SHARDING_KEYS["deadletter"] == "cityHash64(id)"


def _back_to_single_node(statement: str, database: str) -> str:
    """The one edit the column comparison makes: Replicated engine -> its base engine, no ON CLUSTER."""
    out = statement.replace(f" ON CLUSTER {CLUSTER}", "").replace("tokentrail.", f"{database}.")
    out = _REPLICATED.sub(lambda m: f"ENGINE = {m.group(1)}" + (f"({m.group(4)})" if m.group(4) else ""), out)
    return out.replace("replicated_deduplication_window", "non_replicated_deduplication_window")


def _describe(clickhouse, database: str, table: str) -> dict[str, object]:
    columns = clickhouse.query(
        "SELECT name, type, default_kind, default_expression, compression_codec FROM system.columns "
        "WHERE database = {d:String} AND table = {t:String} ORDER BY position",
        parameters={"d": database, "t": table},
    ).result_rows
    keys = clickhouse.query(
        "SELECT partition_key, sorting_key, primary_key, "
        "replaceRegexpOne(engine_full, '.*?(TTL .*?)(SETTINGS.*)?$', '\\\\1') FROM system.tables "
        "WHERE database = {d:String} AND name = {t:String}",
        parameters={"d": database, "t": table},
    ).result_rows
    return {"columns": columns, "keys": keys}


def test_cluster_locals_have_the_single_node_columns_keys_and_ttl(clickhouse):
    """Per table: same columns (name, type, default, codec), partition, sorting and primary keys, and TTL."""
    single, rebuilt = f"tt_{uuid.uuid4().hex[:12]}", f"tt_{uuid.uuid4().hex[:12]}"
    apply(clickhouse, database=single)
    clickhouse.command(f"CREATE DATABASE {rebuilt}")
    try:
        for statement in schema_sql(cluster=CLUSTER):
            _, statement = split_guard(statement)  # a fresh database: every guard holds
            if re.match(
                rf"(CREATE TABLE IF NOT EXISTS|ALTER TABLE|EXCHANGE TABLES|DROP TABLE IF EXISTS) "
                rf"tokentrail\.\w+{local_name('')}[ ,]",
                statement,
            ):
                clickhouse.command(_back_to_single_node(statement, rebuilt).replace(" SYNC", ""))
        for table in created_tables(schema_sql()):
            expected = _describe(clickhouse, single, table)
            assert expected["columns"], table
            assert _describe(clickhouse, rebuilt, local_name(table)) == expected, table
    finally:
        clickhouse.command(f"DROP DATABASE IF EXISTS {single}")
        clickhouse.command(f"DROP DATABASE IF EXISTS {rebuilt}")


def test_materialized_views_read_and_write_local_tables():
    """A view on a cluster runs per shard: it reads the shard's local source and writes its local target."""
    view = (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS tokentrail.calls_rollup_mv TO tokentrail.calls_rollup "
        "AS SELECT tenant, count() AS n FROM tokentrail.calls GROUP BY tenant"
    )
    (out,) = cluster_form(view, CLUSTER)
    assert out.startswith(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS tokentrail.calls_rollup_mv_local ON CLUSTER {CLUSTER} "
        "TO tokentrail.calls_rollup_local"
    )
    assert "FROM tokentrail.calls_local GROUP BY" in out


def test_alters_go_to_the_locals_and_column_changes_to_the_distributed_table_too():
    """ADD COLUMN must reach both tables (Distributed lists columns); a TTL change only the locals."""
    add = cluster_form("ALTER TABLE tokentrail.calls ADD COLUMN IF NOT EXISTS x UInt8", CLUSTER)
    assert add == [
        f"ALTER TABLE tokentrail.calls_local ON CLUSTER {CLUSTER} ADD COLUMN IF NOT EXISTS x UInt8",
        f"ALTER TABLE tokentrail.calls ON CLUSTER {CLUSTER} ADD COLUMN IF NOT EXISTS x UInt8",
    ]
    ttl = cluster_form("ALTER TABLE tokentrail.calls MODIFY TTL toDateTime(received_at) + INTERVAL 9 DAY", CLUSTER)
    assert ttl == [
        f"ALTER TABLE tokentrail.calls_local ON CLUSTER {CLUSTER} MODIFY TTL toDateTime(received_at) + INTERVAL 9 DAY"
    ]


def test_unknown_statements_and_tables_are_refused_not_left_node_local():
    """A migration the cluster form does not understand fails loudly instead of running on one node only."""
    with pytest.raises(ValueError, match="no sharding key"):
        cluster_form("CREATE TABLE IF NOT EXISTS tokentrail.mystery (a UInt8) ENGINE = MergeTree ORDER BY a", CLUSTER)
    with pytest.raises(ValueError, match="no cluster form"):
        cluster_form("INSERT INTO tokentrail.calls VALUES (1)", CLUSTER)
    with pytest.raises(ValueError, match="cluster name"):
        cluster_form("CREATE DATABASE IF NOT EXISTS tokentrail", "bad name; DROP")


@pytest.mark.parametrize("argv", [[], ["--cluster", CLUSTER]])
def test_schema_sql_command_prints_the_statements(capsys, argv):
    """`tokentrail schema sql [--cluster NAME]` prints exactly schema_sql()'s statements, each ending in ';'."""
    from tokentrail.stream.cli import main

    assert main(["schema", "sql", *argv]) == 0
    printed = [s.strip() for s in capsys.readouterr().out.split(";\n\n") if s.strip()]
    assert printed == schema_sql(cluster=argv[1] if argv else None)


def test_schema_sql_command_refuses_a_bad_cluster_name(capsys):
    """A cluster name that is not an identifier is a usage error (exit 2), not SQL."""
    from tokentrail.stream.cli import main

    assert main(["schema", "sql", "--cluster", "x; DROP"]) == 2
    assert "cluster name" in capsys.readouterr().err
