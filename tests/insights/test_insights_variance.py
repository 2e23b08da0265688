"""Output variance as pure functions: similarity, distinct outputs, token CV, latency percentiles."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tokentrail.stream.insights.variance import (
    SAMPLE_LIMIT,
    CallSample,
    mean_pairwise_similarity,
    quantile,
    shingles,
    similarity_sample,
    variance_stats,
)
from tokentrail.stream.stages import normalise_output_text, short_hash


def call(
    n: int, text: str, tokens: int = 40, latency: float | None = 1000.0, tools: tuple[str, ...] = ()
) -> CallSample:
    return CallSample(
        f"00000000-0000-7000-8000-{n:012d}", tokens, latency, short_hash(normalise_output_text(text)), text, tools
    )


def sentence(rng: random.Random, words: int = 25) -> str:
    return " ".join(f"w{rng.randrange(100_000)}" for _ in range(words))


def test_identical_outputs_are_similarity_one_and_distinct_ratio_one_over_n():
    """Ten identical answers: similarity 1.0, distinct-output ratio 1/10, no token variance."""
    calls = [call(i, "Your refund of $40 will arrive in 5-7 business days.") for i in range(10)]
    stats = variance_stats(calls)
    assert stats["similarity"] == 1.0
    assert stats["distinct_output_ratio"] == pytest.approx(1 / 10)
    assert stats["output_tokens_stddev"] == 0.0 and stats["output_tokens_cv"] == 0.0
    assert stats["calls"] == 10 and stats["similarity_sample"] == 10


def test_case_and_spacing_do_not_make_answers_different():
    """Normalised text is what is compared: 'Yes.' and '  yes. ' are the same answer."""
    assert shingles("Hello,   World  again!") == shingles("hello world AGAIN")
    stats = variance_stats([call(1, "Category: billing"), call(2, "  category:  BILLING ")])
    assert stats["similarity"] == 1.0 and stats["distinct_output_ratio"] == 0.5


def test_all_different_outputs_are_similarity_near_zero():
    """Unrelated answers: similarity near 0 and every output distinct."""
    rng = random.Random(1)
    stats = variance_stats([call(i, sentence(rng)) for i in range(30)])
    assert stats["similarity"] < 0.05
    assert stats["distinct_output_ratio"] == 1.0


def test_similarity_tracks_overlap():
    """Answers sharing most of their words score between the extremes, and MinHash estimates Jaccard."""
    rng = random.Random(2)
    base = sentence(rng, 60).split()
    docs = [" ".join(base[:50] + sentence(rng, 10).split()) for _ in range(12)]
    exact = [
        len(shingles(a) & shingles(b)) / len(shingles(a) | shingles(b))
        for i, a in enumerate(docs)
        for b in docs[i + 1 :]
    ]
    estimate = mean_pairwise_similarity(docs)
    assert 0.3 < estimate < 0.95
    assert estimate == pytest.approx(sum(exact) / len(exact), abs=0.08)


def test_coefficient_of_variation_is_sample_stddev_over_mean():
    """Tokens 10, 20, 30: mean 20, sample stddev 10, CV 0.5."""
    stats = variance_stats([call(1, "a", 10), call(2, "b", 20), call(3, "c", 30)])
    assert stats["output_tokens_mean"] == 20
    assert stats["output_tokens_stddev"] == pytest.approx(10)
    assert stats["output_tokens_cv"] == pytest.approx(0.5)


def test_latency_percentiles_interpolate_like_numpy_and_clickhouse():
    """p50/p95 are R-7 quantiles (numpy's default, ClickHouse quantileExactInclusive); missing latencies are skipped."""
    rng = random.Random(3)
    latencies = [rng.uniform(100, 5000) for _ in range(37)]
    calls = [call(i, "x", latency=v) for i, v in enumerate(latencies)] + [call(99, "x", latency=None)]
    stats = variance_stats(calls)
    assert stats["latency_p50"] == pytest.approx(np.percentile(latencies, 50))
    assert stats["latency_p95"] == pytest.approx(np.percentile(latencies, 95))
    assert quantile([], 0.5) is None


def test_undefined_statistics_are_none_not_zero():
    """One call has no stddev, CV or pairwise similarity; a call without latency has no percentile."""
    stats = variance_stats([call(1, "only answer", latency=None)])
    assert stats["output_tokens_stddev"] is None and stats["output_tokens_cv"] is None
    assert stats["similarity"] is None and stats["latency_p50"] is None
    assert stats["distinct_output_ratio"] == 1.0 and stats["tool_path_diversity"] == 1.0
    zero = variance_stats([call(1, "", 0), call(2, "", 0)])
    assert zero["output_tokens_cv"] is None and zero["similarity"] == 1.0  # two empty answers are identical


def test_tool_path_diversity_counts_distinct_tool_sequences():
    """Distinct tool-name sequences / calls; order matters, arguments do not (calls keeps names only)."""
    paths = [("search",), ("search",), ("search", "refund"), ("refund", "search"), ()]
    stats = variance_stats([call(i, "", tools=p) for i, p in enumerate(paths)])
    assert stats["tool_path_diversity"] == pytest.approx(4 / 5)
    assert stats["similarity"] < 1.0  # the tools called are part of what is compared


def test_similarity_sample_is_capped_and_deterministic():
    """At most SAMPLE_LIMIT outputs are compared, the same ones whatever the input order."""
    rng = random.Random(4)
    calls = [call(i, sentence(rng, 8)) for i in range(200)]
    shuffled = calls[:]
    random.Random(5).shuffle(shuffled)
    assert similarity_sample(calls) == similarity_sample(shuffled)
    assert len(similarity_sample(calls)) == SAMPLE_LIMIT
    first, again = variance_stats(calls), variance_stats(shuffled)
    assert first == again and first["similarity_sample"] == SAMPLE_LIMIT and first["calls"] == 200
