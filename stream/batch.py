"""What flows through the processor's stages: the `Batch`, its items, and the `Pipeline` that runs them.

A stage is a callable `stage(batch) -> None` that reads and extends a `Batch`; none does I/O.
The faust worker and the embedded runner both call `Pipeline.process`, so there is one code path
with two drivers (docs/architecture.md, the data flow).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tokentrail.collectors.events import InvalidEvent

from .pricing import Price

__all__ = ["Accepted", "Batch", "DeadLetter", "Inbound", "Pipeline", "Stage", "now_utc"]


@dataclass(slots=True)
class Inbound:
    """One raw message, where it came from (`file.jsonl:17`, `tokentrail.events/2@1234`) and when
    the processor read it (the reference of the `ts` window, docs/events.md)."""

    source: str
    raw: bytes
    received_at: datetime


@dataclass(slots=True)
class Accepted:
    """A valid event on its way through: the model, its JSON form (redacted in place), findings, price."""

    inbound: Inbound
    event: Any
    doc: dict[str, Any]
    findings: Counter[str] = field(default_factory=Counter)
    price: Price | None = None


@dataclass(slots=True)
class DeadLetter:
    """A message that is not a valid event; `payload` is its raw text until the redact stage replaces it.

    `field` and `detail` start as the validator's; the redact stage redacts them too (a field
    path may hold an emitter's JSON key).
    """

    inbound: Inbound
    invalid: InvalidEvent
    payload: str
    field: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        self.field = self.field or self.invalid.field
        self.detail = self.detail or self.invalid.detail


@dataclass
class Batch:
    """What flows through the stages. `rows` is keyed by ClickHouse table."""

    inbound: list[Inbound]
    accepted: list[Accepted] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    detections: list[dict[str, Any]] = field(default_factory=list)


Stage = Callable[[Batch], None]


class Pipeline:
    """Runs the stages in order over one batch, and adds up the time each stage takes (for benchmarks)."""

    def __init__(self, stages: Iterable[Stage]) -> None:
        self.stages = list(stages)
        self.stage_seconds: dict[str, float] = {}  # by stage class name; a second stage of one class is "Name#2"
        self._names = []
        for stage in self.stages:
            name = base = type(stage).__name__
            count = 1
            while name in self.stage_seconds:
                count += 1
                name = f"{base}#{count}"
            self.stage_seconds[name] = 0.0
            self._names.append(name)

    def process(self, inbound: list[Inbound]) -> Batch:
        batch = Batch(inbound)
        seconds, clock = self.stage_seconds, time.perf_counter
        for name, stage in zip(self._names, self.stages, strict=True):
            started = clock()
            stage(batch)
            seconds[name] += clock() - started
        return batch


def now_utc() -> datetime:
    return datetime.now(UTC)
