"""Certificates made by the test itself: a CA, server certificates it signs (PKCS12 for the broker, PEM).

Generated with Python's `cryptography` (installed with the pipeline extra: presidio-anonymizer
depends on it), so no `keytool` runs and nothing is downloaded. The broker certificate names
127.0.0.1 and localhost, so clients verify the host name as they would in production.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Authority:
    """A certificate authority: its PEM certificate on disk, and the key that signs."""

    cert_file: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=2)
    )


def make_authority(directory: Path, name: str) -> Authority:
    """A self-signed CA written to `<directory>/<name>-ca.pem`."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"tokentrail test {name} CA"))
        .issuer_name(_name(f"tokentrail test {name} CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    cert = _validity(builder).sign(key, hashes.SHA256())
    cert_file = directory / f"{name}-ca.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(cert_file, cert, key)


def _leaf(
    authority: Authority, subject: str, usage: x509.ObjectIdentifier, names: list[x509.GeneralName] | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh key and an end-entity certificate for it, signed by `authority`."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, _validity(builder).sign(authority.key, hashes.SHA256())


def _server_certificate(authority: Authority) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A certificate for 127.0.0.1 and localhost, as a server on this machine presents it."""
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    return _leaf(authority, "127.0.0.1", x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, names)


def _write_pem(
    directory: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> tuple[Path, Path]:
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def make_broker_keystore(directory: Path, authority: Authority, password: str) -> Path:
    """A PKCS12 keystore with the broker's key and its certificate (what Kafka's listener loads)."""
    key, cert = _server_certificate(authority)
    # PBES2/AES-256 with a SHA-256 MAC: what Java 17's PKCS12 KeyStore reads.
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(10_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
    blob = pkcs12.serialize_key_and_certificates(b"broker", key, cert, [authority.cert], encryption)
    path = directory / "broker.p12"
    path.write_bytes(blob)
    return path


def make_server_pem(directory: Path, authority: Authority) -> tuple[Path, Path]:
    """(certificate, unencrypted key) PEM files for a Python TLS server on 127.0.0.1."""
    return _write_pem(directory, "server", *_server_certificate(authority))


def make_client_pem(directory: Path, authority: Authority, name: str) -> tuple[Path, Path]:
    """(certificate, unencrypted key) PEM files for a TLS client called `name` (mutual TLS)."""
    key, cert = _leaf(authority, name, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH)
    return _write_pem(directory, f"client-{name}", key, cert)
