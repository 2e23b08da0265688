"""Identifiers: UUIDv7 event ids (time-ordered, so ClickHouse parts stay sorted) and W3C-sized trace ids."""

from __future__ import annotations

import random
import time

# Ids need uniqueness, not secrecy: `random` (seeded from os.urandom, reseeded by CPython in a
# forked child) is several times cheaper than a syscall per id.
_bits = random.getrandbits


def uuid7() -> str:
    """A UUID version 7 string: 48 bits of Unix milliseconds, then random bits (RFC 9562)."""
    ms = time.time_ns() // 1_000_000
    rand = _bits(80)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 68) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_trace_id() -> str:
    """32 lowercase hex characters, the W3C trace-context size, so OpenTelemetry ids fit as-is."""
    return f"{_bits(128):032x}"


def new_span_id() -> str:
    """16 lowercase hex characters, the W3C span-id size."""
    return f"{_bits(64):016x}"
