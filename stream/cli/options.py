"""What the command groups share: argument types, the common options, and the pipeline-extra gate."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from typing import IO

# What `pip install 'tokentrail[pipeline]'` brings, by import name. The base install (the
# collector) has none of them; a command that needs them says so in one line instead of a traceback.
PIPELINE_MODULES = (
    "faust",
    "presidio_analyzer",
    "spacy",
    "clickhouse_connect",
    "chdb",
    "genai_prices",
    "grafana_foundation_sdk",
    "yaml",
)
PIPELINE_HINT = "pip install 'tokentrail[pipeline]'"
EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]


def missing_pipeline_modules() -> list[str]:
    """The pipeline extra's modules that cannot be imported here (none once the extra is installed)."""
    return [name for name in PIPELINE_MODULES if not _importable(name)]


def _importable(name: str) -> bool:
    if name in sys.modules:  # already imported (its __spec__ may be None, which find_spec refuses)
        return True
    return find_spec(name) is not None


def pipeline_extra_missing(command: str, err: IO[str] | None = None) -> bool:
    """True (after saying so in one line) when `command` cannot run for want of the pipeline extra."""
    missing = missing_pipeline_modules()
    if missing:
        print(
            f"tokentrail {command}: needs the pipeline extra ({', '.join(missing)} missing): {PIPELINE_HINT}",
            file=err or sys.stderr,
        )
    return bool(missing)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def rfc3339_time(value: str) -> datetime:
    """An argument type: an RFC 3339 time; one without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {value!r} (e.g. 2026-11-20T10:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def duration(value: str) -> timedelta:
    """An argument type: a duration such as 90s, 15m, 1h or 2d (a bare number is seconds)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", value.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {value!r} (examples: 90s, 15m, 1h, 2d)")
    unit = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
    return timedelta(**{unit: float(m.group(1))})


def add_clickhouse_option(
    parser: argparse.ArgumentParser,
    default_help: str = "$TOKENTRAIL_CLICKHOUSE_URL, else an embedded store in ./.tokentrail/clickhouse",
) -> None:
    parser.add_argument(
        "--clickhouse",
        metavar="DSN",
        help=f"http(s)://user:pass@host:8123/db or chdb:///path (default: {default_help})",
    )


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prices", metavar="FILE", help="price overrides (JSON/YAML) for negotiated rates and self-hosted models"
    )
    parser.add_argument("--batch-size", type=positive_int, default=5_000, help="events per batch (default 5000)")
    parser.add_argument("--budgets", metavar="FILE", help="spend budgets (YAML/JSON) to evaluate after the run")
