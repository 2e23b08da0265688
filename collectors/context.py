"""Trace context carried through contextvars, so nested calls share a trace without plumbing.

A model call or tool call inside `collector.trace(...)` (or inside another call) joins that trace
and records the enclosing span as its parent. With no tokentrail context but an active
OpenTelemetry span, the OpenTelemetry ids are adopted, so both systems tell the same story.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar, Token

from .ids import new_span_id, new_trace_id


class SpanContext:
    """Where an event sits: its trace, its span, and the defaults inherited from enclosing scopes.

    A plain slotted class rather than a dataclass: one is built per model call on the caller's
    thread, and `dataclasses.replace` costs several microseconds.
    """

    __slots__ = ("trace_id", "span_id", "parent_span_id", "feature", "tenant", "user_id", "session_id", "attributes")

    def __init__(
        self,
        trace_id: str,
        span_id: str,
        parent_span_id: str | None = None,
        feature: str | None = None,
        tenant: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.feature = feature
        self.tenant = tenant
        self.user_id = user_id
        self.session_id = session_id
        self.attributes = attributes if attributes is not None else {}


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


def child_of(
    parent: SpanContext | None,
    feature: str | None = None,
    tenant: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    attributes: dict[str, str] | None = None,
) -> SpanContext:
    """A new span under `parent` (inheriting what is not overridden), or a new root.

    A root adopts the active OpenTelemetry span's trace id and uses its span as the parent.
    """
    if parent is not None:
        return SpanContext(
            parent.trace_id,
            new_span_id(),
            parent.span_id,
            feature or parent.feature,
            tenant or parent.tenant,
            user_id or parent.user_id,
            session_id or parent.session_id,
            {**parent.attributes, **attributes} if attributes else parent.attributes,
        )
    otel = _otel_ids()
    trace_id, parent_span_id = otel if otel is not None else (new_trace_id(), None)
    return SpanContext(trace_id, new_span_id(), parent_span_id, feature, tenant, user_id, session_id, attributes)


def _otel_ids() -> tuple[str, str] | None:
    # Only look if the host already imported OpenTelemetry: never import it on their behalf.
    otel_trace = sys.modules.get("opentelemetry.trace")
    if otel_trace is None:
        return None
    span_ctx = otel_trace.get_current_span().get_span_context()
    if not span_ctx.is_valid:
        return None
    return f"{span_ctx.trace_id:032x}", f"{span_ctx.span_id:016x}"
