"""faust's own per-message cost: its stock Kafka transport against the worker's (stream/faust_worker/transport.py).

    .venv/bin/python benchmarks/faust_handoff.py                  # starts a local Kafka broker
    .venv/bin/python benchmarks/faust_handoff.py --kafka 127.0.0.1:9092 --messages 100000 --rounds 5

An agent that does nothing but what the worker's agent does around its pipeline: `noack_take`
batches of up to 5,000 within 0.2 s, then acknowledge every event. 1.1 KB messages (the
benchmark traffic's average) are produced to a fresh 4-partition topic before each agent starts;
the agent drains the backlog. Rate = messages after the first batch / time from the first batch
to the last. Each round runs both transports, each in its own process, in alternating order;
figures are medians over rounds. The anchor is faust's `kafka://` transport, measured side by
side in the same run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time

from _common import kafka, median, new_topic, print_table

TRANSPORTS = {"faust kafka://": "stock", "tokentrail+kafka://": "ours"}


def drain(bootstrap: str, transport: str, messages: int) -> None:
    """The child: produce the backlog, drain it with a faust agent, print messages/s, exit."""
    import gc
    import os

    import faust
    from confluent_kafka import Producer

    from tokentrail.stream.faust_worker.transport import broker_url

    topic = new_topic(bootstrap, "bench-handoff", 4)
    datadir = tempfile.mkdtemp(prefix=f"tt-{topic}-")  # faust's table metadata; removed before exiting
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    payload = b"x" * 1100
    for i in range(messages):
        producer.produce(topic, payload, str(i % 997).encode())
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)

    broker = broker_url(bootstrap) if transport == "ours" else f"kafka://{bootstrap}"
    app = faust.App(
        f"g-{topic}",
        broker=broker,
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        datadir=datadir,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
    )
    raw = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = {"first": 0, "rest": 0, "t0": 0.0}

    @app.agent(raw, concurrency=1)
    async def take_and_ack(stream):  # type: ignore[no-untyped-def]
        async for taken in stream.noack_take(5_000, within=0.2):
            if not seen["first"]:
                seen["first"], seen["t0"] = len(taken), time.perf_counter()
            else:
                seen["rest"] += len(taken)
            for event in taken:
                await stream.ack(event)
            if seen["first"] + seen["rest"] >= messages:
                print(f"RATE {seen['rest'] / (time.perf_counter() - seen['t0']):.0f}", flush=True)
                shutil.rmtree(datadir, ignore_errors=True)
                os._exit(0)

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.spinner = None
    gc.freeze()
    worker.execute_from_commandline()


def run_child(bootstrap: str, transport: str, messages: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "_drain", bootstrap, transport, str(messages)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    found = re.search(r"RATE (\d+)", out.stdout + out.stderr)  # faust's worker routes stdout through its logging
    if found:
        return float(found.group(1))
    raise RuntimeError(f"{transport} drain failed:\n{out.stderr[-2000:]}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kafka", help="broker to use (default: start one)")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rates: dict[str, list[float]] = {name: [] for name in TRANSPORTS}
    with kafka(args.kafka) as bootstrap:
        for round_ in range(args.rounds):
            order = list(TRANSPORTS.items()) if round_ % 2 == 0 else list(reversed(TRANSPORTS.items()))
            for name, transport in order:
                rates[name].append(run_child(bootstrap, transport, args.messages))
    anchor = median(rates["faust kafka://"])
    print(
        f"\nfaust noack_take + ack, {args.messages:,} messages of 1.1 KB, 4 partitions, median of {args.rounds} rounds"
    )
    print_table(
        ("transport", "messages/s", "vs faust", "rounds"),
        [
            (name, f"{median(values):,.0f}", f"{median(values) / anchor:.2f}x", ", ".join(f"{v:,.0f}" for v in values))
            for name, values in rates.items()
        ],
        right=(1, 2),
    )
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_drain"]:
        drain(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(main(sys.argv[1:]))
