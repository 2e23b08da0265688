"""The real worker, with a ClickHouse client whose inserts hang: they neither succeed nor fail.

What a stalled connection or a server that stopped answering looks like from the worker: the
insert call never returns, so the sink's failure count never moves and nothing is committed.
Used by test_worker_metrics.py (readiness turns red on a hung insert, and on the lag that grows
behind it). `HANG_AFTER` inserts succeed first; then every insert blocks until the process is killed.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, cast

import faust
from clickhouse_connect.driver.client import Client

from tokentrail.sinks import connect, migrations
from tokentrail.sinks.writer import ClickHouseSink
from tokentrail.stream.faust_worker import build_app, parse_args


class HangingAfter:
    def __init__(self, real: Any, succeed: int) -> None:
        self._real, self._left = real, succeed
        self._never = threading.Event()

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        if self._left <= 0:
            self._never.wait()  # blocks for good: the test kills the process
        self._left -= 1
        return self._real.insert(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def main() -> None:
    succeed = int(sys.argv[1])
    config = parse_args(sys.argv[2:])
    real = connect(config.clickhouse)
    migrations.apply(real)
    # HangingAfter stands in for the Client: inserts hang after a while, everything else delegates.
    sink = ClickHouseSink(cast(Client, HangingAfter(real, succeed)), max_attempts=config.store_max_attempts or None)
    app = build_app(config, sink=sink)
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
