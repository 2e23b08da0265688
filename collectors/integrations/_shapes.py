"""SDK shapes → contract shapes: pure functions over the dicts callers pass and the models SDKs return.

Both kinds are read the same way (`get`), so history that mixes plain dicts with response objects
passed back in (a common agent pattern) is described correctly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PLACEHOLDERS = {
    "image_url": "[image]",
    "input_image": "[image]",
    "image": "[image]",
    "input_audio": "[audio]",
    "audio": "[audio]",
    "file": "[file]",
    "input_file": "[file]",
    "document": "[document]",
}


def get(obj: Any, key: str) -> Any:
    """`obj[key]` for the TypedDicts callers pass, `obj.key` for the pydantic models SDKs return."""
    if type(obj) is dict:  # the common case, without the slower ABC check below
        return obj.get(key)
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def arg(kwargs: Mapping[str, Any], name: str) -> Any:
    """A request argument, or None when absent or the SDK's `omit` / `NOT_GIVEN` sentinel."""
    value = kwargs.get(name)
    return None if value is None or type(value).__name__ in ("Omit", "NotGiven") else value


def part_text(part: Any) -> str:
    """One content part as text: its text, else a placeholder such as "[image]" (never the bytes)."""
    if isinstance(part, str):
        return part
    for key in ("text", "refusal"):
        value = get(part, key)
        if isinstance(value, str):
            return value
    kind = get(part, "type")
    return PLACEHOLDERS.get(kind, f"[{kind}]") if isinstance(kind, str) else ""


def flatten(content: Any, sep: str = "\n") -> str:
    """Message content (a string or a list of parts) as one string, as docs/events.md requires."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    # Only lists are walked: a one-shot iterable here belongs to the SDK, which has not read it yet.
    parts = content if isinstance(content, (list, tuple)) else [content]
    return sep.join(text for text in map(part_text, parts) if text)


def message(role: str, content: str, name: Any = None, tool_call_id: Any = None) -> dict[str, str]:
    msg = {"role": role, "content": content}
    if isinstance(name, str):
        msg["name"] = name
    if isinstance(tool_call_id, str):
        msg["tool_call_id"] = tool_call_id
    return msg


def render_tool_call(name: Any, arguments: Any) -> str:
    """An earlier tool call in the history, kept readable in a string-only message."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, default=str, ensure_ascii=False)
    return f"[tool_call {name} {arguments}]"


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A requested tool call; JSON-string arguments are parsed when they hold an object."""
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
            arguments = parsed if isinstance(parsed, dict) else arguments
        except ValueError:
            pass
    elif isinstance(arguments, Mapping):
        arguments = dict(arguments)
    else:
        arguments = {} if arguments is None else json.dumps(arguments, default=str)
    return {"id": call_id if isinstance(call_id, str) else "", "name": name or "unknown", "arguments": arguments}


def tool_names(tools: Any) -> list[str]:
    names = []
    for tool in tools if isinstance(tools, (list, tuple)) else ():
        name = get(tool, "name") or get(get(tool, "function"), "name") or get(get(tool, "custom"), "name")
        name = name or get(tool, "type")  # built-in tools (web_search, ...) have only a type
        if isinstance(name, str):
            names.append(name)
    return names


def params(kwargs: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Request settings worth recording (`names`: argument → param name), as plain JSON values."""
    out: dict[str, Any] = {}
    for source, target in names.items():
        value = arg(kwargs, source)
        if isinstance(value, (str, int, float, bool)):
            out[target] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            out[target] = list(value)
        elif isinstance(get(value, "type"), str):  # {"type": "json_schema", ...}, {"type": "auto"}
            out[target] = get(value, "type")
    return out
