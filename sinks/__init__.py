"""ClickHouse storage for tokentrail: connection, versioned schema, idempotent batch writer.

One client API for a ClickHouse server (``http(s)://``) and the embedded chDB engine
(``chdb:///path``, the default when nothing is configured). Importing this package imports
clickhouse-connect but not chdb; chdb loads only when an embedded client is opened.
"""

from .connection import ENV_CLICKHOUSE_URL, close_embedded, connect, resolve_dsn
from .migrations import DEFAULT_DATABASE, Migration, apply, available, default_ttl_days, pending
from .writer import ClickHouseSink, SinkClosedError, SinkWriteError

__all__ = [
    "ENV_CLICKHOUSE_URL",
    "DEFAULT_DATABASE",
    "connect",
    "close_embedded",
    "resolve_dsn",
    "Migration",
    "apply",
    "available",
    "pending",
    "default_ttl_days",
    "ClickHouseSink",
    "SinkWriteError",
    "SinkClosedError",
]
