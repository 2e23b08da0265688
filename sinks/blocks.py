"""Rows to insert blocks: per-column conversion with per-row rejection, grouping by partition.

Why group by partition: ClickHouse refuses an insert block that touches more than
``max_partitions_per_insert_block`` (100) partitions, and a backfill spanning years of monthly
partitions is an ordinary batch. One insert per partition stays under any such limit, and gives
each insert its own deterministic deduplication token (batch token + table + partition).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from .columns import coercer_for

__all__ = [
    "TableShape",
    "Block",
    "Converted",
    "convert",
    "partition_function",
    "group_by_partition",
    "row_keys",
    "IDENTITY_COLUMNS",
]

# Where a row's identity lives, in order of preference (the first column the table has).
IDENTITY_COLUMNS = ("event_id", "id", "detection_id", "change_id", "breach_id")
_PARTITION_RE = re.compile(r"^\s*(toYYYYMM|toYYYYMMDD|toDate|toStartOfMonth)?\(?\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)?\s*$")

PartitionOf = Callable[[Any], str]


@dataclass(frozen=True)
class TableShape:
    """What the writer needs to know about a table: insertable columns and how it is partitioned.

    ``partition_column`` / ``partition_of``: the column the partition key reads and a function
    from that column's converted value to the partition's label; both ``None`` when the table is
    not partitioned or its key is an expression this module does not evaluate (then a batch is
    one block, and a too-wide block is split by the writer instead). For a Distributed table
    they describe its local table's partitioning (the Distributed table has none of its own).
    """

    columns: tuple[tuple[str, str], ...]
    partition_column: str | None = None
    partition_of: PartitionOf | None = None
    distributed: bool = False  # a Distributed table (cluster form): rows go to their shards' local tables

    @property
    def identity_column(self) -> str | None:
        names = {name for name, _ in self.columns}
        return next((c for c in IDENTITY_COLUMNS if c in names), None)


def partition_function(partition_key: str) -> tuple[str | None, PartitionOf | None]:
    """Evaluate the partition keys tokentrail's tables use (``toYYYYMM(ts)``) in Python."""
    match = _PARTITION_RE.match(partition_key or "")
    if not partition_key or match is None:
        return None, None
    function, column = match.groups()

    def utc(value: Any) -> date:
        return value.astimezone(UTC) if isinstance(value, datetime) else value

    formats: dict[str | None, PartitionOf] = {
        "toYYYYMM": lambda v: utc(v).strftime("%Y%m"),
        "toYYYYMMDD": lambda v: utc(v).strftime("%Y%m%d"),
        "toDate": lambda v: utc(v).strftime("%Y-%m-%d"),
        "toStartOfMonth": lambda v: utc(v).strftime("%Y-%m-01"),
        None: str,
    }
    return column, formats[function]


@dataclass
class Block:
    """Column-oriented values for one insert; ``rows`` maps each position to the caller's index."""

    names: list[str]
    types: list[str]
    columns: list[list[Any]]
    rows: list[int]

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, positions: Sequence[int]) -> Block:
        """A block of the given positions (in that order)."""
        return Block(
            self.names,
            self.types,
            [[column[p] for p in positions] for column in self.columns],
            [self.rows[p] for p in positions],
        )

    def halves(self) -> tuple[Block, Block]:
        middle = len(self) // 2
        return self.take(range(middle)), self.take(range(middle, len(self)))


@dataclass
class Converted:
    """Every row converted, plus the rows that could not be: index -> (column, reason)."""

    block: Block
    failures: dict[int, tuple[str, str]]


def convert(rows: Sequence[Mapping[str, Any]], shape: TableShape, keys: set[str] | None = None) -> Converted:
    """Convert each column for its type; a value that does not fit fails its row, not the batch.

    The happy path converts a column in one comprehension; only a column with a failure is
    walked again row by row to find which rows fail and why. Failed rows keep a ``None``
    placeholder here and must be dropped (``Block.take``) before inserting. ``keys``: the
    columns the rows name, when the caller has already collected them (see :func:`row_keys`).
    """
    if keys is None:
        keys = row_keys(rows)
    names: list[str] = []
    types: list[str] = []
    columns: list[list[Any]] = []
    failures: dict[int, tuple[str, str]] = {}
    for name, type_name in shape.columns:
        if name not in keys:
            continue  # left to the column's DEFAULT
        coerce = coercer_for(type_name)
        try:
            values = [coerce(row.get(name)) for row in rows]
        except (ValueError, TypeError, OverflowError):
            values = []
            for index, row in enumerate(rows):
                try:
                    values.append(coerce(row.get(name)))
                except (ValueError, TypeError, OverflowError) as exc:
                    values.append(None)
                    failures.setdefault(index, (name, f"{name} ({type_name}): {exc}"))
        names.append(name)
        types.append(type_name)
        columns.append(values)
    return Converted(Block(names, types, columns, list(range(len(rows)))), failures)


def row_keys(rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Every column name any of ``rows`` carries."""
    keys: set[str] = set()
    for row in rows:
        keys.update(row)
    return keys


def group_by_partition(block: Block, shape: TableShape) -> list[tuple[str, Block]]:
    """Split ``block`` into one block per partition, labelled, in label order (deterministic)."""
    if shape.partition_column is None or shape.partition_of is None or shape.partition_column not in block.names:
        return [("all", block)]
    values = block.columns[block.names.index(shape.partition_column)]
    # The usual batch lies in one partition. The partition functions are monotone (a time
    # truncated, or the value itself), so equal labels for the least and greatest value mean one
    # partition: found by two C-speed scans instead of formatting every row's value in Python.
    if values and None not in values:
        try:
            low, high = min(values), max(values)
        except TypeError:  # values of a type the columns module passes through, not comparable
            pass
        else:
            label = shape.partition_of(low)
            if label == shape.partition_of(high):
                return [(label, block)]
    positions: dict[str, list[int]] = {}
    for position, value in enumerate(values):
        positions.setdefault(shape.partition_of(value) if value is not None else "null", []).append(position)
    if len(positions) == 1:
        return [(next(iter(positions)), block)]
    return [(label, block.take(positions[label])) for label in sorted(positions)]
