"""An event, as the exporter thread turns it into wire bytes: compact UTF-8 JSON, one object per event.

With the `orjson` extra installed (`pip install 'tokentrail[orjson]'`) events are encoded by orjson,
about eight times faster than the standard library on a typical prompt event (docs/collector.md has
the figures). Its output is the same bytes as the standard library's (compact separators, UTF-8
rather than `\\u` escapes, the same fallback for other objects), with two exceptions that decode to
the same values or better: a float's exponent has no zero padding (`1.5e-7`, not `1.5e-07`), and
NaN and ±Infinity, which the standard library writes as tokens JSON does not have, become `null`.
What orjson refuses — a lone surrogate, an integer beyond 64 bits, nesting deeper than 254 levels —
goes through the standard library's encoder, as it does when orjson is not installed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .ids import uuid7
from .transports import Record


def _json_fallback(value: Any) -> Any:
    # Tool results and arguments are the user's objects: keep what we can rather than drop the event.
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


# The last whole second, formatted: events cluster in time. One tuple, swapped atomically, so
# several collectors' threads never see a second paired with another second's text.
_second: tuple[int, str] = (-1, "")


def format_ts(epoch_seconds: float) -> str:
    """RFC 3339 with millisecond precision and a `Z`, as docs/events.md shows."""
    global _second
    second = int(epoch_seconds)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{cached[1]}{int((epoch_seconds - second) * 1000):03d}Z"


_encoder = json.JSONEncoder(default=_json_fallback, ensure_ascii=False, separators=(",", ":"))


def dumps_stdlib(event: dict[str, Any]) -> bytes:
    """The standard library's encoding: the reference the orjson path must match."""
    return _encoder.encode(event).encode("utf-8", "surrogatepass")


def _orjson_dumps() -> Callable[[dict[str, Any]], bytes] | None:
    try:
        import orjson
    except ImportError:
        return None
    # Datetimes and dataclasses go through the same fallback as in the standard library's path
    # (orjson would format them itself); int keys become strings, as json.dumps does.
    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    fast = orjson.dumps

    def dumps(event: dict[str, Any]) -> bytes:
        try:
            return fast(event, default=_json_fallback, option=options)
        except TypeError:  # orjson.JSONEncodeError: what orjson cannot encode, the standard library can
            return dumps_stdlib(event)

    return dumps


dumps: Callable[[dict[str, Any]], bytes] = _orjson_dumps() or dumps_stdlib


def encode(item: dict[str, Any] | tuple[Any, ...]) -> Record:
    """Turn a submitted item into wire bytes: an event dict, or `(build, *args)` that makes one here."""
    event = item if isinstance(item, dict) else item[0](*item[1:])
    # Made here, off the caller's thread; once encoded, a spooled or retried event keeps its id.
    if "event_id" not in event:
        event["event_id"] = uuid7()
    if isinstance(event["ts"], float):
        event["ts"] = format_ts(event["ts"])
    return event["trace_id"], dumps(event)
