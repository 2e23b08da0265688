"""Least privilege in the store: render (and apply) the roles, profile, grants and row policies.

The static part is ``sinks/access/roles.sql`` (read it for the why); this module fills it in and
adds, per tenant, a role ``tokentrail_tenant_<tenant>`` with SELECT on the tenant-scoped tables
and one row policy per table restricting it to that tenant's rows. Applying needs access
management rights (an administrator), so the worker never does it; ``reader_user_sql`` renders a
Grafana user for one tenant (or all) from a password's SHA-256, never from the password itself.

Tenant isolation, table by table (``TENANT_PREDICATES``): tables with a ``tenant`` column are
filtered on it; ``budget_breaches`` keys spend by ``scope``/``key``, so a tenant sees its own
tenant-scope breaches only (feature-scope rows carry no tenant); ``deadletter`` and ``receipts``
carry no trustworthy tenant and are visible to ``tokentrail_all_tenants`` only; ``rollup_watermark``
(``SHARED_TABLES``) holds only refresh times and is readable by every tenant role. Every table with a
policy also gets an unrestricted policy for the writer and ``tokentrail_all_tenants``, because
once a table has row policies a role without one may see no rows (depending on the server's
``users_without_row_policies_can_read_rows``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from string import Template

from clickhouse_connect.driver.client import Client

from .identifiers import check_identifier
from .migrations import DEFAULT_DATABASE

__all__ = [
    "ReaderLimits",
    "TENANT_PREDICATES",
    "UNSCOPED_TABLES",
    "SHARED_TABLES",
    "tenant_role",
    "render_access_sql",
    "reader_user_sql",
    "apply_access",
]

# Table -> predicate over its columns with {tenant} as a quoted literal.
TENANT_PREDICATES: dict[str, str] = {
    "events": "tenant = {tenant}",
    "calls": "tenant = {tenant}",
    "tool_calls": "tenant = {tenant}",
    "loop_detections": "tenant = {tenant}",
    "pii_findings": "tenant = {tenant}",
    "variance": "tenant = {tenant}",
    "changes": "tenant = {tenant}",
    "budget_breaches": "scope = 'tenant' AND key = {tenant}",
    "calls_rollup": "tenant = {tenant}",
    "events_rollup": "tenant = {tenant}",
    "calls_rollup_30m": "tenant = {tenant}",
    "events_rollup_30m": "tenant = {tenant}",
    "latency_rollup": "tenant = {tenant}",
    "latency_rollup_30m": "tenant = {tenant}",
    "trace_rollup": "tenant = {tenant}",
    "trace_rollup_30m": "tenant = {tenant}",
    "trace_totals": "tenant = {tenant}",
    "rollup_dirty": "tenant = {tenant}",
}
INSIGHTS_STATE = ("insights_first_seen", "insights_spend")  # the insights job's working state (migration 0009)
# No trustworthy tenant, or job state: platform readers only.
UNSCOPED_TABLES = ("deadletter", "receipts", *INSIGHTS_STATE)
# Readable by every reader, no row policy: holds no tenant data (when the rollups were refreshed).
SHARED_TABLES = ("rollup_watermark", "insights_watermark")
# The insights job and the rollup refresh read these (rollup_watermark too, which has no policy).
_WRITER_READS = (
    "calls",
    "events",
    "variance",
    "changes",
    "budget_breaches",
    "rollup_dirty",
    "trace_totals",
    *INSIGHTS_STATE,
)
# Tenant names become role names (backquoted) and SQL literals: a conservative alphabet keeps
# both trivially safe, whatever the dimension-field policy of the event contract allows.
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class ReaderLimits:
    """What one Grafana query may use: seconds, bytes of memory, rows in its result."""

    max_execution_time: int = 30
    max_memory_usage: int = 2_000_000_000
    max_result_rows: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("max_execution_time", "max_memory_usage", "max_result_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not _TENANT_RE.match(tenant):
        raise ValueError(f"tenant {tenant!r} must match {_TENANT_RE.pattern} to get a reader role")
    return tenant


def tenant_role(tenant: str) -> str:
    """The role that reads one tenant's rows, backquoted: ``tokentrail_tenant_<tenant>``."""
    return f"`tokentrail_tenant_{_check_tenant(tenant)}`"


def _literal(tenant: str) -> str:
    return "'" + _check_tenant(tenant) + "'"  # the alphabet has no quote or backslash to escape


def _statements(sql: str, mapping: dict[str, str]) -> list[str]:
    # Comments go first: they mention placeholders by way of documentation.
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    body = Template(body).substitute(mapping)
    return [s.strip() for s in re.split(r";[ \t]*$", body, flags=re.MULTILINE) if s.strip()]


def _select_grant(database: str, tables: Sequence[str]) -> str:
    return "GRANT " + ", ".join(f"SELECT ON {database}.{table}" for table in tables)


def render_access_sql(
    tenants: Sequence[str], *, database: str = DEFAULT_DATABASE, limits: ReaderLimits | None = None
) -> list[str]:
    """Every statement creating the roles, profile, grants and row policies, in order to run."""
    check_identifier(database, "database")
    limits = limits or ReaderLimits()
    if len(set(tenants)) != len(tenants):
        raise ValueError(f"tenants listed twice: {sorted(t for t in tenants if list(tenants).count(t) > 1)}")
    template = resources.files(__package__).joinpath("access/roles.sql").read_text(encoding="utf-8")
    mapping = {
        "database": database,
        "reader_max_execution_time": str(limits.max_execution_time),
        "reader_max_memory_usage": str(limits.max_memory_usage),
        "reader_max_result_rows": str(limits.max_result_rows),
    }
    statements = _statements(template, mapping)
    readable = (*TENANT_PREDICATES, *UNSCOPED_TABLES, *SHARED_TABLES)  # every table a reader may see
    statements.append(f"{_select_grant(database, readable)} TO tokentrail_all_tenants")
    for table in (*TENANT_PREDICATES, *UNSCOPED_TABLES):
        to = "tokentrail_all_tenants, tokentrail_writer" if table in _WRITER_READS else "tokentrail_all_tenants"
        statements.append(
            f"CREATE ROW POLICY OR REPLACE tokentrail_unscoped ON {database}.{table} FOR SELECT USING 1 TO {to}"
        )
    for tenant in tenants:
        role = tenant_role(tenant)
        statements.append(f"CREATE ROLE IF NOT EXISTS {role}")
        statements.append(f"{_select_grant(database, (*TENANT_PREDICATES, *SHARED_TABLES))} TO {role}")
        for table, predicate in TENANT_PREDICATES.items():
            statements.append(
                f"CREATE ROW POLICY OR REPLACE `tokentrail_tenant_{tenant}` ON {database}.{table} "
                f"FOR SELECT USING {predicate.format(tenant=_literal(tenant))} TO {role}"
            )
    return statements


def reader_user_sql(user: str, *, tenant: str | None, password_sha256_hex: str) -> list[str]:
    """A Grafana user reading one tenant (or every tenant with ``tenant=None``).

    The profile is attached to the user itself as well as to ``tokentrail_reader``: ``SET ROLE``
    can drop a role's settings, not the user's.
    """
    check_identifier(user, "user name")
    if not _SHA256_RE.match(password_sha256_hex or ""):
        raise ValueError("password_sha256_hex must be the 64 hex digits of the password's SHA-256")
    scope = "tokentrail_all_tenants" if tenant is None else tenant_role(tenant)
    return [
        f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_hash BY '{password_sha256_hex.lower()}' "
        "SETTINGS PROFILE 'tokentrail_reader_profile'",
        f"GRANT tokentrail_reader, {scope} TO {user}",
        f"SET DEFAULT ROLE ALL TO {user}",
    ]


def apply_access(
    client: Client, tenants: Sequence[str], *, database: str = DEFAULT_DATABASE, limits: ReaderLimits | None = None
) -> int:
    """Run :func:`render_access_sql` on ``client`` (an administrator's); return the statement count.

    The tables must exist (run the migrations first): grants and policies name them.
    """
    statements = render_access_sql(tenants, database=database, limits=limits)
    for statement in statements:
        client.command(statement)
    return len(statements)
