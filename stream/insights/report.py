"""The replay report's `variance` and `changes` lists (docs/architecture.md), from the store.

`variance` has one entry per (tenant, feature, prompt_version, model) over everything stored:
the report summarises a whole replay, and the contract's entries carry no window. It is
computed by the same SQL and pure functions as the windowed `variance` table (one window that
spans the store), so the two never disagree on definitions. Numbers are rounded to 6 places for
a stable, readable report; the computation itself is deterministic (integer token sums, exact
percentiles, a hash-ordered similarity sample), so replaying the same input prints the same.

`changes` lists what the `changes` table holds (written by `run_insights`), oldest first.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .changes import iso
from .jobs import compute_variance, utc

__all__ = ["variance_entries", "change_entries"]

_FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def variance_entries(client: Any, database: str = "tokentrail", *, min_calls: int = 1) -> list[dict[str, Any]]:
    """Per group over the whole store: calls, distinct_output_ratio, similarity, output_tokens_cv and the rest.

    Sorted by tenant, feature, prompt_version, model. Undefined values (one call: no stddev, no
    similarity) are null.
    """
    rows = compute_variance(client, database=database, window_seconds=None, lo=None, hi=_FAR_FUTURE)
    entries = []
    for row in rows:
        if row["calls"] < min_calls:
            continue
        entry = {k: _round(v) for k, v in row.items() if k not in ("window_start", "window_seconds")}
        entries.append(entry)
    return entries


def change_entries(client: Any, database: str = "tokentrail") -> list[dict[str, Any]]:
    """Every stored change: {kind, tenant, feature, model, prompt_id, prompt_version, from, to, ts, silent}."""
    result = client.query(
        f"""SELECT kind, tenant, feature, model, prompt_id, prompt_version, from_value, to_value, first_seen, silent
            FROM {database}.changes FINAL ORDER BY first_seen, kind, change_id"""
    ).result_rows
    return [
        {
            "kind": kind,
            "tenant": tenant,
            "feature": feature,
            "model": model,
            "prompt_id": prompt_id,
            "prompt_version": version,
            "from": before,
            "to": after,
            "ts": iso(utc(ts)),
            "silent": bool(silent),
        }
        for kind, tenant, feature, model, prompt_id, version, before, after, ts, silent in result
    ]
