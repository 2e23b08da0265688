"""The PII-and-secrets and Pipeline-health dashboards: what redaction caught, and whether the pipeline keeps up.

`pii_findings` holds counts by entity type, never the values (the values are exactly what must
not be stored). Pipeline health reads the ingest-side clocks (`received_at`), not event time: a
stalled worker shows as a gap there even while producers keep stamping fresh event times.
"""

from __future__ import annotations

from .rollup_sql import histogram_quantile, latency_source, rollup_source
from .spec import SINCE_LAST_STORED, SINCE_LAST_STORED_FROM, Dashboard, Panel, filters, table

PII_TABLE = f"{table('pii_findings')} FINAL"
PII_FILTER = filters("tenant", "service", "feature")

PII = Dashboard(
    uid="tokentrail-pii",
    title="tokentrail / PII and secrets",
    description="What redaction replaced before anything was stored, by entity type, service and where it was found "
    "(prompt, output, tool call). A secret in a prompt means a credential reached a model provider.",
    panels=(
        Panel(
            title="Findings in range",
            kind="stat",
            shape="stat",
            width=24,
            height=5,
            sql=f"""SELECT sum(count) AS findings, sumIf(count, is_secret = 1) AS secrets,
       uniqExact(trace_id) AS traces,
       uniqExactIf(trace_id, is_secret = 1 AND type = 'prompt') AS traces_with_secret_in_prompt
FROM {PII_TABLE}
WHERE {PII_FILTER}""",
        ),
        Panel(
            title="Findings by entity",
            stack=True,
            unit="short",
            width=12,
            sql=f"""SELECT $__timeInterval(ts) AS time, entity, sum(count) AS findings
FROM {PII_TABLE}
WHERE {PII_FILTER}
GROUP BY time, entity
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Findings by service",
            stack=True,
            unit="short",
            width=12,
            sql=f"""SELECT $__timeInterval(ts) AS time, service, sum(count) AS findings
FROM {PII_TABLE}
WHERE {PII_FILTER}
GROUP BY time, service
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Secrets by where they were found",
            stack=True,
            unit="short",
            width=12,
            sql=f"""SELECT $__timeInterval(ts) AS time, type AS found_in, sum(count) AS secrets
FROM {PII_TABLE}
WHERE {PII_FILTER} AND is_secret = 1
GROUP BY time, found_in
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="By entity and service",
            kind="table",
            shape="table",
            width=12,
            sql=f"""SELECT entity, service, if(max(is_secret) = 1, 'secret', 'pii') AS class, sum(count) AS findings,
       uniqExact(trace_id) AS traces, max(ts) AS last_seen
FROM {PII_TABLE}
WHERE {PII_FILTER}
GROUP BY entity, service
ORDER BY findings DESC""",
        ),
        Panel(
            title="Traces with secrets",
            kind="table",
            shape="table",
            width=24,
            height=10,
            description="Where to start an incident: which trace, which tenant and feature, which kinds of secret.",
            sql=f"""SELECT trace_id, tenant, service, feature,
       arrayStringConcat(groupUniqArray(entity), ', ') AS entities, groupUniqArray(type) AS found_in,
       sum(count) AS secrets, min(ts) AS first_seen
FROM {PII_TABLE}
WHERE {PII_FILTER} AND is_secret = 1
GROUP BY trace_id, tenant, service, feature
ORDER BY first_seen DESC
LIMIT 100""",
        ),
    ),
)

EVENTS = f"{table('events')} FINAL"
ALL4 = ("tenant", "service", "feature", "model")


def _events(*dims: str, partials: tuple[str, ...], where: str = "", timeseries: bool = False) -> str:
    """Events in range from the 5-minute rollup where exact, else `events FINAL` (dashboards/rollup_sql.py)."""
    return rollup_source("events_rollup", dims, partials, where=where, timeseries=timeseries)


DEADLETTER = f"{table('deadletter')} FINAL"

PIPELINE = Dashboard(
    uid="tokentrail-pipeline",
    title="tokentrail / Pipeline health",
    description="Throughput, dead letters by reason, end-to-end lag and what the detectors are doing. Throughput is "
    "by event time (the events table's key), dead letters by arrival; neither carries a tenant.",
    time_from="now-1h",
    panels=(
        Panel(
            title="Seconds since the last event",
            kind="stat",
            shape="stat",
            unit="s",
            width=8,
            height=5,
            description="Since a worker last stored an event, by arrival time (the store's clock), never event time: a "
            "replay of old traffic is as fresh as live traffic; 3600 means an hour or more. A worker that stopped "
            "consuming shows here first. Same query as the Pipeline stalled alert.",
            sql=f"SELECT {SINCE_LAST_STORED} AS seconds_since_last_event\n{SINCE_LAST_STORED_FROM}",
        ),
        Panel(
            title="Dead-letter share",
            kind="stat",
            shape="stat",
            unit="percentunit",
            width=8,
            height=5,
            sql=f"""SELECT dead / greatest(dead + accepted, 1) AS deadletter_share FROM (
    SELECT (SELECT count() FROM {DEADLETTER} WHERE $__timeFilter(received_at)) AS dead,
           (SELECT sum(p_events) FROM {_events(partials=("events",))}) AS accepted
)""",
        ),
        Panel(
            title="Events in range",
            kind="stat",
            shape="stat",
            unit="short",
            width=8,
            height=5,
            sql=f"""SELECT sum(p_events) AS events, sum(p_outputs) AS model_outputs, sum(p_tool_calls) AS tool_calls
FROM {_events(partials=("events", "outputs", "tool_calls"), where=filters(*ALL4, time=None))}""",
        ),
        Panel(
            title="Events per second",
            unit="reqps",
            width=12,
            description="Accepted events by type (event time) and dead letters (arrival time), per second.",
            sql=f"""SELECT time, series, value FROM (
    SELECT time, toString(type) AS series, sum(p_events) / ($__interval_s) AS value
    FROM {_events("type", partials=("events",), timeseries=True)} GROUP BY time, series
    UNION ALL
    SELECT $__timeInterval(received_at) AS time, 'dead letter' AS series, count() / ($__interval_s) AS value
    FROM {DEADLETTER} WHERE $__timeFilter(received_at) GROUP BY time
)
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Dead letters by reason",
            stack=True,
            unit="short",
            width=12,
            sql=f"""SELECT $__timeInterval(received_at) AS time, reason, count() AS dead_letters
FROM {DEADLETTER}
WHERE $__timeFilter(received_at)
GROUP BY time, reason
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="End-to-end lag p50 / p95",
            unit="ms",
            width=12,
            description="Event time to stored time for model calls: producer clock skew plus Kafka plus the worker. "
            "One lag per call, of the copy the store keeps (a re-delivered call: the later copy). Upper bounds of "
            "the 5%-wide bins holding each percentile; lags under 1 ms (or negative, clock skew) show as 1 ms.",
            sql=f"""SELECT time, {histogram_quantile("h", 0.5)} AS lag_p50, {histogram_quantile("h", 0.95)} AS lag_p95
FROM (
    SELECT time, sumMap(p_lag) AS h
    FROM {latency_source((), ("lag",), where=filters(*ALL4, time=None), timeseries=True)}
    GROUP BY time
)
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Detector activity",
            stack=True,
            unit="short",
            width=12,
            description="Rows written by each detector, on the ingest clock.",
            sql=f"""SELECT time, detector, value FROM (
    SELECT $__timeInterval(received_at) AS time, 'loops' AS detector, count() AS value
    FROM {table("loop_detections")} FINAL WHERE $__timeFilter(received_at) GROUP BY time
    UNION ALL
    SELECT $__timeInterval(received_at) AS time, 'pii' AS detector, count() AS value
    FROM {table("pii_findings")} FINAL WHERE $__timeFilter(received_at) GROUP BY time
    UNION ALL
    SELECT $__timeInterval(detected_at) AS time, 'changes' AS detector, count() AS value
    FROM {table("changes")} FINAL WHERE $__timeFilter(detected_at) GROUP BY time
    UNION ALL
    SELECT $__timeInterval(detected_at) AS time, 'budget breaches' AS detector, count() AS value
    FROM {table("budget_breaches")} FINAL WHERE $__timeFilter(detected_at) GROUP BY time
    UNION ALL
    SELECT $__timeInterval(computed_at) AS time, 'variance windows' AS detector, count() AS value
    FROM {table("variance")} FINAL WHERE $__timeFilter(computed_at) GROUP BY time
)
ORDER BY time""",
            shape="timeseries",
        ),
        Panel(
            title="Latest dead letters",
            kind="table",
            shape="table",
            width=24,
            height=10,
            sql=f"""SELECT received_at, reason, field, detail, source, substring(payload, 1, 200) AS payload_start
FROM {DEADLETTER}
WHERE $__timeFilter(received_at)
ORDER BY received_at DESC
LIMIT 100""",
        ),
    ),
)
