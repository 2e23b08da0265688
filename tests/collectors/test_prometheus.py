"""`collector.stats()` as Prometheus metrics: a real prometheus-client registry, scraped with generate_latest."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tokentrail.collectors as tt

prometheus_client = pytest.importorskip("prometheus_client", reason="the prometheus extra: tokentrail[prometheus]")
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402  (after the skip above)
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tokentrail.collectors.prometheus import DROP_REASONS, register_prometheus  # noqa: E402

MESSAGES = [{"role": "user", "content": "Where is order 7781?"}]


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, parsed back: (name, sorted labels) -> value."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def one_call(collector: tt.Collector) -> None:
    with collector.model_call(provider="openai", model="gpt-4o", messages=MESSAGES, feature="f") as call:
        call.finish(output="on its way")


def test_counters_follow_stats_at_each_scrape(collector, memory):
    """Emitted, delivered and dropped-by-reason are read from stats() when scraped, labelled by service."""
    registry = CollectorRegistry()
    register_prometheus(registry, collector)
    svc = (("service", "order-agent"),)
    assert scrape(registry)[("tokentrail_collector_events_emitted_total", svc)] == 0
    one_call(collector)
    one_call(collector)
    assert collector.flush(5)
    metrics = scrape(registry)
    assert metrics[("tokentrail_collector_events_emitted_total", svc)] == 4
    assert metrics[("tokentrail_collector_events_delivered_total", svc)] == 4
    assert metrics[("tokentrail_collector_queued_events", svc)] == 0
    for reason in DROP_REASONS:  # every reason from zero, so rate() works before the first drop
        assert metrics[("tokentrail_collector_events_dropped_total", (("reason", reason), *svc))] == 0
    collector.close()
    one_call(collector)  # after close: dropped as "closed"
    metrics = scrape(registry)
    assert metrics[("tokentrail_collector_events_dropped_total", (("reason", "closed"), *svc))] == 2
    assert metrics[("tokentrail_collector_events_emitted_total", svc)] == 6


def test_default_follows_the_module_level_collector(monkeypatch):
    """Without a collector, each scrape reads whatever tt.init() configured last."""
    monkeypatch.setattr(tt, "_collector", tt.NonRecordingCollector())  # restored after the test
    registry = CollectorRegistry()
    registered = register_prometheus(registry)
    first = tt.init(service="first-service", transport=tt.InMemoryTransport())
    one_call(first)
    assert first.flush(5)
    assert scrape(registry)[("tokentrail_collector_events_emitted_total", (("service", "first-service"),))] == 2
    second = tt.init(service="second-service", transport=tt.InMemoryTransport())
    metrics = scrape(registry)
    assert metrics[("tokentrail_collector_events_emitted_total", (("service", "second-service"),))] == 0
    assert not any(labels == (("service", "first-service"),) for _, labels in metrics)
    registry.unregister(registered)
    assert not any(name.startswith("tokentrail_") for name, _ in scrape(registry))
    second.close()


@pytest.mark.kafka
def test_kafka_transport_gauges(kafka_bootstrap, new_topic, tmp_path):
    """With the Kafka transport, the broker's state, in-flight events and spool bytes are gauges too."""
    from tokentrail.collectors.kafka import KafkaTransport

    settings = tt.KafkaSettings(bootstrap_servers=kafka_bootstrap, topic=new_topic(), spool_dir=tmp_path)
    collector = tt.Collector(service="order-agent", transport=KafkaTransport(settings), register_atexit=False)
    registry = CollectorRegistry()
    register_prometheus(registry, collector)
    try:
        one_call(collector)
        assert collector.flush(20)
        metrics = scrape(registry)
    finally:
        collector.close()
    svc = (("service", "order-agent"),)
    assert metrics[("tokentrail_collector_broker_up", svc)] == 1
    assert metrics[("tokentrail_collector_in_flight_events", svc)] == 0
    assert metrics[("tokentrail_collector_spool_bytes", svc)] == 0
    assert metrics[("tokentrail_collector_events_delivered_total", svc)] == 2


def test_without_prometheus_client_the_error_names_the_extra():
    """Where prometheus-client is not installed, the helper fails with the pip command to fix it."""
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "import tokentrail.collectors.prometheus as p\n"
        "try:\n    p.register_prometheus()\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'tokentrail[prometheus]'" in out
