"""OpenAI integration: every chat completion and response of one client becomes a traced model call.

    from openai import OpenAI
    from tokentrail.collectors.integrations.openai import instrument_openai

    client = instrument_openai(OpenAI(), feature="order-support", prompt_id="order_assistant", prompt_version="v3")
    with tt.trace(feature="refund-drafts"):          # the trace's feature wins over the default above
        client.chat.completions.create(model="gpt-4o", messages=[...])

Covered, sync and async: `chat.completions.create` / `.parse` / `.stream`, `responses.create` /
`.parse` / `.stream` (the stream helpers call `create`), including `stream=True`, and clients made
from this one by `with_options()` / `copy()`. Not covered: `with_raw_response` and
`with_streaming_response` record the prompt and latency but no output; the legacy Completions,
Assistants and Realtime APIs are not instrumented.

Streaming usage: OpenAI sends token counts for a chat stream only when the request says
`stream_options={"include_usage": True}`. By default nothing in the request is changed, so a stream
requested without it is recorded with zero usage. `stream_usage=True` opts in: the option is added
when the caller set no `stream_options`, and the extra usage-only chunk it causes is withheld, so
the caller receives the chunks it would have received (their `usage` field is then an explicit
null: equal under `model_dump()`, visible under `to_dict()`). It is opt-in because OpenAI-compatible
servers and older Azure API versions reject the option, and a 400 is worse than a missing count.
The Responses API always reports usage in its final event.

Tokentrail's options come only from `instrument_openai` and the enclosing `trace(...)`; nothing is
taken from, or added to, the arguments of a call (except the opt-in above).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._common import Accumulator, Endpoint, Options, patch_copies, patch_method
from ._shapes import arg, flatten, get, message, params, render_tool_call, tool_call, tool_names

__all__ = ["instrument_openai"]

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}
CHAT_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "seed": "seed",
    "n": "n",
    "stop": "stop",
    "stream": "stream",
    "reasoning_effort": "reasoning_effort",
    "service_tier": "service_tier",
    "parallel_tool_calls": "parallel_tool_calls",
    "tool_choice": "tool_choice",
    "response_format": "response_format",
    "logprobs": "logprobs",
    "top_logprobs": "top_logprobs",
    "verbosity": "verbosity",
}
RESPONSES_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_output_tokens": "max_tokens",
    "stream": "stream",
    "max_tool_calls": "max_tool_calls",
    "parallel_tool_calls": "parallel_tool_calls",
    "tool_choice": "tool_choice",
    "service_tier": "service_tier",
    "truncation": "truncation",
    "top_logprobs": "top_logprobs",
    "background": "background",
}
INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
DELTAS = (
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "response.custom_tool_call_input.delta",
)
FINAL = ("response.completed", "response.incomplete", "response.failed")


def instrument_openai(
    client: Any,
    collector: Any = None,
    *,
    feature: str | None = None,
    prompt_id: str | None = None,
    prompt_version: str | None = None,
    provider: str = "openai",
    stream_usage: bool = False,
) -> Any:
    """Trace every model call of an `openai.OpenAI` / `openai.AsyncOpenAI` client; returns the same client.

    collector: None means the module-level one (`tokentrail.collectors.init`), looked up at each call.
    feature: the default when no enclosing `trace(feature=...)` sets one. provider: the name recorded,
    e.g. "azure" or "vllm" for OpenAI-compatible servers. stream_usage: see the module docstring.
    Calling it again on the same client replaces these options.
    """
    import openai  # lazily: importing tokentrail.collectors must never import a provider SDK

    if not isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)):
        raise TypeError(
            f"instrument_openai needs an openai.OpenAI or openai.AsyncOpenAI client, got {type(client).__name__}"
        )
    if collector is not None and not callable(getattr(collector, "model_call", None)):
        raise TypeError(f"collector must be a tokentrail Collector or None, got {type(collector).__name__}")
    options = Options(collector, feature, prompt_id, prompt_version, provider, stream_usage)
    streams = (openai.Stream, openai.AsyncStream)
    chat = Endpoint(_chat_request, _chat_response, _ChatStream, streams, _ask_for_usage)
    responses = Endpoint(_responses_request, _responses_response, _ResponsesStream, streams)
    for name in ("create", "parse"):
        patch_method(client.chat.completions, name, chat, options)
        if hasattr(client, "responses"):
            patch_method(client.responses, name, responses, options)
    patch_copies(
        client,
        lambda new: instrument_openai(
            new,
            collector,
            feature=feature,
            prompt_id=prompt_id,
            prompt_version=prompt_version,
            provider=provider,
            stream_usage=stream_usage,
        ),
    )
    return client


def _usage(usage: Any, input_key: str, output_key: str) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": get(usage, input_key),  # OpenAI's input count already includes the cached tokens
        "output_tokens": get(usage, output_key),
        "cached_input_tokens": get(get(usage, input_key + "_details"), "cached_tokens"),
        "reasoning_tokens": get(get(usage, output_key + "_details"), "reasoning_tokens"),
    }


# -- Chat Completions -----------------------------------------------------------------------------


def _chat_request(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    messages = []
    for msg in arg(kwargs, "messages") or ():
        content = flatten(get(msg, "content"))
        calls = [
            render_tool_call(get(get(c, "function"), "name"), get(get(c, "function"), "arguments"))
            for c in get(msg, "tool_calls") or ()
        ]
        text = "\n".join(t for t in (content, *calls) if t)
        messages.append(message(ROLES.get(get(msg, "role"), "user"), text, get(msg, "name"), get(msg, "tool_call_id")))
    recorded = params(kwargs, CHAT_PARAMS)
    if isinstance(arg(kwargs, "response_format"), type):  # `.parse(response_format=Model)` sends a JSON schema
        recorded["response_format"] = "json_schema"
    return {
        "model": arg(kwargs, "model"),
        "messages": messages,
        "params": recorded,
        "tools": tool_names(arg(kwargs, "tools")) + tool_names(arg(kwargs, "functions")),
    }


def _chat_finish_reason(reason: Any) -> Any:
    return "tool_calls" if reason == "function_call" else reason


def _chat_response(response: Any) -> dict[str, Any] | None:
    choices = get(response, "choices")
    if choices is None:
        return None  # e.g. the raw HTTP response of `with_raw_response`
    output, calls = [], []
    for choice in choices:
        msg = get(choice, "message")
        text = get(msg, "content") or get(msg, "refusal")
        if text:
            output.append({"role": "assistant", "content": text})
        for call in get(msg, "tool_calls") or ():
            if get(call, "type") == "custom":
                custom = get(call, "custom")
                calls.append(tool_call(get(call, "id"), get(custom, "name"), get(custom, "input")))
            else:
                function = get(call, "function")
                calls.append(tool_call(get(call, "id"), get(function, "name"), get(function, "arguments")))
        legacy = get(msg, "function_call")  # the deprecated `functions` API
        if legacy is not None:
            calls.append(tool_call("", get(legacy, "name"), get(legacy, "arguments")))
    return {
        "response_model": get(response, "model"),
        "output": output,
        "tool_calls": calls,
        "finish_reason": _chat_finish_reason(get(choices[0], "finish_reason")) if choices else None,
        "usage": _usage(get(response, "usage"), "prompt_tokens", "completion_tokens"),
    }


def _ask_for_usage(kwargs: dict[str, Any], options: Options) -> dict[str, Any]:
    if options.stream_usage and kwargs.get("stream") is True and arg(kwargs, "stream_options") is None:
        return {**kwargs, "stream_options": {"include_usage": True}}
    return kwargs


class _ChatStream(Accumulator):
    """Chat chunks → the completion they add up to, per choice; tool-call deltas joined by index."""

    def __init__(self, asked: Mapping[str, Any], sent: Mapping[str, Any]) -> None:
        self.withhold_usage = arg(asked, "stream_options") is None and arg(sent, "stream_options") is not None
        self.model: Any = None
        self.usage: Any = None
        self.choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Any) -> None:
        self.model = self.model or get(chunk, "model")
        if get(chunk, "usage") is not None:
            self.usage = get(chunk, "usage")
        for choice in get(chunk, "choices") or ():
            state = self.choices.setdefault(get(choice, "index") or 0, {"text": [], "calls": {}, "finish": None})
            delta = get(choice, "delta")
            text = get(delta, "content") or get(delta, "refusal")
            if text:
                state["text"].append(text)
                self.content_seen = True
            deltas = list(get(delta, "tool_calls") or ())
            if get(delta, "function_call") is not None:
                deltas.append({"index": -1, "function": get(delta, "function_call")})
            for part in deltas:
                self.content_seen = True
                call = state["calls"].setdefault(get(part, "index") or 0, {"id": "", "name": "", "arguments": []})
                call["id"] = get(part, "id") or call["id"]
                call["name"] = get(get(part, "function"), "name") or call["name"]
                call["arguments"].append(get(get(part, "function"), "arguments") or "")
            state["finish"] = get(choice, "finish_reason") or state["finish"]

    def hide(self, chunk: Any) -> bool:
        return self.withhold_usage and not get(chunk, "choices") and get(chunk, "usage") is not None

    def fields(self) -> dict[str, Any]:
        output, calls, finish = [], [], None
        for index in sorted(self.choices):
            state = self.choices[index]
            if state["text"]:
                output.append({"role": "assistant", "content": "".join(state["text"])})
            for _, call in sorted(state["calls"].items()):
                calls.append(tool_call(call["id"], call["name"], "".join(call["arguments"])))
            finish = finish or state["finish"]
        return {
            "response_model": self.model,
            "output": output,
            "tool_calls": calls,
            "finish_reason": _chat_finish_reason(finish),
            "usage": _usage(self.usage, "prompt_tokens", "completion_tokens"),
        }


# -- Responses ------------------------------------------------------------------------------------


def _responses_request(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    messages = []
    instructions = arg(kwargs, "instructions")
    if isinstance(instructions, str) and instructions:
        messages.append(message("system", instructions))
    items = arg(kwargs, "input")
    for item in [{"role": "user", "content": items}] if isinstance(items, str) else items or ():
        kind = get(item, "type")
        if get(item, "role") is not None and kind in (None, "message"):
            messages.append(message(ROLES.get(get(item, "role"), "user"), flatten(get(item, "content"))))
        elif kind in ("function_call", "custom_tool_call"):
            arguments = get(item, "arguments") if kind == "function_call" else get(item, "input")
            messages.append(message("assistant", render_tool_call(get(item, "name"), arguments)))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append(message("tool", flatten(get(item, "output")), tool_call_id=get(item, "call_id")))
        # reasoning items, item references and built-in tool calls are not conversation text
    recorded = params(kwargs, RESPONSES_PARAMS)
    if isinstance(get(arg(kwargs, "reasoning"), "effort"), str):
        recorded["reasoning_effort"] = get(arg(kwargs, "reasoning"), "effort")
    if isinstance(get(get(arg(kwargs, "text"), "format"), "type"), str):
        recorded["response_format"] = get(get(arg(kwargs, "text"), "format"), "type")
    prompt = arg(kwargs, "prompt")  # a stored prompt template: its id and version are the prompt's
    return {
        "model": arg(kwargs, "model"),
        "messages": messages,
        "params": recorded,
        "tools": tool_names(arg(kwargs, "tools")),
        "prompt_id": get(prompt, "id"),
        "prompt_version": get(prompt, "version"),
    }


def _responses_response(response: Any) -> dict[str, Any] | None:
    items, status = get(response, "output"), get(response, "status")
    if items is None and status is None:
        return None
    output, calls = [], []
    for item in items or ():
        kind = get(item, "type")
        if kind == "message":
            text = flatten(get(item, "content"), sep="")
            if text:
                output.append({"role": "assistant", "content": text})
        elif kind in ("function_call", "custom_tool_call"):
            arguments = get(item, "arguments") if kind == "function_call" else get(item, "input")
            calls.append(tool_call(get(item, "call_id"), get(item, "name"), arguments))
    if status == "completed":
        finish = "tool_calls" if calls else "stop"
    elif status == "incomplete":
        reason = get(get(response, "incomplete_details"), "reason")
        finish = INCOMPLETE.get(reason, reason)
    else:
        finish = "error" if status == "failed" else status  # queued / in_progress for background=True
    fields = {
        "response_model": get(response, "model"),
        "output": output,
        "tool_calls": calls,
        "finish_reason": finish,
        "usage": _usage(get(response, "usage"), "input_tokens", "output_tokens"),
    }
    error = get(response, "error")
    if status == "failed" and error is not None:
        fields["error"] = {"type": str(get(error, "code") or "error"), "message": str(get(error, "message") or "")}
    return fields


class _ResponsesStream(Accumulator):
    """Response stream events → the final response, which the last event carries whole."""

    def __init__(self, asked: Mapping[str, Any], sent: Mapping[str, Any]) -> None:
        self.final: Any = None
        self.model: Any = None
        self.text: list[str] = []
        self.error: dict[str, str] | None = None

    def add(self, event: Any) -> None:
        kind = get(event, "type")
        if kind in DELTAS and get(event, "delta"):
            self.content_seen = True
            if kind == "response.output_text.delta":
                self.text.append(get(event, "delta"))
        elif kind in FINAL:
            self.final = get(event, "response")
        elif kind == "response.created":
            self.model = get(get(event, "response"), "model")
        elif kind == "error":
            self.error = {"type": str(get(event, "code") or "error"), "message": str(get(event, "message") or "")}

    def fields(self) -> dict[str, Any]:
        fields = _responses_response(self.final) if self.final is not None else None
        if fields is None:  # ended early: what the deltas said
            text = "".join(self.text)
            fields = {"response_model": self.model, "output": [{"role": "assistant", "content": text}] if text else []}
        if self.error is not None:
            fields.update(error=self.error, finish_reason="error")
        return fields
