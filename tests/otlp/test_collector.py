"""A real OpenTelemetry Collector between a real GenAI-instrumented service and the worker.

service (OpenTelemetry SDK + OTLP/HTTP exporter + opentelemetry-instrumentation-openai-v2 over the
OpenAI client, HTTP stubbed) -> the collector built by scripts/otelcol-build (OTLP receiver, kafka
exporter, `otlp_proto`, trace id keys) -> real Kafka -> `tokentrail worker --otlp-topic` ->
embedded ClickHouse, with exact counts and costs. Skipped only when the collector binary has not
been built (it needs Go and 3-10 minutes the first time).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kafka_harness import REPO, STARTED, free_port, read_store, start_worker, stop, wait_caught_up, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

COLLECTOR = REPO / ".cache" / "otelcol" / "tokentrail-otelcol"
SERVICE = Path(__file__).parent / "genai_service.py"
CALLS = 12


def collector_config(path: Path, bootstrap: str, topic: str, port: int) -> Path:
    """The shipped config (stream/otlp/otel-collector.yaml) with this test's broker, topic and port."""
    import yaml

    config = yaml.safe_load((REPO / "stream" / "otlp" / "otel-collector.yaml").read_text())
    config["receivers"]["otlp"]["protocols"] = {"http": {"endpoint": f"127.0.0.1:{port}"}}
    exporter = config["exporters"]["kafka/tokentrail"]
    exporter["brokers"] = [bootstrap]
    exporter["traces"]["topic"] = topic
    # The test binary has only the OTLP receiver and the kafka exporter: no batch processor.
    config.pop("processors", None)
    config["service"]["pipelines"]["traces"].pop("processors", None)
    config["service"]["telemetry"] = {"metrics": {"level": "none"}}  # no :8888 listener to collide with
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.skipif(
    not COLLECTOR.exists(), reason=f"no collector binary at {COLLECTOR}: run bash scripts/otelcol-build"
)
def test_real_collector_to_clickhouse(kafka_bootstrap: str, new_topic: Any, tmp_path: Path) -> None:
    """Every instrumented chat call arrives once, priced exactly; the service's HTTP spans are skipped."""
    from tokentrail.stream.pricing import PriceBook

    events_topic = new_topic(partitions=2, prefix="events")
    otlp_topic = new_topic(partitions=2, prefix="otlp")
    port = free_port()
    config = collector_config(tmp_path / "collector.yaml", kafka_bootstrap, otlp_topic, port)
    log = open(tmp_path / "collector.log", "wb")
    collector = subprocess.Popen([str(COLLECTOR), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    STARTED.append(collector)

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, 60, "the collector's OTLP/HTTP receiver", collector)
    service = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parent / "genai_service.py"),
            f"http://127.0.0.1:{port}/v1/traces",
            str(CALLS),
        ],
        capture_output=True,
        timeout=120,
    )
    assert service.returncode == 0, service.stderr.decode()[-3000:]
    sent = json.loads(service.stdout)
    assert len(sent) == CALLS
    stop(collector)  # a graceful stop drains the exporter's queue into Kafka
    assert collector.returncode == 0, (tmp_path / "collector.log").read_text()[-3000:]

    store = tmp_path / "store"
    worker = start_worker(kafka_bootstrap, events_topic, store, group="otelcol", extra=["--otlp-topic", otlp_topic])
    try:
        wait_caught_up(kafka_bootstrap, otlp_topic, "otelcol", worker, events_topic=events_topic)
    finally:
        stop(worker)
    got = read_store(
        store,
        {
            "events": "SELECT type, count() FROM tokentrail.events FINAL GROUP BY type ORDER BY type",
            "calls": "SELECT model, input_tokens, output_tokens, cost_usd, ts, tenant, service, environment, feature "
            "FROM tokentrail.calls FINAL ORDER BY input_tokens",
            "dead": "SELECT count() FROM tokentrail.deadletter FINAL",
        },
    )
    assert got["events"] == [("output", CALLS), ("prompt", CALLS)]
    assert got["dead"] == [(0,)]
    calls = got["calls"]
    assert [(m, i, o) for m, i, o, *_ in calls] == [(s["model"], s["input_tokens"], s["output_tokens"]) for s in sent]
    book = PriceBook()
    for model, inp, out, cost, ts, *_ in calls:
        ts = ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts))
        assert Decimal(cost) == book.price("openai", model, inp, 0, out, ts).cost_usd > 0
    assert {tuple(c[5:]) for c in calls} == {("acme", "support-bot", "staging", "support-bot")}
