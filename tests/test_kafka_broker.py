"""The Kafka the other tests rely on is a real, working, restartable broker.

If these fail, every Kafka integration test would fail for reasons that have nothing to do with
tokentrail, so they pin down the fixtures themselves: round trips, restarts at the same address
with data kept, and failures that say what went wrong.
"""

from __future__ import annotations

import socket
import time
import uuid

import kafka_admin
import kafka_config
import pytest
from confluent_kafka import Consumer, Producer
from kafka_broker import KafkaBroker, KafkaBrokerError, Listener

pytestmark = pytest.mark.kafka


def _producer(bootstrap: str) -> tuple[Producer, list]:
    errors: list = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "on_delivery": on_delivery}
    )
    return producer, errors


def _consume(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list:
    """Read ``count`` messages from the start of ``topic``: (key, value, partition) tuples."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.key(), msg.value(), msg.partition()))
    finally:
        consumer.close()
    return got


def test_round_trip_of_100_keyed_messages(kafka_bootstrap, new_topic):
    """Every message produced comes back once, each key on one partition and in order."""
    topic = new_topic(kafka_bootstrap, partitions=3)
    sent = [(f"trace-{i % 10}".encode(), f"event-{i}".encode()) for i in range(100)]
    producer, errors = _producer(kafka_bootstrap)
    for key, value in sent:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0
    assert errors == []

    got = _consume(kafka_bootstrap, topic, len(sent))
    assert sorted((k, v) for k, v, _ in got) == sorted(sent)
    # Same key, same partition: what keeps one trace's events in order for one consumer.
    partitions_by_key: dict[bytes, set[int]] = {}
    for key, _, partition in got:
        partitions_by_key.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions_by_key.values())
    # Within a key, the order produced is the order consumed.
    for key in partitions_by_key:
        assert [v for k, v, _ in got if k == key] == [v for k, v in sent if k == key]


def test_stop_then_start_keeps_address_and_data(kafka_broker, new_topic):
    """A graceful stop keeps the address and the data; a message queued meanwhile is delivered."""
    bootstrap = kafka_broker.bootstrap
    topic = new_topic(bootstrap)
    producer, errors = _producer(bootstrap)
    producer.produce(topic, key=b"k", value=b"before stop")
    assert producer.flush(15) == 0

    kafka_broker.stop()
    assert not kafka_broker.running
    # Emitted while the broker is down: the client queues it and delivers after the restart.
    producer.produce(topic, key=b"k", value=b"while stopped")
    kafka_broker.start()

    assert kafka_broker.bootstrap == bootstrap
    assert producer.flush(30) == 0
    assert errors == []
    got = _consume(bootstrap, topic, 2)
    assert [v for _, v, _ in got] == [b"before stop", b"while stopped"]


@pytest.mark.slow
def test_kill_then_start_keeps_data(kafka_broker, new_topic):
    """A crash (SIGKILL) loses nothing already acknowledged; restart takes a few seconds more."""
    topic = new_topic(kafka_broker.bootstrap)
    producer, errors = _producer(kafka_broker.bootstrap)
    producer.produce(topic, value=b"acknowledged before the crash")
    assert producer.flush(15) == 0

    kafka_broker.kill()
    kafka_broker.start()

    got = _consume(kafka_broker.bootstrap, topic, 1)
    assert [v for _, v, _ in got] == [b"acknowledged before the crash"]


def test_missing_java_fails_clearly():
    """No java binary: the error names it, and close() leaves no data directory behind."""
    broker = KafkaBroker(java="/nonexistent/bin/java")
    with pytest.raises(KafkaBrokerError, match=r"cannot run java .*/nonexistent/bin/java"):
        broker.start()
    broker.close()
    assert broker.workdir is None


def test_java_that_fails_is_reported():
    """A java that exits non-zero fails the format step with its exit code in the message."""
    broker = KafkaBroker(java="false")
    with pytest.raises(KafkaBrokerError, match="StorageTool format failed with exit code 1"):
        broker.start()
    broker.close()


def test_broker_that_dies_reports_its_log():
    """A taken port makes the JVM exit; the error carries the root cause from the broker log."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = KafkaBroker(port=taken.getsockname()[1], startup_timeout=60)
        try:
            with pytest.raises(KafkaBrokerError, match="exited with code") as info:
                broker.start()
        finally:
            broker.close()
    assert "Address already in use" in str(info.value)


def test_port_taken_after_choosing_it_is_chosen_again(monkeypatch):
    """Free ports are only free "as of now": a first start retries on new ones if beaten to it."""
    real_free_ports = kafka_admin.free_ports
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        offered = iter([[taken.getsockname()[1], real_free_ports(1)[0]]])
        # The broker process looks the function up on kafka_admin, so that is where it is replaced.
        monkeypatch.setattr(kafka_admin, "free_ports", lambda n: next(offered, None) or real_free_ports(n))
        with KafkaBroker() as broker:
            assert broker.port != taken.getsockname()[1]
            assert broker.running
        assert next(offered, None) is None  # the taken port really was offered first


def test_extra_listener_serves_clients_on_its_own_port(new_topic):
    """A listener added beside PLAINTEXT (how a SASL_SSL one will be added) takes real traffic."""
    with KafkaBroker(extra_listeners=[Listener("EXTERNAL")]) as broker:
        external = broker.address("EXTERNAL")
        assert external != broker.bootstrap
        topic = new_topic(external)
        producer, errors = _producer(external)
        producer.produce(topic, value=b"through the extra listener")
        assert producer.flush(15) == 0
        assert errors == []
        got = _consume(broker.bootstrap, topic, 1)
        assert [v for _, v, _ in got] == [b"through the extra listener"]
        with pytest.raises(KafkaBrokerError, match="no listener 'SASL_SSL'"):
            broker.address("SASL_SSL")


def test_listener_settings_are_rendered_under_their_prefix(tmp_path):
    """Each listener gets its own listeners/advertised/protocol-map entry and prefixed settings."""
    sasl = Listener("SASL_SSL", "SASL_SSL", port=9094, properties={"sasl.enabled.mechanisms": "PLAIN"})
    text = kafka_config.server_properties(
        host="127.0.0.1", port=9092, controller_port=9093, data_dir=tmp_path, extra_listeners=(sasl,)
    )
    props = dict(line.split("=", 1) for line in text.splitlines())
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094"
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT"
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "PLAIN"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"


@pytest.mark.parametrize(
    ("name", "protocol", "error"),
    [
        ("PLAINTEXT", "PLAINTEXT", "the broker's own"),
        ("CONTROLLER", "PLAINTEXT", "the broker's own"),
        ("sasl", "SASL_SSL", "upper-case"),
        ("EXTERNAL", "KERBEROS", "security protocol"),
    ],
)
def test_listener_rejects_names_and_protocols_kafka_would_refuse(name, protocol, error):
    """Mistakes in a listener fail when it is made, not as a JVM that exits at start."""
    with pytest.raises(ValueError, match=error):
        Listener(name, protocol)
