"""Output variance of one group (tenant, feature, prompt_version, model) in one window.

Why these statistics (docs/architecture.md): a prompt or model that answers
the same question differently each time is a quality risk nobody sees in averages. Per group:

* ``calls``: successful calls (errored calls have no output to compare and are left out);
* output tokens: mean, sample stddev, coefficient of variation (stddev / mean);
* latency p50 / p95: exact, linear interpolation between order statistics (R-7, the same as
  ClickHouse ``quantileExactInclusive`` and numpy's default);
* ``distinct_output_ratio``: distinct normalised output hashes / calls (1/n: all identical,
  1.0: all different);
* ``similarity``: mean pairwise Jaccard similarity of the outputs' word 3-shingles, estimated
  with MinHash (1.0: every answer identical, near 0: every answer different), over a
  deterministic sample of at most ``SAMPLE_LIMIT`` outputs (pairs grow as n^2; 60 outputs are
  1,770 pairs, plenty for a mean). The sample is the outputs with the smallest MD5 of their
  event id, which ClickHouse can select without reading the texts of the others;
* ``tool_path_diversity``: distinct tool-name sequences / calls.

Undefined values are None, never 0: the stddev / CV of fewer than two calls or of a zero mean,
the similarity of fewer than two outputs, a percentile without latencies.

Everything but the similarity is an aggregate ClickHouse computes exactly (``GroupAggregate``);
``aggregate`` computes the same from samples in Python, so both paths give equal numbers.
Token sums are integers, so mean and stddev do not depend on summation order.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "SAMPLE_LIMIT",
    "CallSample",
    "GroupAggregate",
    "aggregate",
    "quantile",
    "shingles",
    "similarity_document",
    "sample_order",
    "similarity_sample",
    "signatures",
    "mean_pairwise_similarity",
    "metrics",
    "variance_stats",
]

SAMPLE_LIMIT = 60
NUM_PERM = 128
SCHEME = "affine32"  # pinned: datasketch's default may change, and stored similarities must stay comparable
SHINGLE = 3
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class CallSample:
    """What variance needs from one stored call."""

    event_id: str
    output_tokens: int
    latency_ms: float | None
    output_hash: str
    output_text: str = ""
    tool_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupAggregate:
    """The exact aggregates of a group-window, as SQL or `aggregate` computes them."""

    calls: int
    tokens_sum: int
    tokens_sum_squares: int
    latency_p50: float | None
    latency_p95: float | None
    distinct_outputs: int
    distinct_tool_paths: int


def quantile(values: Sequence[float], q: float) -> float | None:
    """R-7 quantile (linear interpolation between closest ranks); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    h = (len(ordered) - 1) * q
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def aggregate(calls: Sequence[CallSample]) -> GroupAggregate:
    """The aggregates of `calls` in Python (tests, and callers without a store)."""
    latencies = [c.latency_ms for c in calls if c.latency_ms is not None]
    return GroupAggregate(
        calls=len(calls),
        tokens_sum=sum(c.output_tokens for c in calls),
        tokens_sum_squares=sum(c.output_tokens * c.output_tokens for c in calls),
        latency_p50=quantile(latencies, 0.5),
        latency_p95=quantile(latencies, 0.95),
        distinct_outputs=len({c.output_hash for c in calls}),
        distinct_tool_paths=len({tuple(c.tool_names) for c in calls}),
    )


def shingles(text: str, size: int = SHINGLE) -> set[bytes]:
    """Word `size`-shingles of the lower-cased words (punctuation and spacing do not count).

    A text shorter than `size` words is one shingle of all its words; an empty text has none.
    """
    words = _WORD.findall(text.lower())
    if len(words) <= size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


def similarity_document(text: str, tool_names: Sequence[str] = ()) -> str:
    """What is compared: the output text plus the tools it called (an agent step's output is
    often no text and tool calls only; `calls` keeps their names, not their arguments)."""
    return " ".join([text, *(f"tool_{name}" for name in tool_names)])


def sample_order(event_id: str) -> bytes:
    return hashlib.md5(str(event_id).encode()).digest()


def similarity_sample(calls: Sequence[CallSample], limit: int = SAMPLE_LIMIT) -> list[CallSample]:
    """The deterministic sample: the `limit` calls with the smallest MD5(event_id), as the SQL picks."""
    return sorted(calls, key=lambda c: sample_order(c.event_id))[:limit]


@lru_cache(maxsize=1)
def _permutations(num_perm: int) -> Any:
    from datasketch import MinHash

    return MinHash(num_perm=num_perm, scheme=SCHEME).permutations  # built once: the costly part of a MinHash


def signatures(sets: Sequence[set[bytes]], num_perm: int = NUM_PERM) -> Any:
    """MinHash signatures (one row per set) from datasketch, reusing one MinHash object: building
    a MinHash per document costs more than hashing its shingles."""
    import numpy as np
    from datasketch import MinHash

    m = MinHash(num_perm=num_perm, scheme=SCHEME, permutations=_permutations(num_perm))
    rows = []
    for items in sets:
        m.clear()
        m.update_batch(items)
        rows.append(m.hashvalues.copy())
    return np.stack(rows)


def mean_pairwise_similarity(documents: Sequence[str], num_perm: int = NUM_PERM) -> float | None:
    """Mean MinHash-estimated Jaccard similarity over all pairs of documents; None below two.

    Two documents without words count as identical (1.0); one empty and one not as 0.0.
    Identical documents are signed once and weighted by their count: outputs repeat a lot
    (labels, tool-only agent steps), and a pair of equal documents has similarity exactly 1.
    """
    n = len(documents)
    if n < 2:
        return None
    import numpy as np

    counts = Counter(documents)
    sets = [shingles(d) for d in counts]
    weight = np.array(list(counts.values()), dtype=np.float64)
    matrix = signatures(sets, num_perm)
    empty = np.array([not s for s in sets])
    # Agreement rate of two signatures = the MinHash Jaccard estimate, for every pair at once.
    estimate = (matrix[:, None, :] == matrix[None, :, :]).mean(axis=2)
    estimate = np.where(empty[:, None] & empty[None, :], 1.0, np.where(empty[:, None] ^ empty[None, :], 0.0, estimate))
    np.fill_diagonal(estimate, 1.0)
    # Over ordered pairs of positions, w.S.w counts each position with itself once (similarity
    # 1): take those out, then halve for unordered pairs.
    pairs = (weight @ estimate @ weight - weight.sum()) / 2
    return float(pairs / (n * (n - 1) / 2))


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def metrics(agg: GroupAggregate, documents: Sequence[str]) -> dict[str, Any]:
    """The variance row's statistics from the aggregates and the sampled documents."""
    n = agg.calls
    mean = agg.tokens_sum / n if n else 0.0
    stddev = cv = None
    if n >= 2:
        # Integer arithmetic until the last step: exact, and independent of summation order.
        numerator = n * agg.tokens_sum_squares - agg.tokens_sum * agg.tokens_sum
        stddev = math.sqrt(max(numerator, 0) / (n * (n - 1)))
        cv = stddev / mean if mean else None
    return {
        "calls": n,
        "output_tokens_mean": mean,
        "output_tokens_stddev": stddev,
        "output_tokens_cv": cv,
        "latency_p50": agg.latency_p50,
        "latency_p95": agg.latency_p95,
        "distinct_output_ratio": _ratio(agg.distinct_outputs, n),
        "similarity": mean_pairwise_similarity(documents),
        "similarity_sample": len(documents),
        "tool_path_diversity": _ratio(agg.distinct_tool_paths, n),
    }


def variance_stats(calls: Sequence[CallSample], *, sample_limit: int = SAMPLE_LIMIT) -> dict[str, Any]:
    """All statistics of one group-window of successful calls (see the module docstring)."""
    sample = similarity_sample(calls, sample_limit)
    return metrics(aggregate(calls), [similarity_document(c.output_text, c.tool_names) for c in sample])
