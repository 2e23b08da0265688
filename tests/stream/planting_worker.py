"""The real worker with one extra stage after the standard ones: a planted value the store cannot hold.

The contract keeps such values out of valid events, so a store refusal cannot be provoked from the
outside; this stand-in puts 2**40 (beyond UInt32) on the call row of the events whose trace id
starts with `refuse-`. Used by test_worker_store_rejections.py.
"""

from __future__ import annotations

import sys
from typing import Any

import faust

from tokentrail.redaction import load_key
from tokentrail.stream.batch import Pipeline
from tokentrail.stream.faust_worker import build_app, parse_args
from tokentrail.stream.runtime import make_pipeline


class PlantOutOfRange:
    def __call__(self, batch: Any) -> None:
        for row in batch.rows["calls"]:
            if str(row["trace_id"]).startswith("refuse-"):
                row["input_tokens"] = 2**40


def main() -> None:
    config = parse_args(sys.argv[1:])
    standard = make_pipeline(prices=None, allow_ephemeral_key=True, redaction_key=load_key(True))
    app = build_app(config, pipeline=Pipeline([*standard.stages, PlantOutOfRange()]))
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
