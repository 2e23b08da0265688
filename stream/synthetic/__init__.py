"""Deterministic synthetic v1 wire traffic, with the ground truth of what is hidden in it.

The input of `tokentrail demo`, `tokentrail generate N`, tests and benchmarks. Modules:

- `config`: `GeneratorConfig` (what to generate), `Truth` (what is hidden in it), shared constants.
- `traffic`: `generate`, `iter_lines`, `write_lines`; the generator that emits lines in time order.
- `traces`: ordinary traces (single calls, chats, agents with tool calls) as v1 events.
- `scenarios`: the loops and silent changes to detect, and the look-alikes not to flag.
- `faults`: malformed lines (re-deliveries are replayed by `traffic`).
- `catalog`, `text`, `sensitive`: models and features, the words, the PII and secrets.
"""

from .config import DEFAULT_START, LEGIT_KINDS, LOOP_KINDS, MALFORMED_KINDS, GeneratorConfig, Traffic, Truth
from .traffic import generate, iter_lines, write_lines

__all__ = [
    "DEFAULT_START",
    "LEGIT_KINDS",
    "LOOP_KINDS",
    "MALFORMED_KINDS",
    "GeneratorConfig",
    "Traffic",
    "Truth",
    "generate",
    "iter_lines",
    "write_lines",
]
