"""What a model call cost: genai-prices' maintained price data, plus a local overrides file.

genai-prices' full calculation costs tens of microseconds per call, most of it re-deriving the
same per-model rates. For the usual linear prices we derive the three rates (uncached input,
cached input, output, per million tokens) once per (provider, model, price period) and multiply;
tiered prices fall back to the full calculation. Overrides (negotiated rates, self-hosted models)
win over the database. A model with no price anywhere is unpriced: cost 0 with `priced=False`,
counted and shown as such, never silently zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

# ClickHouse stores cost as Decimal(18, 12): quantise here so Python sums equal stored sums.
COST_QUANTUM = Decimal("0.000000000001")
MTOK = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens."""

    input: Decimal
    cached_input: Decimal
    output: Decimal

    def cost(self, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> Decimal:
        uncached = max(0, input_tokens - cached_input_tokens)
        total = uncached * self.input + cached_input_tokens * self.cached_input + output_tokens * self.output
        return (total / MTOK).quantize(COST_QUANTUM)


@dataclass(frozen=True, slots=True)
class Price:
    cost_usd: Decimal
    priced: bool


UNPRICED = Price(Decimal(0).quantize(COST_QUANTUM), False)


def load_overrides(path: str | Path | None) -> dict[tuple[str, str], Rates]:
    """Read the overrides file (JSON or YAML): a list of {provider, model, input/cached_input/output per MTok}.

    Fails with a message that says what is wrong and where, at startup.
    """
    if path is None:
        return {}
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"price overrides file {path} cannot be read: {exc}") from exc
    if path.suffix in (".yaml", ".yml"):
        import yaml

        doc = yaml.safe_load(text)
    else:
        doc = json.loads(text)
    entries = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ValueError(
            f"price overrides file {path} must hold {{'models': [{{provider, model, input_per_mtok, "
            "output_per_mtok, cached_input_per_mtok?}}]}}"
        )
    rates: dict[tuple[str, str], Rates] = {}
    for i, entry in enumerate(entries):
        try:
            inp = Decimal(str(entry["input_per_mtok"]))
            out = Decimal(str(entry["output_per_mtok"]))
            cached = Decimal(str(entry.get("cached_input_per_mtok", entry["input_per_mtok"])))
            key = (str(entry["provider"]), str(entry["model"]))
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise ValueError(
                f"price overrides file {path}, models[{i}]: needs provider, model, input_per_mtok, "
                f"output_per_mtok ({exc!r})"
            ) from exc
        if min(inp, out, cached) < 0:
            raise ValueError(f"price overrides file {path}, models[{i}]: prices must be >= 0")
        rates[key] = Rates(inp, cached, out)
    return rates


class PriceBook:
    """Prices model calls. Build once; `price()` is cheap and pure for a given price snapshot."""

    def __init__(self, overrides: str | Path | dict[tuple[str, str], Rates] | None = None) -> None:
        self.overrides = overrides if isinstance(overrides, dict) else load_overrides(overrides)
        from genai_prices.data_snapshot import get_snapshot

        self._snapshot = get_snapshot()

    def price(
        self, provider: str, model: str, input_tokens: int, cached_input_tokens: int, output_tokens: int, ts: datetime
    ) -> Price:
        rates = self.overrides.get((provider, model))
        if rates is not None:
            return Price(rates.cost(input_tokens, cached_input_tokens, output_tokens), True)
        month = ts.strftime("%Y-%m")  # price periods change at most monthly; cache per month
        found = self._rates(provider, model, month)
        if found is None:
            return UNPRICED
        if isinstance(found, Rates):
            return Price(found.cost(input_tokens, cached_input_tokens, output_tokens), True)
        return Price(self._full(found, input_tokens, cached_input_tokens, output_tokens), True)

    # One PriceBook per process, kept for the process's life: the cache holding `self` leaks nothing.
    @lru_cache(maxsize=4096)  # noqa: B019
    def _rates(self, provider: str, model: str, month: str) -> Rates | Any | None:
        """Linear rates for the model in that month, the genai-prices ModelPrice if tiered, or None."""
        from genai_prices.types import TieredPrices

        try:
            _, info = self._snapshot.find_provider_model(model, None, provider, None)
        except LookupError:
            return None
        if info is None:
            return None
        when = datetime.strptime(month + "-15", "%Y-%m-%d").replace(tzinfo=UTC)
        model_price = info.get_prices(when)
        if any(isinstance(v, TieredPrices) for v in vars(model_price).values()):
            return model_price
        per_million = [
            self._full(model_price, *usage)
            for usage in ((1_000_000, 0, 0), (1_000_000, 1_000_000, 0), (0, 0, 1_000_000))
        ]
        return Rates(input=per_million[0], cached_input=per_million[1], output=per_million[2])

    @staticmethod
    def _full(model_price: Any, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> Decimal:
        from genai_prices import Usage

        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached_input_tokens)
        return Decimal(model_price.calc_price(usage)["total_price"]).quantize(COST_QUANTUM)
