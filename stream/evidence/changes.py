"""What changed around a time: the list an incident commander reads first.

Two sources, one ordered list:
- the `changes` table (the insights job): silent model changes (`response_model`), system-prompt
  changes and prompt-version rollouts, at the time each was first seen;
- the `calls` table's provenance columns (migration 0006): a price-table or redaction-config
  change is the first call of a feature priced or redacted differently from the call before it
  (per tenant and feature, in time order). Calls stored before 0006 carry '' and are skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from string import Template
from typing import Any

from tokentrail.sinks.identifiers import check_identifier
from tokentrail.sinks.rollups import hours_sql

from .timeline import iso

_STORED = """
SELECT first_seen, kind, silent, tenant, feature, model, prompt_id, prompt_version, from_value, to_value
FROM $db.changes FINAL
WHERE first_seen BETWEEN {start:DateTime64(3)} AND {end:DateTime64(3)} $filters
"""
# lagInFrame over each (tenant, feature) in time order; the window starts a day early so the value
# in effect before the window is known (a change at the window's first second is still a change).
_PROVENANCE = """
SELECT ts, tenant, feature, before, after FROM (
    SELECT ts, tenant, feature, $column AS after,
           lagInFrame($column) OVER (PARTITION BY tenant, feature ORDER BY ts, event_id
                                     ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS before
    FROM $db.calls FINAL
    WHERE ts BETWEEN {lookback:DateTime64(3)} AND {end:DateTime64(3)} AND $hours AND $column != '' $filters
)
WHERE before != '' AND before != after AND ts >= {start:DateTime64(3)}
"""
# calls is keyed by the hour first (migration 0011): the hours of the window, written out (sinks/rollups.hours_sql).
_HOURS = hours_sql("{lookback:DateTime64(3)}", "{end:DateTime64(3)}")
_PROVENANCE_KINDS = {"price_table": "price_table", "redaction": "concat(redaction_key_id, ' ', redaction_config)"}


def changes_around(
    client: Any,
    around: datetime,
    window: timedelta,
    *,
    feature: str | None = None,
    tenant: str | None = None,
    database: str = "tokentrail",
) -> list[dict[str, Any]]:
    """Every change within `around ± window`, oldest first (ties by kind, feature, tenant)."""
    check_identifier(database, "database")
    start, end = around - window, around + window
    params: dict[str, Any] = {"start": start, "end": end, "lookback": start - timedelta(days=1)}
    filters = []
    if feature is not None:
        params["feature"] = feature
        filters.append("AND feature = {feature:String}")
    if tenant is not None:
        params["tenant"] = tenant
        # Prompt changes are per feature, not per tenant: their tenant is ''.
        filters.append("AND tenant IN ({tenant:String}, '')")
    found: list[dict[str, Any]] = []
    sql = Template(_STORED).substitute(db=database, filters=" ".join(filters))
    for first_seen, kind, silent, ten, feat, model, prompt_id, version, before, after in client.query(
        sql, parameters=params
    ).result_rows:
        found.append(
            {
                "time": iso(first_seen),
                "kind": kind,
                "silent": bool(silent),
                "tenant": ten,
                "feature": feat,
                "model": model,
                "prompt_id": prompt_id,
                "prompt_version": version,
                "from": before,
                "to": after,
            }
        )
    calls_filters = " ".join(f.replace("IN ({tenant:String}, '')", "= {tenant:String}") for f in filters)
    for kind, column in _PROVENANCE_KINDS.items():
        sql = Template(_PROVENANCE).substitute(db=database, column=column, filters=calls_filters, hours=_HOURS)
        for ts, ten, feat, before, after in client.query(sql, parameters=params).result_rows:
            found.append(
                {
                    "time": iso(ts),
                    "kind": kind,
                    "silent": True,  # nobody announces these in the traffic itself
                    "tenant": ten,
                    "feature": feat,
                    "model": "",
                    "prompt_id": "",
                    "prompt_version": "",
                    "from": before,
                    "to": after,
                }
            )
    found.sort(key=lambda c: (c["time"], c["kind"], c["feature"], c["tenant"], c["model"], c["prompt_id"], c["to"]))
    return found
