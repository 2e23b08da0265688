"""ClickHouse over TLS with credentials out of the DSN: what `sinks.connect` hands to clickhouse-connect.

No ClickHouse server can run here (the tests use the embedded engine, which has no network side).
So these tests check two things without one:

- the keyword arguments `connect()` passes to `clickhouse_connect.get_client` for server DSNs,
  recorded by replacing `get_client` (the one stand-in in this file);
- with the real clickhouse-connect client, that an `https://` DSN on a non-standard port really
  speaks TLS, verifies the server's certificate against the CA file, and sends the user and
  password from the environment: against a small Python HTTPS server that records the request
  and answers as ClickHouse does when it refuses a query.
"""

from __future__ import annotations

import base64
import http.server
import ssl
import threading
from collections.abc import Iterator

import clickhouse_connect
import pytest
from tls_material import make_authority, make_server_pem

import tokentrail.sinks.connection as connection
from tokentrail.sinks.server_credentials import (
    ENV_CLICKHOUSE_CA_FILE,
    ENV_CLICKHOUSE_PASSWORD,
    ENV_CLICKHOUSE_PASSWORD_FILE,
    ENV_CLICKHOUSE_USER,
    server_client_kwargs,
)

ENV_NAMES = (ENV_CLICKHOUSE_USER, ENV_CLICKHOUSE_PASSWORD, ENV_CLICKHOUSE_PASSWORD_FILE, ENV_CLICKHOUSE_CA_FILE)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def recorded(monkeypatch) -> list[dict]:
    """Replace clickhouse_connect.get_client (no server here) and record its keyword arguments."""
    calls: list[dict] = []
    monkeypatch.setattr(clickhouse_connect, "get_client", lambda **kwargs: calls.append(kwargs) or "client")
    return calls


def test_https_dsn_means_verified_tls_even_on_a_non_standard_port(recorded):
    """clickhouse-connect infers https from ports 443/8443 only: connect() says it for any https:// DSN."""
    assert connection.connect("https://ch.internal:9440/tokentrail") == "client"
    assert recorded == [
        {"dsn": "https://ch.internal:9440/tokentrail", "interface": "https", "secure": True, "verify": True}
    ]


def test_plain_http_dsn_is_passed_unchanged(recorded):
    """Nothing in the environment: an http DSN goes through as before."""
    connection.connect("http://localhost:8123/tokentrail")
    assert recorded == [{"dsn": "http://localhost:8123/tokentrail"}]


def test_credentials_and_ca_from_environment(recorded, monkeypatch, tmp_path):
    """User, password file (its trailing newline dropped) and CA file come from the environment, not the DSN."""
    ca = make_authority(tmp_path, "ch").cert_file
    secret = tmp_path / "ch.password"
    secret.write_text("from-a-mounted-secret\n")
    monkeypatch.setenv(ENV_CLICKHOUSE_USER, "tokentrail_writer")
    monkeypatch.setenv(ENV_CLICKHOUSE_PASSWORD_FILE, str(secret))
    monkeypatch.setenv(ENV_CLICKHOUSE_CA_FILE, str(ca))
    connection.connect("https://ch.internal:8443/tokentrail")
    assert recorded == [
        {
            "dsn": "https://ch.internal:8443/tokentrail",
            "interface": "https",
            "secure": True,
            "verify": True,
            "ca_cert": str(ca),
            "username": "tokentrail_writer",
            "password": "from-a-mounted-secret",
        }
    ]


@pytest.mark.parametrize(
    ("dsn", "env", "says"),
    [
        ("https://u:p@h:8443/db", {ENV_CLICKHOUSE_PASSWORD: "q"}, "both in the DSN and in the environment"),
        ("https://h:8443/db", {ENV_CLICKHOUSE_PASSWORD: "q", ENV_CLICKHOUSE_PASSWORD_FILE: "/x"}, "not both"),
        ("https://alice@h:8443/db", {ENV_CLICKHOUSE_USER: "bob"}, "differs from 'alice' in the DSN"),
        ("http://h:8123/db", {ENV_CLICKHOUSE_CA_FILE: "/etc/hosts"}, "use https://"),
        ("https://h:8443/db", {ENV_CLICKHOUSE_CA_FILE: "/nonexistent.pem"}, "cannot be read"),
        ("https://h:8443/db", {ENV_CLICKHOUSE_PASSWORD_FILE: "/nonexistent"}, "cannot be read"),
    ],
)
def test_conflicting_or_unreadable_settings_fail_before_connecting(recorded, dsn, env, says):
    """Each mistake is a ValueError naming the variable to fix; get_client is never called."""
    with pytest.raises(ValueError, match=says):
        server_client_kwargs(dsn, env)
    assert recorded == []


def test_password_over_plain_http_to_a_remote_host_is_warned(caplog):
    """Credentials in clear text over a network get a warning (loopback is left alone)."""
    server_client_kwargs("http://ch.internal:8123/db", {ENV_CLICKHOUSE_PASSWORD: "x"})
    assert "over plain http" in caplog.text
    caplog.clear()
    server_client_kwargs("http://127.0.0.1:8123/db", {ENV_CLICKHOUSE_PASSWORD: "x"})
    assert "over plain http" not in caplog.text


# -- the real client against a TLS server ---------------------------------------------------------


class _RefusingClickHouse(http.server.BaseHTTPRequestHandler):
    """Records each request's headers and answers like a ClickHouse that refuses the query."""

    seen: list[dict[str, str]] = []

    def _refuse(self) -> None:
        self.seen.append(dict(self.headers.items()))
        body = b"Code: 516. DB::Exception: stand-in server refuses every query. (AUTHENTICATION_FAILED)\n"
        self.send_response(500)
        self.send_header("X-ClickHouse-Exception-Code", "516")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path) -> Iterator[tuple[int, str]]:
    """(port, CA file) of an HTTPS server on 127.0.0.1 whose certificate the CA signed."""
    authority = make_authority(tmp_path, "server")
    cert, key = make_server_pem(tmp_path, authority)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RefusingClickHouse)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _RefusingClickHouse.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], str(authority.cert_file)
    finally:
        server.shutdown()
        server.server_close()


def test_real_client_verifies_the_ca_and_sends_credentials_over_tls(tls_server, monkeypatch, tmp_path):
    """https:// on a non-standard port with the right CA: the TLS handshake succeeds and the server
    receives the user and the password from the file (then refuses the query, as a test stand-in)."""
    port, ca_file = tls_server
    secret = tmp_path / "pw"
    secret.write_text("pw-from-file\n")
    monkeypatch.setenv(ENV_CLICKHOUSE_USER, "writer")
    monkeypatch.setenv(ENV_CLICKHOUSE_PASSWORD_FILE, str(secret))
    monkeypatch.setenv(ENV_CLICKHOUSE_CA_FILE, ca_file)
    with pytest.raises(Exception, match="stand-in server refuses"):
        connection.connect(f"https://127.0.0.1:{port}/tokentrail")
    assert _RefusingClickHouse.seen, "no request reached the server"
    headers = {k.lower(): v for k, v in _RefusingClickHouse.seen[0].items()}
    sent = headers.get("authorization", "")
    assert sent.startswith("Basic ") and base64.b64decode(sent[6:]).decode() == "writer:pw-from-file"


def test_real_client_refuses_a_server_its_ca_did_not_sign(tls_server, monkeypatch, tmp_path):
    """The same server with another CA configured: the handshake fails and no request (no password) is sent."""
    port, _ = tls_server
    other_ca = make_authority(tmp_path, "other").cert_file
    monkeypatch.setenv(ENV_CLICKHOUSE_PASSWORD, "must-not-leave")
    monkeypatch.setenv(ENV_CLICKHOUSE_CA_FILE, str(other_ca))
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        connection.connect(f"https://127.0.0.1:{port}/tokentrail")
    assert _RefusingClickHouse.seen == []
