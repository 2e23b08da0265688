"""Transport faults mixed into the traffic: malformed lines, each with the reason the validator must give."""

from __future__ import annotations

import random
from typing import Any

from .config import ENCODE, MALFORMED_KINDS
from .traces import uuid7


def malformed_copy(ev: dict[str, Any], rng: random.Random, t0: int) -> tuple[str, str]:
    """A broken copy of the event just emitted (fresh event_id, so it never shadows a valid one)."""
    kinds = [k for k in MALFORMED_KINDS if k != "negative_tokens" or ev["type"] == "output"]
    kind = rng.choice(kinds)
    bad = dict(ev, event_id=uuid7(t0, rng))
    if kind == "truncated":
        line = ENCODE(bad)
        return line[: rng.randint(1, len(line) - 1)], MALFORMED_KINDS[kind]
    if kind == "json_array":
        return ENCODE([bad]), MALFORMED_KINDS[kind]
    if kind == "missing_field":
        name = rng.choice(("tenant", "ts", "trace_id", "service", "feature", "event_id"))
        if rng.random() < 0.3:
            bad[name] = None
        else:
            del bad[name]
    elif kind == "bad_uuid":
        bad["event_id"] = rng.choice(
            [bad["event_id"][:-1], f"evt_{rng.getrandbits(48):012x}", bad["event_id"].replace("-", "", 1) + "zz"]
        )
    elif kind == "negative_tokens":
        bad["usage"] = dict(ev["usage"], output_tokens=-rng.randint(1, 500))
    elif kind == "unknown_type":
        bad["type"] = rng.choice(["embedding", "metric", "completion"])
    else:
        bad["schema_version"] = 2
    return ENCODE(bad), MALFORMED_KINDS[kind]
