"""`collector.stats()` as Prometheus metrics, for a service that already serves a prometheus-client registry.

    from tokentrail.collectors.prometheus import register_prometheus
    register_prometheus()                      # the default registry, the module-level collector
    register_prometheus(registry, collector)   # or a registry and a Collector of your own

Needs the `prometheus` extra (`pip install 'tokentrail[prometheus]'`); prometheus-client is imported
only when this is called. The metrics are read from `stats()` at scrape time (a custom collector in
prometheus-client's sense), so nothing runs on the caller's path and nothing is kept twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.registry import Collector as PrometheusCollector
    from prometheus_client.registry import CollectorRegistry

PREFIX = "tokentrail_collector"
# Every reason the collector counts (docs/collector.md), exported from zero so `rate()` works at once.
DROP_REASONS = ("queue_full", "serialize_error", "too_large", "transport_error", "spool_full", "closed")
COUNTERS = {  # stats() key -> (metric name before `_total`, help)
    "emitted": ("events_emitted", "Events the service submitted to the collector."),
    "delivered": ("events_delivered", "Events acknowledged by Kafka (or written, for other transports)."),
    "spooled": (
        "events_spooled",
        "Events written to the disk spool (undelivered: broker down, failed or in flight at exit).",
    ),
    "replayed": ("events_replayed", "Events delivered from the disk spool."),
}
GAUGES = {  # stats() key -> (metric name, help)
    "queued": ("queued_events", "Events waiting for the collector's background exporter."),
    "in_flight": ("in_flight_events", "Events handed to the Kafka producer and not yet acknowledged."),
    "spool_bytes": ("spool_bytes", "Bytes of events pending in the spool folder (all processes sharing it)."),
    "broker_up": ("broker_up", "1 while the Kafka broker answers, 0 while events go to the spool."),
}


def register_prometheus(
    registry: CollectorRegistry | None = None,
    collector: Any = None,
) -> PrometheusCollector:
    """Register metrics read from `collector.stats()` with `registry`; returns what was registered.

    `registry` defaults to prometheus-client's default `REGISTRY`; `collector` to the module-level
    collector (`tokentrail.collectors.get_collector()`), looked up at every scrape so a later
    `init()` is followed. Every metric carries a `service` label. Unregister with
    `registry.unregister(returned)`. Raises ImportError naming the extra if prometheus-client is missing.
    """
    try:
        from prometheus_client import REGISTRY
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
        from prometheus_client.registry import Collector as PrometheusCollector
    except ImportError as exc:
        raise ImportError("register_prometheus needs prometheus-client: pip install 'tokentrail[prometheus]'") from exc

    if collector is None:
        from . import get_collector

        current: Callable[[], Any] = get_collector
    else:

        def current() -> Any:
            return collector

    class CollectorStats(PrometheusCollector):
        """Reads `stats()` of the collector at each scrape."""

        def collect(self) -> Iterator[Metric]:
            source = current()
            stats = source.stats()
            service = str(getattr(source, "service", "") or "")
            for key, (name, text) in COUNTERS.items():
                family = CounterMetricFamily(f"{PREFIX}_{name}", text, labels=["service"])
                family.add_metric([service], float(stats.get(key, 0)))
                yield family
            dropped = CounterMetricFamily(
                f"{PREFIX}_events_dropped",
                "Events dropped, by reason.",
                labels=["service", "reason"],
            )
            counts = dict.fromkeys(DROP_REASONS, 0) | dict(stats.get("dropped") or {})
            for reason, count in sorted(counts.items()):
                dropped.add_metric([service, reason], float(count))
            yield dropped
            for key, (name, text) in GAUGES.items():
                if key in stats:  # in_flight, spool_bytes and broker_up exist only for the Kafka transport
                    gauge = GaugeMetricFamily(f"{PREFIX}_{name}", text, labels=["service"])
                    gauge.add_metric([service], float(stats[key]))
                    yield gauge

    registered = CollectorStats()
    (registry if registry is not None else REGISTRY).register(registered)
    return registered
