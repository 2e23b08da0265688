"""A real broker with a SASL_SSL listener, for the transport-security tests.

``sasl_ssl_kafka`` (session)
    A :class:`SecureKafka`: the project's own broker (scripts/kafka_broker.py) with, beside its
    PLAINTEXT listener, a ``SASL_SSL`` one that accepts SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN,
    presents a certificate signed by a CA the test generated, and knows one user whose password
    lives in a file (as it would in production); and an ``SSL`` one that requires a client
    certificate from the same CA (mutual TLS). A second, unrelated CA is there to play the
    untrusted one. The PLAINTEXT listener stays for the test's own observations (offsets, topic
    contents): the code under test only ever talks to the secure one.

Always the local broker: an external ``TOKENTRAIL_TEST_KAFKA`` or a container has no such listener.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka_broker import KafkaBroker, Listener
from tls_material import make_authority, make_broker_keystore, make_client_pem

from tokentrail.collectors.kafka_security import KafkaSecurity

# The worker-process harness lives with the worker tests; reuse it rather than copy it.
_STREAM_TESTS = Path(__file__).resolve().parent.parent / "stream"
if str(_STREAM_TESTS) not in sys.path:
    sys.path.append(str(_STREAM_TESTS))

SECURE_LISTENER = "SASL_SSL"
MUTUAL_TLS_LISTENER = "MUTUAL_TLS"
USER = "alice"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


@dataclass(frozen=True)
class SecureKafka:
    """Where the secure listener is, and what a client needs to use it."""

    broker: KafkaBroker
    bootstrap: str  # the SASL_SSL listener: what the code under test connects to
    mutual_tls: str  # the SSL listener that requires a client certificate
    plaintext: str  # the PLAINTEXT listener: for the test's own reads and offset checks
    ca_file: Path  # signs the broker's certificate
    untrusted_ca_file: Path  # a CA that signed nothing the broker presents
    username: str
    password_file: Path
    client_cert_file: Path  # signed by ca_file: accepted by the mutual-TLS listener
    client_key_file: Path

    def security(self, mechanism: str = "SCRAM-SHA-256", **overrides: object) -> KafkaSecurity:
        """Client settings for the secure listener; override fields to break them on purpose."""
        fields: dict[str, object] = {
            "protocol": "SASL_SSL",
            "sasl_mechanism": mechanism,
            "username": self.username,
            "password_file": self.password_file,
            "ca_file": self.ca_file,
        }
        fields.update(overrides)
        return KafkaSecurity(**fields)  # type: ignore[arg-type]


def _add_scram_user(plaintext: str, user: str, password: str) -> None:
    """Create the user's SCRAM credentials (both hashes), as `kafka-configs --add-config` would."""
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": plaintext})
    for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
        # One request each: Kafka refuses two alterations of one user in the same request.
        upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 4096), password.encode())
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=30)


def _wait_authenticated(security: KafkaSecurity, bootstrap: str, timeout: float = 60.0) -> None:
    """SCRAM credentials reach the listener through the metadata log: wait until a login works."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **security.librdkafka_config()})
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if admin.list_topics(timeout=3).brokers:
                return
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"no authenticated metadata from {bootstrap} within {timeout:.0f}s (last error: {last})")


@pytest.fixture(scope="session")
def sasl_ssl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """The session's broker with a SASL_SSL listener (see the module docstring)."""
    tls = tmp_path_factory.mktemp("kafka-tls")
    ca = make_authority(tls, "trusted")
    untrusted = make_authority(tls, "untrusted")
    store_password = secrets.token_hex(12)
    keystore = make_broker_keystore(tls, ca, store_password)
    password = secrets.token_hex(16)
    password_file = tls / f"{USER}.password"
    password_file.write_text(password + "\n")  # the trailing newline `echo` leaves is not the password
    client_cert, client_key = make_client_pem(tls, ca, "tokentrail-test-client")
    keystore_properties = {
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(keystore),
        "ssl.keystore.password": store_password,
        "ssl.key.password": store_password,
    }
    mutual_tls = Listener(
        name=MUTUAL_TLS_LISTENER,
        security_protocol="SSL",
        properties={
            **keystore_properties,
            "ssl.client.auth": "required",
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(ca.cert_file),
        },
    )
    listener = Listener(
        name=SECURE_LISTENER,
        security_protocol="SASL_SSL",
        properties={
            "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
            "scram-sha-256.sasl.jaas.config": _SCRAM_LOGIN,
            "scram-sha-512.sasl.jaas.config": _SCRAM_LOGIN,
            "plain.sasl.jaas.config": (
                f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{password}";'
            ),
            **keystore_properties,
        },
    )
    with KafkaBroker(extra_listeners=[listener, mutual_tls]) as broker:
        _add_scram_user(broker.bootstrap, USER, password)
        secure = SecureKafka(
            broker=broker,
            bootstrap=broker.address(SECURE_LISTENER),
            mutual_tls=broker.address(MUTUAL_TLS_LISTENER),
            plaintext=broker.bootstrap,
            ca_file=ca.cert_file,
            untrusted_ca_file=untrusted.cert_file,
            username=USER,
            password_file=password_file,
            client_cert_file=client_cert,
            client_key_file=client_key,
        )
        _wait_authenticated(secure.security(), secure.bootstrap)
        yield secure
