"""The batched, idempotent ClickHouse writer the stream processor hands its rows to."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from .blocks import Block, Converted, TableShape, convert, group_by_partition, partition_function, row_keys
from .cluster import local_name
from .identifiers import check_identifier
from .outcomes import (
    Failure,
    Rejection,
    SinkClosedError,
    SinkWriteError,
    StoreUnavailable,
    WriteResult,
    classify,
    column_named_in,
)

__all__ = ["ClickHouseSink", "SinkWriteError", "SinkClosedError", "StoreUnavailable", "Rejection", "WriteResult"]

log = logging.getLogger(__name__)

_RETRY_LOG_EVERY_S = 30.0
_REASON_MAX = 300  # a server message can quote a whole block; a dead letter's detail need not
_T = TypeVar("_T")


class _NotRetried(Exception):
    """Carries a row, split or bug failure out of the retry loop, which retries only the store's."""

    def __init__(self, kind: Failure, cause: Exception) -> None:
        super().__init__(str(cause))
        self.kind = kind
        self.cause = cause


class ClickHouseSink:
    """Write batches of rows into tokentrail's ClickHouse tables.

    Guarantee: at-least-once; idempotent on the dedup key (``event_id``; ``id`` for deadletter,
    ``(event_id, source)`` for receipts). ``write_batch`` returns only once every row it does not
    report as rejected is stored, so a caller never acknowledges input whose rows were lost.

    **Rows the store cannot take** never fail the batch. Before any insert every value is
    converted for its column type and checked against the range the type holds (UInt32, UInt16,
    DateTime64's 1900-2299, Decimal precision, UUID syntax, ...); a row with a value that does
    not fit is left out and reported as a :class:`Rejection` with its identity, table and column.
    Other rows of the same ``event_id`` in the batch are withheld too (counted in
    ``WriteResult.withheld``), so an event is stored whole or not at all. As a safety net, an
    insert the store refuses for a data reason (see :mod:`.outcomes`) is split in halves until
    the refused rows are isolated; those become rejections and the rest is stored (rows of the
    same event in tables written earlier in the batch stay stored: the net cannot withhold them).

    **Partitions** per insert are bounded: each table's rows are grouped by the table's
    partition key (``toYYYYMM(ts)``) and each group is one insert, so a backfill across 130
    months never meets ``max_partitions_per_insert_block``.

    **Idempotency** has two layers. Each insert carries ``insert_deduplication_token =
    f"{token}:{table}:{partition}"`` (a split part appends ``/a`` or ``/b``); tables keep the
    last 1000 tokens (``non_replicated_deduplication_window``). A retry of the *same* batch under
    the same token (same rows, hence the same groups, rejections and splits) is dropped block by
    block, so plain ``count()`` does not grow. The token must identify the batch's content (e.g.
    Kafka partition + first/last offset): ClickHouse does not compare rows, and a *different*
    batch under a reused token is silently dropped. Rows that arrive again in a *different*
    batch (after a worker crash faust forms batches anew) are new blocks: they are collapsed by
    ``ReplacingMergeTree`` on the dedup key, exactly with ``FINAL`` (or ``uniqExact`` of the key)
    at once, and in storage only after merges. Tables are written one after another, so a batch
    that gave up may be partly stored; writing it again with the same token finishes it.

    **Store failures** (unreachable, connection reset, timeout, overloaded, any error not known
    to be about the data) are retried with exponential backoff and jitter. Policy after N
    failures: with ``max_attempts=None`` (the default) the insert is retried until it succeeds or
    the sink is closed, i.e. the caller pauses in place without acknowledging anything; with
    ``max_attempts=N`` the N-th failed attempt of one insert raises :class:`StoreUnavailable`
    (a :class:`SinkWriteError`) so the worker stops and its supervisor restarts it from the last
    committed offset. Either way ``stats["consecutive_failures"]`` counts failed attempts since
    the last successful insert (reset on success) and ``stats["failing_since"]`` holds the
    ``time.time()`` of the first of them (0.0 when healthy): alert on them.

    Rows are dicts keyed by column name; values are normalised per column type (aware or naive
    UTC datetimes or ISO strings, ``UUID`` or str, ``Decimal``/int/float/str for Decimal,
    ``None`` for Nullable, ``None`` -> '' / 0 / [] elsewhere). A row naming a column the table
    does not have is a programming error: ``ValueError`` before any insert. Column names, types
    and the partition key are read once per table and re-read when a row carries an unknown key.

    The client is injected (never created, never closed here): share ``connect()``'s client, or
    wrap it to inject faults in tests. Calls are blocking; serialise them per sink.
    """

    def __init__(
        self,
        client: Client,
        *,
        database: str = "tokentrail",
        max_attempts: int | None = None,
        backoff: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        check_identifier(database, "database")
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be None (retry forever) or an int >= 1, got {max_attempts!r}")
        try:
            first, cap = (float(x) for x in backoff)
        except (TypeError, ValueError):
            raise ValueError(f"backoff must be (initial_seconds, max_seconds), got {backoff!r}") from None
        if not 0 < first <= cap:
            raise ValueError(f"backoff needs 0 < initial <= max, got {backoff!r}")
        self._client = client
        self._database = database
        self._max_attempts = max_attempts
        self._backoff = (first, cap)
        self._closed = threading.Event()
        self._shapes: dict[str, TableShape] = {}
        self._last_retry_log = float("-inf")
        self.stats: dict[str, float] = {
            "batches": 0,
            "rows": 0,
            "inserts": 0,
            "retries": 0,
            "gave_up": 0,
            "rejected": 0,
            "withheld": 0,
            "splits": 0,
            "consecutive_failures": 0,
            "failing_since": 0.0,
        }

    def write_batch(self, rows_by_table: Mapping[str, Sequence[Mapping[str, Any]]], token: str) -> WriteResult:
        """Store every table's rows except the rejected ones, and say which (see class docstring).

        Raises ``SinkClosedError`` if closed, ``StoreUnavailable`` when ``max_attempts`` is spent
        on store failures, ``ValueError`` for a bad token, table name or unknown column.
        """
        if self._closed.is_set():
            raise SinkClosedError("ClickHouseSink is closed")
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty string identifying the batch content")
        for table in rows_by_table:
            check_identifier(table, "table name")
        result = WriteResult()
        # Convert every table first: a rejected row then withholds its event's rows everywhere.
        converted = {table: self._convert(table, rows) for table, rows in rows_by_table.items() if rows}
        for table, (conversion, _) in converted.items():
            for index, (column, reason) in sorted(conversion.failures.items()):
                result.rejected.append(
                    Rejection(self._identity(table, rows_by_table[table][index]), table, column, reason, index)
                )
        rejected_ids = result.rejected_event_ids
        for table, (conversion, shape) in converted.items():
            rows = rows_by_table[table]
            keep = [
                i
                for i in range(len(rows))
                if i not in conversion.failures
                and (not rejected_ids or self._identity(table, rows[i]) not in rejected_ids)
            ]
            withheld = len(rows) - len(keep) - len(conversion.failures)
            if withheld:
                result.withheld[table] = withheld
            block = conversion.block.take(keep) if len(keep) < len(rows) else conversion.block
            stored = 0
            for partition, group in group_by_partition(block, shape):
                refused = self._insert_or_split(table, group, f"{token}:{table}:{partition}")
                for index, exc in refused:
                    column = column_named_in(exc)
                    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    reason = f"{column + ': ' if column else ''}store refused the row: {detail[:_REASON_MAX]}"
                    result.rejected.append(Rejection(self._identity(table, rows[index]), table, column, reason, index))
                stored += len(group) - len(refused)
            result.stored[table] = stored
            self.stats["rows"] += stored
        self.stats["batches"] += 1
        self.stats["rejected"] += len(result.rejected)
        self.stats["withheld"] += sum(result.withheld.values())
        for rejection in result.rejected:
            log.warning(
                "%s.%s rejected row %d (%s): %s",
                self._database,
                rejection.table,
                rejection.index,
                rejection.event_id or "no id",
                rejection.reason,
            )
        return result

    def close(self) -> None:
        """Refuse further batches and abort a retry loop in progress (it raises SinkClosedError).

        The injected client is left open: the sink does not own it.
        """
        self._closed.set()

    # -- internals --------------------------------------------------------------------------

    def _identity(self, table: str, row: Mapping[str, Any]) -> str:
        column = self._shapes[table].identity_column
        value = row.get(column) if column else None
        return "" if value is None else str(value)

    def _convert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> tuple[Converted, TableShape]:
        keys = row_keys(rows)
        shape = self._read_shape(table, refresh=False)
        if not keys <= {name for name, _ in shape.columns}:
            shape = self._read_shape(table, refresh=True)  # a migration may have added columns
            missing = keys - {name for name, _ in shape.columns}
            if missing:
                raise ValueError(f"{self._database}.{table} has no column(s) {sorted(missing)}")
        return convert(rows, shape, keys), shape

    def _read_shape(self, table: str, *, refresh: bool) -> TableShape:
        try:
            return self._retrying(table, "schema", partial(self._shape, table, refresh=refresh))
        except _NotRetried as failure:
            raise failure.cause from None

    def _insert_or_split(self, table: str, block: Block, dedup_token: str) -> list[tuple[int, Exception]]:
        """Insert ``block``; on a row or width failure split it. Returns (row index, error) refused."""
        try:
            self._retrying(table, dedup_token, partial(self._insert, table, block, dedup_token))
            return []
        except _NotRetried as failure:
            if failure.kind is Failure.BUG:
                raise failure.cause from None
            if len(block) == 1:
                if failure.kind is Failure.SPLIT:  # one row is one partition: cannot happen, but never drop it
                    raise SinkWriteError(
                        f"insert into {self._database}.{table} refused: {failure.cause}"
                    ) from failure.cause
                return [(block.rows[0], failure.cause)]
            self.stats["splits"] += 1
            left, right = block.halves()
            return self._insert_or_split(table, left, f"{dedup_token}/a") + self._insert_or_split(
                table, right, f"{dedup_token}/b"
            )

    def _retrying(self, table: str, token: str, operation: Callable[[], _T]) -> _T:
        """Run ``operation`` until it succeeds; only store failures are retried (see class docstring)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = operation()
            except Exception as exc:
                kind = classify(exc)
                if kind is not Failure.STORE:
                    raise _NotRetried(kind, exc) from exc
                self._failed(table, token, attempt, exc)
                if self._closed.wait(self._delay(attempt)):
                    raise SinkClosedError(f"sink closed while retrying insert into {table}") from exc
                continue
            if attempt > 1:
                log.info("insert into %s.%s succeeded after %d attempts", self._database, table, attempt)
            self.stats["consecutive_failures"] = 0
            self.stats["failing_since"] = 0.0
            return result

    def _failed(self, table: str, token: str, attempt: int, exc: Exception) -> None:
        """Account for one store failure; raise StoreUnavailable once the budget is spent."""
        self.stats["consecutive_failures"] += 1
        if not self.stats["failing_since"]:
            self.stats["failing_since"] = time.time()
        if self._max_attempts is not None and attempt >= self._max_attempts:
            self.stats["gave_up"] += 1
            raise StoreUnavailable(
                f"insert into {self._database}.{table} failed {attempt} times (token {token!r}): {exc}",
                table=table,
                attempts=attempt,
                consecutive_failures=int(self.stats["consecutive_failures"]),
            ) from exc
        self.stats["retries"] += 1
        self._log_retry(table, attempt, exc)

    def _insert(self, table: str, block: Block, dedup_token: str) -> None:
        self._client.insert(
            table,
            block.columns,
            column_names=block.names,
            database=self._database,
            column_type_names=block.types,
            column_oriented=True,
            settings=self._insert_settings(table, dedup_token),
        )
        self.stats["inserts"] += 1

    def _insert_settings(self, table: str, dedup_token: str) -> dict[str, Any]:
        settings: dict[str, Any] = {"insert_deduplication_token": dedup_token}
        if self._shapes[table].distributed:
            # Foreground: the insert returns only once every shard stored its rows (write_batch's
            # promise), and each shard's insert carries the token, deduplicated in that shard's
            # Keeper log (docs/storage.md, "Cluster").
            settings["distributed_foreground_insert"] = 1
        return settings

    def _delay(self, attempt: int) -> float:
        first, cap = self._backoff
        # Equal jitter: at least half the exponential step, so workers that failed together
        # do not retry in lockstep, yet the backoff still grows.
        step = min(cap, first * 2.0 ** (attempt - 1))
        return step * random.uniform(0.5, 1.0)

    def _log_retry(self, table: str, attempt: int, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_retry_log >= _RETRY_LOG_EVERY_S:
            self._last_retry_log = now
            log.warning(
                "insert into %s.%s failed (attempt %d, retrying; %d failures in a row): %s",
                self._database,
                table,
                attempt,
                self.stats["consecutive_failures"],
                exc,
            )
        else:
            log.debug("insert into %s.%s failed (attempt %d): %s", self._database, table, attempt, exc)

    def _shape(self, table: str, *, refresh: bool = False) -> TableShape:
        if refresh or table not in self._shapes:
            described = self._client.query(f"DESCRIBE TABLE {self._database}.{table}").named_results()
            columns = tuple(
                (row["name"], row["type"]) for row in described if row["default_type"] not in ("MATERIALIZED", "ALIAS")
            )
            # The cluster form's Distributed table has no partition key; its shard-local table does.
            described_tables = self._client.query(
                "SELECT name, engine, partition_key FROM system.tables "
                "WHERE database = {db:String} AND name IN ({t:String}, {local:String})",
                parameters={"db": self._database, "t": table, "local": local_name(table)},
            ).result_rows
            engines = {str(name): (str(engine), str(key)) for name, engine, key in described_tables}
            distributed = engines.get(table, ("", ""))[0] == "Distributed"
            key = engines.get(local_name(table) if distributed else table, ("", ""))[1]
            column, partition_of = partition_function(key)
            if column not in {name for name, _ in columns}:
                column, partition_of = None, None
            self._shapes[table] = TableShape(columns, column, partition_of, distributed)
        return self._shapes[table]
