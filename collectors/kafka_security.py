"""How every Kafka client in tokentrail authenticates and encrypts: one validated object, two renderings.

`KafkaSecurity` holds the security protocol, the SASL mechanism and credentials, and the TLS
files. It is checked when it is built (a ValueError that says what to fix: SASL without a
username, an unreadable CA file, an unknown mechanism), so a bad setting stops a service or the
worker at startup instead of turning into a connection that silently never works.

It renders itself for the two Kafka client libraries the project uses:

- `librdkafka_config()`: confluent-kafka's options, for the collector's producer, the kill-switch
  consumer, and the worker's AdminClient and insights producer;
- `ssl_context()`: a standard-library `ssl.SSLContext` for aiokafka; the worker wraps it, with the
  SASL fields, into faust's credentials (tokentrail.stream.faust_worker.security).

Standard library only: the collector package must stay light. Environment variables are read in
`collectors/settings.py` (`kafka_security_from_env`), not here.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MECHANISMS", "PROTOCOLS", "KafkaSecurity", "access_failure"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_HOW = "see docs/security.md#transport"


@dataclass(frozen=True)
class KafkaSecurity:
    """Security settings shared by every Kafka client; the default is PLAINTEXT (no TLS, no SASL).

    `password` and `password_file` are alternatives: a file is read once, here, so an unreadable
    one fails at startup. `ca_file` is the PEM bundle that signs the brokers' certificates (None:
    the system's trust store); `cert_file` and `key_file` are a PEM client certificate and its
    unencrypted key, for brokers that require TLS client authentication. Host names are always
    verified against the broker's certificate.
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | Path | None = None
    ca_file: str | Path | None = None
    cert_file: str | Path | None = None
    key_file: str | Path | None = None

    def __post_init__(self) -> None:
        protocol = (self.protocol or "PLAINTEXT").strip().upper()
        if protocol not in PROTOCOLS:
            raise ValueError(f"Kafka security protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        object.__setattr__(self, "protocol", protocol)
        if self.uses_sasl:
            self._check_sasl()
        else:
            given = [n for n in ("sasl_mechanism", "username", "password", "password_file") if getattr(self, n)]
            if given:
                raise ValueError(
                    f"Kafka SASL settings ({', '.join(given)}) given with security protocol {protocol}, "
                    f"which does not use SASL: choose SASL_SSL (or SASL_PLAINTEXT), or drop them; {_HOW}"
                )
        if self.uses_tls:
            for name in ("ca_file", "cert_file", "key_file"):
                _check_readable(name, getattr(self, name))
            if (self.cert_file is None) != (self.key_file is None):
                raise ValueError(
                    "a Kafka client certificate needs both cert_file and key_file (PEM), or neither; " + _HOW
                )
            self.ssl_context()  # not PEM, or a key that does not match its certificate: say so now
        else:
            given = [n for n in ("ca_file", "cert_file", "key_file") if getattr(self, n)]
            if given:
                raise ValueError(
                    f"Kafka TLS files ({', '.join(given)}) given with security protocol {protocol}, which is "
                    f"not encrypted: choose SSL or SASL_SSL, or drop them; {_HOW}"
                )

    def _check_sasl(self) -> None:
        mechanism = (self.sasl_mechanism or "").strip().upper()
        if mechanism not in MECHANISMS:
            raise ValueError(
                f"Kafka security protocol {self.protocol} needs a SASL mechanism, one of {', '.join(MECHANISMS)} "
                f"(got {self.sasl_mechanism!r}); {_HOW}"
            )
        object.__setattr__(self, "sasl_mechanism", mechanism)
        if not self.username:
            raise ValueError(f"Kafka SASL ({mechanism}) needs a username; {_HOW}")
        if self.password is not None and self.password_file is not None:
            raise ValueError("give the Kafka SASL password or a password file, not both; " + _HOW)
        if self.password_file is not None:
            _check_readable("password_file", self.password_file)
            # One trailing newline is what `echo secret > file` adds: not part of the password.
            text = Path(self.password_file).read_text(encoding="utf-8").rstrip("\r\n")
            object.__setattr__(self, "password", text)
        if not self.password:
            raise ValueError(
                f"Kafka SASL ({mechanism}) for user {self.username!r} needs a password: a password file or the "
                f"environment, never a literal in code or on a command line; {_HOW}"
            )

    # -- what it means ------------------------------------------------------------------------

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def describe(self) -> str:
        """One line for logs and error messages; never the password."""
        parts = [self.protocol]
        if self.uses_sasl:
            parts.append(f"{self.sasl_mechanism} as {self.username!r}")
        if self.uses_tls:
            parts.append(f"CA {self.ca_file}" if self.ca_file else "system CAs")
            if self.cert_file:
                parts.append(f"client certificate {self.cert_file}")
        return ", ".join(parts)

    # -- renderings ---------------------------------------------------------------------------

    def librdkafka_config(self) -> dict[str, Any]:
        """confluent-kafka (librdkafka) options; merge into a Producer/Consumer/AdminClient config."""
        config: dict[str, Any] = {"security.protocol": self.protocol.lower()}
        if self.uses_sasl:
            config.update(
                {"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.username, "sasl.password": self.password}
            )
        if self.uses_tls:
            # librdkafka's default since 2.0, stated so that nobody turns it off by accident.
            config["ssl.endpoint.identification.algorithm"] = "https"
            if self.ca_file:
                config["ssl.ca.location"] = str(self.ca_file)
            if self.cert_file and self.key_file:
                config["ssl.certificate.location"] = str(self.cert_file)
                config["ssl.key.location"] = str(self.key_file)
        return config

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for aiokafka (faust), None when the protocol is not encrypted.

        Verifies the broker's certificate and host name against `ca_file` (or the system CAs).
        """
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=_opt(self.ca_file))
        except ssl.SSLError as exc:
            raise ValueError(f"Kafka CA file {self.ca_file} is not a PEM certificate bundle ({exc}); {_HOW}") from exc
        if self.cert_file and self.key_file:
            try:
                context.load_cert_chain(str(self.cert_file), str(self.key_file))
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(f"Kafka client certificate {self.cert_file} / key {self.key_file}: {exc}") from exc
        return context


# librdkafka error names that mean "these credentials or this trust will never work", as opposed
# to a broker that is down: retrying does not help, the configuration must change.
_AUTH_ERRORS = frozenset({"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "ILLEGAL_SASL_STATE"})
_TLS_ERRORS = frozenset({"_SSL"})
_TLS_MARKERS = ("SSL handshake failed", "SSL routines::")


def access_failure(error_name: str, detail: str, security: KafkaSecurity) -> str | None:
    """What to tell the operator when a Kafka client error means bad credentials or an untrusted
    certificate; None for any other error (a broker that is down is retried, not reported here).

    `error_name` is librdkafka's `KafkaError.name()`, `detail` its `str()`.
    """
    if error_name in _AUTH_ERRORS:
        return (
            f"Kafka authentication failed ({security.describe()}): {detail}. Check the SASL mechanism, "
            "username and password (TOKENTRAIL_KAFKA_SASL_MECHANISM, TOKENTRAIL_KAFKA_SASL_USERNAME, "
            "TOKENTRAIL_KAFKA_SASL_PASSWORD_FILE); see docs/security.md#transport"
        )
    # A broker that refuses the client's certificate (or gets none) ends the connection with a TLS
    # alert: librdkafka reports that as a transport error ("... SSL routines::...bad certificate").
    if error_name in _TLS_ERRORS or any(marker in detail for marker in _TLS_MARKERS):
        return (
            f"Kafka TLS handshake failed ({security.describe()}): {detail}. Check that the CA file "
            "(TOKENTRAIL_KAFKA_SSL_CA_FILE) signed the broker's certificate, that the certificate names "
            "the host in the bootstrap address, and whether the broker requires a client certificate "
            "(TOKENTRAIL_KAFKA_SSL_CERT_FILE, TOKENTRAIL_KAFKA_SSL_KEY_FILE); see docs/security.md#transport"
        )
    return None


def _opt(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


def _check_readable(name: str, path: str | Path | None) -> None:
    if path is None:
        return
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        what = name.replace("_", " ")
        raise ValueError(f"Kafka {what} {str(path)!r} cannot be read ({exc.strerror}); {_HOW}") from None
