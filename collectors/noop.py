"""What the module-level API does before `init()`: nothing, cheaply, with the same shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class _NoOpScope:
    """Stands in for ModelCall, ToolCall and TraceScope: a context manager and decorator that records nothing."""

    trace_id = None
    span_id = None
    result = None

    def __enter__(self) -> _NoOpScope:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> _NoOpScope:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return fn

    def finish(self, **kwargs: Any) -> None:
        return None

    def first_token(self) -> None:
        return None

    def set_result(self, result: Any) -> None:
        return None


_NOOP = _NoOpScope()


class NonRecordingCollector:
    """The default collector until `init()`: every call is accepted and dropped."""

    service = None

    def trace(self, **kwargs: Any) -> _NoOpScope:
        return _NOOP

    def model_call(self, **kwargs: Any) -> _NoOpScope:
        return _NOOP

    def tool_call(self, name: Any = None, **kwargs: Any) -> Any:
        return name if callable(name) else _NOOP

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def close(self, timeout: float = 5.0) -> bool:
        return True

    def stats(self) -> dict[str, Any]:
        return {"emitted": 0, "queued": 0, "delivered": 0, "dropped": {}}
