"""`tokentrail demo`: synthetic multi-tenant traffic through the full embedded pipeline, then a summary.

The traffic ends now, so the store reads like the last hour of a real deployment. The summary
is read back from ClickHouse, the way the dashboards read it.
"""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .batch import Inbound, now_utc
from .embedded import EmbeddedRunner
from .runtime import check_key_for_store, finish_run, make_pipeline, open_store

DEMO_DIR = Path(".tokentrail") / "demo"


DEMO_BUDGETS = Path(__file__).with_name("budgets.demo.yaml")


def run_demo(
    *, events: int, seed: int, dsn: str | None, prices: str | None, batch_size: int, budgets: str | None = None
) -> int:
    from tqdm import tqdm

    from tokentrail.redaction import load_key

    from .synthetic import GeneratorConfig, Truth, iter_lines

    if dsn is None:
        store = DEMO_DIR.resolve()
        shutil.rmtree(store, ignore_errors=True)  # a fresh store each run: the summary is this run's
        dsn = f"chdb://{store}"
        print(f"tokentrail demo: embedded ClickHouse at {store}", file=sys.stderr)
    duration = timedelta(hours=1)
    config = GeneratorConfig(seed=seed, events=events, start=datetime.now(UTC) - duration, duration=duration)
    truth = Truth(config.seed, config.events)
    key = load_key(allow_ephemeral=True)
    check_key_for_store(dsn, key)  # an ephemeral key only for an embedded store
    client, sink = open_store(dsn)
    pipeline = make_pipeline(prices=prices, allow_ephemeral_key=True, redaction_key=key)
    runner = EmbeddedRunner(pipeline, sink, batch_size=batch_size)
    lines = (Inbound(f"demo:{n}", line.encode(), now_utc()) for n, line in enumerate(iter_lines(config, truth), 1))
    with tqdm(total=int(events * 1.03), unit="ev", desc="pipeline", file=sys.stderr, dynamic_ncols=True) as bar:
        stats = runner.run(lines, progress=bar.update)
    finish_run(client, budgets=budgets or DEMO_BUDGETS)
    print(render_summary(client, stats.read))
    from tokentrail.dashboards.evaluate import evaluate_alerts, render_alerts

    now = datetime.now(UTC)
    print("\nGrafana alert rules, evaluated against this store (what would page on-call now):")
    print(render_alerts(evaluate_alerts(client, now=now), now=now))
    return 0


def _table(title: str, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    cells = [tuple(str(c) for c in header)] + [tuple(_fmt(c) for c in row) for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"\n{title}"]
    for i, row in enumerate(cells):
        lines.append(
            "  " + "  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    if not rows:
        lines.append("  (none)")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if hasattr(value, "quantize"):  # Decimal money
        return f"${float(value):,.4f}"
    return str(value)


def render_summary(client: Any, read: int, database: str = "tokentrail") -> str:
    """What the dashboards would show, as terminal tables."""

    def q(sql: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = client.query(sql.format(db=database)).result_rows
        return rows

    calls = "{db}.calls FINAL"
    out = [f"\n=== tokentrail demo: {read:,} lines read ==="]
    for column in ("tenant", "feature", "model"):
        out.append(
            _table(
                f"Spend by {column}",
                (column, "calls", "cost", "unpriced calls"),
                q(
                    f"SELECT {column}, count(), sum(cost_usd), countIf(NOT priced) FROM {calls} "
                    f"GROUP BY {column} ORDER BY sum(cost_usd) DESC"
                ),
            )
        )
    out.append(
        _table(
            "Reliability by provider and model",
            ("provider/model", "calls", "errors", "error %", "p50 ms", "p95 ms"),
            q(f"""SELECT concat(provider, '/', model), count(), countIf(status = 'error'),
                                 100 * countIf(status = 'error') / count(),
                                 quantile(0.5)(latency_ms), quantile(0.95)(latency_ms)
                          FROM {calls} GROUP BY provider, model ORDER BY count() DESC"""),
        )
    )
    out.append(
        _table(
            "Token-spend loops (worst first)",
            ("trace", "kind", "tenant/feature", "repeats", "tokens", "cost"),
            q("""SELECT substring(trace_id, 1, 12), kind, concat(tenant, '/', feature), repeats, tokens, cost_usd
                           FROM {db}.loop_detections FINAL ORDER BY cost_usd DESC LIMIT 10"""),
        )
    )
    out.append(
        _table(
            "Silent changes and prompt versions",
            ("kind", "where", "from", "to", "first seen"),
            q("""SELECT kind,
                                  arrayStringConcat(arrayFilter(x -> x != '',
                                      [tenant, feature, model, prompt_id, prompt_version]), '/'),
                                  from_value, to_value, first_seen FROM {db}.changes FINAL ORDER BY first_seen"""),
        )
    )
    out.append(
        _table(
            "Budget breaches",
            ("scope", "key", "window", "level", "spend", "threshold", "window end"),
            q("""SELECT scope, key, window, level, spend, threshold, window_end
                           FROM {db}.budget_breaches FINAL ORDER BY window_end, scope, key"""),
        )
    )
    out.append(
        _table(
            "Least varied outputs (possible caching or stuck prompts)",
            ("tenant/feature/version/model", "calls", "distinct %", "similarity"),
            q("""SELECT concat(tenant, '/', feature, '/', prompt_version, '/', model), sum(calls),
                                  100 * sum(distinct_output_ratio * calls) / sum(calls), avg(similarity)
                           FROM {db}.variance FINAL GROUP BY tenant, feature, prompt_version, model
                           HAVING sum(calls) >= 20 ORDER BY avg(similarity) DESC LIMIT 5"""),
        )
    )
    out.append(
        _table(
            "PII and secrets redacted",
            ("entity", "secret", "values", "events"),
            q("""SELECT entity, if(max(is_secret) = 1, 'yes', ''), sum(count), uniqExact(event_id)
                           FROM {db}.pii_findings FINAL GROUP BY entity ORDER BY sum(count) DESC"""),
        )
    )
    out.append(
        _table(
            "Dead letters by reason",
            ("reason", "count"),
            q("SELECT reason, count() FROM {db}.deadletter FINAL GROUP BY reason ORDER BY count() DESC"),
        )
    )
    return "\n".join(out) + "\n"
