"""How tokentrail reaches a ClickHouse server: TLS for ``https://`` DSNs, credentials kept out of the DSN.

A DSN is often logged, pasted or stored in a compose file; a password is better kept in a file
(a mounted secret) or the environment. So the user, password and CA file may come from:

- ``TOKENTRAIL_CLICKHOUSE_USER``: the user name (may also be in the DSN; both must then agree);
- ``TOKENTRAIL_CLICKHOUSE_PASSWORD`` or ``TOKENTRAIL_CLICKHOUSE_PASSWORD_FILE`` (one, not both; and
  not as well as a password in the DSN: one place only, so nobody edits the one that is ignored);
- ``TOKENTRAIL_CLICKHOUSE_CA_FILE``: the PEM CA that signed the server's certificate (``https``
  only; without it the system's trust store is used).

An ``https://`` DSN always means TLS with the server's certificate verified. That has to be said
to clickhouse-connect explicitly: it picks https from the port (443/8443) or ``secure``/``interface``,
not from the DSN's scheme, so ``https://host:9440`` would otherwise be plain http.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

__all__ = [
    "ENV_CLICKHOUSE_CA_FILE",
    "ENV_CLICKHOUSE_PASSWORD",
    "ENV_CLICKHOUSE_PASSWORD_FILE",
    "ENV_CLICKHOUSE_USER",
    "server_client_kwargs",
]

log = logging.getLogger(__name__)

ENV_CLICKHOUSE_USER = "TOKENTRAIL_CLICKHOUSE_USER"
ENV_CLICKHOUSE_PASSWORD = "TOKENTRAIL_CLICKHOUSE_PASSWORD"
ENV_CLICKHOUSE_PASSWORD_FILE = "TOKENTRAIL_CLICKHOUSE_PASSWORD_FILE"
ENV_CLICKHOUSE_CA_FILE = "TOKENTRAIL_CLICKHOUSE_CA_FILE"

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_HOW = "see docs/security.md#transport"


def server_client_kwargs(dsn: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The keyword arguments for ``clickhouse_connect.get_client`` for an ``http(s)://`` DSN.

    Raises ValueError (naming the variable to fix) for a password given in two places, a user
    that disagrees with the DSN's, a CA file with a plain-http DSN, or an unreadable file.
    """
    env = os.environ if environ is None else environ
    parsed = urlparse(dsn)
    https = parsed.scheme.lower() == "https"
    kwargs: dict[str, Any] = {"dsn": dsn}
    if https:
        kwargs.update(interface="https", secure=True, verify=True)
    ca_file = env.get(ENV_CLICKHOUSE_CA_FILE) or None
    if ca_file is not None:
        if not https:
            raise ValueError(
                f"{ENV_CLICKHOUSE_CA_FILE} is set but the ClickHouse DSN is plain http: use https:// "
                f"(the CA is only used to verify a TLS server); {_HOW}"
            )
        _read(ENV_CLICKHOUSE_CA_FILE, ca_file)
        kwargs["ca_cert"] = ca_file
    user = env.get(ENV_CLICKHOUSE_USER) or None
    dsn_user = unquote(parsed.username) if parsed.username else None
    if user is not None:
        if dsn_user is not None and dsn_user != user:
            raise ValueError(
                f"ClickHouse user {user!r} from {ENV_CLICKHOUSE_USER} differs from {dsn_user!r} in the DSN: "
                f"give it in one place; {_HOW}"
            )
        kwargs["username"] = user
    password = _password(env)
    if password is not None:
        if parsed.password:
            raise ValueError(
                "the ClickHouse password is both in the DSN and in the environment: keep it in "
                f"{ENV_CLICKHOUSE_PASSWORD_FILE} (or {ENV_CLICKHOUSE_PASSWORD}) and drop it from the DSN; {_HOW}"
            )
        kwargs["password"] = password
    if (password is not None or parsed.password) and not https and (parsed.hostname or "") not in _LOOPBACK:
        log.warning(
            "the ClickHouse password goes to %s over plain http: use an https:// DSN; %s", parsed.hostname, _HOW
        )
    return kwargs


def _password(env: Mapping[str, str]) -> str | None:
    literal = env.get(ENV_CLICKHOUSE_PASSWORD) or None
    path = env.get(ENV_CLICKHOUSE_PASSWORD_FILE) or None
    if literal is not None and path is not None:
        raise ValueError(f"set {ENV_CLICKHOUSE_PASSWORD} or {ENV_CLICKHOUSE_PASSWORD_FILE}, not both; {_HOW}")
    if path is None:
        return literal
    # One trailing newline is what `echo secret > file` adds: not part of the password.
    text = _read(ENV_CLICKHOUSE_PASSWORD_FILE, path).rstrip("\r\n")
    if not text:
        raise ValueError(f"{ENV_CLICKHOUSE_PASSWORD_FILE}={path} is empty; {_HOW}")
    return text


def _read(variable: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{variable}={path} cannot be read ({exc.strerror}); {_HOW}") from None
