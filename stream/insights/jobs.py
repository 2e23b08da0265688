"""The store job: query `calls`, compute variance, changes and budget breaches, write the results.

Why a job over the store (see the package docstring): exact across workers, idempotent, the same
in the embedded runner and the faust worker. The pure parts live in `variance`, `changes` and
`budgets`; this module is the I/O edge. ClickHouse does the heavy lifting (counts, integer token
sums, exact percentiles, distinct hashes, first occurrences, spend per 5-minute bucket); Python
only gets small aggregates plus at most SAMPLE_LIMIT output texts per group-window.

Idempotency: every result row has a deterministic key, the job writes only rows that are new
or whose numbers changed (so a second run stores nothing), and each insert carries a dedup
token derived from its content. `run_insights` returns the changes and breaches that were not
stored before. Alerts are at-least-once when the caller passes `publish`: it is called with the
alert messages BEFORE their rows are stored, so if publishing fails nothing is stored and the
next run finds (and publishes) the same changes again; if storing fails after publishing, the
next run publishes them again. Consumers deduplicate on the message `id`.

Incremental: every query on `calls` is bounded to the run's window (from `since` to `now`);
changes need "all history", which the first-seen state (`first_seen`) keeps, and the watermark
(`watermark`) tells the next run, on whichever worker, where this one stopped.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import first_seen
from .budgets import Breach, BudgetConfig, evaluate_series, load_budgets, spend_series
from .changes import Change
from .spend import spend_for_budgets, spend_from_calls
from .variance import SAMPLE_LIMIT, GroupAggregate, metrics, sample_order, similarity_document
from .watermark import read_watermark, write_watermark

__all__ = [
    "InsightResult",
    "run_insights",
    "closing_time",
    "compute_variance",
    "VARIANCE_KEY",
    "VARIANCE_METRICS",
]

log = logging.getLogger(__name__)

VARIANCE_KEY = ("window_start", "tenant", "feature", "prompt_version", "model")
_SIMILARITY = ("similarity", "similarity_sample")  # the metrics computed from a sample of texts
VARIANCE_METRICS = (
    "calls",
    "output_tokens_mean",
    "output_tokens_stddev",
    "output_tokens_cv",
    "latency_p50",
    "latency_p95",
    "distinct_output_ratio",
    "similarity",
    "similarity_sample",
    "tool_path_diversity",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GROUP = "tenant, feature, prompt_version, model"


@dataclass
class InsightResult:
    """What one run computed: every closed group-window in range, and what is NEW since the last runs."""

    variance_rows: list[dict[str, Any]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)  # not stored before this run
    breaches: list[Breach] = field(default_factory=list)  # not stored before this run
    written: dict[str, int] = field(default_factory=dict)  # rows inserted per table
    seconds: dict[str, float] = field(default_factory=dict)  # time spent per part
    covered_until: datetime | None = None  # the watermark this run recorded

    def alerts(self) -> list[dict[str, Any]]:
        """Messages for the alerts topic: the new changes, then the new breaches."""
        return [c.to_alert() for c in self.changes] + [b.to_alert() for b in self.breaches]


def utc(ts: datetime) -> datetime:
    """ClickHouse hands DateTime64(3, 'UTC') back naive; everything here is aware UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def floor_time(ts: datetime, seconds: int) -> datetime:
    """Start of the epoch-aligned interval holding `ts`, as ClickHouse toStartOfInterval computes it."""
    ms = int((utc(ts) - _EPOCH) / timedelta(milliseconds=1))
    return _EPOCH + timedelta(seconds=ms // (seconds * 1000) * seconds)


def closing_time(client: Any, *, database: str = "tokentrail", window_seconds: int = 300) -> datetime | None:
    """A `now` that closes every window holding a stored call (replay and embedded mode); None if empty."""
    latest, count = client.query(f"SELECT max(ts), count() FROM {database}.calls").result_rows[0]
    return floor_time(latest, window_seconds) + timedelta(seconds=window_seconds) if count else None


def _params(**values: Any) -> dict[str, Any]:
    """Query parameters, datetimes as aware UTC, unset ones left out."""
    return {k: utc(v) if isinstance(v, datetime) else v for k, v in values.items() if v is not None}


def _digest(parts: list[Any]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()


# -- variance -----------------------------------------------------------------------------------


def compute_variance(
    client: Any,
    *,
    database: str,
    window_seconds: int | None,
    lo: datetime | None,
    hi: datetime,
    stored: dict[tuple[Any, ...], tuple[Any, ...]] | None = None,
) -> list[dict[str, Any]]:
    """Variance rows of successful calls with lo <= ts < hi, per window (None: one window for all).

    `stored` (key -> VARIANCE_METRICS values, as `_stored_variance` reads them) lets a group-window
    whose exact aggregates are unchanged keep its stored similarity: calls are only ever added, so
    equal counts and sums mean the same calls, and the sample (and its texts) need not be read again.
    """
    window = (
        f"toStartOfInterval(ts, INTERVAL {int(window_seconds)} SECOND)"
        if window_seconds
        else "toDateTime64(0, 3, 'UTC')"
    )
    calls = f"{database}.calls FINAL"
    aggregates = client.query(
        f"""SELECT {window} AS window_start, {_GROUP}, count(), sum(toUInt64(output_tokens)),
                   sum(toUInt128(output_tokens) * output_tokens), count(latency_ms),
                   quantilesExactInclusive(0.5, 0.95)(latency_ms), uniqExact(output_hash), uniqExact(tool_names)
            FROM {calls} WHERE {_ok_calls(lo)}
            GROUP BY window_start, {_GROUP}""",
        parameters=_params(hi=hi, lo=lo),
    ).result_rows
    rows: dict[tuple[Any, ...], tuple[dict[str, Any], GroupAggregate]] = {}
    sampled: list[tuple[Any, ...]] = []  # keys whose similarity must be computed from a sample
    for window_start, tenant, feature, version, model, n, tsum, tsq, latencies, (
        p50,
        p95,
    ), outputs, paths in aggregates:
        key = (utc(window_start), tenant, feature, version, model)
        agg = GroupAggregate(
            int(n),
            int(tsum),
            int(tsq),
            float(p50) if latencies else None,
            float(p95) if latencies else None,
            int(outputs),
            int(paths),
        )
        row = {**dict(zip(VARIANCE_KEY, key, strict=True)), "window_seconds": window_seconds or 0, **metrics(agg, [])}
        previous = dict(zip(VARIANCE_METRICS, stored[key], strict=True)) if stored and key in stored else None
        if previous is not None and all(previous[m] == row[m] for m in VARIANCE_METRICS if m not in _SIMILARITY):
            row.update({m: previous[m] for m in _SIMILARITY})
        else:
            sampled.append(key)
        rows[key] = (row, agg)
    if sampled:
        if window_seconds:  # read only the windows that need a sample
            lo = max(lo or _EPOCH, min(key[0] for key in sampled))
            hi = min(hi, max(key[0] for key in sampled) + timedelta(seconds=window_seconds))
        texts = _sample_documents(client, calls, window, lo, hi)
        for key in sampled:
            row, agg = rows[key]
            row.update(metrics(agg, [doc for _, doc in sorted(texts.get(key, []))]))
    out = [row for row, _ in rows.values()]
    out.sort(key=lambda r: tuple(r[k] for k in VARIANCE_KEY))
    return out


def _ok_calls(lo: datetime | None) -> str:
    """The WHERE clause of variance: successful calls with lo <= ts < hi."""
    # The hours too: `calls` is keyed by the hour first (migration 0011) and ClickHouse does not derive them from ts.
    where = "status = 'ok' AND ts < {hi:DateTime64(3, 'UTC')}"
    where += " AND toStartOfHour(ts) <= toStartOfHour({hi:DateTime64(3, 'UTC')})"
    return where + (
        " AND ts >= {lo:DateTime64(3, 'UTC')} AND toStartOfHour(ts) >= toStartOfHour({lo:DateTime64(3, 'UTC')})"
        if lo
        else ""
    )


def _sample_documents(
    client: Any, calls: str, window: str, lo: datetime | None, hi: datetime
) -> dict[tuple[Any, ...], list[tuple[bytes, str]]]:
    """The similarity sample per group-window: ids picked first (no texts read), then only their texts."""
    where = _ok_calls(lo)
    sample = client.query(
        f"""SELECT {window} AS window_start, {_GROUP}, toString(event_id), output_text, tool_names
            FROM {calls} WHERE {where} AND event_id IN (
                SELECT event_id FROM {calls} WHERE {where}
                ORDER BY MD5(toString(event_id))
                LIMIT {SAMPLE_LIMIT} BY {window}, {_GROUP})""",
        parameters=_params(hi=hi, lo=lo),
    ).result_rows
    texts: dict[tuple[Any, ...], list[tuple[bytes, str]]] = defaultdict(list)
    for window_start, tenant, feature, version, model, event_id, text, tools in sample:
        texts[(utc(window_start), tenant, feature, version, model)].append(
            (sample_order(event_id), similarity_document(text, tools))
        )
    return texts


def _stored_variance(
    client: Any, database: str, window_seconds: int, lo: datetime | None, hi: datetime
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    where = "window_seconds = {ws:UInt32} AND window_start < {hi:DateTime64(3, 'UTC')}"
    where += " AND window_start >= {lo:DateTime64(3, 'UTC')}" if lo else ""
    result = client.query(
        f"SELECT {', '.join(VARIANCE_KEY)}, {', '.join(VARIANCE_METRICS)} FROM {database}.variance FINAL WHERE {where}",
        parameters=_params(ws=window_seconds, hi=hi, lo=lo),
    ).result_rows
    width = len(VARIANCE_KEY)
    return {(utc(r[0]), *r[1:width]): tuple(r[width:]) for r in result}


# -- the run ------------------------------------------------------------------------------------


def _ids(client: Any, table: str, column: str) -> set[str]:
    return {row[0] for row in client.query(f"SELECT toString({column}) FROM {table}").result_rows}


def _publish_then_store(
    found: list[Any], table: str, ids: list[str], sink: Any, publish: Callable[[list[dict[str, Any]]], None] | None
) -> None:
    """Alert first, then store: a failed publish leaves them unstored, so the next run sends them again."""
    if not found:
        return
    if publish is not None:
        publish([item.to_alert() for item in found])
    sink.write_batch({table: [item.row() for item in found]}, f"insights-{table}-{_digest(sorted(ids))}")


def run_insights(
    client: Any,
    *,
    database: str = "tokentrail",
    now: datetime | None = None,
    budgets: BudgetConfig | str | Path | None = None,
    window_seconds: int = 300,
    since: datetime | None = None,
    sink: Any = None,
    publish: Callable[[list[dict[str, Any]]], None] | None = None,
) -> InsightResult:
    """Compute and store variance (closed windows from `since`), changes and budget breaches.

    `now` (default: wall clock) closes variance windows ending at or before it and bounds every
    query to calls before it; replays pass `closing_time(...)`. `since` (default: all history)
    limits variance and budget evaluation to windows from it on; the caller passes the previous
    run's `now` minus the lateness it tolerates (`read_watermark` gives that `now`). Changes are
    defined against the whole history: the first-seen state holds it, and this run folds in the
    calls from `since` (or from the watermark, if earlier; from the beginning without either). On
    success the run records `now` as the watermark (`InsightResult.covered_until`).
    `publish(alerts)`, if given, sends new changes' and breaches' alerts before they are stored
    (module docstring); an exception from it propagates and leaves them unstored.
    """
    from tokentrail.sinks.writer import ClickHouseSink

    if isinstance(window_seconds, bool) or not isinstance(window_seconds, int) or window_seconds < 1:
        raise ValueError(f"window_seconds must be a positive whole number of seconds, got {window_seconds!r}")
    config = budgets if isinstance(budgets, BudgetConfig) or budgets is None else load_budgets(budgets)
    now = utc(now or datetime.now(UTC))
    since = utc(since) if since else None
    sink = sink or ClickHouseSink(client, database=database)
    result = InsightResult()

    started = time.perf_counter()
    hi = floor_time(now, window_seconds)
    lo = floor_time(since, window_seconds) if since else None
    stored = _stored_variance(client, database, window_seconds, lo, hi)
    result.variance_rows = compute_variance(
        client, database=database, window_seconds=window_seconds, lo=lo, hi=hi, stored=stored
    )
    fresh = [
        r
        for r in result.variance_rows
        if stored.get(tuple(r[k] for k in VARIANCE_KEY)) != tuple(r[m] for m in VARIANCE_METRICS)
    ]
    if fresh:
        token = _digest([window_seconds] + [tuple(r[k] for k in (*VARIANCE_KEY, *VARIANCE_METRICS)) for r in fresh])
        sink.write_batch({"variance": fresh}, f"insights-variance-{token}")
    result.written["variance"] = len(fresh)
    result.seconds["variance"] = time.perf_counter() - started

    started = time.perf_counter()
    # The first-seen state covers calls before the watermark; without one it is rebuilt from all calls.
    covered = read_watermark(client, database)
    scan_from = None if lo is None or covered is None else min(lo, covered)
    update = first_seen.merge(
        first_seen.read_state(client, database), first_seen.scan_calls(client, database, scan_from, now)
    )
    known = _ids(client, f"{database}.changes", "change_id")
    changes = first_seen.find_changes(client, database, update.state, now=now, known=known)
    result.changes = [c for c in changes if str(c.change_id) not in known]
    _publish_then_store(result.changes, "changes", [str(c.change_id) for c in result.changes], sink, publish)
    if update.rows:
        token = _digest([tuple(r.values()) for r in update.rows])
        sink.write_batch({"insights_first_seen": update.rows}, f"insights-first-seen-{token}")
    result.written["changes"] = len(result.changes)
    result.written["insights_first_seen"] = len(update.rows)
    result.seconds["changes"] = time.perf_counter() - started

    if config is not None and config.rules:
        started = time.perf_counter()
        step = config.step_seconds
        last_end = floor_time(now, step)
        first_end = floor_time(since, step) if since else None
        if first_end is None:
            series = spend_series(spend_from_calls(client, database, step, None, last_end), step)
        else:
            series, result.written["insights_spend"] = spend_for_budgets(
                client, database, sink, step=step, first_end=first_end, last_end=last_end, lookback=config.lookback
            )
        known = _ids(client, f"{database}.budget_breaches", "breach_id")
        breaches = evaluate_series(series, config, first_end=first_end, last_end=last_end)
        result.breaches = [b for b in breaches if str(b.breach_id) not in known]
        _publish_then_store(
            result.breaches, "budget_breaches", [str(b.breach_id) for b in result.breaches], sink, publish
        )
        result.written["budget_breaches"] = len(result.breaches)
        result.seconds["budgets"] = time.perf_counter() - started
    write_watermark(sink, now)
    result.covered_until = now
    log.info(
        "insights: %d variance rows (%d written), %d new changes, %d new breaches",
        len(result.variance_rows),
        result.written["variance"],
        len(result.changes),
        len(result.breaches),
    )
    return result


LATENESS = timedelta(minutes=10)
FIRST_LOOKBACK = timedelta(days=1)


def run_from_watermark(
    client: Any,
    *,
    database: str = "tokentrail",
    now: datetime | None = None,
    lateness: timedelta = LATENESS,
    first_lookback: timedelta = FIRST_LOOKBACK,
    **options: Any,
) -> InsightResult:
    """One run of the periodic job: the windows from the stored watermark minus `lateness` to `now`.

    The watermark is read from the store on every run, so it does not matter which worker ran the
    previous one. A call arriving up to `lateness` after the run that closed its window is still
    counted (its window is recomputed; only changed rows are stored, known alerts are not sent
    again). Without a watermark the run looks back `first_lookback` for variance and budgets and
    builds the first-seen state from all of `calls` (the catch-up run). `options` go to
    `run_insights` (budgets, window_seconds, sink, publish).
    """
    now = utc(now or datetime.now(UTC))
    covered = read_watermark(client, database)
    since = covered - lateness if covered is not None else now - first_lookback
    return run_insights(client, database=database, now=now, since=since, **options)
