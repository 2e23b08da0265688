"""Dead letters redacted like valid events: what failed validation is still stored, so it gets the
same treatment. A payload that parses as JSON is redacted as JSON (keys, numbers, every string at
any depth) with its identifier fields pseudonymised by the same function valid events use; one
that does not parse (truncated, not UTF-8, not JSON at all) is redacted as text.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .redactor import Redactor

__all__ = ["IDENTIFIER_FIELDS", "redact_payloads"]

log = logging.getLogger("tokentrail.redaction")

# Top-level fields of a v1 event stored as identifiers, pseudonymised whole (Redactor.pseudonym).
IDENTIFIER_FIELDS = ("user_id", "session_id")
_NOT_JSON = object()


def redact_payloads(redactor: Redactor, payloads: list[bytes | str]) -> list[tuple[str, Counter[str]]]:
    """Each payload redacted, as text, with its findings counted; one detector pass for the batch.

    A payload with nothing to replace comes back as it came (decoded), byte for byte.
    """
    texts = [p.decode("utf-8", errors="replace") if isinstance(p, (bytes, bytearray)) else p for p in payloads]
    docs = [_parse(text) for text in texts]
    results = redactor.redact_many([text if doc is _NOT_JSON else doc for text, doc in zip(texts, docs, strict=True)])
    out = []
    for text, doc, (clean, counts) in zip(texts, docs, results, strict=True):
        if doc is _NOT_JSON:
            out.append((clean, counts))
            continue
        if isinstance(clean, dict):
            clean = _pseudonymise_identifiers(redactor, doc, clean)
        out.append((text if clean is doc else _dump(clean), counts))
    return out


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return _NOT_JSON


def _pseudonymise_identifiers(redactor: Redactor, original: dict[str, Any], clean: dict[str, Any]) -> dict[str, Any]:
    """Identifier fields replaced by the pseudonyms of their original values (as valid events get
    them), not by tokens of what the text rules found in them. Numbers are identifiers too."""
    found = {
        name: value
        for name in IDENTIFIER_FIELDS
        if (value := original.get(name)) and isinstance(value, (str, int, float)) and not isinstance(value, bool)
    }
    if not found:
        return clean
    clean = dict(clean)  # `clean` may be the caller's own dict when nothing else was found
    for name, value in found.items():
        clean[name] = redactor.pseudonym(value if isinstance(value, str) else json.dumps(value))
    return clean


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
