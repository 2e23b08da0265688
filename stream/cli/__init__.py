"""The `tokentrail` command: one entry point for the collector's schema, the pipeline and its tools.

A thin layer: each module here parses one command group's arguments, builds the validated settings
and calls one function of the package that owns the work:

- `schema`: `schema events` (collectors), `schema apply` (sinks).
- `traffic`: `generate` (stream.synthetic), `replay` (stream.replay), `demo` (stream.demo).
- `worker`: `worker` (stream.faust_worker).
- `redact`: `redact` (redaction.json_lines).
- `grafana`: `dashboards build|push`, `alerts check` (dashboards.operations).
- `evidence`: `trace`, `evidence`, `verify`, `changes` (stream.evidence).

Commands that need the `pipeline` extra check for it before importing anything heavy, so on the
collector's base install they print one line naming the fix and exit 2; `schema events` and
`generate` work there.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import evidence, grafana, redact, schema, traffic, worker
from .options import EXIT_USAGE, pipeline_extra_missing

__all__ = ["main"]

# Commands that own their flags: everything after the command name is theirs.
_PASSTHROUGH = ("generate", "redact", "worker", "dashboards", "alerts")


def main(argv: Sequence[str] | None = None) -> int:
    """Run `tokentrail ARGV`; returns the exit status (2: usage, configuration or a missing extra)."""
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
    if args.needs_pipeline and pipeline_extra_missing(args.command):
        return EXIT_USAGE
    try:
        return int(args.run(args) or 0)
    except ValueError as exc:  # configuration errors: say what to fix, no traceback
        print(f"tokentrail {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokentrail", description="Streaming observability for LLM telemetry.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details, libraries included")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (schema, traffic, redact, worker, grafana, evidence):
        group.register(commands)
    return parser
