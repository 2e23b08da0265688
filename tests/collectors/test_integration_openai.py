"""The OpenAI integration, driven through the real `openai` SDK with only its HTTP layer stubbed.

No provider can be reached from this machine, so each client gets an
`httpx2.Client(transport=httpx2.MockTransport(handler))` (httpx2 is the HTTP library the installed
openai 3.x uses by default) whose handler answers with the JSON and SSE bodies the API sends. The
SDK builds, sends and parses them as in production, so these tests exercise the real client code;
they assert on the events that reach an InMemoryTransport, each decoded and validated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from typing import Any

import httpx2
import openai
import pytest
from provider_standin import RecordingProvider

import tokentrail.collectors as tt
from tokentrail.collectors.integrations import openai as integration
from tokentrail.collectors.integrations.openai import instrument_openai

MODEL = "gpt-4o-2024-08-06"
USAGE = {
    "prompt_tokens": 812,
    "completion_tokens": 24,
    "total_tokens": 836,
    "prompt_tokens_details": {"cached_tokens": 512, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 8, "audio_tokens": 0},
}
MESSAGES = [
    {"role": "developer", "content": "You are terse."},
    {
        "role": "user",
        "name": "ada",
        "content": [
            {"type": "text", "text": "What is in this photo?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    },
]


class FakeOpenAI(RecordingProvider):
    """Answers like api.openai.com."""

    def client(self, max_retries: int = 0) -> openai.OpenAI:
        return openai.OpenAI(
            api_key="sk-test", max_retries=max_retries, http_client=httpx2.Client(transport=httpx2.MockTransport(self))
        )

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key="sk-test", max_retries=0, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(self))
        )


def completion(
    content: str | None = "It shipped on Monday.", tool_calls: list[dict[str, Any]] | None = None, finish: str = "stop"
) -> httpx2.Response:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1732000000,
            "model": MODEL,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": USAGE,
            "system_fingerprint": "fp_1",
        },
    )


def chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = "absent") -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 1732000000,
        "model": MODEL,
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage != "absent":
        body["usage"] = usage
    return body


def sse(events: list[dict[str, Any]], delay: float = 0.0, done: bool = True) -> httpx2.Response:
    """A text/event-stream body; with `delay`, each event arrives that much after the previous one."""
    frames = [f"data: {json.dumps(e)}\n\n".encode() for e in events] + ([b"data: [DONE]\n\n"] if done else [])

    def body() -> Any:
        for frame in frames:
            time.sleep(delay)
            yield frame

    return httpx2.Response(
        200, content=body() if delay else b"".join(frames), headers={"content-type": "text/event-stream"}
    )


def streamed_reply(body: dict[str, Any], delay: float = 0.0) -> httpx2.Response:
    """A streamed answer; like the API, it adds the usage chunk (and null usage fields) only when asked."""
    with_usage = (body.get("stream_options") or {}).get("include_usage")
    extra = {"usage": None} if with_usage else {}
    events = [
        chunk({"role": "assistant", "content": ""}, **extra),
        chunk({"content": "It "}, **extra),
        chunk({"content": "shipped."}, **extra),
        chunk({}, "stop", **extra),
    ]
    if with_usage:
        events.append(chunk(None, usage=USAGE))
    return sse(events, delay)


def test_plain_completion(collector, memory, sent):
    """A completion emits a normalised prompt and an output with usage; the caller gets what the plain client gives."""
    server = FakeOpenAI(lambda body: completion())
    client = instrument_openai(
        server.client(), collector, feature="order-support", prompt_id="order_assistant", prompt_version="v3"
    )
    kwargs = dict(model="gpt-4o", messages=MESSAGES, temperature=0.2, max_completion_tokens=300, seed=7)
    result = client.chat.completions.create(**kwargs)
    plain = server.client().chat.completions.create(**kwargs)

    assert type(result) is type(plain) and result.model_dump() == plain.model_dump()
    assert server.requests[0] == server.requests[1], "the request must be sent unchanged"
    prompt, output = sent(collector, memory)
    assert prompt.span_id == output.span_id and (prompt.provider, prompt.model) == ("openai", "gpt-4o")
    assert [(m.role, m.content, m.name) for m in prompt.messages] == [
        ("system", "You are terse.", None),
        ("user", "What is in this photo?\n[image]", "ada"),
    ]
    assert prompt.params == {"temperature": 0.2, "max_tokens": 300, "seed": 7}
    assert (prompt.feature, prompt.tenant, prompt.prompt_id, prompt.prompt_version) == (
        "order-support",
        "northwind",
        "order_assistant",
        "v3",
    )
    assert output.response_model == MODEL and output.finish_reason == "stop" and output.error is None
    assert [(m.role, m.content) for m in output.output] == [("assistant", "It shipped on Monday.")]
    assert output.usage.model_dump() == {
        "input_tokens": 812,
        "output_tokens": 24,
        "cached_input_tokens": 512,
        "reasoning_tokens": 8,
    }
    assert output.latency_ms >= 0 and output.ttft_ms is None


def test_tool_calling_completion(collector, memory, sent):
    """Offered tools, earlier tool calls and results in the history, and the calls the model asks for are recorded."""
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "search_orders", "arguments": '{"order": "7781"}'}}
    ]
    server = FakeOpenAI(lambda body: completion(None, calls, "tool_calls"))
    client = instrument_openai(server.client(), collector, feature="order-support")
    history = [
        {"role": "user", "content": "Where is order 7780?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "search_orders", "arguments": '{"order": "7780"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": '{"status": "delivered"}'},
        {"role": "user", "content": "And 7781?"},
    ]
    tools = [
        {"type": "function", "function": {"name": "search_orders", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "refund", "parameters": {"type": "object"}}},
    ]
    result = client.chat.completions.create(model="gpt-4o", messages=history, tools=tools, tool_choice="auto")

    assert result.choices[0].message.tool_calls[0].function.name == "search_orders"
    prompt, output = sent(collector, memory)
    assert prompt.tools == ["search_orders", "refund"] and prompt.params == {"tool_choice": "auto"}
    assert (
        prompt.messages[1].role == "assistant"
        and prompt.messages[1].content == '[tool_call search_orders {"order": "7780"}]'
    )
    assert (prompt.messages[2].role, prompt.messages[2].tool_call_id) == ("tool", "call_0")
    assert output.output == [] and output.finish_reason == "tool_calls"
    assert [c.model_dump() for c in output.tool_calls] == [
        {"id": "call_1", "name": "search_orders", "arguments": {"order": "7781"}}
    ]


def test_provider_error_is_recorded_and_reraised(collector, memory, sent):
    """An HTTP 429 reaches the caller as the SDK's own RateLimitError; the output event records it."""
    error = {"error": {"message": "Rate limit reached for gpt-4o", "type": "requests", "code": "rate_limit_exceeded"}}
    server = FakeOpenAI(lambda body: httpx2.Response(429, json=error))
    client = instrument_openai(server.client(), collector, feature="f")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.status_code == 429 and caught.value.code == "rate_limit_exceeded"
    prompt, output = sent(collector, memory)
    assert output.finish_reason == "error" and output.error.type == "RateLimitError"
    assert "Rate limit reached" in output.error.message and output.usage.input_tokens == 0


def test_retries_are_one_call(collector, memory, sent):
    """The SDK's retries happen inside one traced call: one prompt, one output, with the final answer."""
    answers = iter(
        [httpx2.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after-ms": "1"}), completion()]
    )
    server = FakeOpenAI(lambda body: next(answers))
    client = instrument_openai(server.client(max_retries=1), collector, feature="f")
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    prompt, output = sent(collector, memory)
    assert len(server.requests) == 2 and output.error is None and output.output[0].content == "It shipped on Monday."


def test_streaming_with_usage_and_ttft(collector, memory, sent):
    """A stream passes every chunk through unchanged, marks the first token, and ends with the joined text and usage."""
    server = FakeOpenAI(lambda body: streamed_reply(body, delay=0.03))
    client = instrument_openai(server.client(), collector, feature="f")
    kwargs = dict(model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    stream = client.chat.completions.create(**kwargs)
    assert isinstance(stream, openai.Stream)
    received = [c.model_dump() for c in stream]
    assert received == [c.model_dump() for c in server.client().chat.completions.create(**kwargs)]
    assert server.requests[0] == server.requests[1]

    prompt, output = sent(collector, memory)
    assert prompt.params == {"stream": True}
    assert (
        output.output[0].content == "It shipped." and output.finish_reason == "stop" and output.response_model == MODEL
    )
    assert output.usage.model_dump() == {
        "input_tokens": 812,
        "output_tokens": 24,
        "cached_input_tokens": 512,
        "reasoning_tokens": 8,
    }
    # The first content ("It ") is the second event, ~60 ms in; the stream ends ~30 ms per event later.
    assert 50 <= output.ttft_ms < output.latency_ms and output.latency_ms >= 140


def test_stream_usage_is_opt_in_and_invisible(collector, memory, sent):
    """Without stream_usage nothing is added; with it, include_usage is requested and its extra chunk withheld."""
    server = FakeOpenAI(streamed_reply)
    kwargs = dict(model="gpt-4o", messages=MESSAGES, stream=True)
    expected = [c.model_dump() for c in server.client().chat.completions.create(**kwargs)]

    default = instrument_openai(server.client(), collector, feature="f")
    assert [c.model_dump() for c in default.chat.completions.create(**kwargs)] == expected
    assert "stream_options" not in server.requests[-1]
    opted_in = instrument_openai(server.client(), collector, feature="f", stream_usage=True)
    assert [c.model_dump() for c in opted_in.chat.completions.create(**kwargs)] == expected
    assert server.requests[-1]["stream_options"] == {"include_usage": True}

    _, without, _, with_usage = sent(collector, memory)
    assert without.usage.input_tokens == 0 and with_usage.usage.input_tokens == 812
    assert without.output[0].content == with_usage.output[0].content == "It shipped."


def test_streamed_tool_call_deltas_are_joined(collector, memory, sent):
    """Tool-call deltas arriving in pieces become one tool call with parsed arguments."""
    events = [
        chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"index": 0, "id": "call_9", "type": "function", "function": {"name": "refund", "arguments": ""}}
                ],
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"order": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"7781"}'}}]}),
        chunk({}, "tool_calls"),
    ]
    client = instrument_openai(FakeOpenAI(lambda body: sse(events)).client(), collector, feature="f")
    assert len(list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))) == 4
    _, output = sent(collector, memory)
    assert [c.model_dump() for c in output.tool_calls] == [
        {"id": "call_9", "name": "refund", "arguments": {"order": "7781"}}
    ]
    assert output.finish_reason == "tool_calls" and output.ttft_ms is not None


def test_stream_closed_early_still_finishes(collector, memory, sent):
    """A stream the caller stops reading and closes finishes the call with what arrived, at once."""
    client = instrument_openai(FakeOpenAI(streamed_reply).client(), collector, feature="f")
    with client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        for item in stream:
            if item.choices[0].delta.content:
                break
    _, output = sent(collector, memory)
    assert output.output[0].content == "It " and output.finish_reason is None and output.error is None


def test_helpers_and_raw_responses(collector, memory, sent):
    """The .stream() and .parse() helpers are traced; with_raw_response still works and records the call's latency."""
    import pydantic

    class Answer(pydantic.BaseModel):
        status: str

    server = FakeOpenAI(
        lambda body: streamed_reply(body) if body.get("stream") else completion('{"status": "shipped"}')
    )
    client = instrument_openai(server.client(), collector, feature="f")
    finals = []
    for c in (client, server.client()):
        with c.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as stream:
            finals.append(stream.get_final_completion().model_dump())
    assert finals[0] == finals[1]
    assert client.chat.completions.parse(model="gpt-4o", messages=MESSAGES, response_format=Answer).choices[
        0
    ].message.parsed == Answer(status="shipped")
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.http_response.status_code == 200 and raw.parse().choices[0].message.content == '{"status": "shipped"}'
    _, streamed, prompt, parsed, _, raw_output = sent(collector, memory)
    assert streamed.output[0].content == "It shipped." and streamed.ttft_ms is not None
    assert prompt.params == {"response_format": "json_schema"} and parsed.output[0].content == '{"status": "shipped"}'
    assert raw_output.output == [] and raw_output.error is None and raw_output.latency_ms >= 0


def test_error_inside_a_stream(collector, memory, sent):
    """An error event mid-stream reaches the caller as the SDK raises it; the output keeps the partial text."""
    events = [
        chunk({"role": "assistant", "content": "It "}),
        {"error": {"message": "The server had an error", "type": "server_error"}},
    ]
    client = instrument_openai(FakeOpenAI(lambda body: sse(events)).client(), collector, feature="f")
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError, match="The server had an error"):
        list(stream)
    _, output = sent(collector, memory)
    assert output.error.type == "APIError" and output.finish_reason == "error" and output.output[0].content == "It "


def test_async_client(collector, memory, sent):
    """AsyncOpenAI: awaited completions, async streams and errors are traced the same way."""

    def reply(body: dict[str, Any]) -> httpx2.Response:
        if body["messages"][-1]["content"] == "fail":
            return httpx2.Response(500, json={"error": {"message": "boom", "type": "server_error"}})
        return streamed_reply(body) if body.get("stream") else completion()

    client = instrument_openai(FakeOpenAI(reply).async_client(), collector, feature="f")

    async def run() -> list[str]:
        result = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        assert isinstance(stream, openai.AsyncStream)
        texts = [c.choices[0].delta.content async for c in stream if c.choices]
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "fail"}])
        return [result.choices[0].message.content, "".join(t or "" for t in texts)]

    assert asyncio.run(run()) == ["It shipped on Monday.", "It shipped."]
    _, plain, _, streamed, _, failed = sent(collector, memory)
    assert plain.usage.input_tokens == 812 and plain.output[0].content == "It shipped on Monday."
    assert streamed.output[0].content == "It shipped." and streamed.ttft_ms is not None
    assert failed.error.type == "InternalServerError"


RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1732000000,
    "status": "completed",
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Let me look that up.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_7",
            "name": "search_orders",
            "arguments": '{"order": "7781"}',
            "status": "completed",
        },
    ],
    "usage": {
        "input_tokens": 300,
        "input_tokens_details": {"cached_tokens": 256},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 16},
        "total_tokens": 340,
    },
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "error": None,
    "incomplete_details": None,
}


def test_responses_api(collector, memory, sent):
    """responses.create: instructions become a system message, input items messages, output items output/tool calls."""
    server = FakeOpenAI(lambda body: httpx2.Response(200, json=RESPONSE))
    client = instrument_openai(server.client(), collector, feature="f")
    result = client.responses.create(
        model="gpt-4.1",
        instructions="You are terse.",
        max_output_tokens=500,
        reasoning={"effort": "low"},
        tools=[{"type": "function", "name": "search_orders", "parameters": {"type": "object"}}, {"type": "web_search"}],
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Where is 7780?"},
                    {"type": "input_image", "image_url": "https://x/y.png"},
                ],
            },
            {"type": "function_call", "call_id": "call_6", "name": "search_orders", "arguments": '{"order": "7780"}'},
            {"type": "function_call_output", "call_id": "call_6", "output": "delivered"},
        ],
    )
    assert result.model_dump() == server.client().responses.create(model="gpt-4.1", input="x").model_dump()
    prompt, output = sent(collector, memory)
    assert [(m.role, m.content, m.tool_call_id) for m in prompt.messages] == [
        ("system", "You are terse.", None),
        ("user", "Where is 7780?\n[image]", None),
        ("assistant", '[tool_call search_orders {"order": "7780"}]', None),
        ("tool", "delivered", "call_6"),
    ]
    assert prompt.params == {"max_tokens": 500, "reasoning_effort": "low"} and prompt.tools == [
        "search_orders",
        "web_search",
    ]
    assert output.response_model == "gpt-4.1-2025-04-14" and output.finish_reason == "tool_calls"
    assert output.output[0].content == "Let me look that up."
    assert output.tool_calls[0].model_dump() == {
        "id": "call_7",
        "name": "search_orders",
        "arguments": {"order": "7781"},
    }
    assert output.usage.model_dump() == {
        "input_tokens": 300,
        "output_tokens": 40,
        "cached_input_tokens": 256,
        "reasoning_tokens": 16,
    }


def test_responses_stream_and_stored_prompt(collector, memory, sent):
    """A streamed response is finished from its final event; a stored prompt's id and version are recorded."""
    final = {**RESPONSE, "output": [RESPONSE["output"][1]]}
    events = [
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": {**final, "status": "in_progress", "output": [], "usage": None},
        },
        {
            "type": "response.output_text.delta",
            "sequence_number": 1,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "Let me ",
        },
        {
            "type": "response.output_text.delta",
            "sequence_number": 2,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "look that up.",
        },
        {"type": "response.completed", "sequence_number": 3, "response": final},
    ]
    server = FakeOpenAI(lambda body: sse(events, done=False))
    client = instrument_openai(server.client(), collector, feature="f")
    stream = client.responses.create(
        model="gpt-4.1", prompt={"id": "pmpt_order", "version": "4"}, input="Where is 7781?", stream=True
    )
    assert [e.type for e in stream] == [e["type"] for e in events]
    prompt, output = sent(collector, memory)
    assert (prompt.prompt_id, prompt.prompt_version) == ("pmpt_order", "4")
    assert output.output[0].content == "Let me look that up." and output.finish_reason == "stop"
    assert output.usage.input_tokens == 300 and output.ttft_ms is not None


def test_calls_nest_under_a_trace(collector, memory, sent):
    """Inside trace(feature=...), calls join that trace and take its feature; outside, the instrument default holds."""
    server = FakeOpenAI(lambda body: httpx2.Response(200, json=RESPONSE) if "input" in body else completion())
    client = instrument_openai(server.client(), collector, feature="default-feature")
    with collector.trace(feature="refund-drafts", user_id="u-17") as scope:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with collector.tool_call("lookup_refund", call_id="call_1"):
            pass
        client.responses.create(model="gpt-4.1", input="Draft the refund note.")
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    events = sent(collector, memory)
    inside, outside = events[:5], events[5:]
    assert {e.trace_id for e in inside} == {scope.trace_id} and outside[0].trace_id != scope.trace_id
    assert {e.feature for e in inside} == {"refund-drafts"} and {e.user_id for e in inside} == {"u-17"}
    assert all(e.parent_span_id == scope.context.span_id for e in inside)
    assert {e.feature for e in outside} == {"default-feature"}


def test_default_collector_is_looked_up_at_call_time(collector, memory, monkeypatch, sent):
    """With no collector given, calls go to the module-level one in force at call time (a no-op before init)."""
    client = instrument_openai(FakeOpenAI(lambda body: completion()).client(), feature="f")
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content
    assert memory.records == []
    monkeypatch.setattr(tt, "_collector", collector)  # what tt.init(...) does
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [e.type for e in sent(collector, memory)] == ["prompt", "output"]


def test_copies_are_instrumented_and_reinstrumenting_does_not_stack(collector, memory, sent):
    """with_options() keeps the instrumentation; instrumenting again replaces the options instead of adding a layer."""
    client = instrument_openai(FakeOpenAI(lambda body: completion()).client(), collector, feature="first")
    client.with_options(timeout=5).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    instrument_openai(client, collector, feature="second")
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [(e.type, e.feature) for e in sent(collector, memory)] == [
        ("prompt", "first"),
        ("output", "first"),
        ("prompt", "second"),
        ("output", "second"),
    ]


def test_our_bugs_never_break_the_call(collector, memory, monkeypatch, caplog, sent):
    """A failure in our own code is logged; the caller's completion and every stream chunk still arrive intact."""

    def broken(*args: Any) -> Any:
        raise RuntimeError("bug in tokentrail")

    monkeypatch.setattr(integration, "_chat_request", broken)
    monkeypatch.setattr(integration._ChatStream, "add", broken)
    server = FakeOpenAI(lambda body: streamed_reply(body) if body.get("stream") else completion())
    client = instrument_openai(server.client(), collector, feature="f")
    with caplog.at_level(logging.WARNING, logger="tokentrail.collectors"):
        assert (
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content
            == "It shipped on Monday."
        )
    assert "internal error in request" in caplog.text
    monkeypatch.setattr(integration, "_chat_request", lambda kwargs: {"model": "gpt-4o", "messages": []})
    instrument_openai(client, collector, feature="f")  # the endpoint keeps the functions it was built with
    chunks = [c.model_dump() for c in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)]
    assert chunks == [
        c.model_dump() for c in server.client().chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    ]
    prompt, output = sent(collector, memory)  # the first call recorded nothing; the stream still finished
    assert prompt.messages[0].content == "" and output.error is None


def test_one_shot_iterators_still_reach_the_provider(collector, memory, sent):
    """Messages given as a generator are read once for the event and still sent in full."""
    server = FakeOpenAI(lambda body: completion())
    client = instrument_openai(server.client(), collector, feature="f")
    client.chat.completions.create(model="gpt-4o", messages=(m for m in MESSAGES))
    assert len(server.requests[0]["messages"]) == 2
    prompt, _ = sent(collector, memory)
    assert len(prompt.messages) == 2


def test_bad_arguments_fail_at_instrument_time():
    """Instrumenting something that is not an OpenAI client is a TypeError that names what was given."""
    with pytest.raises(TypeError, match="openai.OpenAI"):
        instrument_openai(object())


def test_importing_the_collector_imports_no_provider_sdk():
    """`import tokentrail.collectors` (and the integration modules themselves) import neither openai nor anthropic."""
    code = (
        "import sys, tokentrail.collectors, tokentrail.collectors.integrations.openai, "
        "tokentrail.collectors.integrations.anthropic\n"
        "print(','.join(m for m in ('openai', 'anthropic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
