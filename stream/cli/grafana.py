"""`tokentrail dashboards build|push` and `tokentrail alerts check` (the work: `tokentrail.dashboards.operations`).

Exit codes: 0 fine, 1 generated files out of date (`build --check`) or alerts firing
(`check --fail-on-firing`), 2 usage or configuration error (a bad `--owners` file included: the
message names its line and field).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .options import EXIT_USAGE

OWNERS_HELP = (
    "owners file (YAML, docs/owners.md): who owns each feature or service and who is paged for it "
    "(default: $TOKENTRAIL_OWNERS_FILE; neither: every alert is owner=unowned)"
)


def register(commands: Any) -> None:
    for name, text in (
        ("dashboards", "build the Grafana provisioning files, or push them to a Grafana"),
        ("alerts", "evaluate the provisioned alert rules against ClickHouse"),
    ):
        group = commands.add_parser(name, help=text, add_help=False)
        group.add_argument("rest", nargs=argparse.REMAINDER)
        group.set_defaults(run=lambda args: run([args.command, *args.rest]), needs_pipeline=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokentrail", description="Grafana dashboards and alert rules for tokentrail."
    )
    groups = parser.add_subparsers(dest="group", required=True)

    dashboards = groups.add_parser("dashboards", help="Grafana provisioning files and push")
    sub = dashboards.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="regenerate the provisioning files from the code")
    build.add_argument("--check", action="store_true", help="only report files that differ (exit 1 if any)")
    build.add_argument("--owners", metavar="FILE", help=OWNERS_HELP)
    build.set_defaults(run=_build)
    push = sub.add_parser("push", help="create or update folder, datasource, dashboards, alerting in a Grafana")
    push.add_argument("--grafana-url", required=True, metavar="URL", help="e.g. http://admin:admin@localhost:3000")
    push.add_argument("--token", default=None, help="service-account token (default: $TOKENTRAIL_GRAFANA_TOKEN)")
    push.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    push.add_argument(
        "--tenant",
        metavar="T",
        help="push into tenant T's own organisation ('tokentrail T', created if missing; needs Grafana "
        "server-admin credentials in the URL), its datasource reading as --reader-user",
    )
    push.add_argument(
        "--reader-user",
        metavar="USER",
        help="with --tenant: T's ClickHouse reader (sinks reader_user_sql(USER, tenant=T)); "
        "password from $GRAFANA_CLICKHOUSE_PASSWORD",
    )
    push.add_argument("--owners", metavar="FILE", help=OWNERS_HELP)
    push.set_defaults(run=_push)

    alerts = groups.add_parser("alerts", help="alert rules")
    sub = alerts.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="evaluate every alert rule against ClickHouse and print what would fire")
    check.add_argument(
        "--clickhouse",
        metavar="DSN",
        help="http(s)://user:pass@host:8123 or chdb:///path "
        "(default: $TOKENTRAIL_CLICKHOUSE_URL, else ./.tokentrail/clickhouse)",
    )
    check.add_argument("--at", metavar="TIME", help="evaluate as of this ISO-8601 time (default: now)")
    check.add_argument("--json", action="store_true", help="print the firing alerts as JSON")
    check.add_argument("--fail-on-firing", action="store_true", help="exit 1 when any alert fires")
    check.add_argument("--owners", metavar="FILE", help=OWNERS_HELP + "; each alert says who would be paged")
    check.set_defaults(run=_check)
    return parser


def _build(args: argparse.Namespace) -> int:
    from tokentrail.dashboards.operations import build_provisioning

    return build_provisioning(check_only=args.check, owners_file=args.owners)


def _push(args: argparse.Namespace) -> int:
    from tokentrail.dashboards.operations import push_to_grafana

    return push_to_grafana(
        grafana_url=args.grafana_url,
        token=args.token,
        timeout=args.timeout,
        tenant=args.tenant,
        reader_user=args.reader_user,
        owners_file=args.owners,
    )


def _check(args: argparse.Namespace) -> int:
    from tokentrail.dashboards.operations import check_alerts, parse_moment

    return check_alerts(
        dsn=args.clickhouse,
        at=parse_moment(args.at),
        as_json=args.json,
        fail_on_firing=args.fail_on_firing,
        owners_file=args.owners,
    )


def run(argv: Sequence[str]) -> int:
    """`argv` starts with the group: ["dashboards", "build"], ["alerts", "check", "--clickhouse", DSN]."""
    args = build_parser().parse_args(list(argv))
    try:
        return int(args.run(args))
    except ValueError as exc:  # configuration errors carry their fix in the message
        print(f"tokentrail {args.group} {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
