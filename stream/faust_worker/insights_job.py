"""Variance, silent changes and budget breaches on a timer, from the worker consuming partition 0."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from ..batch import now_utc
from .config import WorkerConfig
from .messages import to_json

log = logging.getLogger("tokentrail.worker")


class InsightsJob:
    """Variance, silent changes and budget breaches, recomputed from the store on a timer.

    New changes and breaches go to the alerts topic before they are stored (at-least-once; each
    alert carries a stable id). Each run re-reads a lateness margin so late events are counted.
    """

    LATENESS = timedelta(minutes=10)
    FIRST_LOOKBACK = timedelta(days=1)

    def __init__(self, client: Any, config: WorkerConfig) -> None:
        from confluent_kafka import Producer

        from .security import librdkafka_config

        self.client = client
        self.config = config
        self.producer = Producer(librdkafka_config(config.kafka, config.kafka_security, **{"linger.ms": 5}))
        self.last_now: datetime | None = None

    def run_once(self) -> None:
        from ..insights import run_insights

        now = now_utc()
        since = (self.last_now - self.LATENESS) if self.last_now else now - self.FIRST_LOOKBACK
        try:
            run_insights(self.client, now=now, since=since, budgets=self.config.budgets, publish=self.publish)
            self.last_now = now
        except Exception:
            log.exception("insights job failed; retrying on the next tick")
        self.refresh_rollups()

    def refresh_rollups(self) -> None:
        """The dashboards' rollups, recomputed for the buckets new rows marked (docs/storage.md).

        Runs beside the insights on the same tick (one worker runs it); a failure only leaves the
        panels reading raw rows until the next tick succeeds.
        """
        from tokentrail.sinks import rollups

        try:
            rollups.refresh(self.client)
        except Exception:
            log.exception("rollup refresh failed; retrying on the next tick")

    def publish(self, alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            self.producer.produce(self.config.alerts_topic, to_json(alert), str(alert.get("id", "")).encode())
        if self.producer.flush(30) != 0:
            raise RuntimeError("alerts were not acknowledged by Kafka")


class InsightsTimer:
    """Runs the insights job on its timer, on the one worker that consumes partition 0."""

    def __init__(self, app: Any, config: WorkerConfig, client: Any) -> None:
        self.app, self.config, self.job = app, config, InsightsJob(client, config)

    async def tick(self) -> None:
        from faust.types import TP

        if TP(self.config.events_topic, 0) not in self.app.assignor.assigned_actives():
            return
        await asyncio.get_running_loop().run_in_executor(None, self.job.run_once)
