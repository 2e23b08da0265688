"""`tokentrail redact [flags]`: JSON Lines on stdin -> the same values with PII and secrets redacted.

The work is `tokentrail.redaction.json_lines.redact_json_lines`; here the flags become a validated
`RedactionConfig` and a key. `run` takes its streams as arguments, so tests drive it in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import IO, Any

from .options import EXIT_USAGE, pipeline_extra_missing

EXIT_OK = 0


def register(commands: Any) -> None:
    redact = commands.add_parser(
        "redact", help="JSON Lines on stdin -> the same values with PII and secrets redacted", add_help=False
    )
    redact.add_argument("rest", nargs=argparse.REMAINDER)
    redact.set_defaults(run=lambda args: run(sys.stdin, sys.stdout, sys.stderr, args.rest), needs_pipeline=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tokentrail redact", description="JSON Lines in, the same JSON values out with every string redacted."
    )
    p.add_argument(
        "--ephemeral-key",
        action="store_true",
        help="redact with a throwaway key when none is configured (tokens match nothing else)",
    )
    p.add_argument(
        "--nlp-model",
        metavar="NAME",
        help="spaCy model for PERSON/LOCATION, 'auto' or 'none' (default: environment, else auto)",
    )
    p.add_argument("--store-raw-text", action="store_true", help="keep PII (count it); secrets are still removed")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="lines per batch (default 256)")
    p.add_argument("--processes", type=int, metavar="N", help="worker processes for analysis")
    p.add_argument("--counts", action="store_true", help="print findings per entity type to stderr at the end")
    return p


def run(stdin: IO[str], stdout: IO[str], stderr: IO[str], argv: Sequence[str] | None = None) -> int:
    """Redact JSON Lines from `stdin` to `stdout`. Returns the exit status (0, 1: lines not JSON, 2: usage)."""
    parser = _parser()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(list(argv or []))
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return EXIT_OK if not exc.code else EXIT_USAGE
    if args.batch_size < 1:
        print("tokentrail redact: --batch-size must be at least 1", file=stderr)
        return EXIT_USAGE
    if pipeline_extra_missing("redact", stderr):
        return EXIT_USAGE
    from tokentrail.redaction.json_lines import redact_json_lines
    from tokentrail.redaction.settings import config_from_env

    overrides: dict[str, Any] = {}
    if args.nlp_model:
        overrides["nlp_model"] = None if args.nlp_model.lower() == "none" else args.nlp_model
    if args.store_raw_text:
        overrides["store_raw_text"] = True
    if args.processes:
        overrides["processes"] = args.processes
    try:
        config = config_from_env(**overrides)
        return redact_json_lines(
            stdin,
            stdout,
            stderr,
            config=config,
            allow_ephemeral_key=args.ephemeral_key,
            batch_size=args.batch_size,
            counts=args.counts,
        )
    except ValueError as exc:
        print(f"tokentrail redact: {exc}", file=stderr)
        return EXIT_USAGE
