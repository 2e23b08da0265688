"""`tokentrail schema events|apply|sql`: the event contract's JSON Schema; ClickHouse migrations and their DDL."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .options import add_clickhouse_option


def register(commands: Any) -> None:
    schema = commands.add_parser("schema", help="the event contract's JSON Schema; ClickHouse migrations")
    schema.set_defaults(needs_pipeline=False)
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    schema_sub.add_parser("events", help="print the JSON Schema (draft 2020-12) of the v1 event").set_defaults(
        run=_events
    )
    apply = schema_sub.add_parser("apply", help="apply pending ClickHouse migrations")
    add_clickhouse_option(apply)
    apply.add_argument(
        "--retention",
        metavar="TABLE=DAYS",
        action="append",
        default=[],
        help="retention per table in days, e.g. --retention events=14 (repeatable; also changes existing tables)",
    )
    apply.add_argument(
        "--cluster",
        metavar="NAME",
        default=None,
        help="create the cluster form (Replicated tables ON CLUSTER NAME behind Distributed tables; docs/storage.md)",
    )
    apply.set_defaults(run=_apply, needs_pipeline=True)
    sql = schema_sub.add_parser("sql", help="print the DDL `schema apply` would run on an empty store (no server)")
    sql.add_argument("--cluster", metavar="NAME", default=None, help="the cluster form for cluster NAME")
    sql.set_defaults(run=_sql, needs_pipeline=True)


def _events(args: argparse.Namespace) -> int:
    from tokentrail.collectors.events import event_json_schema

    json.dump(event_json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def retention_days(items: list[str]) -> dict[str, int]:
    """`--retention TABLE=DAYS` flags as {table: days}."""
    ttl_days = {}
    for item in items:
        table, _, days = item.partition("=")
        if not days.isdigit():
            raise ValueError(f"--retention expects TABLE=DAYS, e.g. events=30; got {item!r}")
        ttl_days[table] = int(days)
    return ttl_days


def _apply(args: argparse.Namespace) -> int:
    from tokentrail.sinks import connect, migrations

    ttl_days = retention_days(args.retention)
    applied = migrations.apply(connect(args.clickhouse), ttl_days=ttl_days or None, cluster=args.cluster)
    print(f"applied {len(applied)} migration(s): {', '.join(map(str, applied)) or 'none pending'}")
    return 0


def _sql(args: argparse.Namespace) -> int:
    from tokentrail.sinks import migrations

    for statement in migrations.schema_sql(cluster=args.cluster):
        sys.stdout.write(f"{statement};\n\n")
    return 0
