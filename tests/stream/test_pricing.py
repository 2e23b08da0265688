"""Pricing: the same figures as genai-prices, overrides win, unknown models are unpriced, bad files fail early."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from tokentrail.stream.pricing import PriceBook

TS = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    "provider, model",
    [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("openai", "o3-mini"),
        ("anthropic", "claude-sonnet-4-0"),
        ("anthropic", "claude-3-5-haiku-latest"),
        ("google", "gemini-2.0-flash"),
    ],
)
def test_matches_genai_prices_full_calculation(provider, model):
    """The cached linear rates give exactly genai-prices' own total."""
    for usage in ((12_345, 5_000, 678), (1, 0, 1), (200_000, 0, 9_000)):
        ours = PriceBook().price(provider, model, *usage, TS)
        ref = calc_price(
            Usage(input_tokens=usage[0], cache_read_tokens=usage[1], output_tokens=usage[2]),
            model_ref=model,
            provider_id=provider,
            genai_request_timestamp=TS,
        ).total_price
        assert ours.priced and ours.cost_usd == Decimal(ref).quantize(Decimal("1e-12"))


def test_unknown_model_is_unpriced():
    """No price anywhere: priced is False and the cost is zero by definition, not by accident."""
    price = PriceBook().price("vllm", "acme-llama-70b-ft", 1000, 0, 100, TS)
    assert not price.priced and price.cost_usd == 0


def test_overrides_win(tmp_path):
    """A negotiated rate in the overrides file replaces the public price; self-hosted models get one."""
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n"
        "  - {provider: openai, model: gpt-4o, input_per_mtok: 1, cached_input_per_mtok: 0.5, output_per_mtok: 4}\n"
        "  - {provider: vllm, model: acme-llama-70b-ft, input_per_mtok: 0.2, output_per_mtok: 0.2}\n"
    )
    book = PriceBook(path)
    assert book.price("openai", "gpt-4o", 1_000_000, 500_000, 1_000_000, TS).cost_usd == Decimal("4.75")
    assert book.price("vllm", "acme-llama-70b-ft", 1_000_000, 0, 0, TS).cost_usd == Decimal("0.2")


@pytest.mark.parametrize(
    "content, message",
    [
        ("models: [{provider: x}]", "needs provider, model"),
        ("[]", "must hold"),
        ("models: [{provider: a, model: b, input_per_mtok: -1, output_per_mtok: 1}]", ">= 0"),
    ],
)
def test_bad_overrides_fail_at_startup(tmp_path, content, message):
    """A malformed overrides file is a ValueError naming the problem."""
    path = tmp_path / "prices.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        PriceBook(path)
    with pytest.raises(ValueError, match="cannot be read"):
        PriceBook(tmp_path / "missing.json")
