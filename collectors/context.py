"""Trace context carried through contextvars, so nested calls share a trace without plumbing.

A model call or tool call inside `collector.trace(...)` (or inside another call) joins that trace
and records the enclosing span as its parent. With no tokentrail context but an active
OpenTelemetry span, the OpenTelemetry ids are adopted, so both systems tell the same story.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace

from .ids import new_span_id, new_trace_id


@dataclass(frozen=True, slots=True)
class SpanContext:
    """Where an event sits: its trace, its span, and the defaults inherited from enclosing scopes."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    feature: str | None = None
    tenant: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)


_current: ContextVar[SpanContext | None] = ContextVar("tokentrail_span", default=None)


def current() -> SpanContext | None:
    return _current.get()


def activate(ctx: SpanContext) -> Token[SpanContext | None]:
    return _current.set(ctx)


def deactivate(token: Token[SpanContext | None]) -> None:
    try:
        _current.reset(token)
    except ValueError:
        # Reset from another context (a generator finalised elsewhere): nothing to restore.
        pass


def child_of(parent: SpanContext | None, **defaults: object) -> SpanContext:
    """A new span under `parent`, or a new root (adopting an OpenTelemetry span if one is active)."""
    overrides = {k: v for k, v in defaults.items() if v is not None}
    if parent is not None:
        attrs = overrides.pop("attributes", None)
        merged = {**parent.attributes, **attrs} if attrs else parent.attributes
        return replace(
            parent, span_id=new_span_id(), parent_span_id=parent.span_id, attributes=merged, **overrides
        )
    otel = _otel_ids()
    if otel is not None:
        trace_id, parent_span_id = otel
        return SpanContext(trace_id=trace_id, span_id=new_span_id(), parent_span_id=parent_span_id, **overrides)
    return SpanContext(trace_id=new_trace_id(), span_id=new_span_id(), **overrides)


def _otel_ids() -> tuple[str, str] | None:
    # Only look if the host already imported OpenTelemetry: never import it on their behalf.
    otel_trace = sys.modules.get("opentelemetry.trace")
    if otel_trace is None:
        return None
    span_ctx = otel_trace.get_current_span().get_span_context()
    if not span_ctx.is_valid:
        return None
    return f"{span_ctx.trace_id:032x}", f"{span_ctx.span_id:016x}"
