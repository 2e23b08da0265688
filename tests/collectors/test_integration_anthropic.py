"""The Anthropic integration, driven through the real `anthropic` SDK with only its HTTP layer stubbed.

No provider can be reached from this machine, so each client gets an
`httpx2.Client(transport=httpx2.MockTransport(handler))` (httpx2 is the HTTP library the installed
anthropic 2.x uses by default) whose handler answers with the JSON and SSE bodies the Messages API
sends. The SDK builds, sends and parses them as in production, so these tests exercise the real
client code; they assert on the events that reach an InMemoryTransport, each decoded and validated.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from typing import Any

import anthropic
import httpx2
import pytest
from provider_standin import RecordingProvider

from tokentrail.collectors.integrations.anthropic import instrument_anthropic

MODEL = "claude-sonnet-4-6"
USAGE = {"input_tokens": 25, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200, "output_tokens": 12}
MESSAGES = [
    {
        "role": "user",
        "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "text", "text": "Is this parcel damaged?"},
        ],
    }
]


class FakeAnthropic(RecordingProvider):
    """Answers like api.anthropic.com."""

    def client(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            api_key="sk-ant-test", max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(self))
        )

    def async_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key="sk-ant-test", max_retries=0, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self))
        )


def message(content: list[dict[str, Any]] | None = None, stop: str = "end_turn") -> httpx2.Response:
    return httpx2.Response(
        200,
        json={
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content
            or [{"type": "text", "text": "Yes, "}, {"type": "text", "text": "the corner is crushed."}],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": USAGE,
        },
    )


def sse(events: list[dict[str, Any]], delay: float = 0.0) -> httpx2.Response:
    """A text/event-stream body; with `delay`, each event arrives that much after the previous one."""
    frames = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]

    def body() -> Any:
        for frame in frames:
            time.sleep(delay)
            yield frame

    return httpx2.Response(
        200, content=body() if delay else b"".join(frames), headers={"content-type": "text/event-stream"}
    )


def text_events(tool: bool = False) -> list[dict[str, Any]]:
    start_usage = {
        "input_tokens": 25,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 200,
        "output_tokens": 1,
    }
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_02",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "the order."}},
        {"type": "content_block_stop", "index": 0},
    ]
    if tool:
        events += [
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "search_orders", "input": {}},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"order": '},
            },
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '"7781"}'},
            },
            {"type": "content_block_stop", "index": 1},
        ]
    return events + [
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 12},
        },
        {"type": "message_stop"},
    ]


EXPECTED_USAGE = {
    "input_tokens": 25 + 1000 + 200,
    "output_tokens": 12,
    "cached_input_tokens": 1000,
    "reasoning_tokens": 0,
}


def test_plain_message(collector, memory, sent):
    """A message emits a normalised prompt and an output whose input tokens include the cached ones."""
    server = FakeAnthropic(lambda body: message())
    client = instrument_anthropic(
        server.client(), collector, feature="returns", prompt_id="damage_check", prompt_version="v2"
    )
    kwargs = dict(
        model="claude-sonnet-4-6",
        max_tokens=256,
        stop_sequences=["###"],
        output_config={"effort": "low"},
        system=[{"type": "text", "text": "You assess parcels.", "cache_control": {"type": "ephemeral"}}],
        messages=MESSAGES,
    )
    result = client.messages.create(**kwargs)
    plain = server.client().messages.create(**kwargs)

    assert type(result) is type(plain) and result.model_dump() == plain.model_dump()
    assert server.requests[0] == server.requests[1], "the request must be sent unchanged"
    prompt, output = sent(collector, memory)
    assert (prompt.provider, prompt.model, prompt.prompt_id, prompt.feature) == (
        "anthropic",
        "claude-sonnet-4-6",
        "damage_check",
        "returns",
    )
    assert [(m.role, m.content) for m in prompt.messages] == [
        ("system", "You assess parcels."),
        ("user", "[image]\nIs this parcel damaged?"),
    ]
    assert prompt.params == {"max_tokens": 256, "stop": ["###"], "reasoning_effort": "low"}
    assert output.response_model == MODEL and output.finish_reason == "stop" and output.error is None
    assert [(m.role, m.content) for m in output.output] == [("assistant", "Yes, the corner is crushed.")]
    assert output.usage.model_dump() == EXPECTED_USAGE


def test_tool_use(collector, memory, sent):
    """Offered tools, tool_use and tool_result blocks in the history, and the model's tool_use are mapped."""
    content = [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_2", "name": "refund", "input": {"order": "7781"}},
    ]
    client = instrument_anthropic(
        FakeAnthropic(lambda body: message(content, "tool_use")).client(), collector, feature="returns"
    )
    history = [
        {"role": "user", "content": "Refund 7781 if it was damaged."},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "inspect", "input": {"order": "7781"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "damaged"}]},
                {"type": "text", "text": "Go ahead."},
            ],
        },
    ]
    tools = [
        {"name": "inspect", "input_schema": {"type": "object"}},
        {"name": "refund", "input_schema": {"type": "object"}},
    ]
    client.messages.create(
        model="claude-sonnet-4-6", max_tokens=256, messages=history, tools=tools, tool_choice={"type": "auto"}
    )
    prompt, output = sent(collector, memory)
    assert prompt.tools == ["inspect", "refund"] and prompt.params["tool_choice"] == "auto"
    assert [(m.role, m.content, m.tool_call_id) for m in prompt.messages] == [
        ("user", "Refund 7781 if it was damaged.", None),
        ("assistant", '[tool_call inspect {"order": "7781"}]', None),
        ("tool", "damaged", "toolu_1"),
        ("user", "Go ahead.", None),
    ]
    assert output.finish_reason == "tool_calls" and output.output[0].content == "Let me check."
    assert [c.model_dump() for c in output.tool_calls] == [
        {"id": "toolu_2", "name": "refund", "arguments": {"order": "7781"}}
    ]


def test_truncated_message_is_length(collector, memory, sent):
    """stop_reason max_tokens is the contract's `length`."""
    client = instrument_anthropic(
        FakeAnthropic(lambda body: message(stop="max_tokens")).client(), collector, feature="f"
    )
    client.messages.create(model="claude-sonnet-4-6", max_tokens=12, messages=MESSAGES)
    _, output = sent(collector, memory)
    assert output.finish_reason == "length"


def test_provider_error_is_recorded_and_reraised(collector, memory, sent):
    """An HTTP 429 reaches the caller as the SDK's own RateLimitError; the output event records it."""
    error = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Number of request tokens has exceeded your per-minute rate limit",
        },
    }
    client = instrument_anthropic(
        FakeAnthropic(lambda body: httpx2.Response(429, json=error)).client(), collector, feature="f"
    )
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES)
    assert caught.value.status_code == 429
    _, output = sent(collector, memory)
    assert output.error.type == "RateLimitError" and "per-minute rate limit" in output.error.message
    assert output.finish_reason == "error"


def test_streaming_with_usage_and_ttft(collector, memory, sent):
    """stream=True passes every event through unchanged; usage merges message_start and message_delta; ttft is set."""
    server = FakeAnthropic(lambda body: sse(text_events(tool=True), delay=0.02))
    client = instrument_anthropic(server.client(), collector, feature="f")
    kwargs = dict(model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES, stream=True)
    stream = client.messages.create(**kwargs)
    assert isinstance(stream, anthropic.Stream)
    received = [e.model_dump() for e in stream]
    assert received == [e.model_dump() for e in server.client().messages.create(**kwargs)]

    prompt, output = sent(collector, memory)
    assert prompt.params["stream"] is True
    assert output.output[0].content == "Checking the order." and output.finish_reason == "tool_calls"
    assert [c.model_dump() for c in output.tool_calls] == [
        {"id": "toolu_1", "name": "search_orders", "arguments": {"order": "7781"}}
    ]
    assert output.usage.model_dump() == EXPECTED_USAGE
    # The first text delta is the fourth frame (~80 ms); the stream runs ~20 ms per frame to the twelfth.
    assert 60 <= output.ttft_ms < output.latency_ms and output.latency_ms >= 200


def test_stream_helper(collector, memory, sent):
    """messages.stream(...) is traced too, and its text_stream and final message are what the plain client gives."""
    server = FakeAnthropic(lambda body: sse(text_events()))
    client = instrument_anthropic(server.client(), collector, feature="f")
    results = []
    for c in (client, server.client()):
        with c.messages.stream(model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES) as stream:
            results.append(("".join(stream.text_stream), stream.get_final_message().model_dump()))
    assert results[0] == results[1] and results[0][0] == "Checking the order."
    prompt, output = sent(collector, memory)
    assert prompt.params["stream"] is True and output.output[0].content == "Checking the order."
    assert output.finish_reason == "stop" and output.usage.model_dump() == EXPECTED_USAGE and output.ttft_ms is not None


def test_error_inside_a_stream(collector, memory, sent):
    """An `error` event mid-stream reaches the caller as the SDK raises it; the output keeps the partial text."""
    events = text_events()[:4] + [{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    client = instrument_anthropic(FakeAnthropic(lambda body: sse(events)).client(), collector, feature="f")
    with pytest.raises(anthropic.APIStatusError, match="Overloaded") as caught:
        for _ in client.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES, stream=True):
            pass
    _, output = sent(collector, memory)
    assert output.error.type == type(caught.value).__name__ and output.finish_reason == "error"
    assert output.output[0].content == "Checking " and output.usage.input_tokens == 1225


def test_stream_closed_early_still_finishes(collector, memory, sent):
    """A stream the caller closes before the end finishes the call with what arrived, at once."""
    client = instrument_anthropic(FakeAnthropic(lambda body: sse(text_events())).client(), collector, feature="f")
    with client.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES, stream=True) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                break
    _, output = sent(collector, memory)
    assert output.output[0].content == "Checking " and output.finish_reason is None and output.error is None


def test_async_client(collector, memory, sent):
    """AsyncAnthropic: awaited messages, async streams and the async stream helper are traced the same way."""
    server = FakeAnthropic(lambda body: sse(text_events()) if body.get("stream") else message())
    client = instrument_anthropic(server.async_client(), collector, feature="f")

    async def run() -> list[str]:
        result = await client.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES)
        stream = await client.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES, stream=True)
        assert isinstance(stream, anthropic.AsyncStream)
        kinds = [event.type async for event in stream]
        async with client.messages.stream(model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES) as helper:
            final = await helper.get_final_message()
        return [result.content[1].text, kinds[-1], final.content[0].text]

    assert asyncio.run(run()) == ["the corner is crushed.", "message_stop", "Checking the order."]
    _, plain, _, streamed, _, helper = sent(collector, memory)
    assert plain.output[0].content == "Yes, the corner is crushed." and plain.usage.input_tokens == 1225
    assert streamed.output[0].content == helper.output[0].content == "Checking the order."
    assert streamed.ttft_ms is not None and helper.ttft_ms is not None


def test_calls_nest_under_a_trace(collector, memory, sent):
    """Calls inside trace(feature=...) share its trace id and feature, with the trace's span as parent."""
    client = instrument_anthropic(FakeAnthropic(lambda body: message()).client(), collector, feature="default-feature")
    with collector.trace(feature="refund-drafts", session_id="s-9") as scope:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES)
        client.with_options(timeout=10).messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES)
    events = sent(collector, memory)
    assert len(events) == 4 and {e.trace_id for e in events} == {scope.trace_id}
    assert {e.feature for e in events} == {"refund-drafts"} and {e.session_id for e in events} == {"s-9"}
    assert all(e.parent_span_id == scope.context.span_id for e in events)
    assert events[0].span_id != events[2].span_id


def test_bad_arguments_fail_at_instrument_time():
    """Instrumenting something that is not an Anthropic client is a TypeError that names what was given."""
    with pytest.raises(TypeError, match="Anthropic client"):
        instrument_anthropic(object())


def test_stream_dropped_unread_still_finishes(collector, memory, sent):
    """A stream the caller never reads nor closes finishes the call when it is collected."""
    client = instrument_anthropic(FakeAnthropic(lambda body: sse(text_events())).client(), collector, feature="f")
    client.messages.create(model="claude-sonnet-4-6", max_tokens=256, messages=MESSAGES, stream=True)
    gc.collect()
    prompt, output = sent(collector, memory)
    assert output.span_id == prompt.span_id and output.output == [] and output.error is None
