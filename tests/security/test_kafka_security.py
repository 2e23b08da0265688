"""`KafkaSecurity`: validated at construction with a message that says what to fix, rendered exactly.

No broker here: these check the settings object itself (the broker tests are in
test_kafka_transport_security.py).
"""

from __future__ import annotations

import re
import ssl

import pytest
from tls_material import make_authority

from tokentrail.collectors.kafka_security import KafkaSecurity, access_failure


@pytest.fixture
def ca_file(tmp_path):
    return make_authority(tmp_path, "unit").cert_file


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "kafka.password"
    path.write_text("s3cret-from-file\n")
    return path


def test_default_is_plaintext_and_renders_only_the_protocol():
    """No settings: PLAINTEXT, no TLS context, and librdkafka is told nothing else."""
    security = KafkaSecurity()
    assert security.librdkafka_config() == {"security.protocol": "plaintext"}
    assert security.ssl_context() is None
    assert not security.uses_sasl and not security.uses_tls


def test_sasl_ssl_renders_every_librdkafka_option(ca_file, password_file):
    """SASL_SSL with SCRAM: protocol, mechanism, credentials (the file's text without its newline), CA, host check."""
    security = KafkaSecurity(
        protocol="sasl_ssl",
        sasl_mechanism="scram-sha-512",
        username="alice",
        password_file=password_file,
        ca_file=ca_file,
    )
    assert security.librdkafka_config() == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "s3cret-from-file",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(ca_file),
    }
    context = security.ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_password_never_in_repr_or_description(password_file):
    """The password reaches the client configuration only: not repr(), not describe() (logs, errors)."""
    security = KafkaSecurity(protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", username="bob", password="hunter2-x")
    assert "hunter2-x" not in repr(security) and "hunter2-x" not in security.describe()
    assert security.describe() == "SASL_PLAINTEXT, PLAIN as 'bob'"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"protocol": "TLS"}, "not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
        ({"protocol": "SASL_SSL", "username": "a", "password": "p"}, "needs a SASL mechanism"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "username": "a", "password": "p"}, "SCRAM-SHA-256"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "password": "p"}, "needs a username"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "username": "a"}, "needs a password"),
        ({"protocol": "PLAINTEXT", "username": "a"}, "choose SASL_SSL"),
        ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "username": "a", "password": "p",
          "ca_file": "/etc/hosts"}, "not encrypted: choose SSL or SASL_SSL"),
        ({"protocol": "SSL", "ca_file": "/nonexistent/ca.pem"}, "'/nonexistent/ca.pem' cannot be read"),
    ],
)  # fmt: skip
def test_bad_settings_fail_at_construction_saying_the_fix(fields, says):
    """Every inconsistent or incomplete combination is a ValueError naming what to change."""
    with pytest.raises(ValueError, match=re.escape(says)):
        KafkaSecurity(**fields)


def test_password_and_file_are_alternatives(password_file):
    """Both a password and a password file: refused rather than silently preferring one."""
    with pytest.raises(ValueError, match="not both"):
        KafkaSecurity(
            protocol="SASL_SSL", sasl_mechanism="PLAIN", username="a", password="p", password_file=password_file
        )


def test_empty_password_file_is_refused(tmp_path):
    """A password file holding only a newline is no password."""
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="needs a password"):
        KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", username="a", password_file=empty)


def test_ca_file_that_is_not_pem_is_refused(tmp_path):
    """A readable file that holds no certificate fails at construction, not at the first handshake."""
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="is not a PEM certificate bundle"):
        KafkaSecurity(protocol="SSL", ca_file=junk)


def test_client_certificate_needs_its_key(ca_file):
    """cert_file without key_file (or the reverse) is refused."""
    with pytest.raises(ValueError, match="both cert_file and key_file"):
        KafkaSecurity(protocol="SSL", ca_file=ca_file, cert_file=ca_file)


def test_access_failure_names_the_fix_only_for_credential_and_trust_errors():
    """Authentication and TLS errors get an operator message; a broker that is down does not."""
    security = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", username="a", password="p")
    auth = access_failure("_AUTHENTICATION", "SASL authentication error: invalid credentials", security)
    assert auth is not None and "authentication failed" in auth and "TOKENTRAIL_KAFKA_SASL_PASSWORD_FILE" in auth
    tls = access_failure("_SSL", "SSL handshake failed: certificate verify failed", security)
    assert tls is not None and "TLS handshake failed" in tls and "TOKENTRAIL_KAFKA_SSL_CA_FILE" in tls
    assert access_failure("_ALL_BROKERS_DOWN", "1/1 brokers are down", security) is None
    assert access_failure("_TRANSPORT", "Connection refused", security) is None


def test_access_failure_recognises_a_refused_client_certificate():
    """A broker that requires a client certificate closes the handshake: librdkafka calls that a
    transport error, but it is a TLS configuration problem and is reported as one."""
    security = KafkaSecurity(protocol="SSL")
    detail = (
        "ssl://127.0.0.1:9093/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls alert bad "
        "certificate: SSL alert number 42 (after 28ms in state APIVERSION_QUERY)"
    )
    message = access_failure("_TRANSPORT", detail, security)
    assert message is not None and "TOKENTRAIL_KAFKA_SSL_CERT_FILE" in message


SECURITY_ENV = {
    "TOKENTRAIL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "TOKENTRAIL_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
    "TOKENTRAIL_KAFKA_SASL_USERNAME": "svc",
}


def test_settings_read_every_variable_from_the_environment(monkeypatch, ca_file, password_file):
    """`kafka_security_from_env` (used by `init` and the worker) reads each field from its variable."""
    from tokentrail.collectors.settings import kafka_security_from_env

    for name, value in SECURITY_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TOKENTRAIL_KAFKA_SASL_PASSWORD_FILE", str(password_file))
    monkeypatch.setenv("TOKENTRAIL_KAFKA_SSL_CA_FILE", str(ca_file))
    security = kafka_security_from_env()
    assert (security.protocol, security.sasl_mechanism, security.username) == ("SASL_SSL", "SCRAM-SHA-256", "svc")
    assert security.password == "s3cret-from-file" and security.ca_file == str(ca_file)


def test_an_override_beats_its_variable_and_a_password_file_replaces_an_env_password(monkeypatch, password_file):
    """A flag's value wins over the environment; a password file given as a flag replaces
    TOKENTRAIL_KAFKA_SASL_PASSWORD instead of clashing with it."""
    from tokentrail.collectors.settings import kafka_security_from_env

    for name, value in SECURITY_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TOKENTRAIL_KAFKA_SASL_PASSWORD", "from-env")
    assert kafka_security_from_env().password == "from-env"
    security = kafka_security_from_env(sasl_mechanism="SCRAM-SHA-512", password_file=password_file)
    assert security.sasl_mechanism == "SCRAM-SHA-512" and security.password == "s3cret-from-file"


def test_no_variables_means_plaintext(monkeypatch):
    """Nothing set: PLAINTEXT, as before this configuration existed."""
    from tokentrail.collectors.settings import KAFKA_SECURITY_ENV, kafka_security_from_env

    for name in KAFKA_SECURITY_ENV.values():
        monkeypatch.delenv(name, raising=False)
    assert kafka_security_from_env() == KafkaSecurity()


def test_incomplete_environment_fails_init_with_the_fix(monkeypatch, tmp_path):
    """SASL asked for in the environment without a password: `init` raises at startup, naming it."""
    import tokentrail.collectors as tt

    for name, value in SECURITY_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TOKENTRAIL_KAFKA_SASL_PASSWORD", raising=False)
    monkeypatch.delenv("TOKENTRAIL_KAFKA_SASL_PASSWORD_FILE", raising=False)
    with pytest.raises(ValueError, match="needs a password"):
        tt.init(service="svc", kafka="127.0.0.1:9", spool_dir=tmp_path)


def test_worker_flags_build_the_security(monkeypatch, ca_file, password_file):
    """`tokentrail worker --kafka-security-protocol ... --kafka-sasl-password-file ...` -> `kafka_security`."""
    from tokentrail.collectors.settings import KAFKA_SECURITY_ENV
    from tokentrail.stream.faust_worker.config import parse_args

    for name in KAFKA_SECURITY_ENV.values():
        monkeypatch.delenv(name, raising=False)
    config = parse_args(
        [
            "--kafka", "broker:9093",
            "--kafka-security-protocol", "SASL_SSL",
            "--kafka-sasl-mechanism", "SCRAM-SHA-512",
            "--kafka-sasl-username", "worker",
            "--kafka-sasl-password-file", str(password_file),
            "--kafka-ssl-ca-file", str(ca_file),
        ]
    )  # fmt: skip
    assert config.kafka_security == KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        username="worker",
        password_file=str(password_file),
        ca_file=str(ca_file),
    )
    assert config.kafka_security.password == "s3cret-from-file"
    assert parse_args(["--kafka", "broker:9092"]).kafka_security == KafkaSecurity()
