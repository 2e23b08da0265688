"""The bounds of the v1 contract (docs/events.md, "Bounds"): every bound holds at its limit, fails one past
it with its reason and field, and every valid event fits the store's columns."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from event_samples import BASES, OUTPUT, PROMPT, TOOL, accepted, event, rejected

from tokentrail.collectors.event_bounds import (
    LABEL_PATTERN,
    MAX_DURATION_MS,
    MAX_TOKENS,
    MAX_TOOL_CALLS,
    TS_MAX,
    TS_MIN,
    TsWindow,
)
from tokentrail.collectors.events import (
    REASONS,
    InvalidEvent,
    PromptEvent,
    decode_event,
    event_json_schema,
)

MIGRATIONS = Path(__file__).resolve().parents[2] / "sinks" / "migrations"


def test_the_bases_are_valid():
    """The three events the other tests mutate are valid as they stand (else every rejection proves nothing)."""
    assert [accepted(base).type for base in BASES.values()] == ["prompt", "output", "tool_call"]


# -- numbers ----------------------------------------------------------------------------------

TOKEN_FIELDS = ["input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"]


@pytest.mark.parametrize("name", TOKEN_FIELDS)
def test_token_counts_up_to_a_billion(name):
    """Each usage count may be 10^9; one more, the issue's 5,000,000,000,000 or 10^30 is out_of_range."""
    usage = {**OUTPUT["usage"], name: MAX_TOKENS}
    assert getattr(accepted({**OUTPUT, "usage": usage}).usage, name) == 10**9
    for value in (MAX_TOKENS + 1, 5_000_000_000_000, 10**30):
        assert rejected({**OUTPUT, "usage": {**usage, name: value}}) == ("out_of_range", f"usage.{name}")
    assert rejected({**OUTPUT, "usage": {**usage, name: -1}}) == ("invalid_value", f"usage.{name}")


def test_an_integer_too_long_to_parse_is_out_of_range():
    """A 5,000-digit integer is valid JSON the parser refuses: out_of_range for the whole message, no exception."""
    raw = json.dumps(OUTPUT).replace('"input_tokens": 812', '"input_tokens": ' + "9" * 5000)
    assert rejected(raw) == ("out_of_range", "")


DURATIONS = [("output", "latency_ms"), ("output", "ttft_ms"), ("tool_call", "tool.duration_ms")]


@pytest.mark.parametrize("kind, path", DURATIONS)
def test_durations_are_finite_and_at_most_a_day(kind, path):
    """latency_ms, ttft_ms, tool.duration_ms: a day is valid; NaN, ±Infinity, 1e400 not_finite; 1e308 out_of_range."""
    base = BASES[kind]
    accepted(event(base, path, MAX_DURATION_MS))
    accepted(event(base, path, 0))
    assert rejected(event(base, path, MAX_DURATION_MS + 0.001)) == ("out_of_range", path)
    assert rejected(event(base, path, 1e308)) == ("out_of_range", path)
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        raw = json.dumps(event(base, path, 123.25)).replace("123.25", literal)
        assert rejected(raw) == ("not_finite", path), literal
    assert rejected(event(base, path, -0.5)) == ("invalid_value", path)


def test_non_finite_numbers_in_free_form_values_are_stored_as_null():
    """NaN in params or a tool result is accepted, and the JSON form the processor stores holds null."""
    raw = json.dumps(event(PROMPT, "params", {"temperature": 123.25})).replace("123.25", "NaN")
    assert accepted(raw).model_dump(mode="json")["params"] == {"temperature": None}
    raw = json.dumps(event(TOOL, "tool.result", [1, 123.25])).replace("123.25", "-Infinity")
    assert accepted(raw).model_dump(mode="json")["tool"]["result"] == [1, None]


def column_types(table: str) -> dict[str, str]:
    """Column name -> ClickHouse type of one table, read from the migrations."""
    sql = "\n".join(path.read_text() for path in sorted(MIGRATIONS.glob("*.sql")))
    body = re.search(rf"CREATE TABLE IF NOT EXISTS \$\{{database\}}\.{table}\s*\((.*?)\n\)", sql, re.S)
    assert body, table
    return dict(re.findall(r"^\s+(\w+)\s+([\w(), ']+?)(?:\s+(?:DEFAULT|CODEC)|,?$)", body.group(1), re.M))


def test_every_valid_event_fits_the_store_columns():
    """The bounds fit the columns the event feeds: counts in UInt32, tool_call_count in UInt16, durations Float64."""
    calls = column_types("calls")
    unsigned_max = {"UInt16": 2**16 - 1, "UInt32": 2**32 - 1, "UInt64": 2**64 - 1}
    for name in TOKEN_FIELDS:
        assert unsigned_max[calls[name]] >= MAX_TOKENS, name
    # The four counts of a call summed (a total per call) still fit a UInt32.
    assert 4 * MAX_TOKENS <= unsigned_max["UInt32"]
    assert unsigned_max[calls["tool_call_count"]] >= MAX_TOOL_CALLS
    assert calls["latency_ms"] == calls["ttft_ms"] == "Nullable(Float64)"
    assert column_types("tool_calls")["duration_ms"] == "Nullable(Float64)"
    # DateTime64 holds 1900-01-01 .. 2299-12-31: the fixed ts range lies inside it.
    for table in ("events", "calls", "tool_calls", "pii_findings"):
        assert column_types(table)["ts"] == "DateTime64(3, 'UTC')"
    assert datetime(1900, 1, 1, tzinfo=UTC) <= TS_MIN and TS_MAX <= datetime(2300, 1, 1, tzinfo=UTC)


# -- ts -----------------------------------------------------------------------------------------

RECEIVED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("ts", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z"])
def test_absurd_timestamps_are_out_of_range_with_and_without_a_window(ts):
    """Year 1 and year 9999 are ts_out_of_range whether or not the processor passes its receive time."""
    assert rejected({**OUTPUT, "ts": ts}) == ("ts_out_of_range", "ts")
    assert rejected({**OUTPUT, "ts": ts}, received_at=RECEIVED) == ("ts_out_of_range", "ts")


@pytest.mark.parametrize(
    "ts, valid",
    [
        ("1970-01-01T00:00:00Z", True),
        ("1969-12-31T23:59:59.999Z", False),
        ("1970-01-01T00:30:00+01:00", False),  # 1969-12-31T23:30Z
        ("2199-12-31T23:59:59.999Z", True),
        ("2200-01-01T00:00:00Z", False),
        ("2199-12-31T23:30:00-01:00", False),  # 2200-01-01T00:30Z
    ],
)
def test_the_fixed_ts_range_compares_instants_not_local_times(ts, valid):
    """Without a window ts must lie in 1970-01-01T00:00Z .. 2200-01-01T00:00Z (exclusive), offsets applied."""
    if valid:
        accepted({**OUTPUT, "ts": ts})
    else:
        assert rejected({**OUTPUT, "ts": ts}) == ("ts_out_of_range", "ts")


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_the_receive_time_window_defaults_to_400_days_back_and_1_day_ahead():
    """Both ends are inclusive; a millisecond beyond either is ts_out_of_range, naming the receive time."""
    ms = timedelta(milliseconds=1)
    for inside in (RECEIVED - timedelta(days=400), RECEIVED, RECEIVED + timedelta(days=1)):
        accepted({**OUTPUT, "ts": iso(inside)}, received_at=RECEIVED)
    for outside in (RECEIVED - timedelta(days=400) - ms, RECEIVED + timedelta(days=1) + ms):
        doc = {**OUTPUT, "ts": iso(outside)}
        result = decode_event(json.dumps(doc), received_at=RECEIVED)
        assert isinstance(result, InvalidEvent) and (result.reason, result.field) == ("ts_out_of_range", "ts")
        assert RECEIVED.isoformat() in result.detail
        accepted(doc)  # the contract alone (no receive time) has no window


def test_a_configured_window():
    """TsWindow.of_days sets both sides; an offset in ts is compared as an instant."""
    window = TsWindow.of_days(back=1, ahead=0.25)
    accepted({**OUTPUT, "ts": "2026-11-21T17:59:00+06:00"}, received_at=RECEIVED, ts_window=window)
    assert rejected({**OUTPUT, "ts": "2026-11-20T11:59:59Z"}, received_at=RECEIVED, ts_window=window) == (
        "ts_out_of_range",
        "ts",
    )
    assert rejected({**OUTPUT, "ts": "2026-11-21T18:00:01Z"}, received_at=RECEIVED, ts_window=window)[0] == (
        "ts_out_of_range"
    )
    # A window reaching past the fixed range never widens it.
    huge = TsWindow.of_days(back=365 * 5000, ahead=365 * 5000)
    assert rejected({**OUTPUT, "ts": "0001-01-01T00:00:00Z"}, received_at=RECEIVED, ts_window=huge)[0] == (
        "ts_out_of_range"
    )


def test_a_wrong_call_raises_but_bad_input_never_does():
    """A window without a receive time, a naive receive time or a negative window is a programming error."""
    raw = json.dumps(OUTPUT)
    with pytest.raises(ValueError, match="needs received_at"):
        decode_event(raw, ts_window=TsWindow())
    with pytest.raises(ValueError, match="timezone-aware"):
        decode_event(raw, received_at=datetime(2026, 11, 21))
    with pytest.raises(ValueError, match="back >= 0"):
        TsWindow(back=timedelta(days=-1))


# -- lengths and counts -----------------------------------------------------------------------

# (kind, dotted path, limit)
LENGTHS = [
    ("output", "trace_id", 128),
    ("output", "span_id", 128),
    ("output", "parent_span_id", 128),
    ("output", "session_id", 128),
    ("output", "user_id", 256),
    ("output", "tenant", 128),
    ("output", "service", 128),
    ("output", "environment", 128),
    ("output", "feature", 128),
    ("output", "provider", 128),
    ("output", "prompt_id", 128),
    ("output", "prompt_version", 128),
    ("output", "finish_reason", 128),
    ("output", "model", 256),
    ("output", "response_model", 256),
    ("output", "tool_calls.0.name", 256),
    ("output", "tool_calls.0.id", 128),
    ("output", "error.type", 256),
    ("prompt", "tools.0", 256),
    ("tool_call", "tool.name", 256),
    ("tool_call", "tool.call_id", 128),
]


@pytest.mark.parametrize("kind, path, limit", LENGTHS)
def test_string_lengths(kind, path, limit):
    """Ids and labels are valid at their limit and too_long one character past it."""
    accepted(event(BASES[kind], path, "x" * limit))
    assert rejected(event(BASES[kind], path, "x" * (limit + 1))) == ("too_long", path)


def test_message_and_output_parts_have_lengths_too():
    """messages[].name ≤ 256, messages[].tool_call_id ≤ 128, output[].role ≤ 64."""
    message = {"role": "tool", "content": "{}", "name": "n" * 256, "tool_call_id": "c" * 128}
    accepted({**PROMPT, "messages": [message]})
    assert rejected({**PROMPT, "messages": [{**message, "name": "n" * 257}]}) == ("too_long", "messages.0.name")
    assert rejected({**PROMPT, "messages": [{**message, "tool_call_id": "c" * 129}]}) == (
        "too_long",
        "messages.0.tool_call_id",
    )
    accepted({**OUTPUT, "output": [{"role": "r" * 64, "content": "ok"}]})
    assert rejected({**OUTPUT, "output": [{"role": "r" * 65, "content": "ok"}]}) == ("too_long", "output.0.role")


def test_attributes_are_bounded_and_their_keys_never_become_field_names():
    """≤ 128 entries, keys ≤ 128, values ≤ 4096; a reported field writes the sender's key as `*`."""
    accepted({**OUTPUT, "attributes": {f"k{i:03}": "v" * 4096 for i in range(128)}})
    many = {f"k{i:03}": "v" for i in range(129)}
    assert rejected({**OUTPUT, "attributes": many}) == ("too_long", "attributes")
    email = "jane.doe@corp.internal"
    result = decode_event(json.dumps({**OUTPUT, "attributes": {email: "v" * 4097}}))
    assert isinstance(result, InvalidEvent) and (result.reason, result.field) == ("too_long", "attributes.*")
    assert email not in result.field + result.detail
    assert rejected({**OUTPUT, "attributes": {email * 10: "v"}}) == ("too_long", "attributes.*.[key]")
    assert rejected({**OUTPUT, "attributes": {email: 5}}) == ("wrong_type", "attributes.*")


def test_a_bad_arguments_value_names_the_field_not_the_union_member():
    """arguments of the wrong type is reported at `tool.arguments` / `tool_calls.N.arguments`."""
    assert rejected(event(TOOL, "tool.arguments", 5)) == ("wrong_type", "tool.arguments")
    assert rejected(event(OUTPUT, "tool_calls.0.arguments", [1])) == ("wrong_type", "tool_calls.0.arguments")


def test_tool_call_and_tool_list_counts():
    """An output may ask for 1024 tools (tool_call_count is UInt16), a prompt may offer 1024."""
    call = OUTPUT["tool_calls"][0]
    accepted({**OUTPUT, "tool_calls": [call] * MAX_TOOL_CALLS})
    assert rejected({**OUTPUT, "tool_calls": [call] * (MAX_TOOL_CALLS + 1)}) == ("too_long", "tool_calls")
    accepted({**PROMPT, "tools": ["t"] * 1024})
    assert rejected({**PROMPT, "tools": ["t"] * 1025}) == ("too_long", "tools")


def prompt_of_bytes(size: int) -> bytes:
    """A valid prompt of exactly `size` bytes (its one message padded)."""
    bare = json.dumps({**PROMPT, "messages": [{"role": "user", "content": ""}]}).encode()
    raw = json.dumps({**PROMPT, "messages": [{"role": "user", "content": "x" * (size - len(bare))}]}).encode()
    assert len(raw) == size
    return raw


def test_big_but_legal_events_stay_valid():
    """A 20,000-message prompt and an event of exactly 1 MiB validate; one byte more is too_large."""
    messages = [{"role": "user" if i % 2 else "assistant", "content": f"turn {i}"} for i in range(20_000)]
    raw = json.dumps({**PROMPT, "messages": messages}).encode()
    assert len(raw) < 1 << 20
    assert len(accepted(raw).messages) == 20_000
    accepted({**PROMPT, "messages": [{"role": "user", "content": "x" * 900_000}]})
    assert isinstance(accepted(prompt_of_bytes(1 << 20)), PromptEvent)
    assert rejected(prompt_of_bytes((1 << 20) + 1)) == ("too_large", "")


@pytest.mark.parametrize("depth, reason", [(199, None), (200, "too_deep"), (3000, "too_deep")])
def test_nesting_depth(depth, reason):
    """200 levels below the event object parse; deeper (3,000 levels included) is too_deep, never a RecursionError."""
    # params is level 1 below the event object; `depth` more arrays inside it.
    raw = json.dumps(PROMPT)[:-1] + ', "params": {"a": ' + "[" * depth + "]" * depth + "}}"
    if reason is None:
        accepted(raw)
    else:
        assert rejected(raw) == (reason, "")


def test_the_json_schema_states_the_bounds():
    """`tokentrail schema events` publishes the ceilings, lengths, counts and the label pattern."""
    defs = event_json_schema()["$defs"]
    out = defs["OutputEvent"]["properties"]
    assert defs["Usage"]["properties"]["input_tokens"]["maximum"] == MAX_TOKENS
    assert out["latency_ms"]["anyOf"][0]["maximum"] == MAX_DURATION_MS
    assert out["tenant"]["maxLength"] == 128 and out["tenant"]["pattern"] == LABEL_PATTERN
    assert out["model"]["maxLength"] == 256
    assert out["tool_calls"]["maxItems"] == MAX_TOOL_CALLS
    assert out["attributes"]["maxProperties"] == 128
    assert out["attributes"]["propertyNames"] == {"maxLength": 128}
    assert "1970" in out["ts"]["description"] and "2200" in out["ts"]["description"]


# -- every reason -----------------------------------------------------------------------------

ONE_CASE_PER_REASON = {
    "not_json": b"{not json",
    "not_object": b"[]",
    "too_large": json.dumps({**OUTPUT, "attributes": {"a": "x" * 4000}}).encode(),  # with max_bytes=1000 below
    "too_deep": json.dumps(PROMPT)[:-1] + ', "params": ' + "[" * 500 + "]" * 500 + "}",
    "unsupported_schema_version": json.dumps({**OUTPUT, "schema_version": 2}),
    "unknown_type": json.dumps({**OUTPUT, "type": "span"}),
    "missing_field": json.dumps({k: v for k, v in OUTPUT.items() if k != "usage"}),
    "wrong_type": json.dumps({**OUTPUT, "tenant": 7}),
    "invalid_value": json.dumps({**OUTPUT, "event_id": "not-a-uuid"}),
    "out_of_range": json.dumps({**OUTPUT, "usage": {"input_tokens": 5_000_000_000_000, "output_tokens": 1}}),
    "not_finite": json.dumps({**OUTPUT, "latency_ms": 1.5}).replace("1.5", "NaN"),
    "too_long": json.dumps({**OUTPUT, "tenant": "t" * 129}),
    "forbidden_character": json.dumps({**OUTPUT, "tenant": "north\u202ewind"}),
    "blank": json.dumps({**OUTPUT, "tenant": " "}),
    "ts_out_of_range": json.dumps({**OUTPUT, "ts": "9999-12-31T23:59:59Z"}),
}


def test_every_reason_is_reachable():
    """Each reason in REASONS is what the validator says for at least one input (no dead reasons, no unlisted ones)."""
    assert set(ONE_CASE_PER_REASON) == set(REASONS)
    for reason, raw in ONE_CASE_PER_REASON.items():
        result = decode_event(raw, max_bytes=1000 if reason == "too_large" else 1 << 20)
        assert isinstance(result, InvalidEvent) and result.reason == reason, (reason, result)
