"""The worker's side of Kafka security: faust's credentials, and the start-up check that fails fast.

Against the SASL_SSL / mutual-TLS broker of tests/security/conftest.py. The full worker process
over SASL_SSL is in test_kafka_transport_security.py.
"""

from __future__ import annotations

import json
import ssl
import time

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from tokentrail.collectors.kafka_security import KafkaSecurity
from tokentrail.stream.faust_worker.security import faust_credentials, kafka_metadata

pytestmark = [pytest.mark.kafka]


def test_faust_credentials_render_to_the_aiokafka_settings():
    """What faust hands aiokafka: SASL_SSL with the mechanism, user, password and a verifying TLS context."""
    security = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username="w", password="pw")
    auth = credentials_to_aiokafka_auth(faust_credentials(security))
    context = auth.pop("ssl_context")
    assert auth == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "w",
        "sasl_plain_password": "pw",
    }
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_faust_credentials_for_sasl_plaintext_ssl_and_plaintext():
    """SASL without TLS has no context; TLS alone is faust's SSLCredentials; PLAINTEXT is no credentials."""
    plain_sasl = KafkaSecurity(protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", username="w", password="pw")
    assert credentials_to_aiokafka_auth(faust_credentials(plain_sasl))["security_protocol"] == "SASL_PLAINTEXT"
    tls = credentials_to_aiokafka_auth(faust_credentials(KafkaSecurity(protocol="SSL")))
    assert tls["security_protocol"] == "SSL" and isinstance(tls["ssl_context"], ssl.SSLContext)
    assert faust_credentials(KafkaSecurity()) is None


def test_metadata_with_good_credentials(sasl_ssl_kafka):
    """The start-up check passes with the right user, password and CA (SASL_SSL) and with a client
    certificate on the mutual-TLS listener."""
    secure = sasl_ssl_kafka
    assert kafka_metadata(secure.bootstrap, secure.security("SCRAM-SHA-512")).brokers
    mutual = KafkaSecurity(
        protocol="SSL", ca_file=secure.ca_file, cert_file=secure.client_cert_file, key_file=secure.client_key_file
    )
    assert kafka_metadata(secure.mutual_tls, mutual).brokers


@pytest.mark.parametrize("failure", ["wrong_password", "unknown_user", "untrusted_ca", "no_client_certificate"])
def test_metadata_check_fails_fast_naming_the_cause(sasl_ssl_kafka, tmp_path, failure):
    """Each misconfiguration is a ValueError saying which kind it is, well before the 10 s timeout."""
    secure = sasl_ssl_kafka
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    bootstrap = secure.bootstrap
    if failure == "wrong_password":
        security, says = secure.security(password_file=wrong), "Kafka authentication failed"
    elif failure == "unknown_user":
        security, says = secure.security(username="mallory"), "Kafka authentication failed"
    elif failure == "untrusted_ca":
        security, says = secure.security(ca_file=secure.untrusted_ca_file), "Kafka TLS handshake failed"
    else:
        bootstrap, security = secure.mutual_tls, KafkaSecurity(protocol="SSL", ca_file=secure.ca_file)
        says = "Kafka TLS handshake failed"
    started = time.monotonic()
    with pytest.raises(ValueError, match=says) as raised:
        kafka_metadata(bootstrap, security, timeout=10)
    elapsed = time.monotonic() - started
    print(f"{failure}: refused after {elapsed:.2f}s")
    assert elapsed < 5
    assert "not-the-password" not in str(raised.value)


def test_metadata_check_reports_an_unreachable_broker_after_its_timeout():
    """Nobody listening: not an access failure, a plain 'cannot reach' once the timeout is spent."""
    started = time.monotonic()
    with pytest.raises(ValueError, match="cannot reach Kafka at 127.0.0.1:9"):
        kafka_metadata("127.0.0.1:9", KafkaSecurity(), timeout=2)
    assert 2 <= time.monotonic() - started < 6


def test_insights_producer_publishes_over_sasl_ssl(sasl_ssl_kafka, new_topic):
    """The worker's third Kafka client, the insights job's producer, delivers alerts with the same settings."""
    from kafka_helpers import consume_all

    from tokentrail.stream.faust_worker.config import WorkerConfig
    from tokentrail.stream.faust_worker.insights_job import InsightsJob

    secure = sasl_ssl_kafka
    topic = new_topic(secure.plaintext)
    config = WorkerConfig(kafka=secure.bootstrap, kafka_security=secure.security("SCRAM-SHA-512"), alerts_topic=topic)
    job = InsightsJob(client=None, config=config)
    job.publish([{"id": "alert-1", "kind": "budget_breach"}])  # raises unless Kafka acknowledged it
    assert [(k, json.loads(v)["id"]) for k, v in consume_all(secure.plaintext, topic, 1)] == [(b"alert-1", "alert-1")]
