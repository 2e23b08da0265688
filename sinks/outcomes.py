"""What a write returns and raises, and how a failed insert is classified.

Three kinds of failure, because each needs a different answer:

* a **row** the store cannot take (a value out of range for its column, text that does not
  parse as the column type): the row is rejected, reported as a :class:`Rejection`, and every
  other row is stored. Retrying would fail the same way forever.
* a **batch shape** the store refuses (more partitions in one insert block than
  ``max_partitions_per_insert_block``): the batch is split and the parts inserted.
* the **store** is unavailable (connection refused or reset, timeout, server overloaded, any
  error not known to be about the data): retried with backoff, then :class:`StoreUnavailable`.

Programming errors (a row naming a column the table lacks, a bad setting) raise at once.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from enum import Enum

from clickhouse_connect.driver.exceptions import (
    DatabaseError,
    DataError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
)

__all__ = [
    "Rejection",
    "WriteResult",
    "SinkWriteError",
    "SinkClosedError",
    "StoreUnavailable",
    "Failure",
    "classify",
    "column_named_in",
]

# ClickHouse server error codes that are about a value, not about the server: the same row
# fails the same way on every attempt. Codes from src/Common/ErrorCodes.cpp.
DATA_ERROR_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        377,  # CANNOT_PARSE_UUID
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT
    }
)
TOO_MANY_PARTS = 252  # also "too many parts in partition" (merges behind): that one is the store's
_CODE_RE = re.compile(r"\bCode: (\d+)\b")
_COLUMN_RE = re.compile(r"column `([^`]+)`|column '?([A-Za-z_][A-Za-z0-9_]*)'? ")


class Failure(Enum):
    """How an insert failure is handled (see module docstring)."""

    ROW = "row"  # reject the row(s); with more than one row, split to find them
    SPLIT = "split"  # the batch is too wide: split it, no row is at fault
    STORE = "store"  # retry with backoff, then StoreUnavailable
    BUG = "bug"  # raise at once


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code carried by an exception's message, if any."""
    match = _CODE_RE.search(str(exc))
    return int(match.group(1)) if match else None


def classify(exc: BaseException) -> Failure:
    """Sort an exception raised by an insert into one of the :class:`Failure` kinds.

    OperationalError (connection refused, reset, timeout) is checked first: it subclasses
    DatabaseError. Errors raised while clickhouse-connect serialises values (DataError,
    ValueError, struct.error, ...) are about rows. Anything unknown counts as the store's:
    retrying something harmless is better than discarding a good row.
    """
    if isinstance(exc, OperationalError):
        return Failure.STORE
    if isinstance(exc, (ProgrammingError, NotSupportedError)):
        return Failure.BUG
    if isinstance(exc, (DataError, ValueError, TypeError, OverflowError, struct.error)):
        return Failure.ROW
    if isinstance(exc, DatabaseError):
        code = error_code(exc)
        if code in DATA_ERROR_CODES:
            return Failure.ROW
        if code == TOO_MANY_PARTS and "partitions for single insert" in str(exc).lower():
            return Failure.SPLIT
    return Failure.STORE


def column_named_in(exc: BaseException) -> str:
    """The column an error message names (clickhouse-connect says ``column `n```), or ''."""
    match = _COLUMN_RE.search(str(exc)) or (_COLUMN_RE.search(str(exc.__cause__)) if exc.__cause__ else None)
    if match is None:
        return ""
    return match.group(1) or match.group(2) or ""


@dataclass(frozen=True)
class Rejection:
    """One row the store cannot take; the rest of its batch was stored.

    ``event_id``: the row's identity as text (its ``event_id`` column, or for tables without one
    the table's id column: ``id`` for deadletter, ``detection_id``, ``change_id``, ``breach_id``);
    '' when the row has none. ``index``: the row's position in the list passed for ``table``.
    ``column``: the column whose value was refused ('' when the store did not say).
    """

    event_id: str
    table: str
    column: str
    reason: str
    index: int


@dataclass
class WriteResult:
    """What ``ClickHouseSink.write_batch`` did with a batch.

    ``rejected``: rows refused by the store or by the column checks before it (see
    :class:`Rejection`). ``withheld``: per table, how many rows were not written because another
    row of the same ``event_id`` was rejected (an event is stored whole or not at all, as far as
    the pre-insert checks can tell). ``stored``: per table, rows handed to the store.
    """

    rejected: list[Rejection] = field(default_factory=list)
    withheld: dict[str, int] = field(default_factory=dict)
    stored: dict[str, int] = field(default_factory=dict)

    @property
    def rejected_event_ids(self) -> set[str]:
        """The identities of every rejected row (non-empty ones)."""
        return {r.event_id for r in self.rejected if r.event_id}


class SinkWriteError(RuntimeError):
    """An insert gave up; the batch was not (fully) stored. Do not acknowledge its input."""


class SinkClosedError(SinkWriteError):
    """The sink was closed before, or while, the batch was being written."""


class StoreUnavailable(SinkWriteError):
    """The store kept failing for reasons that are not the data's, past the retry budget.

    ``attempts``: how many times the last insert was tried; ``consecutive_failures``: failed
    attempts in a row across batches since the last success (what an alert should watch);
    ``table``: the table being written; the triggering exception is ``__cause__``.
    """

    def __init__(self, message: str, *, table: str, attempts: int, consecutive_failures: int) -> None:
        super().__init__(message)
        self.table = table
        self.attempts = attempts
        self.consecutive_failures = consecutive_failures
