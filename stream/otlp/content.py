"""A GenAI span's content -> v1 `messages`, `output` and `tool_calls`, in every form it comes in.

Where content is looked for, first found wins:
1. the current attributes `gen_ai.system_instructions`, `gen_ai.input.messages`,
   `gen_ai.output.messages` (JSON, or structured attribute values, with `parts`);
2. the same attributes on the span event `gen_ai.client.inference.operation.details`;
3. the older indexed attributes `gen_ai.prompt.N.role/content/tool_call_id` and
   `gen_ai.completion.N.role/content/finish_reason/tool_calls.M.id/name/arguments` (OpenLLMetry);
4. the older span events `gen_ai.content.prompt` / `gen_ai.content.completion` (attributes
   `gen_ai.prompt` / `gen_ai.completion`, JSON lists of `{role, content}`).
Content capture is opt-in in every instrumentation: a span without content is still a call (the
mapping puts an empty placeholder message in the prompt, flagged in `attributes`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .decode import SpanEvent

__all__ = ["ContentError", "Content", "read_content"]

DETAILS_EVENT = "gen_ai.client.inference.operation.details"
ROLES = frozenset({"system", "user", "assistant", "tool"})
_ROLE_ALIASES = {"developer": "system", "model": "assistant", "ai": "assistant", "human": "user", "function": "tool"}
_INDEXED = re.compile(r"gen_ai\.(prompt|completion)\.(\d+)\.(.+)")
_TOOL_CALL_KEY = re.compile(r"tool_calls\.(\d+)\.(id|name|arguments)")
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class ContentError(ValueError):
    """An attribute holding content is present but not readable; `.field` names it."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


class Content:
    """What a span says was sent and answered (`found` is False when it says nothing)."""

    __slots__ = ("found", "messages", "output", "tool_calls", "finish_reason")

    def __init__(self) -> None:
        self.found = False
        self.messages: list[dict[str, Any]] = []
        self.output: list[dict[str, Any]] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.finish_reason: str | None = None


def read_content(attributes: dict[str, Any], events: list[SpanEvent]) -> Content:
    content = Content()
    sources = [attributes] + [e.attributes for e in events if e.name == DETAILS_EVENT]
    for attrs in sources:
        if any(k in attrs for k in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions")):
            _read_current(attrs, content)
            return content
    if any(_INDEXED.match(k) for k in attributes):
        _read_indexed(attributes, content)
        return content
    for event in events:
        if event.name == "gen_ai.content.prompt" and "gen_ai.prompt" in event.attributes:
            content.found = True
            for m in _json_list(event.attributes["gen_ai.prompt"], "gen_ai.prompt"):
                content.messages.append(_message(m.get("role"), _text(m.get("content")), m.get("tool_call_id")))
        elif event.name == "gen_ai.content.completion" and "gen_ai.completion" in event.attributes:
            content.found = True
            for m in _json_list(event.attributes["gen_ai.completion"], "gen_ai.completion"):
                content.output.append({"role": str(m.get("role") or "assistant"), "content": _text(m.get("content"))})
    return content


# -- the current form: messages with parts ---------------------------------------------------


def _read_current(attrs: dict[str, Any], content: Content) -> None:
    content.found = True
    if "gen_ai.system_instructions" in attrs:
        parts = _json_list(attrs["gen_ai.system_instructions"], "gen_ai.system_instructions")
        text = "\n".join(_part_text(p) for p in parts if p.get("type", "text") == "text")
        if text:
            content.messages.append({"role": "system", "content": text})
    for m in _json_list(attrs.get("gen_ai.input.messages"), "gen_ai.input.messages"):
        content.messages.extend(_input_messages(m))
    for m in _json_list(attrs.get("gen_ai.output.messages"), "gen_ai.output.messages"):
        parts = m.get("parts") or []
        text = "".join(_part_text(p) for p in parts if p.get("type") == "text")
        calls = [_tool_call(p) for p in parts if p.get("type") == "tool_call"]
        content.tool_calls.extend(calls)
        if text or not calls:
            content.output.append({"role": str(m.get("role") or "assistant"), "content": text})
        if content.finish_reason is None and m.get("finish_reason"):
            content.finish_reason = str(m["finish_reason"])


def _input_messages(m: dict[str, Any]) -> list[dict[str, Any]]:
    """One input message; tool responses become `tool` messages of their own (one per call id)."""
    role, parts = m.get("role"), m.get("parts") or []
    responses = [p for p in parts if p.get("type") == "tool_call_response"]
    out = [_message("tool", _text(p.get("response", p.get("result"))), p.get("id")) for p in responses]
    text = "".join(_part_text(p) for p in parts if p.get("type") == "text")
    calls = [_tool_call(p) for p in parts if p.get("type") == "tool_call"]
    if calls:  # an assistant turn that asked for tools: keep the request in the prompt's text
        text += _COMPACT([[c["name"], c["arguments"]] for c in calls])
    if text or not responses:
        out.insert(0, _message(role, text, None, m.get("name")))
    return out


def _part_text(part: dict[str, Any]) -> str:
    return _text(part.get("content"))


def _tool_call(part: dict[str, Any]) -> dict[str, Any]:
    arguments = part.get("arguments")
    if isinstance(arguments, str):
        arguments = _maybe_json(arguments)
    return {"id": _opt_str(part.get("id")), "name": str(part.get("name") or ""), "arguments": arguments or {}}


# -- the older indexed form ------------------------------------------------------------------


def _read_indexed(attrs: dict[str, Any], content: Content) -> None:
    content.found = True
    prompts: dict[int, dict[str, Any]] = {}
    completions: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        match = _INDEXED.match(key)
        if match:
            target = prompts if match[1] == "prompt" else completions
            target.setdefault(int(match[2]), {})[match[3]] = value
    for _, p in sorted(prompts.items()):
        text = _text(p.get("content"))
        calls = _indexed_tool_calls(p)
        if calls:
            text += _COMPACT([[c["name"], c["arguments"]] for c in calls])
        content.messages.append(_message(p.get("role"), text, p.get("tool_call_id")))
    for _, c in sorted(completions.items()):
        calls = _indexed_tool_calls(c)
        content.tool_calls.extend(calls)
        text = _text(c.get("content"))
        if text or not calls:
            content.output.append({"role": str(c.get("role") or "assistant"), "content": text})
        if content.finish_reason is None and c.get("finish_reason"):
            content.finish_reason = str(c["finish_reason"])


def _indexed_tool_calls(fields: dict[str, Any]) -> list[dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for key, value in fields.items():
        match = _TOOL_CALL_KEY.fullmatch(key)
        if match:
            calls.setdefault(int(match[1]), {})[match[2]] = value
    return [_tool_call(c) for _, c in sorted(calls.items())]


# -- shared ----------------------------------------------------------------------------------


def _message(role: Any, text: str, tool_call_id: Any = None, name: Any = None) -> dict[str, Any]:
    role = str(role or "user").lower()
    role = _ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        raise ContentError("role", f"message role {role[:40]!r} is not one of system, user, assistant, tool")
    out: dict[str, Any] = {"role": role, "content": text}
    if tool_call_id:
        out["tool_call_id"] = str(tool_call_id)
    if name:
        out["name"] = str(name)
    return out


def _json_list(value: Any, field: str) -> list[dict[str, Any]]:
    """An attribute holding a list of objects: a JSON string (most emitters) or a structured value."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ContentError(field, f"{field} is not JSON") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ContentError(field, f"{field} must be a list of objects")
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI-style content parts
        return "".join(_text(v.get("text", v.get("content")) if isinstance(v, dict) else v) for v in value)
    return _COMPACT(value)


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
