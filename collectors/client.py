"""The collector a service owner uses: model calls, tool calls and traces, emitted as v1 events.

Every public method is guarded: our failures are logged and swallowed, the user's exceptions pass
through untouched. Events are built as plain dicts on the caller's thread (a few microseconds)
and encoded on the background thread.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import Token
from typing import Any, TypeVar

from . import context
from ._internal import guarded, rate_limited
from .control import TraceHalted
from .exporter import BatchExporter
from .kafka_security import KafkaSecurity
from .settings import CollectorSettings, kafka_security_from_env
from .transports import Transport

F = TypeVar("F", bound=Callable[..., Any])
UNKNOWN = "unknown"


class Collector:
    """Emits prompt, output and tool_call events for one service through one transport."""

    def __init__(
        self,
        *,
        service: str,
        transport: Transport,
        environment: str = "production",
        tenant: str | None = None,
        settings: CollectorSettings | None = None,
        register_atexit: bool = True,
    ) -> None:
        if not service or not isinstance(service, str):
            raise ValueError("Collector(service=...) is required: the name of the emitting service, e.g. 'order-agent'")
        for method in ("export", "flush", "close", "stats"):
            if not callable(getattr(transport, method, None)):
                raise ValueError(f"transport {transport!r} lacks {method}(): see tokentrail.collectors.Transport")
        self.service = service
        self.environment = environment
        self.tenant = tenant
        self._exporter = BatchExporter(transport, settings or CollectorSettings())
        self.transport = transport
        self._halts: Any = None  # a HaltListener once the kill switch is on
        self._on_halt: Callable[[str, dict[str, Any]], None] | None = None
        if register_atexit:
            atexit.register(self.close)

    # -- public API -----------------------------------------------------------------------------

    def trace(
        self,
        *,
        feature: str | None = None,
        tenant: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        trace_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> TraceScope:
        """A scope whose model and tool calls share one trace (an agent run, a request)."""
        return TraceScope(feature, tenant, user_id, session_id, trace_id, dict(attributes or {}))

    def model_call(
        self,
        *,
        provider: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        feature: str | None = None,
        prompt_id: str | None = None,
        prompt_version: str | None = None,
        params: Mapping[str, Any] | None = None,
        tools: Iterable[str] | None = None,
        tenant: str | None = None,
        user_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> ModelCall:
        """Context manager: emits `prompt` on enter and `output` on `finish()` or on an exception."""
        return ModelCall(
            self,
            provider,
            model,
            messages,
            feature,
            prompt_id,
            prompt_version,
            params,
            tools,
            tenant,
            user_id,
            attributes,
        )

    def tool_call(
        self,
        name: str | Callable[..., Any] | None = None,
        *,
        arguments: Any = None,
        call_id: str | None = None,
        feature: str | None = None,
    ) -> Any:
        """A tool execution, as a context manager or a decorator (`@collector.tool_call` or `("name")`)."""
        if callable(name):  # used bare: @collector.tool_call
            return ToolCall(self, None, None, None, None)(name)
        return ToolCall(self, name, arguments, call_id, feature)

    def enable_kill_switch(
        self,
        bootstrap_servers: str,
        *,
        topic: str = "tokentrail.control",
        on_halt: Callable[[str, dict[str, Any]], None] | None = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        """Honour halt records from the processor: a model call in a halted trace raises `TraceHalted`
        (or calls `on_halt(trace_id, record)` instead, if given). Opt-in; starts a consumer thread.

        `security`: SASL/TLS settings; by default the Kafka transport's own, else the environment's.
        """
        from .control import HaltListener

        if security is None:
            own = getattr(getattr(self.transport, "settings", None), "security", None)
            security = own if isinstance(own, KafkaSecurity) else kafka_security_from_env()
        self._halts = HaltListener(bootstrap_servers, topic, security=security)
        self._on_halt = on_halt

    def halted(self, trace_id: str, tenant: str | None = None) -> dict[str, Any] | None:
        """The halt record for a trace if the kill switch is on and the trace is halted. A halt is
        per tenant (collectors/control.py): `tenant` defaults to this collector's own."""
        if self._halts is None:
            return None
        record: dict[str, Any] | None = self._halts.halted(trace_id, tenant or self.tenant or UNKNOWN)
        return record

    def flush(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued, waiting at most `timeout` seconds. True if everything went out."""
        try:
            return self._exporter.flush(timeout)
        except Exception:
            rate_limited.warning("flush", "tokentrail: flush failed", exc_info=True)
            return False

    def close(self, timeout: float = 5.0) -> bool:
        """Flush and stop. Undelivered events stay in the transport's spool for the next run."""
        try:
            if self._halts is not None:
                self._halts.close()
            return self._exporter.close(timeout)
        except Exception:
            rate_limited.warning("close", "tokentrail: close failed", exc_info=True)
            return False

    def stats(self) -> dict[str, Any]:
        """Counters: emitted, queued, delivered, spooled, replayed, dropped by reason."""
        return self._exporter.stats()

    # -- internals ------------------------------------------------------------------------------

    def _event(self, type_: str, ctx: context.SpanContext, ts: float) -> dict[str, Any]:
        """The fields every event carries. Runs on the background thread."""
        return {
            "schema_version": 1,
            "type": type_,
            "ts": ts,
            "trace_id": ctx.trace_id,
            "span_id": ctx.span_id,
            "parent_span_id": ctx.parent_span_id,
            "session_id": ctx.session_id,
            "service": self.service,
            "environment": self.environment,
            "tenant": ctx.tenant or self.tenant or UNKNOWN,
            "feature": ctx.feature or UNKNOWN,
            "user_id": ctx.user_id,
            "attributes": ctx.attributes,
        }


class TraceScope:
    """`with collector.trace(...)`: nested calls join this trace and inherit its defaults."""

    __slots__ = ("_defaults", "_trace_id", "_token", "context")

    def __init__(self, feature, tenant, user_id, session_id, trace_id, attributes) -> None:  # type: ignore[no-untyped-def]
        self._defaults = {
            "feature": feature,
            "tenant": tenant,
            "user_id": user_id,
            "session_id": session_id,
            "attributes": attributes,
        }
        self._trace_id = trace_id
        self._token: Token[context.SpanContext | None] | None = None
        self.context: context.SpanContext | None = None

    def __enter__(self) -> TraceScope:
        with guarded("trace enter"):
            ctx = context.child_of(context.current(), **self._defaults)
            if self._trace_id:  # the caller's own trace id (e.g. from an incoming request)
                ctx.trace_id, ctx.parent_span_id = self._trace_id, None
            self.context = ctx
            self._token = context.activate(ctx)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            context.deactivate(self._token)

    @property
    def trace_id(self) -> str | None:
        return self.context.trace_id if self.context else None


class ModelCall:
    """One model request/response. Call `finish(...)` with the response; an exception finishes it as an error.

    The caller's thread only snapshots what it was given and queues it; `_build_prompt` and
    `_build_output` turn the snapshot into events on the background thread.
    """

    __slots__ = ("_c", "_args", "_ctx", "_token", "_t0", "_ttft", "_finished", "_messages", "_params", "_tools")

    def __init__(self, collector: Collector, *args: Any) -> None:
        self._c = collector
        self._args = args
        self._ctx: context.SpanContext | None = None
        self._token: Token[context.SpanContext | None] | None = None
        self._t0 = 0.0
        self._ttft: float | None = None
        self._finished = False

    def __enter__(self) -> ModelCall:
        # try/except rather than the `guarded` context manager: this is the caller's hot path.
        try:
            args = self._args
            attributes = args[10]
            self._ctx = ctx = context.child_of(
                context.current(), args[3], args[8], args[9], None, dict(attributes) if attributes else None
            )
            self._token = context.activate(ctx)
            if self._c._halts is not None:
                self._check_halt(ctx.trace_id, ctx.tenant or self._c.tenant or UNKNOWN)
            # Snapshot: agents append to their message history after the call.
            self._messages = list(args[2])
            self._params = dict(args[6]) if args[6] else {}
            self._tools = list(args[7]) if args[7] else []
            self._c._exporter.submit((_build_prompt, self, time.time()))
        except TraceHalted:
            raise
        except Exception:
            rate_limited.warning("model_call enter", "tokentrail: internal error in model_call", exc_info=True)
        self._t0 = time.perf_counter()
        return self

    def _check_halt(self, trace_id: str, tenant: str) -> None:
        """The kill switch (opt-in): the one place the collector raises into the caller, by request.
        Only a halt of this tenant's trace counts (the tenant the call's events carry)."""
        record = self._c._halts.halted(trace_id, tenant)
        if record is None:
            return
        if self._c._on_halt is not None:
            self._c._on_halt(trace_id, record)  # the user decides; if it returns, the call goes ahead
            return
        if self._token is not None:
            context.deactivate(self._token)
            self._token = None
        self._ctx = None  # nothing is emitted for a call that never happens
        raise TraceHalted(trace_id, record)

    async def __aenter__(self) -> ModelCall:
        return self.__enter__()

    def first_token(self) -> None:
        """Mark the arrival of the first streamed token (sets `ttft_ms`)."""
        if self._ttft is None:
            self._ttft = (time.perf_counter() - self._t0) * 1000.0

    def finish(
        self,
        *,
        response_model: str | None = None,
        output: str | Sequence[Mapping[str, Any]] | None = None,
        tool_calls: Sequence[Mapping[str, Any]] | None = None,
        usage: Mapping[str, int] | None = None,
        finish_reason: str | None = None,
        error: BaseException | Mapping[str, str] | None = None,
    ) -> None:
        """Emit the `output` event. Only the first call counts."""
        latency = (time.perf_counter() - self._t0) * 1000.0
        if self._finished or self._ctx is None:
            return
        self._finished = True
        try:
            fields = (response_model, output, tool_calls, usage, finish_reason, error, latency, self._ttft)
            self._c._exporter.submit((_build_output, self, time.time(), fields))
        except Exception:
            rate_limited.warning("model_call finish", "tokentrail: internal error in model_call.finish", exc_info=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if not self._finished:
            if exc is not None:
                self.finish(error=exc, finish_reason="error")
            else:
                self.finish(error={"type": "unfinished", "message": "model_call exited without finish()"})
        if self._token is not None:
            context.deactivate(self._token)
            self._token = None
        # Returning None lets the user's exception propagate untouched.

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)

    @property
    def trace_id(self) -> str | None:
        return self._ctx.trace_id if self._ctx else None

    @property
    def span_id(self) -> str | None:
        return self._ctx.span_id if self._ctx else None


def _model_fields(call: ModelCall, type_: str, ts: float) -> dict[str, Any]:
    provider, model, _messages, _feature, prompt_id, prompt_version = call._args[:6]
    event = call._c._event(type_, call._ctx, ts)  # type: ignore[arg-type]
    event.update(provider=provider, model=model, prompt_id=prompt_id, prompt_version=prompt_version)
    return event


def _build_prompt(call: ModelCall, ts: float) -> dict[str, Any]:
    event = _model_fields(call, "prompt", ts)
    event.update(messages=call._messages, params=call._params, tools=call._tools)
    return event


def _build_output(call: ModelCall, ts: float, fields: tuple[Any, ...]) -> dict[str, Any]:
    response_model, output, tool_calls, usage, finish_reason, error, latency, ttft = fields
    event = _model_fields(call, "output", ts)
    if isinstance(output, str):
        output = [{"role": "assistant", "content": output}]
    event.update(
        response_model=response_model,
        output=list(output) if output else [],
        tool_calls=list(tool_calls) if tool_calls else [],
        finish_reason=finish_reason,
        usage=_usage(usage),
        latency_ms=round(latency, 3),
        ttft_ms=None if ttft is None else round(ttft, 3),
        error=_error(error),
    )
    return event


def _usage(usage: Mapping[str, int] | None) -> dict[str, int]:
    usage = usage or {}
    return {
        "input_tokens": int(usage.get("input_tokens") or 0),
        "output_tokens": int(usage.get("output_tokens") or 0),
        "cached_input_tokens": int(usage.get("cached_input_tokens") or 0),
        "reasoning_tokens": int(usage.get("reasoning_tokens") or 0),
    }


def _error(error: BaseException | Mapping[str, str] | None) -> dict[str, str] | None:
    if error is None:
        return None
    if isinstance(error, BaseException):
        return {"type": type(error).__name__, "message": str(error)[:4096]}
    return {"type": str(error.get("type", "error")), "message": str(error.get("message", ""))}


class ToolCall:
    """One tool execution; emits a `tool_call` event when it ends, with its result or error."""

    __slots__ = ("_c", "name", "arguments", "call_id", "_feature", "result", "_ctx", "_token", "_t0")

    def __init__(
        self, collector: Collector, name: str | None, arguments: Any, call_id: str | None, feature: str | None
    ) -> None:
        self._c = collector
        self.name = name
        self.arguments = arguments
        self.call_id = call_id
        self._feature = feature
        self.result: Any = None
        self._ctx: context.SpanContext | None = None
        self._token: Token[context.SpanContext | None] | None = None

    def set_result(self, result: Any) -> None:
        self.result = result

    def __enter__(self) -> ToolCall:
        with guarded("tool_call enter"):
            self._ctx = context.child_of(context.current(), feature=self._feature)
            self._token = context.activate(self._ctx)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        duration = (time.perf_counter() - self._t0) * 1000.0
        if self._token is not None:
            context.deactivate(self._token)
            self._token = None
        if self._ctx is not None:
            with guarded("tool_call exit"):
                self._c._exporter.submit((_build_tool_call, self, time.time(), exc, duration))

    def __call__(self, fn: F) -> F:
        """Decorator form: each call of `fn` is a tool call with its bound arguments and return value."""
        name = self.name or fn.__name__
        signature = inspect.signature(fn)
        collector, call_id, feature = self._c, self.call_id, self._feature

        def arguments_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            try:
                return dict(signature.bind(*args, **kwargs).arguments)
            except TypeError:
                return {"args": list(args), **kwargs}

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with ToolCall(collector, name, arguments_of(args, kwargs), call_id, feature) as call:
                    call.result = await fn(*args, **kwargs)
                    return call.result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with ToolCall(collector, name, arguments_of(args, kwargs), call_id, feature) as call:
                call.result = fn(*args, **kwargs)
                return call.result

        return wrapper  # type: ignore[return-value]


def _build_tool_call(call: ToolCall, ts: float, exc: BaseException | None, duration: float) -> dict[str, Any]:
    event = call._c._event("tool_call", call._ctx, ts)  # type: ignore[arg-type]
    event["tool"] = {
        "name": call.name or "unnamed",
        "call_id": call.call_id,
        "arguments": call.arguments,
        "result": {"error": type(exc).__name__, "message": str(exc)[:4096]} if exc is not None else call.result,
        "status": "error" if exc is not None else "ok",
        "duration_ms": round(duration, 3),
    }
    return event
