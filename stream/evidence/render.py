"""A timeline for people: plain-text tables for a terminal, and the same sections in Markdown.

No colours and no terminal-width probing: the output is the same wherever it is printed, so the
Markdown summary in an evidence bundle is deterministic and a terminal copy can be pasted into a
ticket. Long free text (tool arguments, results, outputs) is cut to a preview here; the JSON
holds it whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PREVIEW_CHARS = 60


def preview(text: Any, limit: int = PREVIEW_CHARS) -> str:
    """One line, at most `limit` characters (an ellipsis says it was cut)."""
    flat = " ".join(str(text if text is not None else "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.1f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, markdown: bool) -> str:
    """Aligned columns; in Markdown, a pipe table (pipes inside cells escaped)."""
    cells = [[_cell(v) for v in row] for row in rows]
    if markdown:
        cells = [[c.replace("|", "\\|") for c in row] for row in cells]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = [v.ljust(w) for v, w in zip(values, widths, strict=True)]
        return ("| " + " | ".join(padded) + " |") if markdown else "  ".join(padded).rstrip()

    rule = ("|" + "|".join("-" * (w + 2) for w in widths) + "|") if markdown else "  ".join("-" * w for w in widths)
    if not cells:
        return "(none)"
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def _step_rows(timeline: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    headers = ["#", "time", "step", "model / tool", "prompt", "tokens in/out/cached/reasoning", "cost USD"]
    headers += ["latency ms", "status", "finish", "detail"]
    rows = []
    for s in timeline["steps"]:
        indent = "  " * s["depth"]
        if s["kind"] == "model_call":
            answered = s["response_model"] or "?"
            t = s["tokens"]
            rows.append(
                [
                    s["step"],
                    s["ts"],
                    indent + "call",
                    f"{s['model']} -> {answered}",
                    f"{s['prompt_id']}@{s['prompt_version']}" if s["prompt_id"] else "",
                    f"{t['input']}/{t['output']}/{t['cached_input']}/{t['reasoning']}",
                    s["cost_usd"] if s["priced"] else "unpriced",
                    s["latency_ms"],
                    s["status"] + (f" ({s['error_type']})" if s["error_type"] else ""),
                    s["finish_reason"],
                    preview(s["output_text"]) or ("tools: " + ", ".join(s["tools_requested"])),
                ]
            )
        else:
            rows.append(
                [
                    s["step"],
                    s["ts"],
                    indent + "tool",
                    s["tool_name"],
                    "",
                    "",
                    "",
                    s["duration_ms"],
                    s["status"],
                    "",
                    preview(f"{s['arguments']} -> {s['result']}"),
                ]
            )
    return headers, rows


def sections(timeline: dict[str, Any], *, markdown: bool) -> list[tuple[str, str]]:
    """(title, table) for each section of the timeline, in reading order."""
    headers, rows = _step_rows(timeline)
    totals = timeline["totals"]
    tokens = totals["tokens"]
    out = [
        ("Steps (causal order)", table(headers, rows, markdown=markdown)),
        (
            "Detections",
            table(
                ["kind", "first seen", "detected", "repeats", "tokens", "cost USD", "halted"],
                [
                    [
                        d["kind"],
                        d["first_seen"],
                        d["detected_at"],
                        d["repeats"],
                        d["tokens"],
                        d["cost_usd"],
                        d["halted"],
                    ]
                    for d in timeline["detections"]
                ],
                markdown=markdown,
            ),
        ),
        (
            "PII and secrets found (counts by type; values are never stored)",
            table(
                ["event", "entity", "secret", "count"],
                [[p["event_type"], p["entity"], p["secret"], p["count"]] for p in timeline["pii"]],
                markdown=markdown,
            ),
        ),
        (
            "Changes in effect",
            table(
                ["first seen", "kind", "silent", "feature", "model / prompt", "from", "to"],
                [
                    [
                        c["first_seen"],
                        c["kind"],
                        c["silent"],
                        c["feature"],
                        c["model"] or c["prompt_id"],
                        preview(c["from"], 24),
                        preview(c["to"], 24),
                    ]
                    for c in timeline["changes_in_effect"]
                ],
                markdown=markdown,
            ),
        ),
        (
            "Totals",
            table(
                ["model calls", "tool calls", "errors", "unpriced", "tokens in", "out", "cached", "reasoning"]
                + ["cost USD", "detections", "PII findings"],
                [
                    [
                        totals["model_calls"],
                        totals["tool_calls"],
                        totals["errors"],
                        totals["unpriced_calls"],
                        tokens["input"],
                        tokens["output"],
                        tokens["cached_input"],
                        tokens["reasoning"],
                        totals["cost_usd"],
                        totals["detections"],
                        totals["pii_findings"],
                    ]
                ],
                markdown=markdown,
            ),
        ),
    ]
    return out


def header_lines(timeline: dict[str, Any]) -> list[str]:
    return [
        f"trace {timeline['trace_id']}",
        f"tenant {', '.join(timeline['tenants'])} · service {', '.join(timeline['services'])} · "
        f"feature {', '.join(timeline['features'])}",
        f"from {timeline['started']} to {timeline['ended']}",
    ]


def render_text(timeline: dict[str, Any]) -> str:
    """What `tokentrail trace` prints."""
    parts = ["\n".join(header_lines(timeline))]
    for title, body in sections(timeline, markdown=False):
        parts.append(f"{title}\n{body}")
    return "\n\n".join(parts) + "\n"


def render_markdown(timeline: dict[str, Any], *, owners: Sequence[str] = ()) -> str:
    """The bundle's `summary.md`: a person's reading of the same timeline."""
    lines = [f"# Trace {timeline['trace_id']}", ""]
    lines += [f"- {line}" for line in header_lines(timeline)[1:]]
    if owners:
        lines.append(f"- owner: {', '.join(owners)}")
    totals = timeline["totals"]
    lines += [
        f"- {totals['model_calls']} model calls, {totals['tool_calls']} tool calls, {totals['errors']} errors, "
        f"cost USD {totals['cost_usd']}, {totals['detections']} detections",
        "",
        "Text is shown as stored (redacted); `timeline.json` holds every field whole.",
    ]
    for title, body in sections(timeline, markdown=True):
        lines += ["", f"## {title}", "", body]
    return "\n".join(lines) + "\n"
