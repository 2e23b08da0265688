"""Identifiers: UUIDv7 event ids (time-ordered, so ClickHouse parts stay sorted) and W3C-sized trace ids.

The random bits come from a generator of the collector's own, never the process-global `random`:
a host that calls `random.seed(...)` (ML code, simulations, tests) would otherwise make every
replica draw the same trace ids and event ids (the processor then drops the "duplicates"), and
our draws would shift the host's seeded sequence. The generator is seeded from `os.urandom` at
import and reseeded in a forked child, so parent and children never share a stream. Ids need
uniqueness, not secrecy: a Mersenne Twister draw is several times cheaper than a syscall per id.
"""

from __future__ import annotations

import os
import random
import time

_generator = random.Random()  # no seed given: seeded from os.urandom
_bits = _generator.getrandbits


def _reseed_in_child() -> None:
    # After fork the child holds a copy of the parent's state: reseed in place (the bound `_bits`
    # keeps pointing at this generator) so the two processes stop drawing the same ids.
    _generator.seed(os.urandom(32))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_in_child)


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
