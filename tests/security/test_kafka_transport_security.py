"""Kafka over SASL_SSL for real: collector → broker → worker → store, and what bad credentials do.

The broker is the project's own with a SASL_SSL listener (tests/security/conftest.py): SCRAM
users, a certificate from a CA the test generated. The code under test talks to that listener
only; the test reads offsets and topics through the broker's PLAINTEXT listener.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time

import pytest
from confluent_kafka import Producer
from kafka_harness import read_store, start_worker, stop, wait_caught_up

import tokentrail.collectors as tt
from tokentrail.collectors.control import HaltListener, halt_key
from tokentrail.collectors.kafka import KafkaTransport

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CALLS = 300  # 600 events: a prompt and an output per call
STARTUP_FAILURE_LIMIT_S = 20.0  # the worker must give up well before this; measured times are printed


def emit(calls: int) -> None:
    """`calls` model calls through the module-level collector, in 30 traces."""
    for i in range(calls):
        with tt.trace(feature="secure", tenant="acme", trace_id=f"{i % 30:032x}"):
            with tt.model_call(provider="openai", model="gpt-4o", messages=[{"role": "user", "content": f"q{i}"}]) as c:
                c.finish(response_model="gpt-4o", output=f"a{i}", usage={"input_tokens": 10, "output_tokens": 2})


def worker_flags(secure, *, password_file=None, ca_file=None, mechanism="SCRAM-SHA-512") -> list[str]:
    return [
        "--kafka-security-protocol",
        "SASL_SSL",
        "--kafka-sasl-mechanism",
        mechanism,
        "--kafka-sasl-username",
        secure.username,
        "--kafka-sasl-password-file",
        str(password_file or secure.password_file),
        "--kafka-ssl-ca-file",
        str(ca_file or secure.ca_file),
    ]


def test_collector_to_worker_to_store_over_sasl_ssl(sasl_ssl_kafka, new_topic, tmp_path):
    """600 events from `tt.init(kafka_security=...)` (SCRAM-SHA-256) reach the store exactly once
    through a worker that authenticates with SCRAM-SHA-512 from its flags."""
    secure = sasl_ssl_kafka
    topic = new_topic(secure.plaintext, partitions=2)
    tt.init(
        service="secure-e2e",
        kafka=secure.bootstrap,
        topic=topic,
        spool_dir=tmp_path / "spool",
        kafka_security=secure.security("SCRAM-SHA-256"),
    )
    try:
        emit(CALLS)
        assert tt.flush(60)
        stats = tt.stats()
        assert stats["delivered"] == 2 * CALLS and stats.get("spooled", 0) == 0 and stats["broker_up"]
        assert stats.get("kafka_access_error") is None
    finally:
        tt.close()

    store = tmp_path / "store"
    worker = start_worker(secure.bootstrap, topic, store, group="secure", extra=worker_flags(secure))
    wait_caught_up(secure.plaintext, topic, "secure", worker, timeout=240)
    stop(worker)
    counts = read_store(
        store,
        {
            "events": "SELECT count(), uniqExact(event_id) FROM tokentrail.events FINAL",
            "calls": "SELECT count() FROM tokentrail.calls FINAL",
            "dead": "SELECT count() FROM tokentrail.deadletter",
        },
    )
    assert counts == {"events": [(2 * CALLS, 2 * CALLS)], "calls": [(CALLS,)], "dead": [(0,)]}


@pytest.mark.parametrize("failure", ["wrong_password", "untrusted_ca"])
def test_worker_with_bad_credentials_exits_at_startup_naming_the_cause(sasl_ssl_kafka, new_topic, tmp_path, failure):
    """A wrong password or a CA that did not sign the broker's certificate: the worker exits with
    status 2 within seconds, saying which, instead of retrying while looking alive."""
    secure = sasl_ssl_kafka
    topic = new_topic(secure.plaintext)
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    if failure == "wrong_password":
        flags, says = worker_flags(secure, password_file=wrong), "Kafka authentication failed"
    else:
        flags, says = worker_flags(secure, ca_file=secure.untrusted_ca_file), "Kafka TLS handshake failed"
    store = tmp_path / "store"
    started = time.monotonic()
    worker = start_worker(secure.bootstrap, topic, store, group=f"bad-{failure}", extra=flags)
    try:
        code = worker.wait(STARTUP_FAILURE_LIMIT_S)
    except subprocess.TimeoutExpired:
        stop(worker)
        pytest.fail(f"the worker was still running after {STARTUP_FAILURE_LIMIT_S}s with {failure}")
    elapsed = time.monotonic() - started
    output = b"".join(p.read_bytes() for p in tmp_path.glob(f"worker-bad-{failure}-*.log")).decode()
    print(f"worker startup failure ({failure}): exit {code} after {elapsed:.1f}s")
    assert code == 2, output
    assert says in output, output
    assert "Traceback" not in output


@pytest.mark.parametrize("failure", ["wrong_password", "untrusted_ca"])
def test_collector_with_bad_credentials_reports_instead_of_raising(
    sasl_ssl_kafka, new_topic, tmp_path, caplog, failure
):
    """The service is never interrupted, but the collector does not look healthy: stats() carries
    `broker_up: False` and the reason, the log says it at ERROR, and the events wait in the spool."""
    secure = sasl_ssl_kafka
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    if failure == "wrong_password":
        security, says = secure.security(password_file=wrong), "Kafka authentication failed"
    else:
        security, says = secure.security(ca_file=secure.untrusted_ca_file), "Kafka TLS handshake failed"
    caplog.set_level(logging.WARNING, logger="tokentrail.collectors")
    started = time.monotonic()
    tt.init(
        service="secure-bad",
        kafka=secure.bootstrap,
        topic=new_topic(secure.plaintext),
        spool_dir=tmp_path / "spool",
        kafka_security=security,
    )
    try:
        emit(10)
        deadline = time.monotonic() + 10
        while tt.stats().get("kafka_access_error") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        print(f"collector reports {failure} after {elapsed:.1f}s")
        stats = tt.stats()
        assert stats["broker_up"] is False
        assert says in (stats.get("kafka_access_error") or ""), stats
        assert any(r.levelno == logging.ERROR and says in r.getMessage() for r in caplog.records)
        assert not tt.flush(3)  # nothing can be delivered: flush says so
        assert tt.stats().get("delivered", 0) == 0
    finally:
        tt.close(3)
    # close() spends its timeout waiting for the broker, then moves what is in flight to the spool.
    deadline = time.monotonic() + 15
    while tt.get_collector().stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tt.get_collector().stats().get("spooled", 0) == 20  # kept on disk for a later run
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and says in r.getMessage()]
    assert len(errors) == 1  # said once, not at every reconnect


def test_kill_switch_consumer_reads_halts_over_sasl_ssl(sasl_ssl_kafka, new_topic):
    """The kill-switch consumer in collectors/control.py authenticates with the same settings."""
    secure = sasl_ssl_kafka
    topic = new_topic(secure.plaintext, config={"cleanup.policy": "compact"})
    record = {"halt": True, "kind": "exact_repeat", "repeats": 5, "tenant": "acme", "trace_id": "trace-1"}
    producer = Producer({"bootstrap.servers": secure.plaintext})
    producer.produce(topic, json.dumps(record).encode(), halt_key("acme", "trace-1"))
    assert producer.flush(10) == 0
    listener = HaltListener(secure.bootstrap, topic, security=secure.security())
    try:
        deadline = time.monotonic() + 30
        while listener.halted("trace-1", "acme") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listener.halted("trace-1", "acme") == record
    finally:
        listener.close()


def test_transport_uses_security_from_settings(sasl_ssl_kafka, new_topic, tmp_path):
    """`KafkaSettings(security=...)` alone is enough for a KafkaTransport to deliver over SASL_SSL."""
    secure = sasl_ssl_kafka
    transport = KafkaTransport(
        tt.KafkaSettings(
            bootstrap_servers=secure.bootstrap,
            topic=new_topic(secure.plaintext),
            spool_dir=tmp_path / "spool",
            security=secure.security("PLAIN"),
        )
    )
    transport.export([("k", b'{"x": 1}')])
    assert transport.flush(30)
    assert transport.stats()["delivered"] == 1
    transport.close(5)
