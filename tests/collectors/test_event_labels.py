"""The character policy of labels (docs/events.md, "Character policy of labels"): no control, bidi or
zero-width characters, not blank, NFC; everything else (quotes, query syntax, any script) is data."""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from typing import Any

import pytest
from event_samples import BASES, OUTPUT, PROMPT, accepted, event, rejected

from tokentrail.collectors.event_bounds import FORBIDDEN_RANGES, LABEL_PATTERN
from tokentrail.collectors.events import InvalidEvent, decode_event

LABEL_PATHS = [
    ("output", "tenant"),
    ("output", "service"),
    ("output", "environment"),
    ("output", "feature"),
    ("output", "provider"),
    ("output", "model"),
    ("output", "response_model"),
    ("output", "prompt_id"),
    ("output", "prompt_version"),
    ("output", "finish_reason"),
    ("output", "tool_calls.0.name"),
    ("output", "error.type"),
    ("prompt", "tools.0"),
    ("tool_call", "tool.name"),
]
FORBIDDEN_SAMPLES = [
    "\x00",  # NUL
    "\t",
    "\n",
    "\x1b",  # ESC: terminal escape sequences
    "\x7f",
    "\x85",  # NEL, a C1 control
    "\u00ad",  # soft hyphen
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\u200e",  # left-to-right mark
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",  # right-to-left override
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",  # bidi isolates
    "\u2028",  # line separator
    "\u2029",  # paragraph separator
    "\u2060",  # word joiner
    "\ufeff",  # byte order mark
    "\U000e0041",  # tag latin capital A
]


@pytest.mark.parametrize("kind, path", LABEL_PATHS)
@pytest.mark.parametrize("char", FORBIDDEN_SAMPLES, ids=lambda c: f"U+{ord(c):04X}")
def test_labels_refuse_control_and_format_characters(kind, path, char):
    """Every label refuses control, bidi, zero-width and separator characters: forbidden_character with its field."""
    result = decode_event(json.dumps(event(BASES[kind], path, f"north{char}wind")))
    assert isinstance(result, InvalidEvent)
    assert (result.reason, result.field) == ("forbidden_character", path)
    assert f"U+{ord(char):04X}" in result.detail and "position 5" in result.detail


REQUIRED_LABELS = [("output", p) for p in ("tenant", "service", "environment", "feature", "provider", "model")] + [
    ("output", "tool_calls.0.name"),
    ("output", "error.type"),
    ("prompt", "tools.0"),
    ("tool_call", "tool.name"),
]
OPTIONAL_LABELS = [("output", p) for p in ("prompt_id", "prompt_version", "response_model", "finish_reason")]


@pytest.mark.parametrize("kind, path", REQUIRED_LABELS + OPTIONAL_LABELS)
def test_labels_are_not_whitespace_only(kind, path):
    """'   ', a no-break space and an ideographic space are blank; a required label may not be '' either."""
    for value in (" ", "   ", "\u00a0", "\u3000 "):
        assert rejected(event(BASES[kind], path, value)) == ("blank", path)
    if (kind, path) in REQUIRED_LABELS:
        assert rejected(event(BASES[kind], path, "")) == ("blank", path)


@pytest.mark.parametrize("kind, path", OPTIONAL_LABELS)
def test_an_optional_label_may_be_empty_or_null(kind, path):
    """'' and null both mean absent for prompt_id, prompt_version, response_model and finish_reason."""
    assert accepted(event(OUTPUT, path, "")).model_dump()[path] == ""
    assert accepted(event(OUTPUT, path, None)).model_dump()[path] is None


@pytest.mark.parametrize("kind, path", LABEL_PATHS)
def test_labels_are_normalised_to_nfc(kind, path):
    """A decomposed label (e + combining diaeresis), raw or \\u-escaped, is stored composed; content is not touched."""
    decomposed = "Zoe\u0308 & Co"
    assert unicodedata.normalize("NFC", decomposed) == "Zo\u00eb & Co" != decomposed
    doc = event(BASES[kind], path, decomposed)
    for raw in (json.dumps(doc, ensure_ascii=False).encode(), json.dumps(doc).encode()):
        stored = json.loads(json.dumps(accepted(raw).model_dump(mode="json")))
        node: Any = stored
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        assert node == "Zo\u00eb & Co"
    prompt = accepted({**PROMPT, "tenant": decomposed, "messages": [{"role": "user", "content": decomposed}]})
    assert prompt.tenant == "Zo\u00eb & Co" and prompt.messages[0].content == decomposed


@pytest.mark.parametrize(
    "value", ["\\' OR 1=1) --", '"; DROP TABLE calls; --', "{{tenant}}", "東京支社", "Ölwerk AG", "🚀 rocket"]
)
def test_quotes_query_syntax_and_other_scripts_are_valid_labels(value):
    """The character policy is about invisible characters: quoting for queries is the consumer's job."""
    assert accepted({**OUTPUT, "tenant": value}).tenant == value


def test_the_forbidden_ranges_cover_pythons_unicode_tables():
    """Every Cc, Cf, Zl and Zp code point of Python's Unicode is forbidden; the ranges hold nothing else assigned."""
    in_ranges = {cp for low, high in FORBIDDEN_RANGES for cp in range(low, high + 1)}
    wanted = {"Cc", "Cf", "Zl", "Zp"}
    categories = {cp: unicodedata.category(chr(cp)) for cp in range(sys.maxunicode + 1)}
    assert {cp for cp, cat in categories.items() if cat in wanted} <= in_ranges
    assert {categories[cp] for cp in in_ranges} <= wanted | {"Cn"}  # Cn: assigned after Unicode 14


def test_the_schema_pattern_reads_the_same_in_python_re():
    """The label pattern published in the JSON Schema agrees with the validator under Python's `re` too."""
    pattern = re.compile(LABEL_PATTERN)
    for value in ["northwind", "Zoë", "a b", "\\' OR 1=1) --", " ", "", *(f"a{c}b" for c in FORBIDDEN_SAMPLES)]:
        valid = not isinstance(decode_event(json.dumps({**OUTPUT, "tenant": value})), InvalidEvent)
        assert bool(pattern.search(value)) == valid, repr(value)
