"""Shared machinery of the provider integrations: patched methods, the call lifecycle, wrapped streams.

A provider module describes its request and response shapes as an `Endpoint` (built from the pure
functions in `_shapes`); this module turns
each call of a patched client method into one `model_call` (the prompt event before the request,
the output event when the response, the error or the end of the stream arrives) without changing
what the caller sends or receives.

Design choices, and why:

- The client *instance* is patched, not the SDK classes: instrumentation is opt-in per client, two
  clients may carry different defaults, and clients nobody instrumented pay nothing.
- Streams are instrumented in place (their `_iterator` and `close` replaced, as sentry-python does)
  rather than proxied, so the caller keeps the SDK's own object: `isinstance`, `.response` and the
  SDKs' stream helpers behave exactly as without tokentrail.
- Everything of ours runs inside try/except that logs rate-limited and carries on; the provider's
  exceptions are recorded and re-raised as the same object.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .. import context, get_collector
from .._internal import rate_limited
from ..noop import NonRecordingCollector
from ._shapes import message

ORIGINAL = "__tokentrail_original__"  # not `__wrapped__`: the SDKs' own decorators already use that


def log_internal_error(what: str) -> None:
    rate_limited.warning(f"integration {what}", "tokentrail: internal error in %s", what, exc_info=True)


# -- the call lifecycle ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    """What `instrument_*` was given: tokentrail's side of each call, never sent to the provider."""

    collector: Any
    feature: str | None
    prompt_id: str | None
    prompt_version: str | None
    provider: str
    stream_usage: bool = False


class Accumulator:
    """Folds stream items into the `finish()` fields; `content_seen` turns true at the first content."""

    content_seen = False

    def add(self, item: Any) -> None:
        raise NotImplementedError

    def hide(self, item: Any) -> bool:
        """True for an item the caller would not have received without us (see `Endpoint.prepare`)."""
        return False

    def fields(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One provider method: how to describe its request and response, and how to follow its stream."""

    describe_request: Callable[[Mapping[str, Any]], dict[str, Any]]
    describe_response: Callable[[Any], dict[str, Any] | None]  # None: not a response we know
    new_accumulator: Callable[[Mapping[str, Any], Mapping[str, Any]], Accumulator]  # (asked, sent)
    stream_types: tuple[type, ...]
    prepare: Callable[[dict[str, Any], Options], dict[str, Any]] | None = None  # opt-in request changes


def _begin(endpoint: Endpoint, options: Options, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Start the model call: (call, kwargs to send). call is None when nothing records or on our failure."""
    collector = options.collector if options.collector is not None else get_collector()
    if isinstance(collector, NonRecordingCollector):
        return None, kwargs
    # A one-shot iterator (a generator of messages) is read here, so the SDK must get the list instead.
    # Not guarded: an exception from the caller's own generator is theirs, as it would be without us.
    if any(isinstance(v, Iterator) for v in kwargs.values()):
        kwargs = {k: list(v) if isinstance(v, Iterator) else v for k, v in kwargs.items()}
    try:
        send = endpoint.prepare(kwargs, options) if endpoint.prepare else kwargs
        request = endpoint.describe_request(kwargs)
        scope = context.current()
        call = collector.model_call(
            provider=options.provider,
            model=request.get("model") or "unknown",
            messages=request.get("messages") or [message("user", "")],
            # The enclosing trace's feature is the more specific one: the instrument_* value is a default.
            feature=None if scope is not None and scope.feature else options.feature,
            prompt_id=options.prompt_id or request.get("prompt_id"),
            prompt_version=options.prompt_version or request.get("prompt_version"),
            params=request.get("params"),
            tools=request.get("tools"),
        )
        # Entered in a copy of the context: the call's span must not leak into the caller's context,
        # and a stream outlives this frame, so there is no `with` block to leave.
        contextvars.copy_context().run(call.__enter__)
        return call, send
    except Exception:
        log_internal_error("request")
        return None, kwargs  # not `send`: a request change is only made for a call we record


def _fail(call: Any, exc: BaseException, fields: dict[str, Any] | None = None) -> None:
    try:
        call.finish(**{**(fields or {}), "error": exc, "finish_reason": "error"})
    except Exception:
        log_internal_error("error")


def _end(endpoint: Endpoint, call: Any, result: Any, asked: Mapping[str, Any], sent: Mapping[str, Any]) -> Any:
    """Finish the call from `result` (or hand it to the stream), and return `result` untouched."""
    try:
        if endpoint.stream_types and isinstance(result, endpoint.stream_types):
            attach_stream(result, call, endpoint.new_accumulator(asked, sent))
        else:
            call.finish(**(endpoint.describe_response(result) or {}))
    except Exception:
        log_internal_error("response")
        try:
            call.finish()  # latency at least; a no-op if the call already finished
        except Exception:
            pass
    return result


def run_sync(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], endpoint: Endpoint, options: Options
) -> Any:
    """Call `fn` once, as one traced model call, and return exactly what it returned."""
    call, send = _begin(endpoint, options, kwargs)
    if call is None:
        return fn(*args, **send)
    try:
        result = fn(*args, **send)
    except BaseException as exc:
        _fail(call, exc)
        raise
    return _end(endpoint, call, result, kwargs, send)


async def run_async(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], endpoint: Endpoint, options: Options
) -> Any:
    """`run_sync` for coroutine methods. A CancelledError is recorded as an error too, then re-raised."""
    call, send = _begin(endpoint, options, kwargs)
    if call is None:
        return await fn(*args, **send)
    try:
        result = await fn(*args, **send)
    except BaseException as exc:
        _fail(call, exc)
        raise
    return _end(endpoint, call, result, kwargs, send)


def patch_method(owner: Any, name: str, endpoint: Endpoint, options: Options) -> None:
    """Replace `owner.<name>` with a traced version; patching again replaces the options, not stacks."""
    current = getattr(owner, name, None)
    if current is None:
        return
    original = getattr(current, ORIGINAL, current)
    if inspect.iscoroutinefunction(inspect.unwrap(original)):

        @functools.wraps(original)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            return await run_async(original, args, kwargs, endpoint, options)

    else:

        @functools.wraps(original)
        def traced(*args: Any, **kwargs: Any) -> Any:
            return run_sync(original, args, kwargs, endpoint, options)

    setattr(traced, ORIGINAL, original)
    setattr(owner, name, traced)


def patch_copies(client: Any, instrument: Callable[[Any], Any]) -> None:
    """`client.with_options(...)` and `client.copy(...)` build new clients: instrument those the same way."""
    for name in ("copy", "with_options"):
        current = getattr(client, name, None)
        if current is not None:
            setattr(client, name, _instrumenting(getattr(current, ORIGINAL, current), instrument))


def _instrumenting(original: Callable[..., Any], instrument: Callable[[Any], Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def copy(*args: Any, **kwargs: Any) -> Any:
        new = original(*args, **kwargs)
        try:
            instrument(new)
        except Exception:
            log_internal_error("client copy")
        return new

    setattr(copy, ORIGINAL, original)
    return copy


# -- streams --------------------------------------------------------------------------------------


class _StreamState:
    """One stream's call: folds items in, marks the first token, finishes exactly once."""

    __slots__ = ("call", "acc", "marked", "done")

    def __init__(self, call: Any, acc: Accumulator) -> None:
        self.call, self.acc, self.marked, self.done = call, acc, False, False

    def observe(self, item: Any) -> bool:
        """Fold one item in; True if the caller must not see it."""
        try:
            self.acc.add(item)
            if not self.marked and self.acc.content_seen:
                self.marked = True
                self.call.first_token()
            return self.acc.hide(item)
        except Exception:
            log_internal_error("stream item")
            return False

    def finish(self, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            fields = self.acc.fields()
        except Exception:
            log_internal_error("stream end")
            fields = {}
        if error is not None:
            _fail(self.call, error, fields)
            return
        try:
            self.call.finish(**fields)
        except Exception:
            log_internal_error("stream end")


def attach_stream(stream: Any, call: Any, acc: Accumulator) -> None:
    """Follow an SDK stream in place; the call finishes when the stream ends, fails or is closed.

    Nothing here refers to the stream itself (only weakly): anthropic relies on a dropped stream
    being collected at once to release its connection, and a reference cycle would delay that.
    """
    state = _StreamState(call, acc)
    source = stream._iterator
    close = type(stream).close
    ref = weakref.ref(stream)
    if hasattr(source, "__anext__"):
        iterator: Any = _follow_async(source, state)

        async def traced_close() -> None:
            try:
                if (target := ref()) is not None:
                    await close(target)
            finally:
                state.finish()

        closer: Any = traced_close
    else:
        iterator = _follow(source, state)

        def closer() -> None:
            try:
                if (target := ref()) is not None:
                    close(target)
            finally:
                state.finish()

    stream._iterator = iterator
    stream.close = closer
    # A stream dropped unread never runs `_follow`; its collection still finishes the call.
    weakref.finalize(stream, state.finish).atexit = False


def _follow(source: Iterator[Any], state: _StreamState) -> Iterator[Any]:
    try:
        for item in source:
            if not state.observe(item):
                yield item
    except GeneratorExit:  # closed, or dropped unfinished
        state.finish()
        raise
    except BaseException as exc:
        state.finish(exc)
        raise
    state.finish()


async def _follow_async(source: Any, state: _StreamState) -> Any:
    try:
        async for item in source:
            if not state.observe(item):
                yield item
    except GeneratorExit:
        state.finish()
        raise
    except BaseException as exc:
        state.finish(exc)
        raise
    state.finish()
