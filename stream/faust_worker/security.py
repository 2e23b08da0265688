"""The worker's Kafka security: one `KafkaSecurity` rendered for faust (aiokafka) and checked at startup.

The worker has three kinds of Kafka client: faust's consumer and producer (aiokafka), the
`AdminClient` that reads the events topic's partitions, and the insights `Producer` (both
confluent-kafka). All of them get their settings from the one `WorkerConfig.kafka_security`.

`kafka_metadata` is the worker's first contact with Kafka, before faust starts: wrong credentials
or an untrusted certificate end the start there, within seconds and with a message naming the
fix, instead of leaving a worker that retries forever while looking alive.
"""

from __future__ import annotations

import time
from typing import Any

from tokentrail.collectors.kafka_security import KafkaSecurity, access_failure

__all__ = ["faust_credentials", "kafka_metadata", "librdkafka_config"]


def faust_credentials(security: KafkaSecurity) -> Any:
    """faust's `broker_credentials` for these settings (None for PLAINTEXT)."""
    import faust

    if security.uses_sasl:
        # An ssl_context turns faust's SASLCredentials into SASL_SSL; without one it is SASL_PLAINTEXT.
        return faust.SASLCredentials(
            username=security.username,
            password=security.password,
            mechanism=security.sasl_mechanism,
            ssl_context=security.ssl_context(),
        )
    if security.uses_tls:
        return faust.SSLCredentials(security.ssl_context())
    return None


def librdkafka_config(bootstrap: str, security: KafkaSecurity, **options: Any) -> dict[str, Any]:
    """A confluent-kafka client configuration: address, security, then the client's own options."""
    return {"bootstrap.servers": bootstrap, **security.librdkafka_config(), **options}


def kafka_metadata(bootstrap: str, security: KafkaSecurity, topic: str | None = None, timeout: float = 10.0) -> Any:
    """Cluster (or one topic's) metadata; ValueError at once on bad credentials or an untrusted certificate.

    librdkafka reports an authentication or TLS failure through its error callback and keeps
    retrying, while a metadata request just times out: so ask in short slices and stop on the
    first such error. A broker that does not answer at all is reported after `timeout`.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    refused: list[str] = []

    def on_error(err: KafkaError) -> None:
        message = access_failure(err.name(), err.str(), security)
        if message is not None:
            refused.append(message)

    admin = AdminClient(librdkafka_config(bootstrap, security, error_cb=on_error, log_level=0))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            return admin.list_topics(topic, timeout=0.5)
        except KafkaException as exc:
            last = exc
        admin.poll(0)  # serve the error callback
        if refused:
            raise ValueError(refused[0])
        if time.monotonic() >= deadline:
            raise ValueError(f"cannot reach Kafka at {bootstrap} ({security.describe()}) within {timeout:.0f}s: {last}")
