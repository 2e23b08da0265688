"""The real worker, with a ClickHouse client whose inserts fail for the first seconds.

Used by test_worker_kafka.py to show that failed inserts are retried and never acknowledged
(`--store-max-attempts` applies as in the real worker; the tests pass 0, retry forever, or a small budget):
every other failure also lands the block first (the server stored it, the client never heard),
the nastiest case for duplicates. Prints the number of injected failures at exit.
"""

from __future__ import annotations

import atexit
import sys
import time
from typing import cast

import faust
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from tokentrail.sinks import connect, migrations
from tokentrail.sinks.writer import ClickHouseSink
from tokentrail.stream.faust_worker import build_app, parse_args


class FailingForAWhile:
    def __init__(self, real, seconds: float) -> None:
        self._real = real
        self._seconds = seconds
        self._until: float | None = None  # the clock starts at the first insert, not at startup
        self.injected = 0

    def insert(self, *args, **kwargs):
        if self._until is None:
            self._until = time.monotonic() + self._seconds
        if time.monotonic() < self._until:
            self.injected += 1
            if self.injected % 2 == 0:
                self._real.insert(*args, **kwargs)
            raise OperationalError("injected: connection reset by peer")
        return self._real.insert(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._real, name)


def main() -> None:
    seconds = float(sys.argv[1])
    config = parse_args(sys.argv[2:])
    real = connect(config.clickhouse)
    migrations.apply(real)
    client = FailingForAWhile(real, seconds)
    atexit.register(lambda: print(f"injected_failures={client.injected}", flush=True))
    # FailingForAWhile stands in for the Client: inserts fail for a while, everything else delegates.
    sink = ClickHouseSink(cast(Client, client), backoff=(0.05, 0.5), max_attempts=config.store_max_attempts or None)
    app = build_app(config, sink=sink)
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
