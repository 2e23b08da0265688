"""Client-side helpers around a broker: free loopback ports, readiness, topics with leaders.

confluent_kafka is imported inside the functions that need it, so the jar fetch (which imports
this module through kafka_broker) works before the project's virtualenv has it.
"""

from __future__ import annotations

import socket
import time


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on 127.0.0.1, distinct because all are held until returned."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_for_metadata(bootstrap: str, timeout: float = 30.0) -> None:
    """Block until a broker at ``bootstrap`` answers a metadata request with itself in it."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            if md.brokers:
                return
        except Exception as exc:  # KafkaException while the broker is still coming up
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"no metadata from {bootstrap} within {timeout:.0f}s (last error: {last})")


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    *,
    config: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> str:
    """Create a topic and wait until every partition has a leader, so producers can use it at once."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    admin.create_topics([topic], operation_timeout=timeout)[name].result(timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        md = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if (
            md
            and md.error is None
            and len(md.partitions) == partitions
            and all(p.leader >= 0 for p in md.partitions.values())
        ):
            return name
        time.sleep(0.1)
    raise TimeoutError(f"topic {name!r} on {bootstrap} had no leaders within {timeout:.0f}s")
