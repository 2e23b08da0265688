"""Anthropic integration: every Messages API call of one client becomes a traced model call.

    from anthropic import Anthropic
    from tokentrail.collectors.integrations.anthropic import instrument_anthropic

    client = instrument_anthropic(Anthropic(), feature="refund-drafts")
    client.messages.create(model="claude-sonnet-4-5", max_tokens=512, system="...", messages=[...])

Covered, sync and async: `messages.create` (also `stream=True`), `messages.parse`, the
`messages.stream(...)` helper, and clients made from this one by `with_options()` / `copy()`. Not
covered: `client.beta.messages`, batches, `with_raw_response` / `with_streaming_response` (those
record the prompt and latency but no output), and server-side tool use (web search, code execution)
is not reported as tool calls, since the caller did not run those tools.

Mapping to the v1 contract (docs/events.md): `system` becomes a system message; text blocks become
text, other blocks a placeholder ("[image]", "[document]"); `tool_result` blocks become `tool` messages carrying the
`tool_use_id`; `tool_use` blocks become `tool_calls`. `input_tokens` in the contract includes cached
input, and Anthropic counts those separately, so input = input_tokens + cache_read_input_tokens +
cache_creation_input_tokens, and cached_input_tokens = cache_read_input_tokens. Time to first
token is the first text or tool-input delta (thinking deltas are not shown to a user).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

from ._common import (
    ORIGINAL,
    Accumulator,
    Endpoint,
    Options,
    log_internal_error,
    patch_copies,
    patch_method,
    run_async,
    run_sync,
)
from ._shapes import arg, flatten, get, message, params, part_text, render_tool_call, tool_call, tool_names

__all__ = ["instrument_anthropic"]

PARAMS = {
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "stop_sequences": "stop",
    "stream": "stream",
    "service_tier": "service_tier",
    "tool_choice": "tool_choice",
    "thinking": "thinking",
    "speed": "speed",
}
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
USAGE_KEYS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")


def instrument_anthropic(
    client: Any,
    collector: Any = None,
    *,
    feature: str | None = None,
    prompt_id: str | None = None,
    prompt_version: str | None = None,
    provider: str = "anthropic",
) -> Any:
    """Trace every Messages call of an Anthropic client (sync or async); returns the same client.

    collector: None means the module-level one (`tokentrail.collectors.init`), looked up at each call.
    feature: the default when no enclosing `trace(feature=...)` sets one. provider: the name recorded,
    e.g. "bedrock" for `AnthropicBedrock`. Calling it again on the same client replaces these options.
    """
    messages = getattr(client, "messages", None)
    if not callable(getattr(messages, "create", None)):
        raise TypeError(
            f"instrument_anthropic needs an Anthropic client (with .messages.create), got {type(client).__name__}"
        )
    if collector is not None and not callable(getattr(collector, "model_call", None)):
        raise TypeError(f"collector must be a tokentrail Collector or None, got {type(collector).__name__}")
    import anthropic  # lazily: importing tokentrail.collectors must never import a provider SDK

    options = Options(collector, feature, prompt_id, prompt_version, provider)
    endpoint = Endpoint(_request, _response, _MessageStream, (anthropic.Stream, anthropic.AsyncStream))
    patch_method(messages, "create", endpoint, options)
    patch_method(messages, "parse", endpoint, options)
    _patch_stream_helper(messages, endpoint, options)
    patch_copies(
        client,
        lambda new: instrument_anthropic(
            new, collector, feature=feature, prompt_id=prompt_id, prompt_version=prompt_version, provider=provider
        ),
    )
    return client


def _patch_stream_helper(messages: Any, endpoint: Endpoint, options: Options) -> None:
    """`messages.stream()` does not go through `create`: it returns a manager that sends on enter."""
    current = getattr(messages, "stream", None)
    if current is None:
        return
    original = getattr(current, ORIGINAL, current)

    @functools.wraps(original)
    def stream(*args: Any, **kwargs: Any) -> Any:
        manager = original(*args, **kwargs)
        try:
            _trace_manager(manager, kwargs, endpoint, options)
        except Exception:
            log_internal_error("messages.stream")
        return manager

    setattr(stream, ORIGINAL, original)
    messages.stream = stream


def _trace_manager(manager: Any, kwargs: dict[str, Any], endpoint: Endpoint, options: Options) -> None:
    """Wrap the manager's private request (a callable when sync, an awaitable when async) in place.

    Private, so looked up by suffix and skipped (uninstrumented, logged) if a new SDK renames it.
    """
    name = next(key for key in vars(manager) if key.endswith("__api_request"))
    request = vars(manager)[name]
    # The request is already built: describe it, but never read a one-shot iterator the SDK still needs.
    described = {k: None if isinstance(v, Iterator) else v for k, v in kwargs.items()}
    described["stream"] = True
    if inspect.isawaitable(request):

        async def send(**_: Any) -> Any:
            return await request

        setattr(manager, name, _OnAwait(lambda: run_async(send, (), described, endpoint, options)))
    else:
        setattr(manager, name, functools.partial(run_sync, lambda **_: request(), (), described, endpoint, options))


class _OnAwait:
    """An awaitable that starts the traced call only when awaited: a manager never entered records
    nothing, and adds no "coroutine was never awaited" warning of ours to the SDK's."""

    def __init__(self, start: Any) -> None:
        self._start = start

    def __await__(self) -> Any:
        return self._start().__await__()


# -- shapes ---------------------------------------------------------------------------------------


def _request(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    messages = []
    system = arg(kwargs, "system")
    if system:
        messages.append(message("system", flatten(system)))
    for msg in arg(kwargs, "messages") or ():
        role = "assistant" if get(msg, "role") == "assistant" else "user"
        content = get(msg, "content")
        blocks = content if isinstance(content, (list, tuple)) else [content or ""]
        texts: list[str] = []
        results = 0
        for block in blocks:
            kind = get(block, "type")
            if kind == "tool_result":  # a tool's answer: its own message, in order
                if texts:
                    messages.append(message(role, "\n".join(texts)))
                    texts = []
                messages.append(message("tool", flatten(get(block, "content")), tool_call_id=get(block, "tool_use_id")))
                results += 1
            elif kind in ("tool_use", "server_tool_use"):
                texts.append(render_tool_call(get(block, "name"), get(block, "input")))
            elif text := part_text(block):
                texts.append(text)
        if texts or not results:
            messages.append(message(role, "\n".join(texts)))
    recorded = params(kwargs, PARAMS)
    if isinstance(get(arg(kwargs, "thinking"), "budget_tokens"), int):
        recorded["thinking_budget_tokens"] = get(arg(kwargs, "thinking"), "budget_tokens")
    if isinstance(get(arg(kwargs, "output_config"), "effort"), str):
        recorded["reasoning_effort"] = get(arg(kwargs, "output_config"), "effort")
    return {
        "model": arg(kwargs, "model"),
        "messages": messages,
        "params": recorded,
        "tools": tool_names(arg(kwargs, "tools")),
    }


def _usage(raw: Mapping[str, Any]) -> dict[str, int]:
    read, written = raw.get("cache_read_input_tokens") or 0, raw.get("cache_creation_input_tokens") or 0
    return {
        "input_tokens": (raw.get("input_tokens") or 0) + read + written,
        "output_tokens": raw.get("output_tokens") or 0,
        "cached_input_tokens": read,
        "reasoning_tokens": raw.get("thinking_tokens") or 0,
    }


def _raw_usage(usage: Any, into: dict[str, Any]) -> dict[str, Any]:
    """Copy the counts `usage` carries into `into` (a stream's later events update earlier ones)."""
    for key in USAGE_KEYS:
        if get(usage, key) is not None:
            into[key] = get(usage, key)
    if get(get(usage, "output_tokens_details"), "thinking_tokens") is not None:
        into["thinking_tokens"] = get(get(usage, "output_tokens_details"), "thinking_tokens")
    return into


def _response(msg: Any) -> dict[str, Any] | None:
    content = get(msg, "content")
    if not isinstance(content, list):
        return None  # not a Message, e.g. the raw HTTP response of `with_raw_response`
    text = "".join(get(block, "text") or "" for block in content if get(block, "type") == "text")
    calls = [tool_call(get(b, "id"), get(b, "name"), get(b, "input")) for b in content if get(b, "type") == "tool_use"]
    reason = get(msg, "stop_reason")
    return {
        "response_model": get(msg, "model"),
        "output": [{"role": "assistant", "content": text}] if text else [],
        "tool_calls": calls,
        "finish_reason": STOP_REASONS.get(reason, reason),
        "usage": _usage(_raw_usage(get(msg, "usage"), {})),
    }


class _MessageStream(Accumulator):
    """Raw stream events → the message they add up to: text and tool input joined per content block."""

    def __init__(self, asked: Mapping[str, Any], sent: Mapping[str, Any]) -> None:
        self.model: Any = None
        self.stop_reason: Any = None
        self.usage: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}

    def add(self, event: Any) -> None:
        kind = get(event, "type")
        if kind == "message_start":
            self.model = get(get(event, "message"), "model")
            _raw_usage(get(get(event, "message"), "usage"), self.usage)
        elif kind == "content_block_start":
            block = get(event, "content_block")
            self.blocks[get(event, "index") or 0] = {
                "type": get(block, "type"),
                "id": get(block, "id"),
                "name": get(block, "name"),
                "input": get(block, "input"),
                "parts": [get(block, "text") or ""],
            }
        elif kind == "content_block_delta":
            delta = get(event, "delta")
            piece = get(delta, "text") if get(delta, "type") == "text_delta" else get(delta, "partial_json")
            if get(delta, "type") in ("text_delta", "input_json_delta") and piece:
                self.content_seen = True
                slot = self.blocks.setdefault(get(event, "index") or 0, {"type": "text", "parts": []})
                slot["parts"].append(piece)
        elif kind == "message_delta":
            self.stop_reason = get(get(event, "delta"), "stop_reason") or self.stop_reason
            _raw_usage(get(event, "usage"), self.usage)

    def fields(self) -> dict[str, Any]:
        texts, calls = [], []
        for _, block in sorted(self.blocks.items()):
            if block["type"] == "text":
                texts.append("".join(block["parts"]))
            elif block["type"] == "tool_use":
                arguments = "".join(block["parts"])
                calls.append(tool_call(block["id"], block["name"], arguments or block["input"] or {}))
        text = "".join(texts)
        return {
            "response_model": self.model,
            "output": [{"role": "assistant", "content": text}] if text else [],
            "tool_calls": calls,
            "finish_reason": STOP_REASONS.get(self.stop_reason, self.stop_reason),
            "usage": _usage(self.usage),
        }
