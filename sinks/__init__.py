"""ClickHouse storage for tokentrail: connection, versioned schema, idempotent batch writer, access SQL.

One client API for a ClickHouse server (``http(s)://``) and the embedded chDB engine
(``chdb:///path``, the default when nothing is configured). Importing this package imports
clickhouse-connect but not chdb; chdb loads only when an embedded client is opened.
"""

from .connection import ENV_CLICKHOUSE_URL, close_embedded, connect, resolve_dsn
from .migrations import (
    DEFAULT_DATABASE,
    Migration,
    SchemaVersionError,
    apply,
    available,
    check_schema_version,
    default_ttl_days,
    pending,
    required_version,
    schema_sql,
)
from .outcomes import Rejection, SinkClosedError, SinkWriteError, StoreUnavailable, WriteResult
from .privileges import ReaderLimits, apply_access, reader_user_sql, render_access_sql
from .writer import ClickHouseSink

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
    "check_schema_version",
    "required_version",
    "schema_sql",
    "SchemaVersionError",
    "ClickHouseSink",
    "SinkWriteError",
    "SinkClosedError",
    "StoreUnavailable",
    "Rejection",
    "WriteResult",
    "ReaderLimits",
    "render_access_sql",
    "reader_user_sql",
    "apply_access",
]
