"""What the store must hold, computed independently of the pipeline from the raw lines."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from tokentrail.collectors.events import OutputEvent, decode_event
from tokentrail.stream.pricing import PriceBook


def per_call_cost(lines: Iterable[str | bytes]) -> Decimal:
    """Each distinct valid output event priced on its own, added up: the stored total must equal it."""
    book, seen, total = PriceBook(), set(), Decimal(0)
    for line in lines:
        event = decode_event(line)
        if isinstance(event, OutputEvent) and event.event_id not in seen:
            seen.add(event.event_id)
            u = event.usage
            total += book.price(
                event.provider, event.model, u.input_tokens, u.cached_input_tokens, u.output_tokens, event.ts
            ).cost_usd
    return total
