"""Spend per (tenant, feature) and budget step, for the budget evaluation, without re-reading days of calls.

A rolling day budget evaluated from window end t needs the spend from t - 2 days - step
(`BudgetConfig.lookback`). Reading that from `calls FINAL` every minute would make a run's cost
grow with the traffic of the last two days. Instead each run computes from `calls` only the
buckets of its own window (from `since`, which already includes the lateness margin) and takes
the older ones from `insights_spend` (migration 0009), where earlier runs stored them.

Coverage is tracked like the job's: a watermark named ``spend/<step>`` records the last bucket
end stored for that step. Without it (the first run, or a new step_seconds) the whole lookback is
computed from `calls` once and stored. Only buckets whose spend changed are written.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from .budgets import Series, SpendBucket, spend_series
from .watermark import read_watermark, write_watermark

__all__ = ["spend_from_calls", "spend_for_budgets"]


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def spend_from_calls(client: Any, database: str, step: int, lo: datetime | None, hi: datetime) -> list[SpendBucket]:
    """Spend buckets of deduplicated calls with lo <= ts < hi (lo None: all history)."""
    # The hours too: `calls` is keyed by the hour first (migration 0011) and ClickHouse does not derive them from ts.
    where = "ts < {hi:DateTime64(3, 'UTC')} AND toStartOfHour(ts) <= toStartOfHour({hi:DateTime64(3, 'UTC')})"
    where += (
        " AND ts >= {lo:DateTime64(3, 'UTC')} AND toStartOfHour(ts) >= toStartOfHour({lo:DateTime64(3, 'UTC')})"
        if lo
        else ""
    )
    params = {"hi": _utc(hi), **({"lo": _utc(lo)} if lo else {})}
    result = client.query(
        f"""SELECT tenant, feature, toStartOfInterval(ts, INTERVAL {int(step)} SECOND) AS bucket, sum(cost_usd)
            FROM {database}.calls FINAL WHERE {where} GROUP BY tenant, feature, bucket""",
        parameters=params,
    ).result_rows
    return [SpendBucket(tenant, feature, _utc(bucket), spend) for tenant, feature, bucket, spend in result]


def _stored(client: Any, database: str, step: int, lo: datetime, hi: datetime) -> list[SpendBucket]:
    """The stored buckets in [lo, hi), one per (tenant, feature, bucket)."""
    result = client.query(
        f"""SELECT tenant, feature, bucket, spend FROM {database}.insights_spend FINAL
            WHERE step_seconds = {{step:UInt32}} AND bucket >= {{lo:DateTime64(3, 'UTC')}}
              AND bucket < {{hi:DateTime64(3, 'UTC')}}""",
        parameters={"step": step, "lo": _utc(lo), "hi": _utc(hi)},
    ).result_rows
    return [SpendBucket(tenant, feature, _utc(bucket), spend) for tenant, feature, bucket, spend in result]


def _stored_series(client: Any, database: str, step: int, lo: datetime, hi: datetime) -> Series:
    """The stored buckets in [lo, hi) summed per (scope, key) in SQL: a few series of two days
    each, instead of every (tenant, feature) pair's rows converted one by one in Python."""
    result = client.query(
        f"""WITH spend AS (
                SELECT tenant, feature, intDiv(toUnixTimestamp64Milli(bucket), {int(step) * 1000}) AS i, spend
                FROM {database}.insights_spend FINAL
                WHERE step_seconds = {{step:UInt32}} AND bucket >= {{lo:DateTime64(3, 'UTC')}}
                  AND bucket < {{hi:DateTime64(3, 'UTC')}})
            SELECT 'tenant', tenant, i, sum(spend) FROM spend GROUP BY tenant, i
            UNION ALL
            SELECT 'feature', feature, i, sum(spend) FROM spend GROUP BY feature, i""",
        parameters={"step": step, "lo": _utc(lo), "hi": _utc(hi)},
    ).result_rows
    series: Series = {}
    for scope, key, i, spend in result:
        series.setdefault((scope, key), {})[int(i)] = Decimal(spend)
    return series


def spend_for_budgets(
    client: Any, database: str, sink: Any, *, step: int, first_end: datetime, last_end: datetime, lookback: timedelta
) -> tuple[Series, int]:
    """The spend series (`budgets.spend_series`) from first_end - lookback to last_end, and how
    many bucket rows were stored.

    Buckets from `first_end` on come from `calls`; earlier ones from the stored state when it
    covers them (module docstring), else from `calls` too.
    """
    start = first_end - lookback
    covered = read_watermark(client, database, name=f"spend/{step}")
    fresh_from = first_end if covered is not None and covered >= first_end else start
    fresh = spend_from_calls(client, database, step, fresh_from, last_end)
    before = {
        (b.tenant, b.feature, b.start): Decimal(b.spend) for b in _stored(client, database, step, fresh_from, last_end)
    }
    changed = [b for b in fresh if before.get((b.tenant, b.feature, b.start)) != Decimal(b.spend)]
    if changed:
        rows = [
            {"step_seconds": step, "tenant": b.tenant, "feature": b.feature, "bucket": b.start, "spend": b.spend}
            for b in changed
        ]
        digest = hashlib.blake2b(repr([tuple(r.values()) for r in rows]).encode(), digest_size=12).hexdigest()
        sink.write_batch({"insights_spend": rows}, f"insights-spend-{digest}")
    write_watermark(sink, last_end, name=f"spend/{step}")
    older = _stored_series(client, database, step, start, fresh_from) if fresh_from > start else {}
    return spend_series(fresh, step, into=older), len(changed)
