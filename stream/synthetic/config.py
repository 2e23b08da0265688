"""What to generate (`GeneratorConfig`), what was hidden in it (`Truth`), and the constants they share."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .catalog import UNPRICED_MODELS

DEFAULT_START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LOOP_KINDS = ("repeated_tool_call", "tool_cycle", "repeated_prompt", "repeated_output")
LEGIT_KINDS = ("pagination", "polling", "batch", "retry_recovered")
# How a line is broken -> the reason `decode_event` must give for it.
MALFORMED_KINDS = {
    "truncated": "not_json",
    "json_array": "not_object",
    "missing_field": "missing_field",
    "bad_uuid": "invalid_value",
    "negative_tokens": "invalid_value",
    "unknown_type": "unknown_type",
    "schema_version_2": "unsupported_schema_version",
}
ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
TENANT_WEIGHT = {"northwind": 3, "acme": 3, "globex": 2, "initech": 2}
SPIKE = (0.72, 0.10, 2.0)  # window start and width (fractions of the duration), extra rate (x total)
SWAP = ("order-support", "gpt-4o", "gpt-4o-2024-11-20")  # for the first tenant: feature, model, new snapshot
EDITED = "refund-drafts"  # the feature whose system prompt is edited without a version bump


@dataclass
class GeneratorConfig:
    """What to generate. Same config, same bytes."""

    seed: int = 7
    events: int = 10_000  # valid distinct events wanted (approximate, see the module docstring)
    start: datetime = DEFAULT_START  # fixed by default so output is reproducible; the demo passes now - duration
    duration: timedelta = timedelta(hours=1)
    malformed_ratio: float = 0.01  # malformed lines per valid line
    redelivery_ratio: float = 0.01  # exact re-deliveries per valid line
    tenants: tuple[str, ...] = ("northwind", "acme", "globex", "initech")
    with_anomalies: bool = True
    sensitive_ratio: float = 0.07  # share of ordinary traces carrying PII or a secret

    def __post_init__(self) -> None:
        self.tenants = tuple(self.tenants)
        if self.events < 1:
            raise ValueError(f"events must be >= 1, got {self.events}")
        for name in ("malformed_ratio", "redelivery_ratio", "sensitive_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.duration <= timedelta(0):
            raise ValueError(f"duration must be positive, got {self.duration}")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware, e.g. datetime(..., tzinfo=timezone.utc)")
        if not self.tenants or not all(self.tenants):
            raise ValueError("tenants must be a non-empty list of names")


@dataclass
class Truth:
    """What the generated lines contain, for asserting what the processor found. Line indexes are 0-based."""

    seed: int
    requested_events: int
    lines: int = 0
    valid_events: int = 0  # distinct valid events (re-deliveries and malformed lines excluded)
    events_by_type: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "output": 0, "tool_call": 0})
    traces: int = 0
    model_calls: int = 0
    error_calls: int = 0
    unpriced: dict[str, Any] = field(default_factory=lambda: {"models": list(UNPRICED_MODELS), "calls": 0})
    malformed: dict[str, int] = field(default_factory=dict)  # reason -> lines
    malformed_lines: dict[int, str] = field(default_factory=dict)  # line index -> reason
    redeliveries: int = 0
    redelivered_lines: dict[int, int] = field(default_factory=dict)  # duplicate's index -> original's
    loops: list[dict[str, Any]] = field(default_factory=list)  # {trace_id, kind, tenant, feature, model, repeats, ts}
    legit_repetition: list[dict[str, Any]] = field(default_factory=list)  # same shape, kind in LEGIT_KINDS
    model_swap: dict[str, Any] | None = None  # {tenant, feature, provider, model, from, to, ts}
    prompt_change: dict[str, Any] | None = None  # {feature, prompt_id, prompt_version, from_sha256, to_sha256, ts}
    prompt_bump: dict[str, Any] | None = None  # announced (version bumped): must NOT be flagged
    spend_spike: dict[str, Any] | None = None  # {tenant, start, end, extra_rate, extra_traces}
    sensitive: dict[str, int] = field(default_factory=dict)  # entity kind -> values injected
    sensitive_samples: dict[str, list[str]] = field(default_factory=dict)  # up to 5 values per kind
    sensitive_traces: int = 0
    technical_samples: list[str] = field(default_factory=list)  # non-PII look-alikes, up to 20

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Traffic:
    lines: list[str]  # JSON Lines in emission order, malformed lines and re-deliveries included
    truth: Truth
