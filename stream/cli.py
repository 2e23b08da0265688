"""The `tokentrail` command: one entry point for the collector's schema, the pipeline and its tools.

Heavy imports happen inside each command, so `tokentrail schema events` works on the collector's
light install and a typo fails fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("tokentrail")


# Commands that own their flags: everything after the command name is theirs.
_PASSTHROUGH = ("generate", "redact", "worker", "dashboards", "alerts")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    split = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    if split < len(argv) and argv[split] in _PASSTHROUGH:
        args = parser.parse_args(argv[: split + 1])
        args.rest = argv[split + 1 :]
    else:
        args = parser.parse_args(argv)
    # Our own notices (which store, which key) at INFO on stderr; libraries only when they warn.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("tokentrail").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.run(args) or 0)
    except ValueError as exc:  # configuration errors: say what to fix, no traceback
        print(f"tokentrail {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokentrail", description="Streaming observability for LLM telemetry.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details, libraries included")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    schema = sub.add_parser("schema", help="the event contract's JSON Schema; ClickHouse migrations")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    schema_sub.add_parser("events", help="print the JSON Schema (draft 2020-12) of the v1 event").set_defaults(
        run=_schema_events
    )
    apply = schema_sub.add_parser("apply", help="apply pending ClickHouse migrations")
    _clickhouse_option(apply)
    apply.add_argument(
        "--retention",
        metavar="TABLE=DAYS",
        action="append",
        default=[],
        help="retention per table in days, e.g. --retention events=14 (repeatable; also changes existing tables)",
    )
    apply.set_defaults(run=_schema_apply)

    gen = sub.add_parser("generate", help="print N synthetic wire events as JSON Lines", add_help=False)
    gen.add_argument("rest", nargs=argparse.REMAINDER)
    gen.set_defaults(run=_generate)

    replay = sub.add_parser("replay", help="run JSON Lines of wire events through the pipeline into ClickHouse")
    replay.add_argument("file", help="a JSON Lines file, or - for stdin")
    _clickhouse_option(replay)
    _pipeline_options(replay)
    replay.add_argument("--report", choices=["json"], help="print the report read back from the store")
    replay.set_defaults(run=_replay)

    demo = sub.add_parser("demo", help="synthetic traffic through the full embedded pipeline, then a summary")
    demo.add_argument(
        "--events", type=_positive_int, default=20_000, help="how many events to generate (default 20000)"
    )
    demo.add_argument("--seed", type=int, default=7)
    _clickhouse_option(demo, default_help="a fresh embedded store under ./.tokentrail/demo")
    _pipeline_options(demo)
    demo.set_defaults(run=_demo)

    redact = sub.add_parser(
        "redact", help="JSON Lines on stdin -> the same values with PII and secrets redacted", add_help=False
    )
    redact.add_argument("rest", nargs=argparse.REMAINDER)
    redact.set_defaults(run=_redact)

    worker = sub.add_parser("worker", help="the faust stream-processing worker on Kafka", add_help=False)
    worker.add_argument("rest", nargs=argparse.REMAINDER)
    worker.set_defaults(run=_worker)

    for name, text in (
        ("dashboards", "build the Grafana provisioning files, or push them to a Grafana"),
        ("alerts", "evaluate the provisioned alert rules against ClickHouse"),
    ):
        grafana = sub.add_parser(name, help=text, add_help=False)
        grafana.add_argument("rest", nargs=argparse.REMAINDER)
        grafana.set_defaults(run=_grafana)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _clickhouse_option(
    parser: argparse.ArgumentParser,
    default_help: str = "$TOKENTRAIL_CLICKHOUSE_URL, else an embedded store in ./.tokentrail/clickhouse",
) -> None:
    parser.add_argument(
        "--clickhouse",
        metavar="DSN",
        help=f"http(s)://user:pass@host:8123/db or chdb:///path (default: {default_help})",
    )


def _pipeline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prices", metavar="FILE", help="price overrides (JSON/YAML) for negotiated rates and self-hosted models"
    )
    parser.add_argument("--batch-size", type=_positive_int, default=5_000, help="events per batch (default 5000)")
    parser.add_argument("--budgets", metavar="FILE", help="spend budgets (YAML/JSON) to evaluate after the run")


# -- commands ---------------------------------------------------------------------------------


def _schema_events(args: argparse.Namespace) -> int:
    from tokentrail.collectors.events import event_json_schema

    json.dump(event_json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _schema_apply(args: argparse.Namespace) -> int:
    from tokentrail.sinks import connect, migrations

    ttl_days = {}
    for item in args.retention:
        table, _, days = item.partition("=")
        if not days.isdigit():
            raise ValueError(f"--retention expects TABLE=DAYS, e.g. events=30; got {item!r}")
        ttl_days[table] = int(days)
    applied = migrations.apply(connect(args.clickhouse), ttl_days=ttl_days or None)
    print(f"applied {len(applied)} migration(s): {', '.join(map(str, applied)) or 'none pending'}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from tokentrail.stream import synthetic

    return int(synthetic.main(args.rest) or 0)


def _replay(args: argparse.Namespace) -> int:
    from .runtime import finish_run, open_store, replay_source

    if args.budgets:
        from .insights.budgets import load_budgets

        load_budgets(args.budgets)  # a bad budgets file fails before any work is done
    client, sink = open_store(args.clickhouse)
    if args.file == "-":
        stats = replay_source(sys.stdin.buffer, "stdin", client, sink, prices=args.prices, batch_size=args.batch_size)
    else:
        path = Path(args.file)
        if not path.is_file():
            raise ValueError(f"no such file: {path} (give a JSON Lines file, or - for stdin)")
        with open(path, "rb") as stream:
            stats = replay_source(stream, path.name, client, sink, prices=args.prices, batch_size=args.batch_size)
    finish_run(client, budgets=args.budgets)
    if args.report == "json":
        from .report import build_report

        json.dump(build_report(client, stats.read), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(
            f"read {stats.read} lines: {stats.accepted} accepted, {stats.duplicates} duplicates, {stats.deadletter} dead letters",
            file=sys.stderr,
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(
        events=args.events,
        seed=args.seed,
        dsn=args.clickhouse,
        prices=args.prices,
        batch_size=args.batch_size,
        budgets=args.budgets,
    )


def _redact(args: argparse.Namespace) -> int:
    from tokentrail.redaction.cli import run

    return run(sys.stdin, sys.stdout, sys.stderr, args.rest)


def _grafana(args: argparse.Namespace) -> int:
    from tokentrail.dashboards.cli import main as dashboards_main

    return dashboards_main([args.command, *args.rest])


def _worker(args: argparse.Namespace) -> int:
    from .faust_worker import main as worker_main

    return worker_main(args.rest)


if __name__ == "__main__":
    sys.exit(main())
