"""The batched, idempotent ClickHouse writer the stream processor hands its rows to."""

from __future__ import annotations

import logging
import random
import re
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DataError, NotSupportedError, ProgrammingError

from .columns import coercer_for

__all__ = ["ClickHouseSink", "SinkWriteError", "SinkClosedError"]

log = logging.getLogger(__name__)

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Raised while turning Python values into a block: the same rows fail the same way every time,
# so retrying would only stall the stream. Everything else (server errors, dropped connections,
# a missing table during a deploy) is worth retrying.
_PERMANENT = (
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    OverflowError,
    struct.error,
    DataError,
    ProgrammingError,
    NotSupportedError,
)
_RETRY_LOG_EVERY_S = 30.0
_T = TypeVar("_T")
_Block = tuple[list[str], list[str], list[list[Any]]]  # column names, types, column-major data


class SinkWriteError(RuntimeError):
    """An insert gave up after ``max_attempts``; the batch was not (fully) stored."""


class SinkClosedError(SinkWriteError):
    """The sink was closed before, or while, the batch was being written."""


class ClickHouseSink:
    """Write batches of rows into tokentrail's ClickHouse tables.

    Guarantee: at-least-once; idempotent on the dedup key (``event_id``; ``id`` for deadletter,
    ``(event_id, source)`` for receipts).
    ``write_batch`` returns only once every table's rows are stored; an insert that fails is
    retried with exponential backoff and jitter, forever by default (or ``max_attempts`` times,
    then ``SinkWriteError``), so a caller never acknowledges input whose rows were lost.

    Idempotency has two layers. Each table's insert carries
    ``insert_deduplication_token = f"{token}:{table}"``; the tables keep the last 1000 tokens
    (``non_replicated_deduplication_window``), so a retried or replayed batch with the same token
    is dropped as a whole block and even plain ``count()`` stays exact. The token must therefore
    identify the batch's content (e.g. Kafka partition + first/last offset): ClickHouse does not
    compare rows, and a *different* batch under a reused token is silently dropped. Rows that
    arrive again under another token are collapsed by ``ReplacingMergeTree`` on the dedup key:
    exact with ``FINAL`` at once, and in storage after merges. Tables are written one after
    another, so a batch that gave up may be partly stored; writing it again with the same token
    is the way to finish it.

    Rows are dicts keyed by column name; values are normalised per column type (aware or naive
    UTC datetimes or ISO strings, ``UUID`` or str, ``Decimal``/int/float/str for Decimal,
    ``None`` for Nullable, ``None`` -> '' / 0 / [] elsewhere). Bad data raises ``ValueError``
    before any insert and is not retried. Column names and types are read from the table once
    (``DESCRIBE``) and re-read when a row carries an unknown key, e.g. after a migration.

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
        if not _IDENT_RE.match(database or ""):
            raise ValueError(f"database {database!r} must be a plain identifier")
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
        self._schemas: dict[str, list[tuple[str, str]]] = {}
        self._last_retry_log = float("-inf")
        self.stats = {"batches": 0, "rows": 0, "retries": 0, "gave_up": 0}

    def write_batch(self, rows_by_table: Mapping[str, Sequence[Mapping[str, Any]]], token: str) -> None:
        """Store every table's rows; return only when all are stored (see class docstring)."""
        if self._closed.is_set():
            raise SinkClosedError("ClickHouseSink is closed")
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty string identifying the batch content")
        for table in rows_by_table:
            if not _IDENT_RE.match(table):
                raise ValueError(f"table name {table!r} must be a plain identifier")
        # Convert every table first: bad data then fails before any table was written.
        blocks = {
            table: self._retrying(table, token, partial(self._prepare, table, rows))
            for table, rows in rows_by_table.items()
            if rows
        }
        for table, block in blocks.items():
            dedup_token = f"{token}:{table}"
            self._retrying(table, dedup_token, partial(self._insert, table, block, dedup_token))
            self.stats["rows"] += len(rows_by_table[table])
        self.stats["batches"] += 1

    def close(self) -> None:
        """Refuse further batches and abort a retry loop in progress (it raises SinkClosedError).

        The injected client is left open: the sink does not own it.
        """
        self._closed.set()

    # -- internals --------------------------------------------------------------------------

    def _retrying(self, table: str, token: str, operation: Callable[[], _T]) -> _T:
        """Run ``operation`` until it succeeds; data errors propagate, anything else is retried."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = operation()
            except _PERMANENT:
                raise
            except Exception as exc:
                if self._max_attempts is not None and attempt >= self._max_attempts:
                    self.stats["gave_up"] += 1
                    raise SinkWriteError(
                        f"insert into {self._database}.{table} failed {attempt} times (token {token!r}): {exc}"
                    ) from exc
                self.stats["retries"] += 1
                self._log_retry(table, attempt, exc)
                if self._closed.wait(self._delay(attempt)):
                    raise SinkClosedError(f"sink closed while retrying insert into {table}") from exc
                continue
            if attempt > 1:
                log.info("insert into %s.%s succeeded after %d attempts", self._database, table, attempt)
            return result

    def _insert(self, table: str, block: _Block, dedup_token: str) -> None:
        names, types, columns = block
        self._client.insert(
            table,
            columns,
            column_names=names,
            database=self._database,
            column_type_names=types,
            column_oriented=True,
            settings={"insert_deduplication_token": dedup_token},
        )

    def _delay(self, attempt: int) -> float:
        first, cap = self._backoff
        # Equal jitter: at least half the exponential step, so workers that failed together
        # do not retry in lockstep, yet the backoff still grows.
        step = min(cap, first * 2 ** (attempt - 1))
        return step * random.uniform(0.5, 1.0)

    def _log_retry(self, table: str, attempt: int, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_retry_log >= _RETRY_LOG_EVERY_S:
            self._last_retry_log = now
            log.warning(
                "insert into %s.%s failed (attempt %d, retrying; %d retries so far): %s",
                self._database,
                table,
                attempt,
                self.stats["retries"],
                exc,
            )
        else:
            log.debug("insert into %s.%s failed (attempt %d): %s", self._database, table, attempt, exc)

    def _schema(self, table: str, *, refresh: bool = False) -> list[tuple[str, str]]:
        if refresh or table not in self._schemas:
            described = self._client.query(f"DESCRIBE TABLE {self._database}.{table}").named_results()
            self._schemas[table] = [
                (row["name"], row["type"]) for row in described if row["default_type"] not in ("MATERIALIZED", "ALIAS")
            ]
        return self._schemas[table]

    def _prepare(self, table: str, rows: Sequence[Mapping[str, Any]]) -> _Block:
        """Column names, types and column-oriented data, in the table's column order."""
        keys: set[str] = set()
        for row in rows:
            keys.update(row)
        schema = self._schema(table)
        known = {name for name, _ in schema}
        if not keys <= known:
            schema = self._schema(table, refresh=True)  # a migration may have added columns
            known = {name for name, _ in schema}
            if not keys <= known:
                raise ValueError(f"{self._database}.{table} has no column(s) {sorted(keys - known)}")
        names, types, columns = [], [], []
        for name, type_name in schema:
            if name not in keys:
                continue  # left to the column's DEFAULT
            coerce = coercer_for(type_name)
            try:
                columns.append([coerce(row.get(name)) for row in rows])
            except ValueError:
                _raise_located(f"{self._database}.{table}.{name} ({type_name})", coerce, rows, name)
            names.append(name)
            types.append(type_name)
        return names, types, columns


def _raise_located(where: str, coerce: Any, rows: Sequence[Mapping[str, Any]], name: str) -> None:
    """Re-run a failed column conversion row by row to name the offending row in the error."""
    for index, row in enumerate(rows):
        try:
            coerce(row.get(name))
        except ValueError as exc:
            raise ValueError(f"{where}, row {index}: {exc}") from None
