"""Peak memory of the processor under the largest inputs the contract allows (issue 11 §6).

    .venv/bin/python benchmarks/resource_limits.py                 # embedded replay and the worker (local broker)
    .venv/bin/python benchmarks/resource_limits.py --skip worker   # embedded replay only (no Kafka)
    .venv/bin/python benchmarks/resource_limits.py --kafka 127.0.0.1:9092 --ordinary 5000

Scenarios (each the same `--ordinary` synthetic events plus its heavy lines, so the difference to
"ordinary" is what the heavy lines cost):

- ordinary: the synthetic generator's traffic alone (the baseline);
- 1 MiB events: `--heavy` valid events of just under 1 MiB (the size limit), all in one batch;
- 1 MiB + 1 byte events: `--heavy` events one byte over the limit (dead letters, `too_large`);
- 20,000-message prompts: `--heavy` prompts of 20,000 short messages each (about 0.9 MiB, valid);
- 3,000-level nesting: `--heavy` * 10 events whose params nest 3,000 levels deep (dead letters, `too_deep`).

Peak RSS is the kernel's high-water mark (`VmHWM` in /proc/<pid>/status), read while the process is
still alive: for the embedded pipeline, a fresh process per scenario (`resource_limits.py _embedded`)
that builds the replay pipeline and store, notes its high-water mark, replays the file (what
`tokentrail replay` does, batches of 5,000) and notes it again; for the worker, a fresh
`tokentrail worker` per scenario on a topic holding the scenario's lines, read once the consumer
group has committed every offset: the worker process and its pipeline child separately.
Memory, not time, is the point: the machine may be loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import REPO, descendants, kafka, log, machine, new_topic, print_table

MiB = 1024 * 1024
BIG_MESSAGES = 4 * MiB


def vm_kib(pid: int, field: str) -> int:
    """`VmHWM` / `VmRSS` of `pid` in KiB (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# ------------------------------------------------------------------------------ scenarios


def _ordinary(n: int) -> list[bytes]:
    from tokentrail.stream.synthetic import GeneratorConfig, generate

    start = datetime.now(UTC) - timedelta(hours=2)
    return [line.encode() for line in generate(GeneratorConfig(seed=3, events=n, start=start)).lines]


def _fresh(kind: str, i: int) -> dict[str, Any]:
    """A valid event of `kind` with a unique id and a current ts (the template is the generator's)."""
    import uuid

    from tokentrail.stream.synthetic import GeneratorConfig, generate

    for line in generate(GeneratorConfig(seed=4, events=20)).lines:
        doc = json.loads(line)
        if doc.get("type") == kind:
            doc["event_id"] = str(uuid.uuid4())
            doc["span_id"] = f"{i:016x}"
            doc["ts"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            return doc
    raise LookupError(kind)


def _sized(i: int, size: int) -> bytes:
    """A prompt event of exactly `size` bytes (one user message padded)."""
    doc = _fresh("prompt", i)
    doc["messages"] = [{"role": "user", "content": ""}]
    empty = len(json.dumps(doc).encode())
    doc["messages"][0]["content"] = "lorem ipsum " * ((size - empty) // 12) + "x" * ((size - empty) % 12)
    raw = json.dumps(doc).encode()
    assert len(raw) == size, (len(raw), size)
    return raw


def _many_messages(i: int, count: int) -> bytes:
    doc = _fresh("prompt", i)
    doc["messages"] = [{"role": "user" if m % 2 else "assistant", "content": f"m{m}"} for m in range(count)]
    return json.dumps(doc).encode()


def _nested(i: int, levels: int) -> bytes:
    doc = _fresh("prompt", i)
    doc["params"] = {"deep": "@@"}
    return json.dumps(doc).encode().replace(b'"@@"', b"[" * levels + b"1" + b"]" * levels)


def scenarios(ordinary: int, heavy: int) -> dict[str, Callable[[], list[bytes]]]:
    base = _ordinary(ordinary)
    return {
        "ordinary": lambda: base,
        "1 MiB events": lambda: base + [_sized(i, MiB - 64) for i in range(heavy)],
        "1 MiB + 1 byte events": lambda: base + [_sized(i, MiB + 1) for i in range(heavy)],
        "20,000-message prompts": lambda: base + [_many_messages(i, 20_000) for i in range(heavy)],
        "3,000-level nesting": lambda: base + [_nested(i, 3_000) for i in range(heavy * 10)],
    }


# ------------------------------------------------------------------------------ embedded


def embedded_child(source: str, store: str) -> None:
    """`resource_limits.py _embedded FILE STORE`: replay FILE into a fresh store; print the figures as JSON."""
    from tokentrail.stream.embedded import EmbeddedRunner, read_lines
    from tokentrail.stream.runtime import make_pipeline, open_store

    _, sink = open_store(f"chdb://{store}")
    pipeline = make_pipeline(prices=None, allow_ephemeral_key=True)
    ready = vm_kib(os.getpid(), "VmHWM")
    started = time.perf_counter()
    with open(source, "rb") as stream:
        stats = EmbeddedRunner(pipeline, sink).run(read_lines(stream, Path(source).name))
    print(
        json.dumps(
            {
                "ready_kib": ready,
                "peak_kib": vm_kib(os.getpid(), "VmHWM"),
                "seconds": time.perf_counter() - started,
                "read": stats.read,
                "accepted": stats.accepted,
                "dead": stats.deadletter,
            }
        )
    )


def run_embedded(name: str, lines: list[bytes], work: Path) -> dict[str, Any]:
    source = work / "input.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    store = work / f"store-{time.time_ns()}"
    done = subprocess.run(
        [sys.executable, __file__, "_embedded", str(source), str(store)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{name}: embedded replay failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# ------------------------------------------------------------------------------ worker


def _produce(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": BIG_MESSAGES})
    for line in lines:
        producer.produce(topic, line)
        producer.poll(0)
    assert producer.flush(120) == 0


def _caught_up(bootstrap: str, topic: str, group: str) -> bool:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = [TopicPartition(topic, 0)]
        committed = sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
        end = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts)
    finally:
        consumer.close()
    return end > 0 and committed >= end


def run_worker(name: str, lines: list[bytes], bootstrap: str, work: Path, timeout: float) -> dict[str, Any]:
    topic = new_topic(bootstrap, "limits", 1)
    _alter_max_message(bootstrap, topic)
    _produce(bootstrap, topic, lines)
    group = f"limits-{topic}"
    store = work / f"worker-store-{time.time_ns()}"
    command = [sys.executable, "-m", "tokentrail.stream.cli", "worker", "--kafka", bootstrap]
    command += ["--clickhouse", f"chdb://{store}", "--events-topic", topic, "--deadletter-topic", f"{topic}.dead"]
    command += ["--group", group, "--data-dir", str(work / f"faust-{time.time_ns()}"), "--allow-ephemeral-key"]
    with open(work / "worker.log", "ab") as out:
        # The worker refuses to start without an evidence key: a throwaway one unless one is configured.
        env = {"TOKENTRAIL_EVIDENCE_KEY": secrets.token_hex(32), **os.environ}
        if os.environ.get("TOKENTRAIL_EVIDENCE_KEY_FILE"):
            env.pop("TOKENTRAIL_EVIDENCE_KEY")
        worker = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    started = time.monotonic()
    try:
        while not _caught_up(bootstrap, topic, group):
            if worker.poll() is not None:
                raise RuntimeError(f"{name}: the worker exited with {worker.returncode} (see {work / 'worker.log'})")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{name}: the worker did not catch up within {timeout}s")
            time.sleep(1)
        children = [pid for pid in descendants(worker.pid) if vm_kib(pid, "VmHWM") > 50_000]
        return {
            "worker_kib": vm_kib(worker.pid, "VmHWM"),
            "child_kib": max((vm_kib(pid, "VmHWM") for pid in children), default=0),
            "seconds": time.monotonic() - started,
        }
    finally:
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


def _alter_max_message(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry("max.message.bytes", str(BIG_MESSAGES), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource("topic", topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["_embedded"]:
        embedded_child(args[1], args[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ordinary", type=int, default=3_000, help="synthetic events in every scenario")
    parser.add_argument("--heavy", type=int, default=20, help="heavy events per scenario (nesting: 10x as many)")
    parser.add_argument("--kafka", default=os.environ.get("TOKENTRAIL_BENCH_KAFKA"), help="host:port of a broker")
    parser.add_argument("--skip", choices=["embedded", "worker"], action="append", default=[])
    parser.add_argument("--worker-timeout", type=float, default=900)
    parser.add_argument("--json", help="also write the figures to this file")
    opts = parser.parse_args(args)
    log(f"machine: {machine()}")
    made = scenarios(opts.ordinary, opts.heavy)
    results: dict[str, dict[str, Any]] = {name: {} for name in made}
    with tempfile.TemporaryDirectory(prefix="limits-") as tmp, _maybe_kafka(opts) as bootstrap:
        work = Path(tmp)
        for name, make in made.items():
            lines = make()
            results[name]["input_mib"] = sum(len(line) + 1 for line in lines) / MiB
            if "embedded" not in opts.skip:
                log(f"embedded: {name} ({len(lines)} lines)")
                results[name]["embedded"] = run_embedded(name, lines, work)
            if bootstrap:
                log(f"worker: {name}")
                try:
                    results[name]["worker"] = run_worker(name, lines, bootstrap, work, opts.worker_timeout)
                except RuntimeError as exc:  # a crash is a result too: the table says so, the other scenarios run
                    log(str(exc))
                    results[name]["worker"] = {"failed": str(exc).splitlines()[0]}
    report(results)
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=2))
    return 0


def _maybe_kafka(opts: argparse.Namespace) -> Any:
    import contextlib

    if "worker" in opts.skip:
        return contextlib.nullcontext(None)
    return kafka(opts.kafka)


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.0f}" if kib else "-"


def report(results: dict[str, dict[str, Any]]) -> None:
    base = results.get("ordinary", {})
    rows: Iterator[list[str]] = (
        [
            name,
            f"{r['input_mib']:,.1f}",
            _mib(r.get("embedded", {}).get("ready_kib", 0)),
            _mib(r.get("embedded", {}).get("peak_kib", 0)),
            _delta(r, base, "embedded", "peak_kib"),
            "exited" if "failed" in r.get("worker", {}) else _mib(r.get("worker", {}).get("worker_kib", 0)),
            _mib(r.get("worker", {}).get("child_kib", 0)),
            _delta(r, base, "worker", "child_kib"),
        ]
        for name, r in results.items()
    )
    header = ["scenario", "input MiB", "replay ready", "replay peak", "+ vs ordinary", "worker", "pipeline child"]
    print_table(
        [*header, "+ vs ordinary"],
        rows,
        right=range(1, 8),
    )
    print("peak RSS (VmHWM) in MiB; replay = the embedded pipeline of `tokentrail replay` in one process")
    for name, r in results.items():
        if "failed" in r.get("worker", {}):
            print(f"{name}: {r['worker']['failed']}")


def _delta(r: dict[str, Any], base: dict[str, Any], part: str, key: str) -> str:
    value, reference = r.get(part, {}).get(key), base.get(part, {}).get(key)
    return f"{(value - reference) / 1024:+,.0f}" if value and reference else "-"


if __name__ == "__main__":
    sys.exit(main())
