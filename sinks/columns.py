"""Turn the processor's Python values into what clickhouse-connect serialises for a column type.

Why this exists: clickhouse-connect picks one conversion per column from the first value, so a
column mixing ``uuid.UUID`` and ``str`` fails mid-batch; a ``None`` in a non-Nullable String
raises; a naive datetime is read in the process's local timezone; and a Decimal with too many
places is truncated silently. Normalising here makes those cases either well-defined or a
``ValueError`` raised before any I/O, so the writer can tell bad data (never retried) from a
failed insert (retried).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

__all__ = ["coercer_for"]

Coercer = Callable[[Any], Any]
_INT_RE = re.compile(r"^(U?)Int(\d+)$")
# What the server can store: outside these ranges ClickHouse does not refuse a value, it wraps
# or clamps it (year 1 is stored as written and then breaks every reader's date parsing), so the
# range is checked here and an out-of-range value becomes a rejected row.
_DATETIME64_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2299, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
_DATETIME_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC))


def _wrapped(type_name: str, prefix: str) -> str | None:
    if type_name.startswith(prefix + "(") and type_name.endswith(")"):
        return type_name[len(prefix) + 1 : -1].strip()
    return None


@lru_cache(maxsize=256)
def coercer_for(type_name: str) -> Coercer:
    """Return a function normalising one value for the ClickHouse type ``type_name``.

    Rules: Nullable passes ``None``; otherwise ``None`` becomes the type's zero value ('' / 0 /
    [] / False) except for UUID and DateTime, which have no meaningful default and raise.
    """
    type_name = type_name.strip()
    inner = _wrapped(type_name, "LowCardinality")
    if inner is not None:
        return coercer_for(inner)
    inner = _wrapped(type_name, "Nullable")
    if inner is not None:
        base = coercer_for(inner)
        return lambda v: None if v is None else base(v)
    inner = _wrapped(type_name, "Array")
    if inner is not None:
        element = coercer_for(inner)

        def array(v: Any) -> list[Any]:
            if v is None:
                return []
            if isinstance(v, (str, bytes, dict)):
                raise ValueError(f"expected a list for {type_name}, got {type(v).__name__}")
            return [element(x) for x in v]

        return array
    if type_name == "String" or type_name.startswith("FixedString("):
        return _string
    if type_name == "UUID":
        return _uuid
    if type_name.startswith("DateTime64"):
        return _bounded_datetime(_DATETIME64_RANGE, "DateTime64")
    if type_name.startswith("DateTime"):
        return _bounded_datetime(_DATETIME_RANGE, "DateTime")
    if type_name == "Bool":
        return _bool
    match = _INT_RE.match(type_name)
    if match:
        return _integer(unsigned=bool(match.group(1)), bits=int(match.group(2)))
    if type_name.startswith("Float"):
        return _float
    if type_name.startswith("Decimal("):
        precision, scale = (int(p) for p in type_name[len("Decimal(") : -1].split(","))
        return _decimal(precision, scale)
    return lambda v: v  # types the pipeline does not use pass through untouched


def _string(v: Any) -> str:
    if v.__class__ is str:
        return v
    if v is None:
        return ""
    if isinstance(v, str):
        return str.__str__(v)  # the text of a str subclass (e.g. a str-mixin Enum), not its repr-ish str()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", errors="replace")
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    raise ValueError(f"expected text, got {type(v).__name__}")


def _uuid(v: Any) -> uuid.UUID:
    if isinstance(v, uuid.UUID):
        return v
    if isinstance(v, str):
        try:
            return uuid.UUID(v)
        except ValueError:
            raise ValueError(f"not a UUID: {v!r}") from None
    raise ValueError(f"expected a UUID, got {type(v).__name__}")


def _datetime(v: Any) -> datetime:
    if isinstance(v, datetime):
        # Naive means UTC in this pipeline; clickhouse-connect would use the local zone instead.
        return v if v.tzinfo is not None else v.replace(tzinfo=UTC)
    if isinstance(v, str):
        try:
            return _datetime(datetime.fromisoformat(v))
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {v!r}") from None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        try:
            return datetime.fromtimestamp(v, tz=UTC)
        except (OverflowError, OSError):
            raise ValueError(f"timestamp {v!r} out of range") from None
    raise ValueError(f"expected a datetime, got {type(v).__name__}")


def _bounded_datetime(bounds: tuple[datetime, datetime], kind: str) -> Coercer:
    low, high = bounds

    def bounded(v: Any) -> datetime:
        value = _datetime(v)
        if not low <= value <= high:
            raise ValueError(f"{value.isoformat()} outside the {kind} range [{low.date()}, {high.date()}]")
        return value

    return bounded


def _bool(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, (bool, int)):
        return bool(v)
    raise ValueError(f"expected a bool, got {type(v).__name__}")


def _integer(*, unsigned: bool, bits: int) -> Coercer:
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)

    def integer(v: Any) -> int:
        if v is None:
            return 0
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int):
            raise ValueError(f"expected an integer, got {type(v).__name__}")
        if not low <= v <= high:
            raise ValueError(f"{v} out of range [{low}, {high}]")
        return int(v)

    return integer


def _float(v: Any) -> float:
    if v is None:
        return 0.0
    if isinstance(v, (int, float, Decimal)) and not isinstance(v, bool):
        return float(v)
    raise ValueError(f"expected a number, got {type(v).__name__}")


def _decimal(precision: int, scale: int) -> Coercer:
    quantum = Decimal(1).scaleb(-scale)
    limit = Decimal(10) ** (precision - scale)

    def decimal(v: Any) -> Decimal:
        if v is None:
            return Decimal(0)
        if isinstance(v, bool) or not isinstance(v, (Decimal, int, float, str)):
            raise ValueError(f"expected a decimal number, got {type(v).__name__}")
        try:
            # str() first: Decimal(0.1) would carry the binary float's 55 digits.
            d = (v if isinstance(v, Decimal) else Decimal(str(v))).quantize(quantum, ROUND_HALF_EVEN)
        except InvalidOperation:
            raise ValueError(f"not a decimal number within Decimal({precision}, {scale}): {v!r}") from None
        if not d.is_finite() or abs(d) >= limit:
            raise ValueError(f"{v!r} does not fit Decimal({precision}, {scale})")
        return d

    return decimal
