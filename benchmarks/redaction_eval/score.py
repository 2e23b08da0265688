"""Scoring a redactor on the evaluation set: recall and precision per entity, recall per locale.

Recall of an entity: the share of its labelled values that do not appear verbatim in the redacted
output (a value redacted under another label still counts: it is not stored). Precision: of the
detector's spans labelled with the entity, the share that overlap a labelled value; a span over a
technical token or plain words is a false positive. Kept: the share of technical tokens that
survive verbatim.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .generate import Sample

PATTERN_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@dataclass
class Score:
    found: Counter[str] = field(default_factory=Counter)  # labelled values removed, per entity
    labelled: Counter[str] = field(default_factory=Counter)
    spans_right: Counter[str] = field(default_factory=Counter)  # detector spans over a labelled value
    spans: Counter[str] = field(default_factory=Counter)
    kept: int = 0
    technical: int = 0
    by_locale: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # (entity, value, sample text)
    false_spans: list[tuple[str, str]] = field(default_factory=list)

    def recall(self, entity: str) -> float | None:
        n = self.labelled[entity]
        return self.found[entity] / n if n else None

    def precision(self, entity: str) -> float | None:
        n = self.spans[entity]
        return self.spans_right[entity] / n if n else None

    @property
    def kept_share(self) -> float:
        return self.kept / self.technical if self.technical else 1.0


def score(redactor: Any, samples: Iterable[Sample], batch: int = 256) -> Score:
    """Redacts every sample (batches through `redact_many`, as the pipeline does) and scores it."""
    result = Score()
    samples = list(samples)
    for i in range(0, len(samples), batch):
        chunk = samples[i : i + batch]
        outputs = redactor.redact_many([s.value for s in chunk])
        strings = [list(_strings(s.value)) for s in chunk]
        flat = [t for group in strings for t in group]
        spans = redactor.detector.find_many(flat)
        pos = 0
        for sample, (clean, _), group in zip(chunk, outputs, strings, strict=True):
            text = clean if isinstance(clean, str) else json.dumps(clean, ensure_ascii=False)
            _score_sample(result, sample, text, group, spans[pos : pos + len(group)])
            pos += len(group)
    return result


def _score_sample(result: Score, sample: Sample, text: str, strings: list[str], spans: list[list[Any]]) -> None:
    locale = result.by_locale[sample.locale]
    for pii in sample.pii:
        entity, value = pii["entity"], pii["text"]
        result.labelled[entity] += 1
        locale[entity + ":n"] += 1
        if value not in text:
            result.found[entity] += 1
            locale[entity] += 1
        else:
            result.misses.append((entity, value, text[:300]))
    for token in sample.keep:
        result.technical += 1
        locale["keep:n"] += 1
        if token in text:
            result.kept += 1
            locale["keep"] += 1
    labelled = [p["text"] for p in sample.pii]
    for string, found in zip(strings, spans, strict=True):
        where = [(j, j + len(v)) for v in labelled for j in _occurrences(string, v)]
        for f in found:
            result.spans[f.entity] += 1
            if any(f.start < end and start < f.end for start, end in where):
                result.spans_right[f.entity] += 1
            else:
                result.false_spans.append((f.entity, string[f.start : f.end]))


def _occurrences(text: str, value: str) -> Iterator[int]:
    start = text.find(value)
    while start >= 0:
        yield start
        start = text.find(value, start + 1)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def entity_rows(scores: dict[str, Score]) -> list[tuple[str, ...]]:
    """One row per entity: labelled count, recall and precision under each named score."""
    entities = sorted({e for s in scores.values() for e in s.labelled})
    rows = []
    for entity in entities:
        row = [entity, str(next(iter(scores.values())).labelled[entity])]
        for s in scores.values():
            row += [_pct(s.recall(entity)), _pct(s.precision(entity))]
        rows.append(tuple(row))
    rows.append(
        (
            "technical tokens kept",
            str(next(iter(scores.values())).technical),
            *(x for s in scores.values() for x in (_pct(s.kept_share), "")),
        )
    )
    return rows


def locale_rows(result: Score, entities: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Recall per locale (and the technical tokens kept), one column per entity."""
    rows = []
    for locale, c in sorted(result.by_locale.items()):
        cells = [_pct(c[e] / c[e + ":n"]) if c[e + ":n"] else "-" for e in entities]
        rows.append((locale, *cells, _pct(c["keep"] / c["keep:n"]) if c["keep:n"] else "-"))
    return rows


def goals(result: Score) -> list[tuple[str, float | None, float, bool]]:
    """The issue's goals on the held-out split: (what, measured, goal, met)."""
    out: list[tuple[str, float | None, float, bool]] = []
    person = result.recall("PERSON")
    out.append(("PERSON recall", person, 0.98, person is not None and person >= 0.98))
    for entity in PATTERN_ENTITIES:
        r = result.recall(entity)
        out.append((f"{entity} recall", r, 0.995, r is None or r >= 0.995))
    out.append(("technical tokens kept", result.kept_share, 0.98, result.kept_share >= 0.98))
    return out
