"""`tokentrail replay FILE` with OTLP/JSON lines (what the collector's file exporter writes) beside v1 lines."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from otlp_builders import MS, T0, agent_span, chat_current, chat_older, http_span, json_line, request, tool_span

from tokentrail.stream.pricing import PriceBook

TRACE_A = "0af7651916cd43dd8448eb211c80319c"
TRACE_B = "4bf92f3577b34da6a3ce929d0e0e4736"


def tokentrail(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "tokentrail.stream.cli", *args], capture_output=True, timeout=600)


def price(provider: str, model: str, inp: int, cached: int, out: int, end_ms: int) -> Decimal:
    ts = datetime.fromtimestamp((T0 + end_ms * MS) / 1e9, UTC)
    return PriceBook().price(provider, model, inp, cached, out, ts).cost_usd


def otlp_file(path: Path) -> Path:
    # Trace A, current conventions: tenant and feature on the resource, a tool called 6
    # times with the same arguments and result (a repeated_tool_call loop).
    a_spans = [
        chat_current(
            TRACE_A,
            "a000000000000001",
            usage=(2000, 80, 1000),
            answer="",
            tool_calls=[("c1", "get_status", {"id": 7})],
        ),
        *[
            tool_span(
                TRACE_A, f"a0000000000001{n:02x}", "get_status", {"id": 7}, {"status": "pending"}, start_ms=1000 + n
            )
            for n in range(6)
        ],
        http_span(TRACE_A, "a000000000000002"),
    ]
    # Trace B, older conventions: tenant on the span, feature from the invoke_agent parent.
    b_spans = [
        agent_span(TRACE_B, "b000000000000001", "billing-agent"),
        chat_older(
            TRACE_B,
            "b000000000000002",
            model="claude-sonnet-4-0",
            system="anthropic",
            usage=(1500, 60),
            parent="b000000000000001",
            tool_calls=[("toolu_1", "refund", '{"amount": 12}')],
            extra={"tokentrail.tenant": "globex"},
        ),
        tool_span(
            TRACE_B,
            "b000000000000003",
            "refund",
            {"amount": 12},
            "done",
            parent="b000000000000001",
            error="Boom",
            extra={"tokentrail.tenant": "globex"},
        ),
    ]
    v1 = {
        "schema_version": 1,
        "event_id": "0193a1c2-7d1e-7b3a-9c55-2f1e0b6c9a10",
        "type": "tool_call",
        "ts": "2026-11-20T09:01:00.100Z",
        "trace_id": "v1",
        "span_id": "s",
        "service": "svc",
        "tenant": "initech",
        "feature": "f",
        "tool": {"name": "lookup"},
    }
    lines = [
        json_line(
            request(
                {"service.name": "order-agent", "tokentrail.tenant": "acme", "tokentrail.feature": "refunds"}, a_spans
            )
        ),
        json_line(request({"service.name": "billing"}, b_spans)),
        json.dumps(v1).encode(),
        json_line(request({"service.name": "web"}, [http_span(TRACE_A, "a000000000000003")])),  # no GenAI: no events
        b'{"resourceSpans": 3}',  # neither OTLP nor v1
        json_line(request({"service.name": "billing"}, b_spans)),  # the collector re-exported trace B
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_replay_of_otlp_json_lines(tmp_path: Path) -> None:
    """Calls, tenants, features, costs, tool calls and loops from both conventions; neither-lines dead."""
    path = otlp_file(tmp_path / "spans.jsonl")
    store = f"chdb://{tmp_path / 'store'}"
    result = tokentrail("replay", str(path), "--clickhouse", store, "--report", "json")
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    cost_a = price("openai", "gpt-4o", 2000, 1000, 80, 1000)
    cost_b = price("anthropic", "claude-sonnet-4-0", 1500, 0, 60, 1000)
    assert report["events"]["read"] == 6
    # A: prompt + output + 6 tool calls; B: prompt + output + 1 tool call; v1: 1 tool call.
    assert report["events"]["accepted"] == 8 + 3 + 1
    assert report["events"]["duplicates"] == 3  # trace B's re-export
    assert report["events"]["deadletter_reasons"] == {"unsupported_schema_version": 1}
    assert Decimal(str(report["cost_usd"]["total"])) == cost_a + cost_b
    assert report["cost_usd"]["by_tenant"] == {"acme": float(cost_a), "globex": float(cost_b)}
    assert report["cost_usd"]["by_feature"] == {"billing-agent": float(cost_b), "refunds": float(cost_a)}
    assert report["unpriced"] == {"calls": 0, "models": []}
    loops = [(loop["trace_id"], loop["kind"], loop["tenant"], loop["repeats"]) for loop in report["loops"]]
    assert loops == [(TRACE_A, "repeated_tool_call", "acme", 6)]
    # 4 OTLP lines (the `{"resourceSpans": 3}` line is not one): the HTTP spans and agent spans skipped.
    assert report["otlp"] == {
        "messages": 4,
        "spans": 15,
        "events": 14,
        "not_genai": 2,
        "agent_context": 2,
        "dead_letters": 0,
    }

    from tokentrail.sinks import close_embedded, connect

    close_embedded()
    client = connect(store)
    try:
        tools = client.query(
            "SELECT tenant, feature, tool_name, status, call_id, count() FROM tokentrail.tool_calls FINAL "
            "GROUP BY ALL ORDER BY ALL"
        ).result_rows
        calls = client.query(
            "SELECT tenant, provider, model, tool_names, output_text FROM tokentrail.calls FINAL ORDER BY tenant"
        ).result_rows
    finally:
        close_embedded()
    assert tools == [
        ("acme", "refunds", "get_status", "ok", "", 6),
        ("globex", "billing-agent", "refund", "error", "", 1),
        ("initech", "f", "lookup", "ok", "", 1),
    ]
    assert calls == [
        ("acme", "openai", "gpt-4o", ["get_status"], ""),
        ("globex", "anthropic", "claude-sonnet-4-0", ["refund"], "It ships tomorrow."),
    ]
