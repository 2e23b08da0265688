"""Does a text match what a trace's model saw or said? The stored keyed hashes answer, the text is never stored.

The text is tried as given, without one trailing newline (files usually end with one), and, when
it is JSON, in the canonical form the pipeline hashes non-string values in (sorted keys, compact).
Anything else (whitespace, case, a single character) is a different text: that is the point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tokentrail.sinks.identifiers import check_identifier

from .receipts import canonical_text, content_hmac, key_id
from .timeline import load_timeline

_HASHES = """
SELECT type, span_id, content_key_id, part, digest
FROM (SELECT DISTINCT event_id, type, span_id, content_key_id, content_parts, content_hmacs
      FROM $db.events WHERE trace_id = {trace:String} $tenant_filter)
ARRAY JOIN content_parts AS part, content_hmacs AS digest
"""


class CannotVerify(ValueError):
    """The question cannot be answered: no key, or the trace's hashes were made under another key."""


@dataclass(frozen=True, order=True)
class Match:
    step: int
    step_kind: str
    event_type: str
    part: str

    def describe(self) -> str:
        what = "model call" if self.step_kind == "model_call" else "tool call"
        return f"step {self.step} ({what}), {self.event_type} {self.part}"


def candidates(text: str) -> list[str]:
    """The forms of `text` that are tried, in order, without repeats."""
    forms = [text]
    if text.endswith("\n"):
        forms.append(text[:-2] if text.endswith("\r\n") else text[:-1])
    try:
        forms.append(canonical_text(json.loads(text)))
    except ValueError:
        pass
    return list(dict.fromkeys(forms))


def verify_text(
    client: Any, trace_id: str, text: str, key: bytes, *, tenant: str | None = None, database: str = "tokentrail"
) -> list[Match]:
    """Every part of the trace whose stored hash matches `text` (empty: none). Raises CannotVerify."""
    check_identifier(database, "database")
    params: dict[str, Any] = {"trace": trace_id}
    tenant_filter = ""
    if tenant is not None:
        params["tenant"], tenant_filter = tenant, "AND tenant = {tenant:String}"
    sql = _HASHES.replace("$db", database).replace("$tenant_filter", tenant_filter)
    rows = client.query(sql, parameters=params).result_rows
    ours = key_id(key)
    keys = sorted({r[2] for r in rows if r[2]})
    if not keys:
        raise CannotVerify(f"trace {trace_id!r} has no content hashes in the store (stored without an evidence key?)")
    if ours not in keys:
        raise CannotVerify(
            f"the hashes of trace {trace_id!r} were made under evidence key {', '.join(keys)}; "
            f"the configured key is {ours}: configure the key that was in use then"
        )
    wanted = {content_hmac(key, form) for form in candidates(text)}
    timeline = load_timeline(client, trace_id, tenant=tenant, database=database)
    steps = {s["span_id"]: (s["step"], s["kind"]) for s in timeline["steps"]}
    found = set()
    for event_type, span_id, kid, part, digest in rows:
        if kid == ours and digest in wanted:
            step, kind = steps.get(span_id, (0, "unknown"))
            found.add(Match(step, kind, event_type, part))
    return sorted(found)
