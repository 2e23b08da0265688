"""The Redactor's memory: results by a hash of the string, because in telemetry the same system
prompt, template and conversation history arrive again with every call of a trace."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

__all__ = ["Result", "ResultCache", "content_digest"]

# What redacting one string gives: the new text (None: unchanged) and the findings counted by entity.
Result = tuple[str | None, tuple[tuple[str, int], ...]]


def content_digest(text: str) -> bytes:
    """The cache key: 128 bits of BLAKE2b, so the cache holds no text (and no PII) as keys."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ResultCache:
    """Bounded map from a content hash to a result; the oldest entries go first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[bytes, Result] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: bytes) -> Result | None:
        hit = self.data.get(key)
        if hit is None:
            self.misses += 1
            return None
        self.hits += 1
        self.data.move_to_end(key)
        return hit

    def put(self, key: bytes, value: Result) -> None:
        if self.size <= 0:
            return
        self.data[key] = value
        if len(self.data) > self.size:
            self.data.popitem(last=False)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
