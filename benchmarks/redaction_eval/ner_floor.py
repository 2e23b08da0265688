"""Redact's cost per message on the pipeline benchmark's traffic, against spaCy's own floor.

The traffic is the pipeline benchmark's (`pipeline_bench.traffic.generate_lines`, the same seed),
cut to what the Redact stage hands the redactor (`stages.redaction_values` per valid event: its
free text, identifiers and labels), in batches of the worker's size (5,000). Per round, the NER
redactor and the pattern-only one start cold (result cache and NER span cache cleared); the NER
redactor records every piece it sends to `nlp.pipe`, and the floor is `nlp.pipe` alone on exactly
those pieces with the same batch size: what NER cannot cost less than. Rounds interleave the
three so machine load falls on all; medians.

What NER costs inside Redact is measured two ways: the difference of the two redactors' times
(everything NER changes, but the difference of two noisy figures, each ~5x the difference), and
the time inside the NER step itself (`Detector._add_ner`: the gate, the span cache, `nlp.pipe`,
the findings), timed in place in the NER redactor's runs. The goal is checked on the second.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class FloorReport:
    messages: int
    ner_us: float  # Redact with NER, µs per message
    pattern_us: float  # Redact pattern-only, µs per message
    floor_us: float  # nlp.pipe alone on the pieces NER was sent, µs per message
    ner_step_us: float  # inside Redact with NER, the NER step alone, µs per message
    pieces: int
    piece_chars: int
    texts: int  # distinct strings in the traffic
    model: str

    @property
    def ratio(self) -> float:
        """Redact with NER over the floor: the issue's figure (large when the floor is near zero)."""
        return self.ner_us / self.floor_us if self.floor_us else float("inf")

    @property
    def ner_overhead_ratio(self) -> float:
        """What NER adds to Redact (NER minus pattern-only) over the floor: how close NER runs to spaCy."""
        return (self.ner_us - self.pattern_us) / self.floor_us if self.floor_us else float("inf")

    @property
    def ner_step_ratio(self) -> float:
        """The NER step inside Redact over the floor: the goal's figure (within 1.5x)."""
        return self.ner_step_us / self.floor_us if self.floor_us else float("inf")

    def lines(self) -> list[str]:
        return [
            f"pipeline traffic: {self.messages} messages ({self.texts} distinct strings), model {self.model}",
            f"  Redact with NER      {self.ner_us:8.1f} us/message",
            f"  Redact pattern-only  {self.pattern_us:8.1f} us/message",
            f"  NER floor            {self.floor_us:8.1f} us/message  (nlp.pipe alone on the {self.pieces} pieces "
            f"sent, {self.piece_chars} characters)",
            f"  NER step in Redact   {self.ner_step_us:8.1f} us/message  (gate, span cache, nlp.pipe, findings)",
            f"  NER step / floor: {self.ner_step_ratio:.2f}x (goal 1.5x); "
            f"(NER - pattern-only) / floor: {self.ner_overhead_ratio:.2f}x; Redact with NER / floor: {self.ratio:.1f}x",
        ]


def pipeline_values(events: int, seed: int) -> list[Any]:
    from pipeline_bench.traffic import generate_lines

    from tokentrail.stream.stages import redaction_values

    lines, _ = generate_lines(events, seed)
    values = []
    for line in lines:
        try:
            values.append(redaction_values(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # malformed lines are dead letters, redacted as raw payloads: not this figure
    return values


def measure(ner: Any, pattern: Any, values: list[Any], rounds: int, batch: int = 5000) -> FloorReport:
    """Interleaved rounds of Redact with NER, pattern-only, and nlp.pipe on the pieces NER was sent.

    The garbage collector is tuned first as in the worker's pipeline process (`runtime.tune_gc`:
    what start-up built is frozen): otherwise every collection walks spaCy's model objects, and
    that cost, which the worker never pays, lands on the NER side (about 25 µs per message here).
    """
    from tokentrail.stream.runtime import tune_gc

    tune_gc()
    detector = ner.detector
    sent: list[str] = []
    detector.ner_log = sent
    times: dict[str, list[float]] = {"ner": [], "pattern": [], "floor": [], "ner_step": []}
    step = [0.0]
    add_ner = detector._add_ner

    def timed_add_ner(*args: Any) -> None:
        start = time.perf_counter()
        add_ner(*args)
        step[0] += time.perf_counter() - start

    detector._add_ner = timed_add_ner  # this detector only; it is the benchmark's own

    def run(redactor: Any) -> float:
        redactor.clear_cache()  # and NER's span cache
        start = time.perf_counter()
        for i in range(0, len(values), batch):
            redactor.redact_many(values[i : i + batch])
        return time.perf_counter() - start

    pieces: list[str] = []
    for _ in range(rounds):
        sent.clear()
        step[0] = 0.0
        times["ner"].append(run(ner))
        times["ner_step"].append(step[0])
        pieces = list(sent)
        times["pattern"].append(run(pattern))
        start = time.perf_counter()
        for _doc in detector.nlp.pipe(pieces, batch_size=ner.config.ner_batch_size):
            pass
        times["floor"].append(time.perf_counter() - start)
    detector.ner_log = None
    del detector._add_ner
    n = len(values)
    per = {k: statistics.median(v) / n * 1e6 for k, v in times.items()}
    distinct = len({s for v in values for s in strings(v)})
    return FloorReport(
        n,
        per["ner"],
        per["pattern"],
        per["floor"],
        per["ner_step"],
        len(pieces),
        sum(map(len, pieces)),
        distinct,
        detector.model_name,
    )


def strings(value: Any) -> Any:
    """Every string in a JSON value, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
