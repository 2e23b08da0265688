"""Planted PII: fixed values, the sentences around them, and where in a valid event they go.

Each plant is (what is written into the event, the needle that must not appear in any row). The
values are ones the redactor recognises in plain text (an email at an internal domain, a phone,
a Luhn-valid card, an IBAN, a name after "call"), so a needle found in a row means a field was
not redacted, not that the value was too obscure to detect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fuzz_strategies import base_events, fresh_event
from hypothesis import strategies as st

EMAIL = "jane.doe@corp.internal"
PHONE = "+1 415 555 0132"
CARD = "4539148803436467"  # Luhn-valid
IBAN = "DE89370400440532013000"  # mod-97-valid
NAME = "Maria Gonzalez"

TEXT_PLANTS = [(EMAIL, EMAIL), (PHONE, PHONE), (CARD, CARD), (IBAN, IBAN), (f"call {NAME}", NAME)]
# Numbers: a card number is PII whatever its key; a phone number as a number is PII under a key that says so.
NUMBER_PLANTS = [(int(CARD), None, CARD), (14155550132, "phone", "14155550132"), (int(CARD), "card_number", CARD)]
CONTEXTS = ["{}", "contact: {}", "{} asap", "please {} today, ref 77", "{}\n{}"]
NEUTRAL_KEYS = ["data", "items", "payload", "x", "details"]

text_plants = st.tuples(st.sampled_from(TEXT_PLANTS), st.sampled_from(CONTEXTS)).map(
    lambda p: (p[1].format(p[0][0], p[0][0]), p[0][1])
)
# As a JSON key: the value alone or in a short phrase (keys are short).
key_plants = st.tuples(st.sampled_from(TEXT_PLANTS), st.sampled_from(["{}", "{} (home)", "note {}"])).map(
    lambda p: (p[1].format(p[0][0]), p[0][1])
)


def event_of(kind: str, with_tool_calls: bool = False) -> dict[str, Any]:
    for doc in base_events():
        if doc["type"] == kind and (not with_tool_calls or doc.get("tool_calls")):
            return fresh_event(doc)
    raise LookupError(f"no synthetic {kind} event{' with tool calls' if with_tool_calls else ''}")


@st.composite
def nested(draw: st.DrawFn, leaf: Any) -> Any:
    """`leaf` at depth 0-4 inside dicts (neutral keys) and lists."""
    value = leaf
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        value = {draw(st.sampled_from(NEUTRAL_KEYS)): value} if draw(st.booleans()) else [1, value]
    return value


def _tool_calls(doc: dict[str, Any]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = doc["tool_calls"]
    return calls


# Free-form places: each gets the event of the right type and the JSON value to put there.
FREE_FORM: dict[str, tuple[str, Callable[[dict[str, Any], Any], None]]] = {
    "params": ("prompt", lambda doc, v: doc.setdefault("params", {}).__setitem__("options", v)),
    "tool.arguments": ("tool_call", lambda doc, v: doc["tool"].__setitem__("arguments", {"query": v})),
    "tool.result": ("tool_call", lambda doc, v: doc["tool"].__setitem__("result", v)),
    "tool_calls.arguments": ("output", lambda doc, v: _tool_calls(doc)[0].__setitem__("arguments", {"q": v})),
    "attributes": ("prompt", lambda doc, v: doc["attributes"].__setitem__("note", v)),
}
# Places for text only (a string field, not a free-form value).
TEXT_FIELDS: dict[str, tuple[str, Callable[[dict[str, Any], str], None]]] = {
    "messages.content": ("prompt", lambda doc, t: doc["messages"][-1].__setitem__("content", t)),
    "output.content": ("output", lambda doc, t: doc.__setitem__("output", [{"role": "assistant", "content": t}])),
    "error.message": ("output", lambda doc, t: doc.__setitem__("error", {"type": "provider_error", "message": t})),
}
IDENTIFIERS = ["session_id", "user_id"]
# Dimension labels: Grafana variables, legend entries, alert labels; stream/redact_stage.py searches them like
# text. Listed here, not imported from its LABEL_FIELDS, so a label dropped there still gets PII planted.
DIMENSION_LABELS: dict[str, tuple[str, Callable[[dict[str, Any], str], None]]] = {
    name: ("output", lambda doc, t, name=name: doc.__setitem__(name, t))
    for name in [
        "tenant",
        "service",
        "environment",
        "feature",
        "provider",
        "model",
        "response_model",
        "prompt_id",
        "prompt_version",
        "finish_reason",
    ]
} | {"tool.name": ("tool_call", lambda doc, t: doc["tool"].__setitem__("name", t))}
# Ids and names that are not dimensions: join keys, tool-call ids, requested tool names, error type, message name.
IDS_AND_NAMES: dict[str, tuple[str, Callable[[dict[str, Any], str], None]]] = {
    **{name: ("prompt", lambda doc, t, name=name: doc.__setitem__(name, t)) for name in ["trace_id", "span_id"]},
    "parent_span_id": ("tool_call", lambda doc, t: doc.__setitem__("parent_span_id", t)),
    "error.type": ("output", lambda doc, t: doc.__setitem__("error", {"type": t, "message": "x"})),
    "tool.call_id": ("tool_call", lambda doc, t: doc["tool"].__setitem__("call_id", t)),
    "tool_calls.id": ("output", lambda doc, t: _tool_calls(doc)[0].__setitem__("id", t)),
    "tool_calls.name": ("output", lambda doc, t: _tool_calls(doc)[0].__setitem__("name", t)),
    "messages.name": ("prompt", lambda doc, t: doc["messages"][-1].__setitem__("name", t)),
    "messages.tool_call_id": ("prompt", lambda doc, t: doc["messages"][-1].__setitem__("tool_call_id", t)),
}


@st.composite
def text_in_event(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """(where, event, needle): planted text in message/output/error text, or in any free-form value at any depth."""
    text, needle = draw(text_plants)
    where = draw(st.sampled_from(sorted(FREE_FORM) + sorted(TEXT_FIELDS)))
    if where in TEXT_FIELDS:
        kind, put_text = TEXT_FIELDS[where]
        doc = event_of(kind)
        put_text(doc, text)
    else:
        kind, put = FREE_FORM[where]
        doc = event_of(kind, with_tool_calls=where == "tool_calls.arguments")
        put(doc, text if where == "attributes" else draw(nested(text)))
    return where, doc, needle


@st.composite
def key_in_event(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """(where, event, needle): planted text as a JSON key, in attributes or any free-form value at any depth."""
    key, needle = draw(key_plants)
    where = draw(st.sampled_from(sorted(FREE_FORM)))
    kind, put = FREE_FORM[where]
    doc = event_of(kind, with_tool_calls=where == "tool_calls.arguments")
    if where == "attributes":
        doc["attributes"][key] = "yes"
    else:
        put(doc, draw(nested({key: "on file"})))
    return where, doc, needle


@st.composite
def number_in_event(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """(where, event, needle): a card or phone number as a JSON number in a free-form value at any depth."""
    number, key, needle = draw(st.sampled_from(NUMBER_PLANTS))
    where = draw(st.sampled_from(sorted(set(FREE_FORM) - {"attributes"})))  # attributes values are strings
    kind, put = FREE_FORM[where]
    doc = event_of(kind, with_tool_calls=where == "tool_calls.arguments")
    put(doc, draw(nested({key or draw(st.sampled_from(NEUTRAL_KEYS)): number})))
    return where, doc, needle


@st.composite
def identifier_in_event(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """(where, event, needle): PII, or a plain opaque id, as session_id / user_id (both pseudonymised)."""
    text, needle = draw(st.sampled_from([(EMAIL, EMAIL), ("u-8812-jdoe", "u-8812-jdoe"), (PHONE, PHONE)]))
    where = draw(st.sampled_from(IDENTIFIERS))
    doc = event_of(draw(st.sampled_from(["prompt", "output", "tool_call"])))
    doc[where] = text
    return where, doc, needle


def string_in(places: dict[str, tuple[str, Callable[[dict[str, Any], str], None]]]) -> Any:
    """(where, event, needle): planted PII as the whole value of one of `places`."""

    @st.composite
    def planted(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
        text, needle = draw(st.sampled_from([(EMAIL, EMAIL), (PHONE, PHONE), (CARD, CARD), (IBAN, IBAN)]))
        where = draw(st.sampled_from(sorted(places)))
        kind, put = places[where]
        doc = event_of(kind, with_tool_calls=where.startswith("tool_calls."))
        put(doc, text)
        return where, doc, needle

    return planted()
