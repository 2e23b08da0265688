"""JSON Lines in, the same JSON values out with every string redacted (`tokentrail redact`).

A line that is not JSON is reported on stderr by its number (never its content: it may hold the
very secret being redacted) and skipped; the rest still flows, and the exit status is 1 at the
end. Blank lines are skipped silently. Lines are redacted in batches, so one NER pass and one
cache serve many lines. The command line is parsed by `tokentrail.stream.cli.redact`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import IO, Any

from .config import RedactionConfig

__all__ = ["redact_json_lines", "EXIT_OK", "EXIT_BAD_LINES", "EXIT_USAGE"]

EXIT_OK, EXIT_BAD_LINES, EXIT_USAGE = 0, 1, 2


def redact_json_lines(
    lines: Iterable[str],
    stdout: IO[str],
    stderr: IO[str],
    *,
    config: RedactionConfig,
    allow_ephemeral_key: bool = False,
    batch_size: int = 256,
    counts: bool = False,
) -> int:
    """Redact each JSON line of `lines` to `stdout` with `config` and the configured key. Returns the exit status.

    Raises ValueError (naming the fix) when no key is configured and `allow_ephemeral_key` is off,
    or the configuration cannot be honoured; startup notes go to `stderr`.
    """
    if batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    _log_to(stderr)
    from .redactor import Redactor
    from .settings import load_key

    key = load_key(allow_ephemeral=allow_ephemeral_key)
    redactor = Redactor(config, key)  # a bad setting fails here, before any line is read
    bad, totals, batch = 0, dict[str, int](), list[Any]()  # batch: parsed values waiting for redaction
    with redactor:
        for number, line in enumerate(lines, 1):
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
            if len(batch) >= batch_size:
                _flush(redactor, batch, stdout, totals)
        _flush(redactor, batch, stdout, totals)
    if counts:
        print("tokentrail redact: findings " + json.dumps(dict(sorted(totals.items()))), file=stderr)
    if bad:
        print(f"tokentrail redact: {bad} line(s) were not JSON", file=stderr)
        return EXIT_BAD_LINES
    return EXIT_OK


def _flush(redactor: Any, batch: list[Any], stdout: IO[str], totals: dict[str, int]) -> None:
    for value, found in redactor.redact_many(batch):
        line = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from the input: keep it, escaped
            line = json.dumps(value, separators=(",", ":"))
        stdout.write(line + "\n")
        for entity, n in found.items():
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
