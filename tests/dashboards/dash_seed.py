"""Seeded stores for the dashboard and alert tests (conftest.py): demo-generator traffic through the real pipeline.

Traffic is the demo's (an hour ending now, so the rules' relative windows see it, and ingest time
agrees with event time), replayed through `make_pipeline` + `EmbeddedRunner` into an embedded
ClickHouse, then the insights job (variance, changes, budget breaches) runs as after `replay`.

Two stores: `incident` is the demo's anomalies (loops, model swap, prompt edit, spend spike,
secrets) plus what the generator does not stage, injected into its lines before the pipeline:
a provider outage on one model (errors and 30-60 s timeouts over the last 9 minutes), erratic
output lengths on one feature (last 10 minutes) and a producer sending 8% malformed lines.
`clean` is `with_anomalies=False` with no PII/secrets (a secret in a prompt is an incident, not
background). chDB hosts one engine path per process, so each module opens its own and closes it.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tokentrail.sinks import close_embedded
from tokentrail.stream.embedded import EmbeddedRunner
from tokentrail.stream.insights import BudgetConfig, run_insights
from tokentrail.stream.insights.jobs import closing_time
from tokentrail.stream.runtime import make_pipeline, open_store
from tokentrail.stream.stages import Inbound, now_utc
from tokentrail.stream.synthetic import GeneratorConfig, generate

EVENTS = 10_000
OUTAGE_MODEL = "gpt-4o-mini"
ERRATIC_FEATURE = "order-support"
# Calibrated on seed 7: with the spend spike, acme's worst rolling hour is ~$3.9 (its hour of
# traffic ~$4.0); on clean traffic no tenant passes ~$3.2 in any window.
BUDGETS = BudgetConfig.from_dict(
    {
        "budgets": [
            {"scope": "tenant", "key": "*", "window": "hour", "warning": 3.4, "critical": 3.6},
            {"scope": "tenant", "key": "*", "window": "day", "critical": 3.6},
        ]
    }
)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def inject_incident(lines: list[str], end: datetime, seed: int = 7) -> list[str]:
    """Rewrite generator lines: an outage on OUTAGE_MODEL and erratic lengths on ERRATIC_FEATURE near the end."""
    rng = random.Random(f"incident:{seed}")
    out, nth = [], 0
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            out.append(line)  # the generator's malformed lines stay as they are
            continue
        if not isinstance(event, dict) or event.get("type") != "output" or "ts" not in event:
            out.append(line)
            continue
        ts = _ts(event["ts"]) if isinstance(event["ts"], str) else None
        if ts and event.get("model") == OUTAGE_MODEL and ts >= end - timedelta(minutes=9):
            nth += 1
            if nth % 2:  # every other call times out
                event.update(
                    response_model=None,
                    output=[],
                    tool_calls=[],
                    finish_reason="error",
                    usage={"input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "reasoning_tokens": 0},
                    latency_ms=round(rng.uniform(30_000, 60_000), 1),
                    ttft_ms=None,
                    error={"type": "timeout", "message": "Request timed out."},
                )
        elif (
            ts and event.get("feature") == ERRATIC_FEATURE and ts >= end - timedelta(minutes=10) and event.get("usage")
        ):
            usage = dict(event["usage"])
            usage["output_tokens"] = max(1, int(usage["output_tokens"] * rng.choice((0.02, 0.1, 1, 10, 50))))
            event["usage"] = usage
        out.append(json.dumps(event, separators=(",", ":")))
    return out


def seed_store(path: Path, *, anomalies: bool, incident: bool) -> dict[str, Any]:
    """Generate, (inject,) replay and run the insights job; returns the client and what was generated."""
    close_embedded()  # another module's engine must go before ours can open
    # The hour ends on the next 5-minute boundary and the rules are evaluated a minute later
    # (`now`): the 5-minute variance windows then fall the same way on every run, event time stays
    # before `now`, and so does ingest time (received_at), which is the wall clock.
    wall = datetime.now(UTC)
    end = datetime.fromtimestamp((int(wall.timestamp()) // 300 + 1) * 300, UTC)
    config = GeneratorConfig(
        seed=7,
        events=EVENTS,
        start=end - timedelta(hours=1),
        duration=timedelta(hours=1),
        with_anomalies=anomalies,
        sensitive_ratio=0.07 if anomalies else 0.0,
        malformed_ratio=0.08 if incident else 0.01,
    )
    traffic = generate(config)
    lines = inject_incident(traffic.lines, end) if incident else traffic.lines
    client, sink = open_store(f"chdb://{path}")
    runner = EmbeddedRunner(make_pipeline(prices=None, allow_ephemeral_key=True), sink)
    stats = runner.run(Inbound(f"test:{n}", line.encode(), now_utc()) for n, line in enumerate(lines, 1))
    run_insights(client, now=closing_time(client), budgets=BUDGETS)
    return {
        "client": client,
        "dsn": f"chdb://{path}",
        "truth": traffic.truth,
        "end": end,
        "now": end + timedelta(minutes=1),
        "stats": stats,
    }
