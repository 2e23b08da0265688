"""The sink against the cluster form: Distributed tables get the local table's partitioning and foreground inserts.

What cannot run here: a Distributed table (chDB has no cluster). So ``DistributedCatalog`` wraps
the real embedded client and answers the one catalog query the sink makes as a cluster node
would (``calls`` is ``Distributed`` with no partition key; ``calls_local`` has ``toYYYYMM(ts)``);
the rows themselves go into the real embedded ``calls`` table. Everything the sink decides from
that answer (one insert per month, token per month, the foreground setting) is then observed on
real inserts. The behaviour on a real cluster is exercised by scripts/cluster-smoke.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tokentrail.sinks import ClickHouseSink


class DistributedCatalog:
    """A real client that reports ``calls`` as a Distributed table over ``calls_local``, and records inserts."""

    def __init__(self, real):
        self._client = real
        self.inserts: list[dict] = []

    def query(self, sql, parameters=None, **kwargs):
        result = self._client.query(sql, parameters=parameters, **kwargs)
        if "FROM system.tables" in sql and parameters and parameters.get("t") == "calls":
            rows = [(name, engine, key) for name, engine, key in result.result_rows if name == "calls"]
            assert len(rows) == 1, "the sink should ask for calls and calls_local together"
            _, engine, key = rows[0]
            result.result_rows.clear()
            result.result_rows.extend([("calls", "Distributed", ""), ("calls_local", engine, key)])
        return result

    def insert(self, table, data, **kwargs):
        self.inserts.append({"table": table, **kwargs})
        settings = dict(kwargs.pop("settings") or {})
        return self._client.insert(table, data, settings=settings, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_distributed_table_gets_local_partitioning_tokens_and_foreground_inserts(clickhouse, db, rows):
    """Two months in one batch: two inserts, one token per month, each with distributed_foreground_insert=1."""
    client = DistributedCatalog(clickhouse)
    sink = ClickHouseSink(client, database=db)
    batch = [
        rows["calls"](ts=datetime(2026, 1, 31, 23, 0, tzinfo=UTC)),
        rows["calls"](ts=datetime(2026, 2, 1, 1, tzinfo=UTC)),
    ]
    result = sink.write_batch({"calls": batch}, "batch-7")
    assert result.stored == {"calls": 2}
    settings = [insert["settings"] for insert in client.inserts]
    assert [s["insert_deduplication_token"] for s in settings] == ["batch-7:calls:202601", "batch-7:calls:202602"]
    assert all(s["distributed_foreground_insert"] == 1 for s in settings)
    assert clickhouse.query(f"SELECT count() FROM {db}.calls").result_rows[0][0] == 2


def test_local_tables_are_not_sent_distributed_settings(clickhouse, db, rows):
    """A table that is not Distributed (here receipts) gets only the dedup token: the single-node form is unchanged."""
    client = DistributedCatalog(clickhouse)
    sink = ClickHouseSink(client, database=db)
    receipt = rows["receipts"](received_at=datetime(2026, 3, 2, tzinfo=UTC))
    sink.write_batch({"receipts": [receipt]}, "r")
    assert client.inserts[0]["settings"] == {"insert_deduplication_token": "r:receipts:202603"}
