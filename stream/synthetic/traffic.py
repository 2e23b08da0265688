"""Deterministic synthetic v1 wire traffic, with the ground truth of what is hidden in it.

The input of `tokentrail demo`, `tokentrail generate N`, tests and benchmarks. A seed fixes every
byte, so a test or a benchmark can state what the processor must find. Traffic looks like real
services: several tenants and features, agent traces with tool calls, chats, single-shot
classification and summaries on priced models plus one self-hosted unpriced model; PII and secrets
in a few traces; errors, truncations. With `with_anomalies`, scenarios the processor must detect
are injected at fixed points of the stream (four runaway loops, a silent `response_model` swap, a
system-prompt edit without a version bump, a spend spike) next to look-alikes it must NOT flag
(pagination, polling, batch classification, retries that recover, an announced prompt bump).
Malformed lines and exact re-deliveries are mixed in from a separate random stream, so changing
their ratios leaves the valid traffic byte-identical.

`events` is approximate: traces are whole, so the number of valid distinct events lands in
[events, events + size of the last trace). Scenarios sit at fixed shares of `events`; from ~1,000
events all of them are reached (one not reached is absent from the truth), below ~2,000 they
dominate the traffic. Valid lines are in time order; a re-delivery repeats an earlier line, so its
timestamp is older than its neighbours', as on a real at-least-once transport.
"""

from __future__ import annotations

import heapq
import json
import random
from collections import deque
from collections.abc import Iterator
from typing import IO

from .config import ENCODE, GeneratorConfig, Traffic, Truth
from .faults import malformed_copy
from .scenarios import ScenarioWriter


def generate(config: GeneratorConfig | None = None) -> Traffic:
    """All lines in memory plus the complete ground truth. For big N use `iter_lines`."""
    config = config or GeneratorConfig()
    truth = Truth(config.seed, config.events)
    return Traffic(list(iter_lines(config, truth)), truth)


def iter_lines(config: GeneratorConfig | None = None, truth: Truth | None = None) -> Iterator[str]:
    """Stream the lines (no trailing newline). `truth`, if given, is complete once the iterator is exhausted."""
    config = config or GeneratorConfig()
    return TrafficGenerator(config, truth or Truth(config.seed, config.events)).lines()


def write_lines(config: GeneratorConfig, out: IO[str], truth_path: str | None = None) -> int:
    """The lines to `out`, then the ground truth as JSON to `truth_path` if given (`tokentrail generate`).

    A BrokenPipeError from `out` propagates (the reader went away; nothing more is written)."""
    truth = Truth(config.seed, config.events)
    batch: list[str] = []
    for line in iter_lines(config, truth):
        batch.append(line)
        if len(batch) >= 2000:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    out.write("\n".join(batch) + "\n" if batch else "")
    out.flush()
    if truth_path:
        with open(truth_path, "w", encoding="utf-8") as fh:
            json.dump(truth.to_dict(), fh, indent=2)
    return 0


class TrafficGenerator(ScenarioWriter):
    """Drives the writers along the stream's clock and emits lines in time order, with transport noise."""

    def __init__(self, config: GeneratorConfig, truth: Truth) -> None:
        super().__init__(config, truth)
        self.noise = random.Random(f"noise:{config.seed}")  # malformed + re-deliveries only
        self.recent: deque[tuple[int, str]] = deque(maxlen=1000)
        self.scenarios = deque(sorted(self._scenarios()) if config.with_anomalies else [])

    def lines(self) -> Iterator[str]:
        while self.produced < self.c.events:
            progress = self.produced / self.c.events
            job = self.scenarios.popleft()[1] if self.scenarios and self.scenarios[0][0] <= progress else None
            yield from self._drain(self._clock())
            (job or self._ordinary)()
        yield from self._drain(None)

    def _drain(self, until: int | None) -> Iterator[str]:
        heap, truth, noise = self.heap, self.truth, self.noise
        while heap and (until is None or heap[0][0] <= until):
            ts, _, kind, line, tag = heapq.heappop(heap)
            if tag:
                line = self._silent_change(line, tag, ts)
            truth.valid_events += 1
            truth.events_by_type[kind] += 1
            self.recent.append((truth.lines, line))
            truth.lines += 1
            yield line
            if noise.random() < self.c.malformed_ratio:
                bad, reason = malformed_copy(json.loads(line), noise, self.t0)
                truth.malformed[reason] = truth.malformed.get(reason, 0) + 1
                truth.malformed_lines[truth.lines] = reason
                truth.lines += 1
                yield bad
            if noise.random() < self.c.redelivery_ratio:
                index, again = noise.choice(self.recent)
                truth.redeliveries += 1
                truth.redelivered_lines[truth.lines] = index
                truth.lines += 1
                yield again

    def _silent_change(self, line: str, tag: str, ts: int) -> str:
        """A change happens at one instant: events from then on carry it, in-flight traces included."""
        change = self.swap if tag == "swap" else self.prompt_edit
        if change is None or ts < change[1]:
            return line
        ev = json.loads(line)
        if tag == "prompt":
            ev["messages"][0] = {"role": "system", "content": change[0]}
        elif ev["response_model"]:  # failed calls report none
            ev["response_model"] = change[0]
        return ENCODE(ev)
