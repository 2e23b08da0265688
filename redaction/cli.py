"""`tokentrail redact`: JSON Lines in, the same JSON values out with every string redacted.

A line that is not JSON is reported on stderr by its number (never its content: it may hold the
very secret being redacted) and skipped; the rest still flows, and the exit status is 1 at the
end. Blank lines are skipped silently. Lines are redacted in batches, so one NER pass and one
cache serve many lines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import IO, Any

__all__ = ["run"]

EXIT_OK, EXIT_BAD_LINES, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tokentrail redact", description=__doc__.split("\n")[0])
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
    """Redact JSON Lines from `stdin` to `stdout`. Returns the exit status."""
    parser = _parser()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = parser.parse_args(list(argv or []))
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return EXIT_OK if not exc.code else EXIT_USAGE
    if args.batch_size < 1:
        print("tokentrail redact: --batch-size must be at least 1", file=stderr)
        return EXIT_USAGE
    _log_to(stderr)
    from . import Redactor
    from .settings import config_from_env, load_key

    overrides: dict[str, Any] = {}
    if args.nlp_model:
        overrides["nlp_model"] = None if args.nlp_model.lower() == "none" else args.nlp_model
    if args.store_raw_text:
        overrides["store_raw_text"] = True
    if args.processes:
        overrides["processes"] = args.processes
    try:
        redactor = Redactor(config_from_env(**overrides), load_key(allow_ephemeral=args.ephemeral_key))
    except ValueError as exc:
        print(f"tokentrail redact: {exc}", file=stderr)
        return EXIT_USAGE

    bad, totals, batch = 0, {}, []  # batch: parsed values waiting for redaction
    with redactor:
        for number, line in enumerate(stdin, 1):
            if not line.strip():
                continue
            try:
                batch.append(json.loads(line))
            except ValueError as exc:
                bad += 1
                print(
                    f"tokentrail redact: line {number}: not JSON ({type(exc).__name__} at column "
                    f"{getattr(exc, 'colno', '?')}); skipped",
                    file=stderr,
                )
                continue
            if len(batch) >= args.batch_size:
                _flush(redactor, batch, stdout, totals)
        _flush(redactor, batch, stdout, totals)
    if args.counts:
        print("tokentrail redact: findings " + json.dumps(dict(sorted(totals.items()))), file=stderr)
    if bad:
        print(f"tokentrail redact: {bad} line(s) were not JSON", file=stderr)
        return EXIT_BAD_LINES
    return EXIT_OK


def _flush(redactor: Any, batch: list, stdout: IO[str], totals: dict) -> None:
    for value, counts in redactor.redact_many(batch):
        line = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from the input: keep it, escaped
            line = json.dumps(value, separators=(",", ":"))
        stdout.write(line + "\n")
        for entity, n in counts.items():
            totals[entity] = totals.get(entity, 0) + n
    stdout.flush()
    batch.clear()


def _log_to(stream: IO[str]) -> None:
    """Redaction's one-time startup notes go to stderr, so stdout stays pure JSON Lines."""
    log = logging.getLogger("tokentrail.redaction")
    if not any(getattr(h, "stream", None) is stream for h in log.handlers):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
