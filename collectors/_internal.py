"""Guards for our own code: log (rate-limited) and swallow, never raise into the host service."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("tokentrail.collectors")


class RateLimitedLog:
    """Logs at most one message per `key` every `interval` seconds, counting the ones it skipped."""

    def __init__(self, interval: float = 30.0) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, msg: str, *args: object, exc_info: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._skipped[key] = self._skipped.get(key, 0) + 1
                return
            skipped = self._skipped.pop(key, 0)
            self._last[key] = now
        suffix = f" ({skipped} similar messages suppressed)" if skipped else ""
        logger.warning(msg + suffix, *args, exc_info=exc_info)


rate_limited = RateLimitedLog()


@contextmanager
def guarded(what: str) -> Iterator[None]:
    """Run our internals; an exception is logged (rate-limited) and swallowed."""
    try:
        yield
    except Exception:
        rate_limited.warning(what, "tokentrail: internal error in %s", what, exc_info=True)
