"""Hypothesis strategies for the fuzz suite: hostile bytes, arbitrary JSON, mutated valid events, planted PII.

Valid events come from the synthetic generator (`tokentrail.stream.synthetic`), one of each type,
given a fresh `event_id` and a `ts` near now by `fresh_event`, so a mutated or planted event is never
dropped as a duplicate of an earlier example and never falls outside the receive-time window by accident.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tokentrail.stream.synthetic import GeneratorConfig, generate

# ------------------------------------------------------------------------------ valid events


@functools.cache
def base_events() -> tuple[dict[str, Any], ...]:
    """A small pool of valid synthetic events (every type, with and without tool calls / errors)."""
    traffic = generate(GeneratorConfig(seed=11, events=200))
    pool: list[dict[str, Any]] = []
    seen: set[tuple[str, bool, bool]] = set()
    for line in traffic.lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict) or doc.get("schema_version") != 1:
            continue
        shape = (str(doc.get("type")), bool(doc.get("tool_calls")), bool(doc.get("error")))
        if shape not in seen:
            seen.add(shape)
            pool.append(doc)
    return tuple(pool)


_IDS = itertools.count(1)
# Not random: a derandomized run draws the same examples, and only the event ids differ between runs.
_ID_NAMESPACE = uuid.UUID("0d7f6f55-5d1c-4f55-9a7e-6b0f3c7a1e21")


def fresh_event(doc: dict[str, Any]) -> dict[str, Any]:
    """A deep copy with a never-seen event_id and a ts one minute ago (inside any sane receive window)."""
    event = copy.deepcopy(doc)
    event["event_id"] = str(uuid.uuid5(_ID_NAMESPACE, f"fuzz-{next(_IDS)}-{uuid.uuid4()}"))
    event["ts"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event


def encode(doc: Any) -> bytes:
    """JSON as an emitter might write it; NaN/Infinity literals allowed (the parser must cope)."""
    return json.dumps(doc, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


valid_events = st.sampled_from(range(64)).map(lambda i: base_events()[i % len(base_events())])
good_lines = valid_events.map(lambda doc: encode(fresh_event(doc)))

# ------------------------------------------------------------------------------ hostile input

# Characters that break labels, terminals and naive parsers: controls, bidi overrides and isolates,
# zero-width, line/paragraph separators, BOM, tag characters, lone surrogates, noncharacters.
NASTY_CHARS = (
    "\x00\x01\x07\x08\t\n\r\x1b\x7f\x85\x9f\xad\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202b"
    "\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069\ufeff\ufffe\uffff\U000e0001\U000e0041\ud800\udfff"
    "\u0308e\u00e9\u0301"
)
nasty_text = st.text(alphabet=st.sampled_from(NASTY_CHARS) | st.characters(), max_size=40)

HUGE_NUMBERS = [
    5_000_000_000_000,
    2**32,
    2**32 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    -1,
    10**9 + 1,
    1e308,
    -1e308,
    1e-320,
    float("nan"),
    float("inf"),
    float("-inf"),
    4539148803436467,
    0.5,
    True,
]
FAR_DATES = [
    "0001-01-01T00:00:00Z",
    "1-01-15",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00Z",
    "1900-01-01T00:00:00Z",
    "2199-12-31T23:59:59.999Z",
    "2200-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "2026-13-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-11-20T09:00:00+24:00",
    "2026-11-20T09:00:00",
    "99999999999999999999",
    "1700000000",
    "",
    "now",
]


@st.composite
def far_dates(draw: st.DrawFn) -> str:
    """A fixed far or malformed date, or any datetime in 1..9999 with any offset."""
    if draw(st.booleans()):
        return draw(st.sampled_from(FAR_DATES))
    moment = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    offset = draw(st.integers(min_value=-23 * 60, max_value=23 * 60))
    sign = "+" if offset >= 0 else "-"
    return moment.isoformat() + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | nasty_text
    | st.sampled_from(HUGE_NUMBERS)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12) | nasty_text, inner, max_size=4),
    max_leaves=20,
)

EVENT_FIELDS = [
    "schema_version",
    "event_id",
    "type",
    "ts",
    "trace_id",
    "span_id",
    "parent_span_id",
    "session_id",
    "service",
    "environment",
    "tenant",
    "feature",
    "user_id",
    "attributes",
    "provider",
    "model",
    "messages",
    "params",
    "output",
    "tool_calls",
    "usage",
    "latency_ms",
    "ttft_ms",
    "error",
    "tool",
]


@st.composite
def event_shaped_json(draw: st.DrawFn) -> dict[str, Any]:
    """An object with the event's field names and schema_version 1 but arbitrary values (gets past the first checks)."""
    doc: dict[str, Any] = {"schema_version": 1, "type": draw(st.sampled_from(["prompt", "output", "tool_call"]))}
    for name in draw(st.lists(st.sampled_from(EVENT_FIELDS), max_size=len(EVENT_FIELDS), unique=True)):
        if name not in ("schema_version", "type") or draw(st.booleans()):
            doc[name] = draw(json_values)
    return doc


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `doc` (dict keys and list indexes), the root excluded."""
    found: list[tuple[Any, ...]] = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        found.append((*prefix, key))
        found += paths(value, (*prefix, key))
    return found


def get_at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def set_at(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    get_at(doc, path[:-1])[path[-1]] = value


def nest(value: Any, depth: int) -> Any:
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


@st.composite
def replacement(draw: st.DrawFn, old: Any) -> Any:
    """A hostile value in place of `old`: another type, a huge number, a far date, deep nesting, nasty or long text."""
    kind = draw(
        st.sampled_from(["json", "number", "date", "deep", "nasty", "long", "wrap_text", "float_of_int", "empty"])
    )
    if kind == "json":
        return draw(json_values)
    if kind == "number":
        return draw(st.sampled_from(HUGE_NUMBERS) | st.integers() | st.floats())
    if kind == "date":
        return draw(far_dates())
    if kind == "deep":
        return nest(old, draw(st.sampled_from([50, 199, 200, 201, 300, 600])))
    if kind == "nasty":
        text = old if isinstance(old, str) else ""
        at = draw(st.integers(min_value=0, max_value=len(text)))
        return text[:at] + draw(nasty_text) + text[at:]
    if kind == "long":
        return draw(st.sampled_from("x\u202e\u00e9\U0001f600 ")) * draw(st.sampled_from([129, 257, 4097, 70_000]))
    if kind == "wrap_text":
        return str(old)
    if kind == "float_of_int":
        return float(old) if isinstance(old, int) and not isinstance(old, bool) else old
    return {} if isinstance(old, dict) else [] if isinstance(old, list) else ""


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    """A valid event with 1-3 hostile mutations at arbitrary paths (replace, delete, add a field), encoded."""
    doc = fresh_event(draw(valid_events))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        targets = paths(doc)
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "ts"]))
        if action == "ts":
            doc["ts"] = draw(far_dates())
            continue
        if action == "add" or not targets:
            where = get_at(doc, draw(st.sampled_from([(), *[p for p in targets if isinstance(get_at(doc, p), dict)]])))
            where[draw(st.text(max_size=20) | nasty_text)] = draw(json_values)
            continue
        path = draw(st.sampled_from(targets))
        if action == "delete":
            parent = get_at(doc, path[:-1])
            del parent[path[-1]]
        else:
            set_at(doc, path, draw(replacement(get_at(doc, path))))
    raw = encode(doc)
    # Sometimes damage the bytes too: truncate, or splice invalid UTF-8 in.
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "bad_utf8"]))
    if damage == "truncate":
        return raw[: draw(st.integers(min_value=1, max_value=max(1, len(raw) - 1)))]
    if damage == "bad_utf8":
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        return raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + raw[at:]
    return raw
