"""The replay report (docs/architecture.md), read back from what ClickHouse stored.

Only `events.read` comes from the run; every other number is a query over the store, so
replaying the same input twice into one store prints the same report twice.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from .insights.report import change_entries, variance_entries


def _usd(value: Any) -> float:
    return float(Decimal(value or 0))


def build_report(client: Any, read: int, database: str = "tokentrail") -> dict[str, Any]:
    """Everything the report holds, as plain JSON-ready values."""

    def rows(sql: str) -> list[tuple[Any, ...]]:
        result: list[tuple[Any, ...]] = client.query(sql.format(db=database)).result_rows
        return result

    def scalar(sql: str) -> Any:
        result = rows(sql)
        return result[0][0] if result else 0

    accepted = scalar("SELECT uniqExact(event_id) FROM {db}.events")
    deliveries = scalar("SELECT count() FROM (SELECT DISTINCT event_id, source FROM {db}.receipts)")
    reasons = dict(rows("SELECT reason, count() FROM {db}.deadletter FINAL GROUP BY reason ORDER BY reason"))
    calls = "{db}.calls FINAL"

    def cost_by(column: str) -> dict[str, float]:
        return {
            k: _usd(v)
            for k, v in rows(f"SELECT {column}, sum(cost_usd) FROM {calls} GROUP BY {column} ORDER BY {column}")
        }

    unpriced_calls, unpriced_models = rows(f"SELECT count(), groupUniqArray(model) FROM {calls} WHERE priced = 0")[0]
    return {
        "events": {
            "read": read,
            "accepted": int(accepted),
            "duplicates": int(max(0, deliveries - accepted)),
            "deadletter": int(sum(reasons.values())),
            "deadletter_reasons": {k: int(v) for k, v in reasons.items()},
        },
        "cost_usd": {
            "total": _usd(scalar(f"SELECT sum(cost_usd) FROM {calls}")),
            "by_model": cost_by("model"),
            "by_tenant": cost_by("tenant"),
            "by_feature": cost_by("feature"),
        },
        "unpriced": {"calls": int(unpriced_calls), "models": sorted(unpriced_models)},
        "loops": loops(client, database),
        "variance": variance_entries(client, database),
        "changes": change_entries(client, database),
        "pii": {
            "by_entity": {
                k: int(v)
                for k, v in rows(
                    "SELECT entity, sum(count) FROM {db}.pii_findings FINAL GROUP BY entity ORDER BY entity"
                )
            }
        },
    }


def loops(client: Any, database: str = "tokentrail") -> list[dict[str, Any]]:
    """Every loop detection in its latest state, worst (costliest) first."""
    result = client.query(
        f"""SELECT trace_id, kind, tenant, feature, repeats, tokens, cost_usd, evidence
            FROM {database}.loop_detections FINAL ORDER BY cost_usd DESC, trace_id, kind"""
    )
    return [
        {
            "trace_id": t,
            "kind": k,
            "tenant": ten,
            "feature": f,
            "repeats": int(r),
            "tokens": int(tok),
            "cost_usd": _usd(c),
            "evidence": json.loads(e),
        }
        for t, k, ten, f, r, tok, c, e in result.result_rows
    ]
