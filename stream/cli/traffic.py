"""`tokentrail generate | replay | demo`: synthetic traffic, and JSON Lines through the embedded pipeline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from .options import add_clickhouse_option, add_pipeline_options, duration, positive_int, rfc3339_time


def register(commands: Any) -> None:
    gen = commands.add_parser("generate", help="print N synthetic wire events as JSON Lines", add_help=False)
    gen.add_argument("rest", nargs=argparse.REMAINDER)
    gen.set_defaults(run=lambda args: generate(args.rest), needs_pipeline=False)  # pure Python: base install

    replay = commands.add_parser("replay", help="run JSON Lines of wire events through the pipeline into ClickHouse")
    replay.add_argument("file", help="a JSON Lines file, or - for stdin")
    add_clickhouse_option(replay)
    add_pipeline_options(replay)
    replay.add_argument("--report", choices=["json"], help="print the report read back from the store")
    replay.add_argument(
        "--ts-window-days",
        metavar="BACK:AHEAD",
        default="400:1",
        help="accept event times from BACK days before to AHEAD days after reading (default 400:1); "
        "others are dead letters (ts_out_of_range)",
    )
    replay.set_defaults(run=_replay, needs_pipeline=True)

    demo = commands.add_parser("demo", help="synthetic traffic through the full embedded pipeline, then a summary")
    demo.add_argument("--events", type=positive_int, default=20_000, help="how many events to generate (default 20000)")
    demo.add_argument("--seed", type=int, default=7)
    add_clickhouse_option(demo, default_help="a fresh embedded store under ./.tokentrail/demo")
    add_pipeline_options(demo)
    demo.set_defaults(run=_demo, needs_pipeline=True)


def _replay(args: argparse.Namespace) -> int:
    from tokentrail.stream.replay import ReplaySettings, run_replay

    settings = ReplaySettings(
        source=args.file,
        clickhouse=args.clickhouse,
        prices=args.prices,
        batch_size=args.batch_size,
        budgets=args.budgets,
        report_json=args.report == "json",
        ts_window_days=args.ts_window_days,
    )
    return run_replay(settings)


def _demo(args: argparse.Namespace) -> int:
    from tokentrail.stream.demo import run_demo

    return run_demo(
        events=args.events,
        seed=args.seed,
        dsn=args.clickhouse,
        prices=args.prices,
        batch_size=args.batch_size,
        budgets=args.budgets,
    )


# --- generate -----------------------------------------------------------------------------------


def generate(argv: Sequence[str]) -> int:
    """`tokentrail generate N`: N synthetic events as JSON Lines on stdout."""
    from tokentrail.stream.synthetic import DEFAULT_START, GeneratorConfig, write_lines

    defaults = GeneratorConfig()
    p = argparse.ArgumentParser(prog="tokentrail generate", description=generate.__doc__)
    p.add_argument("events", type=int, help="valid distinct events to generate (approximate)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--start", type=rfc3339_time, default=DEFAULT_START, help="RFC 3339 time of the first event")
    p.add_argument("--duration", type=duration, default=defaults.duration, help="e.g. 90s, 15m, 1h")
    p.add_argument("--malformed-ratio", type=float, default=defaults.malformed_ratio)
    p.add_argument("--redelivery-ratio", type=float, default=defaults.redelivery_ratio)
    p.add_argument("--sensitive-ratio", type=float, default=defaults.sensitive_ratio)
    p.add_argument("--tenants", default=",".join(defaults.tenants), help="comma-separated")
    p.add_argument("--no-anomalies", action="store_true", help="ordinary traffic only")
    p.add_argument("--truth", metavar="FILE", help="also write the ground truth as JSON to FILE")
    args = p.parse_args(list(argv))
    try:
        config = GeneratorConfig(
            seed=args.seed,
            events=args.events,
            start=args.start,
            duration=args.duration,
            malformed_ratio=args.malformed_ratio,
            redelivery_ratio=args.redelivery_ratio,
            tenants=tuple(x.strip() for x in args.tenants.split(",") if x.strip()),
            with_anomalies=not args.no_anomalies,
            sensitive_ratio=args.sensitive_ratio,
        )
    except ValueError as exc:
        p.error(str(exc))
    try:
        return write_lines(config, sys.stdout, truth_path=args.truth)
    except BrokenPipeError:  # `tokentrail generate 1000000 | head` is fine
        sys.stderr.close()  # and Python's complaint when it flushes stdout at exit is not news
        return 0
