"""Dead letters redacted like valid events: what failed validation is still stored, so it gets the
same treatment. A payload that parses as JSON is redacted as JSON (keys, numbers, every string at
any depth) with its identifier fields pseudonymised by the same function valid events use; one
that does not parse (truncated, not UTF-8, not JSON at all) is redacted as text.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .redactor import Redactor

__all__ = ["IDENTIFIER_FIELDS", "redact_payloads"]

log = logging.getLogger("tokentrail.redaction")

# Top-level fields of a v1 event stored as identifiers, pseudonymised whole (Redactor.pseudonym).
IDENTIFIER_FIELDS = ("user_id", "session_id")
_NOT_JSON = object()

# In a payload that does not parse (truncated, bad bytes), an identifier field is still found by its
# JSON shape: `"user_id": "value"` or `"user_id": 123`, the closing quote optional (a cut line).
_IDENTIFIER_IN_TEXT = re.compile(
    r'"(?P<name>' + "|".join(IDENTIFIER_FIELDS) + r')"\s*:\s*'
    r'(?:"(?P<text>(?:[^"\\]|\\.)*)"?|(?P<number>-?[0-9][0-9.eE+-]*))'
)
# JSON's whitespace escapes, read as the whitespace they stand for: in `a\n+1 415…` the phone number
# must not look glued to the letter n. Only in text that failed to parse, where exactness is moot.
_WHITESPACE_ESCAPE = re.compile(r"\\[nrt]")
_WHITESPACE = {"\\n": "\n", "\\r": "\r", "\\t": "\t"}


def redact_payloads(redactor: Redactor, payloads: list[bytes | str]) -> list[tuple[str, Counter[str]]]:
    """Each payload redacted, as text, with its findings counted; one detector pass for the batch.

    A payload with nothing to replace comes back as it came (decoded), byte for byte.
    """
    texts = [p.decode("utf-8", errors="replace") if isinstance(p, (bytes, bytearray)) else p for p in payloads]
    docs = [_parse(text) for text in texts]
    identifiers = [_identifiers(doc) for doc in docs]
    bodies = [
        _text_form(redactor, text) if doc is _NOT_JSON else _without(doc, ids)
        for text, doc, ids in zip(texts, docs, identifiers, strict=True)
    ]
    out = []
    for text, doc, ids, body, (clean, counts) in zip(
        texts, docs, identifiers, bodies, redactor.redact_many(bodies), strict=True
    ):
        if doc is _NOT_JSON:
            out.append((clean, counts))
        elif clean is body and not ids:
            out.append((text, counts))
        elif ids and isinstance(clean, dict):
            # Back in the original order, each identifier as valid events store it.
            pseudonyms = {name: redactor.pseudonym(value) for name, value in ids.items()}
            out.append((_dump({k: pseudonyms[k] if k in pseudonyms else clean[k] for k in doc}), counts))
        else:
            out.append((_dump(clean), counts))
    return out


def _text_form(redactor: Redactor, text: str) -> str:
    """A payload that is not JSON, made ready for text redaction: identifier values pseudonymised
    where their field can still be seen, whitespace escapes read as whitespace."""
    if '"' in text:
        text = _IDENTIFIER_IN_TEXT.sub(lambda m: _pseudonymised_field(redactor, m), text)
    if "\\" in text:
        text = _WHITESPACE_ESCAPE.sub(lambda m: _WHITESPACE[m.group(0)], text)
    return text


def _pseudonymised_field(redactor: Redactor, match: re.Match[str]) -> str:
    value = match.group("text") if match.group("text") is not None else match.group("number")
    if not value:
        return match.group(0)
    return f'"{match.group("name")}":"{redactor.pseudonym(value)}"'


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return _NOT_JSON


def _identifiers(doc: Any) -> dict[str, str]:
    """The identifier fields of a top-level object with a value, as the text pseudonymised: a
    number is an identifier too. Other values (objects, lists) are left to redaction."""
    if not isinstance(doc, dict):
        return {}
    found = {}
    for name in IDENTIFIER_FIELDS:
        value = doc.get(name)
        if isinstance(value, str) and value:
            found[name] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[name] = json.dumps(value)
    return found


def _without(doc: Any, identifiers: dict[str, str]) -> Any:
    """What is redacted as JSON: the document without its identifier fields (pseudonymised whole,
    not searched: `session_id` would otherwise count as a secret-named field)."""
    return {k: v for k, v in doc.items() if k not in identifiers} if identifiers else doc


def _dump(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # lone surrogates from \ud800 escapes: keep them escaped
        return json.dumps(value, separators=(",", ":"))
    except (RecursionError, ValueError):
        from .redactor import TOO_DEEP

        return TOO_DEEP
