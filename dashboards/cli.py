"""`tokentrail dashboards build|push` and `tokentrail alerts check`.

The `tokentrail` command hands its arguments over unchanged: `main(["dashboards", "build"])`,
`main(["alerts", "check", "--clickhouse", DSN])`. Exit codes: 0 fine, 1 generated files out of
date (`build --check`) or alerts firing (`check --fail-on-firing`), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokentrail", description="Grafana dashboards and alert rules for tokentrail."
    )
    groups = parser.add_subparsers(dest="group", required=True)

    dashboards = groups.add_parser("dashboards", help="Grafana provisioning files and push")
    sub = dashboards.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="regenerate the provisioning files from the code")
    build.add_argument("--check", action="store_true", help="only report files that differ (exit 1 if any)")
    build.set_defaults(run=_build)
    push = sub.add_parser("push", help="create or update folder, datasource, dashboards, alerting in a Grafana")
    push.add_argument("--grafana-url", required=True, metavar="URL", help="e.g. http://admin:admin@localhost:3000")
    push.add_argument("--token", default=None, help="service-account token (default: $TOKENTRAIL_GRAFANA_TOKEN)")
    push.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
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
    check.set_defaults(run=_check)
    return parser


def _build(args: argparse.Namespace) -> int:
    from .provisioning import PROVISIONING_DIR, check, write

    if args.check:
        stale = check()
        for rel in stale:
            print(f"out of date: {PROVISIONING_DIR / rel}")
        if stale:
            print("run `tokentrail dashboards build` and commit the result", file=sys.stderr)
        return 1 if stale else 0
    changed = write()
    print(f"{len(changed)} file(s) written under {PROVISIONING_DIR}" + "".join(f"\n  {rel}" for rel in changed))
    return 0


def _push(args: argparse.Namespace) -> int:
    from grafana_client import GrafanaApi

    from .push import push

    token = args.token or os.environ.get("TOKENTRAIL_GRAFANA_TOKEN")
    api = GrafanaApi.from_url(args.grafana_url, credential=token, timeout=args.timeout)
    print(push(api).render(), end="")
    return 0


def _at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--at expects an ISO-8601 time like 2026-11-20T10:00:00Z, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check(args: argparse.Namespace) -> int:
    from tokentrail.sinks import connect

    from .evaluate import evaluate_alerts, render_alerts

    now = _at(args.at) or datetime.now(UTC)
    client = connect(args.clickhouse)
    alerts = evaluate_alerts(client, now)
    if args.json:
        json.dump(
            [
                {
                    "uid": a.uid,
                    "title": a.title,
                    "severity": a.severity,
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "values": a.values,
                }
                for a in alerts
            ],
            sys.stdout,
            indent=2,
            sort_keys=True,
        )
        sys.stdout.write("\n")
    else:
        print(render_alerts(alerts, now), end="")
    return 1 if alerts and args.fail_on_firing else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args)
    except ValueError as exc:  # configuration errors carry their fix in the message
        print(f"tokentrail {args.group} {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
