"""Open a clickhouse-connect client on a ClickHouse server or on the embedded chDB engine.

One code path serves both: clickhouse-connect >= 1.12 with chdb >= 4.4 installed turns a
``chdb://`` DSN into a client with the same ``command`` / ``query`` / ``insert`` API as the
HTTP client. Where the DSN comes from, in order: the ``dsn`` argument, the environment variable
``TOKENTRAIL_CLICKHOUSE_URL``, else an embedded store in ``./.tokentrail/clickhouse`` under the
current directory. For a server, TLS and credentials kept out of the DSN (user, password or
password file, CA file) come from the environment too: see ``server_credentials``.

Why embedded clients are cached: chDB hosts one engine per process, bound to one path. Any
number of handles may share that path, but opening a different path while a handle is open
fails, and every handle costs an engine session. So ``connect`` hands out one shared client per
path; callers must not ``close()`` it themselves (they would break every other holder) and
call :func:`close_embedded` at shutdown or before switching paths. HTTP clients are cheap,
independent objects and are not cached: the caller owns and closes them.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from .server_credentials import server_client_kwargs

__all__ = ["ENV_CLICKHOUSE_URL", "DEFAULT_EMBEDDED_DIR", "resolve_dsn", "connect", "close_embedded"]

log = logging.getLogger(__name__)

ENV_CLICKHOUSE_URL = "TOKENTRAIL_CLICKHOUSE_URL"
DEFAULT_EMBEDDED_DIR = Path(".tokentrail") / "clickhouse"
MEMORY = ":memory:"

_ACCEPTED = (
    "accepted forms: http://user:pass@host:8123/db, https://user:pass@host:8443/db, "
    "chdb:///absolute/path (embedded, on disk) or chdb://memory (embedded, in memory)"
)

_lock = threading.Lock()
_embedded: dict[str, Client] = {}  # engine location -> the one shared client
_default_logged = False


def resolve_dsn(dsn: str | None = None) -> str:
    """Return the DSN to use and validate it, without opening anything.

    Separate from :func:`connect` so configuration mistakes surface (and can be tested) before
    an engine starts. Raises ``ValueError`` naming the accepted forms.
    """
    global _default_logged
    if dsn is None:
        dsn = os.environ.get(ENV_CLICKHOUSE_URL) or None
    if dsn is None:
        path = (Path.cwd() / DEFAULT_EMBEDDED_DIR).resolve()
        if not _default_logged:
            log.info("no ClickHouse configured; using embedded store at %s", path)
            _default_logged = True
        return f"chdb://{path}"
    _parse(dsn)
    return dsn


def _parse(dsn: str) -> tuple[str, str | None]:
    """Split a DSN into (kind, embedded location); kind is 'http' or 'chdb'."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise ValueError(f"empty ClickHouse DSN; {_ACCEPTED}")
    try:
        parsed = urlparse(dsn.strip())
        parsed.port  # noqa: B018 - raises ValueError on a non-numeric port
    except ValueError as exc:
        raise ValueError(f"unparseable ClickHouse DSN {_redact(dsn)!r} ({exc}); {_ACCEPTED}") from None
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        if not parsed.hostname:
            raise ValueError(f"ClickHouse DSN {_redact(dsn)!r} has no host; {_ACCEPTED}")
        return "http", None
    if scheme == "chdb":
        if parsed.netloc in ("memory", MEMORY) and parsed.path in ("", "/"):
            return "chdb", MEMORY
        if not parsed.netloc and parsed.path.startswith("/") and parsed.path.strip("/"):
            # realpath: chDB compares engine paths literally, so one directory = one cache key.
            return "chdb", os.path.realpath(unquote(parsed.path))
        raise ValueError(
            f"embedded ClickHouse DSN {dsn!r} needs an absolute path (three slashes) or 'memory'; {_ACCEPTED}"
        )
    raise ValueError(f"unsupported ClickHouse DSN scheme {parsed.scheme!r} in {_redact(dsn)!r}; {_ACCEPTED}")


def _redact(dsn: str) -> str:
    """Hide a password before a DSN goes into an error message or a log line."""
    try:
        parsed = urlparse(dsn)
        if parsed.password:
            return dsn.replace(f":{parsed.password}@", ":***@", 1)
    except ValueError:
        pass
    return dsn


def connect(dsn: str | None = None) -> Client:
    """Return a clickhouse-connect client for ``dsn`` (see module docstring for the lookup order).

    Embedded (``chdb://``) clients are shared per path within the process: do not close them
    yourself, call :func:`close_embedded`. A closed cached client is replaced transparently.
    Asking for a second embedded path while one is open raises ``RuntimeError`` (chDB's
    one-engine-per-process rule, stated up front rather than as an engine error).
    """
    dsn = resolve_dsn(dsn)
    kind, location = _parse(dsn)
    if kind == "http":
        return clickhouse_connect.get_client(**server_client_kwargs(dsn))
    assert location is not None
    with _lock:
        client = _embedded.get(location)
        if client is not None and client.ping():
            return client
        _embedded.pop(location, None)
        others = [loc for loc, c in _embedded.items() if c.ping()]
        if others:
            raise RuntimeError(
                f"embedded ClickHouse is already open at {others[0]} in this process; chDB hosts one "
                f"engine path per process, so close it first (tokentrail.sinks.close_embedded()) "
                f"before opening {location}"
            )
        _embedded.clear()
        if location != MEMORY:
            Path(location).mkdir(parents=True, exist_ok=True)
        # path= rather than a rebuilt DSN: a directory name may contain URL syntax ('#', '?', '%').
        client = clickhouse_connect.get_client(interface="chdb", path=None if location == MEMORY else location)
        _embedded[location] = client
        return client


def close_embedded() -> None:
    """Close the shared embedded client(s), releasing chDB's engine so another path can open."""
    with _lock:
        clients = list(_embedded.values())
        _embedded.clear()
    for client in clients:
        try:
            client.close()
        except Exception:  # closing is best-effort cleanup; nothing useful to raise
            log.debug("error closing embedded ClickHouse client", exc_info=True)
