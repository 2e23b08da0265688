"""Wire encoding: with the orjson extra, events are the same bytes the standard library makes, and still decode."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from tokentrail.collectors import encoding

orjson = pytest.importorskip("orjson", reason="the orjson extra: pip install 'tokentrail[orjson]'")


@dataclasses.dataclass
class Order:
    number: str


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


# What a tool call's arguments and results may hold: the user's objects, not only JSON values.
ODD_VALUES: dict[str, Any] = {
    "text": 'Grüße 👋 "quoted" \\ back\nslash \u2028 \x00 end',
    "numbers": [0, -1, 2**63 - 1, -(2**63), 0.1, 123.456, 1e16, 1e300, -0.0, True, False, None],
    "nested": {"a": [{"b": ({"c": "d"},)}]},
    "int_keys": {1: "one", 2: "two"},
    "when": datetime(2026, 12, 3, 8, 30, 15, 123456, tzinfo=UTC),
    "naive": datetime(2026, 12, 3, 8, 30),
    "set": {"only"},
    "bytes": b"raw \xff",
    "dataclass": Order("7781"),
    "object": Opaque(),
}


def test_orjson_is_the_encoder_when_installed():
    """With orjson importable, the exporter encodes with it (not silently with the standard library)."""
    assert encoding.dumps is not encoding.dumps_stdlib


def test_same_bytes_as_the_standard_library_for_every_kind_of_value():
    """The user's values of every kind encode to exactly the standard library's bytes."""
    for key, value in ODD_VALUES.items():
        event = {"type": "tool_call", "trace_id": "t", "result": value}
        assert encoding.dumps(event) == encoding.dumps_stdlib(event), key


def test_what_orjson_refuses_still_encodes():
    """A lone surrogate, an integer beyond 64 bits and very deep nesting fall back to the standard library."""
    deep: Any = "leaf"
    for _ in range(300):
        deep = [deep]
    for value in ("half a pair \ud83d", 2**70, deep):
        with pytest.raises(orjson.JSONEncodeError):
            orjson.dumps(value)
        event = {"trace_id": "t", "result": value}
        assert encoding.dumps(event) == encoding.dumps_stdlib(event)


def test_documented_differences_decode_to_the_same_values():
    """Small exponents lose their zero padding; NaN and Infinity become null (valid JSON)."""
    event = {"temperature": 1.5e-7, "nan": float("nan"), "inf": float("inf")}
    assert encoding.dumps(event) == b'{"temperature":1.5e-7,"nan":null,"inf":null}'
    assert json.loads(encoding.dumps(event))["temperature"] == json.loads(encoding.dumps_stdlib(event))["temperature"]


def test_a_recorded_model_call_is_byte_identical_and_valid(collector, memory, sent):
    """A real prompt and output, as the exporter sends them, are the standard library's bytes and valid events."""
    messages = [{"role": "system", "content": "Réponds brièvement. 答えは短く。"}, {"role": "user", "content": "7781?"}]
    params = {"temperature": 0.2, "top_p": 0.95, "max_tokens": 400}
    with collector.model_call(provider="openai", model="gpt-4o", messages=messages, feature="f", params=params) as c:
        c.finish(output="Livré ✅", usage={"input_tokens": 12, "output_tokens": 3})
    events = sent(collector, memory)
    assert [e.type for e in events] == ["prompt", "output"]
    for _, value in memory.records:
        assert value == encoding.dumps_stdlib(json.loads(value))


def test_without_orjson_the_standard_library_encodes():
    """Where orjson is not installed, the collector still loads and encodes with the standard library."""
    code = (
        "import sys; sys.modules['orjson'] = None\n"
        "from tokentrail.collectors import encoding\n"
        "assert encoding.dumps is encoding.dumps_stdlib\n"
        "print(encoding.dumps({'a': 'é'}).decode())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '{"a":"é"}'
