"""One trace read back from the store as a timeline: steps in causal order, detections, PII counts,
the changes in effect for its features, and totals.

Everything here is a query over the store (redelivered rows count once: `LIMIT 1 BY event_id`,
which unlike FINAL keeps the trace_id bloom-filter index in use; FINAL on the small versioned
tables) and every list
is sorted by something stored, so the same store gives the same timeline, byte for byte once
serialised (`to_json`). Money stays Decimal until serialised as a string: the JSON total equals
`sum(cost_usd)` exactly. PII is counted by entity type; the values were never stored.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from string import Template
from typing import Any

from tokentrail.sinks.identifiers import check_identifier

FORMAT_VERSION = 1  # of the timeline JSON; bump when a field changes meaning

_CALLS = """
SELECT toString(event_id), ts, span_id, parent_span_id, tenant, service, feature, provider, model,
       response_model, prompt_id, prompt_version, system_prompt_hash, prompt_hash, input_tokens,
       cached_input_tokens, output_tokens, reasoning_tokens, toString(cost_usd), priced, latency_ms, ttft_ms,
       status, finish_reason, error_type, tool_names, output_text, price_table, redaction_key_id, redaction_config
FROM $db.calls WHERE trace_id = {trace:String} $tenant_filter
LIMIT 1 BY event_id
"""
_CALL_COLUMNS = (
    "event_id ts span_id parent_span_id tenant service feature provider model response_model prompt_id prompt_version "
    "system_prompt_hash prompt_hash input_tokens cached_input_tokens output_tokens reasoning_tokens cost_usd priced "
    "latency_ms ttft_ms status finish_reason error_type tool_names output_text price_table redaction_key_id "
    "redaction_config"
).split()
_TOOLS = """
SELECT toString(event_id), ts, span_id, parent_span_id, tenant, service, feature, tool_name, call_id, arguments,
       result, status, duration_ms
FROM $db.tool_calls WHERE trace_id = {trace:String} $tenant_filter
LIMIT 1 BY event_id
"""
_TOOL_COLUMNS = (
    "event_id ts span_id parent_span_id tenant service feature tool_name call_id arguments result status duration_ms"
).split()
# The prompt event of each call span: its params (redacted) and when the call started.
_PROMPTS = """
SELECT span_id, any(payload) FROM $db.events
WHERE trace_id = {trace:String} AND type = 'prompt' $tenant_filter GROUP BY span_id
"""
_DETECTIONS = """
SELECT kind, tenant, feature, repeats, tokens, toString(cost_usd), first_seen, detected_at, halt, events_in_trace,
       evidence
FROM $db.loop_detections FINAL WHERE trace_id = {trace:String} $tenant_filter
"""
_PII = """
SELECT type, entity, is_secret, sum(count) FROM (
    SELECT * FROM $db.pii_findings WHERE trace_id = {trace:String} $tenant_filter LIMIT 1 BY event_id, entity
) GROUP BY type, entity, is_secret
"""
# The newest change of each kind and group (tenant, model, prompt) first seen before the trace ended.
_CHANGES = """
SELECT kind, tenant, feature, model, prompt_id,
       argMax(prompt_version, first_seen), argMax(silent, first_seen), argMax(from_value, first_seen),
       argMax(to_value, first_seen), max(first_seen)
FROM $db.changes FINAL
WHERE feature IN {features:Array(String)} AND tenant IN {tenants:Array(String)} AND first_seen <= {until:DateTime64(3)}
GROUP BY kind, tenant, feature, model, prompt_id
"""


class TraceNotFound(LookupError):
    """No call, tool call or event of that trace (in that tenant) is in the store."""


def iso(value: datetime | None) -> str | None:
    """Milliseconds, UTC, `Z`: the one time format of the timeline."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _query(client: Any, sql: str, database: str, params: dict[str, Any], tenant: str | None) -> list[tuple[Any, ...]]:
    tenant_filter = "AND tenant = {tenant:String}" if tenant is not None else ""
    if tenant is not None:
        params = {**params, "tenant": tenant}
    text = Template(sql).substitute(db=database, tenant_filter=tenant_filter)
    rows: list[tuple[Any, ...]] = client.query(text, parameters=params).result_rows
    return rows


def load_timeline(
    client: Any, trace_id: str, *, tenant: str | None = None, database: str = "tokentrail"
) -> dict[str, Any]:
    """The whole timeline of `trace_id` as plain JSON-ready values; raises TraceNotFound."""
    check_identifier(database, "database")
    params = {"trace": trace_id}

    def run(sql: str) -> list[tuple[Any, ...]]:
        return _query(client, sql, database, params, tenant)

    calls = [dict(zip(_CALL_COLUMNS, row, strict=True)) for row in run(_CALLS)]
    tools = [dict(zip(_TOOL_COLUMNS, row, strict=True)) for row in run(_TOOLS)]
    if not calls and not tools:
        raise TraceNotFound(f"trace {trace_id!r} is not in the store" + (f" for tenant {tenant!r}" if tenant else ""))
    params_by_span = {span: _params(payload) for span, payload in run(_PROMPTS)}
    steps = _causal_order([*(_call_step(c, params_by_span) for c in calls), *(_tool_step(t) for t in tools)])
    detections = sorted((_detection(row) for row in run(_DETECTIONS)), key=lambda d: (d["first_seen"], d["kind"]))
    pii = [
        {"event_type": t, "entity": e, "secret": bool(s), "count": int(n)}
        for t, e, s, n in sorted(run(_PII), key=lambda r: (r[0], r[1]))
    ]
    features = sorted({s["feature"] for s in steps})
    tenants = sorted({s["tenant"] for s in steps})
    started = min(s["_ts"] for s in steps)
    ended = max(s["_ts"] for s in steps)
    change_params = {"features": features, "tenants": [*tenants, ""], "until": ended}
    changes_rows = _query(client, _CHANGES, database, change_params, None)
    changes = sorted((_change(row) for row in changes_rows), key=lambda c: (c["first_seen"], c["kind"], c["feature"]))
    for step in steps:
        del step["_ts"]
    return {
        "format_version": FORMAT_VERSION,
        "trace_id": trace_id,
        "tenants": tenants,
        "services": sorted({s["service"] for s in steps}),
        "features": features,
        "started": iso(started),
        "ended": iso(ended),
        "steps": steps,
        "detections": detections,
        "pii": pii,
        "changes_in_effect": changes,
        "totals": _totals(steps, detections, pii),
    }


def _params(payload: str) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except ValueError:
        return {}
    params = doc.get("params") if isinstance(doc, dict) else None
    return params if isinstance(params, dict) else {}


def _call_step(c: dict[str, Any], params_by_span: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "model_call",
        "_ts": c["ts"],
        "ts": iso(c["ts"]),
        "event_id": c["event_id"],
        "span_id": c["span_id"],
        "parent_span_id": c["parent_span_id"],
        "tenant": c["tenant"],
        "service": c["service"],
        "feature": c["feature"],
        "provider": c["provider"],
        "model": c["model"],
        "response_model": c["response_model"],
        "prompt_id": c["prompt_id"],
        "prompt_version": c["prompt_version"],
        "system_prompt_hash": c["system_prompt_hash"],
        "prompt_hash": c["prompt_hash"],
        "params": params_by_span.get(c["span_id"], {}),
        "tokens": {
            "input": int(c["input_tokens"]),
            "cached_input": int(c["cached_input_tokens"]),
            "output": int(c["output_tokens"]),
            "reasoning": int(c["reasoning_tokens"]),
        },
        "cost_usd": c["cost_usd"],
        "priced": bool(c["priced"]),
        "latency_ms": c["latency_ms"],
        "ttft_ms": c["ttft_ms"],
        "status": c["status"],
        "finish_reason": c["finish_reason"],
        "error_type": c["error_type"],
        "tools_requested": list(c["tool_names"]),
        "output_text": c["output_text"],
        "price_table": c["price_table"],
        "redaction_key_id": c["redaction_key_id"],
        "redaction_config": c["redaction_config"],
    }


def _tool_step(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "tool_call",
        "_ts": t["ts"],
        "ts": iso(t["ts"]),
        "event_id": t["event_id"],
        "span_id": t["span_id"],
        "parent_span_id": t["parent_span_id"],
        "tenant": t["tenant"],
        "service": t["service"],
        "feature": t["feature"],
        "tool_name": t["tool_name"],
        "call_id": t["call_id"],
        "arguments": t["arguments"],
        "result": t["result"],
        "status": t["status"],
        "duration_ms": t["duration_ms"],
    }


def _causal_order(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Depth-first from the roots (steps whose parent span is not a step), siblings by time.

    A child span never comes before its parent; `depth` and `step` (1-based) are added.
    """

    def key(step: dict[str, Any]) -> tuple[Any, ...]:
        return (step["_ts"], step["kind"], step["span_id"], step["event_id"])

    by_span = {s["span_id"]: s for s in steps if s["span_id"]}
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    roots = []
    for step in steps:
        parent = step["parent_span_id"]
        if parent and parent in by_span and by_span[parent] is not step:
            children[parent].append(step)
        else:
            roots.append(step)
    ordered: list[dict[str, Any]] = []
    seen: set[int] = set()

    def visit(step: dict[str, Any], depth: int) -> None:
        if id(step) in seen:  # a parent cycle in hostile input: each step once
            return
        seen.add(id(step))
        step["depth"] = depth
        ordered.append(step)
        for child in sorted(children.get(step["span_id"], ()), key=key):
            visit(child, depth + 1)

    for root in sorted(roots, key=key):
        visit(root, 0)
    for step in sorted(steps, key=key):  # steps only reachable through a cycle
        visit(step, 0)
    for number, step in enumerate(ordered, 1):
        step["step"] = number
    return [{"step": s.pop("step"), "depth": s.pop("depth"), **s} for s in ordered]


def _detection(row: tuple[Any, ...]) -> dict[str, Any]:
    kind, tenant, feature, repeats, tokens, cost, first_seen, detected_at, halt, events_in_trace, evidence = row
    return {
        "kind": kind,
        "tenant": tenant,
        "feature": feature,
        "first_seen": iso(first_seen),
        "detected_at": iso(detected_at),
        "repeats": int(repeats),
        "tokens": int(tokens),
        "cost_usd": cost,
        "halted": bool(halt),
        "events_in_trace": int(events_in_trace),
        "evidence": evidence,
    }


def _change(row: tuple[Any, ...]) -> dict[str, Any]:
    kind, tenant, feature, model, prompt_id, prompt_version, silent, before, after, first_seen = row
    return {
        "kind": kind,
        "silent": bool(silent),
        "tenant": tenant,
        "feature": feature,
        "model": model,
        "prompt_id": prompt_id,
        "prompt_version": prompt_version,
        "from": before,
        "to": after,
        "first_seen": iso(first_seen),
    }


def money(value: Decimal) -> str:
    """A Decimal as plain digits, no exponent, no trailing zeros (`0.0133812`, `0`): ClickHouse's toString."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0E-12") else text


def _totals(steps: list[dict[str, Any]], detections: list[dict[str, Any]], pii: list[dict[str, Any]]) -> dict[str, Any]:
    calls = [s for s in steps if s["kind"] == "model_call"]
    tools = [s for s in steps if s["kind"] == "tool_call"]
    return {
        "model_calls": len(calls),
        "tool_calls": len(tools),
        "errors": sum(1 for s in steps if s["status"] != "ok"),
        "unpriced_calls": sum(1 for s in calls if not s["priced"]),
        "tokens": {k: sum(s["tokens"][k] for s in calls) for k in ("input", "cached_input", "output", "reasoning")},
        "cost_usd": money(sum((Decimal(s["cost_usd"]) for s in calls), Decimal(0))),
        "detections": len(detections),
        "pii_findings": sum(p["count"] for p in pii),
    }


def to_json(timeline: dict[str, Any]) -> str:
    """Canonical JSON: sorted keys, two-space indent, a final newline (the bundle's bytes)."""
    return json.dumps(timeline, ensure_ascii=False, sort_keys=True, indent=2) + "\n"
