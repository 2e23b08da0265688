"""`tokentrail worker [flags]`: the faust stream-processing worker on Kafka (flags: `faust_worker.config`)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    worker = commands.add_parser("worker", help="the faust stream-processing worker on Kafka", add_help=False)
    worker.add_argument("rest", nargs=argparse.REMAINDER)
    worker.set_defaults(run=_worker, needs_pipeline=True)


def _worker(args: argparse.Namespace) -> int:
    from tokentrail.stream.faust_worker import parse_args, run_worker

    return run_worker(parse_args(args.rest))
