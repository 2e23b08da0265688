"""Shared pytest fixtures.

Tests run against real services, not mocks (docs/architecture.md). This file is
organised by service: each section owns its fixtures and helpers. Add new services as new
sections.

Kafka fixtures
--------------
``kafka_bootstrap`` (session)
    "host:port" of a running Kafka 3.9 broker shared by the whole run. Where it comes from, in
    order: ``TOKENTRAIL_TEST_KAFKA=host:port`` (an existing broker); the ``apache/kafka:3.9.1``
    image through testcontainers when a Docker engine answers; otherwise the project's own broker
    (``scripts/kafka_broker.py``, Kafka jars from Maven Central run with the local Java).
``kafka_broker`` (function)
    A dedicated, already started :class:`KafkaBroker` that the test may ``stop()``, ``kill()``,
    ``start()`` or ``restart()`` (same address, same data). Skipped when the run uses an external
    broker or Docker, since those are not ours to restart.
``new_topic`` (function)
    ``new_topic(bootstrap=None, partitions=1, *, prefix="t", config=None) -> str`` creates a
    uniquely named topic (on ``kafka_bootstrap`` when no bootstrap is given), waits until every
    partition has a leader, and returns its name.

Reading a topic back is a plain helper, not a fixture: ``consume_all`` and ``consume_events`` in
``tests/kafka_helpers.py`` (importable by name, since pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# scripts/ is not a package: make its modules importable by name.
_SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
if str(_SCRIPTS_DIR) not in sys.path:
    sys.path.insert(0, str(_SCRIPTS_DIR))

import kafka_broker as _kb  # noqa: E402  (needs the sys.path entry above)
from kafka_broker import KafkaBroker  # noqa: E402

# --------------------------------------------------------------------------------------- Kafka

KAFKA_ENV = "TOKENTRAIL_TEST_KAFKA"
KAFKA_IMAGE = f"apache/kafka:{_kb.KAFKA_VERSION}"


@functools.cache
def _docker_engine_answers() -> bool:
    """A quick yes/no: the docker client is installed here even where no engine runs."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@functools.cache
def kafka_backend() -> str:
    """Which Kafka this run uses: "external", "docker" or "local" (decided once per run)."""
    if os.environ.get(KAFKA_ENV):
        return "external"
    if _docker_engine_answers():
        return "docker"
    return "local"


@contextlib.contextmanager
def _kafka_container() -> Iterator[str]:
    """apache/kafka in single-node KRaft mode; the client listener advertises the mapped port.

    testcontainers' KafkaContainer drives Confluent's cp-kafka images only, so the official
    image is configured here through its KAFKA_* environment variables. A second, internal
    listener serves the broker itself, so the advertised host port is only used by clients.
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.docker_client import DockerClient

    host = DockerClient().host()
    (port,) = _kb.free_ports(1)
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_LISTENERS": "INTERNAL://0.0.0.0:19092,CONTROLLER://0.0.0.0:9093,EXTERNAL://0.0.0.0:9092",
        "KAFKA_ADVERTISED_LISTENERS": f"INTERNAL://localhost:19092,EXTERNAL://{host}:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT,EXTERNAL:PLAINTEXT",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "INTERNAL",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_NUM_PARTITIONS": "1",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "true",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }
    container = DockerContainer(KAFKA_IMAGE).with_bind_ports(9092, port).with_envs(**env)
    with container:
        bootstrap = f"{host}:{port}"
        _kb.wait_for_metadata(bootstrap, timeout=_kb.DEFAULT_STARTUP_TIMEOUT)
        yield bootstrap


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """ "host:port" of the run's shared Kafka broker (see the module docstring for the order)."""
    backend = kafka_backend()
    if backend == "external":
        bootstrap = os.environ[KAFKA_ENV]
        try:
            _kb.wait_for_metadata(bootstrap, timeout=30)
        except TimeoutError as exc:
            pytest.fail(f"{KAFKA_ENV}={bootstrap} does not answer: {exc}", pytrace=False)
        yield bootstrap
    elif backend == "docker":
        with _kafka_container() as bootstrap:
            yield bootstrap
    else:
        with KafkaBroker() as broker:
            yield broker.bootstrap


@pytest.fixture
def kafka_broker() -> Iterator[KafkaBroker]:
    """A started broker of this test's own, free to be stopped, killed and restarted."""
    backend = kafka_backend()
    if backend == "external":
        pytest.skip(f"needs a restartable local broker; {KAFKA_ENV} points at an external one")
    if backend == "docker":
        pytest.skip("needs a restartable local broker; this run uses a Docker container")
    with KafkaBroker() as broker:
        yield broker


_TOPIC_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")


@pytest.fixture
def new_topic(request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Factory of fresh topics; on an external broker they are deleted after the test."""
    created: list[tuple[str, str]] = []

    def make(
        bootstrap: str | None = None,
        partitions: int = 1,
        *,
        prefix: str = "t",
        config: dict[str, str] | None = None,
    ) -> str:
        if bootstrap is None:
            bootstrap = request.getfixturevalue("kafka_bootstrap")
        test = _TOPIC_UNSAFE.sub("-", request.node.name)[:60]
        name = f"{prefix}.{test}.{uuid.uuid4().hex[:8]}"
        _kb.create_topic(bootstrap, name, partitions, config=config)
        created.append((bootstrap, name))
        return name

    yield make

    # Our own brokers are thrown away whole; only an external one keeps what we leave behind.
    if kafka_backend() == "external" and created:
        from confluent_kafka.admin import AdminClient

        external = os.environ[KAFKA_ENV]
        names = [name for bootstrap, name in created if bootstrap == external]
        if names:
            admin = AdminClient({"bootstrap.servers": external})
            for future in admin.delete_topics(names, operation_timeout=10).values():
                with contextlib.suppress(Exception):
                    future.result(timeout=15)
