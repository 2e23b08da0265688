"""What the local broker is told: its listeners, ``server.properties`` and log4j setup.

The broker always has a PLAINTEXT client listener (what ``KafkaBroker.bootstrap`` names) and a
CONTROLLER listener for KRaft. More client listeners (say a SASL_SSL one) are :class:`Listener`
objects: each brings its name, security protocol and its own ``listener.name.<name>.*`` settings,
and the broker renders them into the listener lines below without any other change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

CLIENT_LISTENER = "PLAINTEXT"
CONTROLLER_LISTENER = "CONTROLLER"
_SECURITY_PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})
_LISTENER_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


@dataclass(frozen=True)
class Listener:
    """One broker listener.

    ``port`` None means "a free one, chosen on first start". ``properties`` are the per-listener
    settings without their ``listener.name.<name lower-cased>.`` prefix, for example
    ``{"plain.sasl.jaas.config": "..."}`` or ``{"ssl.keystore.location": "..."}``.
    """

    name: str
    security_protocol: str = "PLAINTEXT"
    port: int | None = None
    properties: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _LISTENER_NAME.fullmatch(self.name):
            raise ValueError(f"listener name {self.name!r}: upper-case letters, digits and _ only")
        if self.name in (CLIENT_LISTENER, CONTROLLER_LISTENER):
            raise ValueError(f"listener name {self.name!r} is the broker's own; pick another")
        if self.security_protocol not in _SECURITY_PROTOCOLS:
            raise ValueError(
                f"security protocol {self.security_protocol!r} is not one of {sorted(_SECURITY_PROTOCOLS)}"
            )


def server_properties(
    *,
    host: str,
    port: int,
    controller_port: int,
    data_dir: Path,
    extra_listeners: tuple[Listener, ...] = (),
    extra_properties: dict[str, str] | None = None,
) -> str:
    """The broker+controller's ``server.properties``; ``extra_properties`` override any line."""
    for listener in extra_listeners:
        if listener.port is None:
            raise ValueError(f"listener {listener.name} has no port yet")
    client = [(CLIENT_LISTENER, "PLAINTEXT", port), *((x.name, x.security_protocol, x.port) for x in extra_listeners)]
    listeners = [f"{name}://{host}:{p}" for name, _, p in client]
    protocol_map = [f"{name}:{protocol}" for name, protocol, _ in client]
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{controller_port}",
        "listeners": ",".join([*listeners, f"{CONTROLLER_LISTENER}://{host}:{controller_port}"]),
        "advertised.listeners": ",".join(listeners),
        "listener.security.protocol.map": ",".join([*protocol_map, f"{CONTROLLER_LISTENER}:PLAINTEXT"]),
        "controller.listener.names": CONTROLLER_LISTENER,
        "inter.broker.listener.name": CLIENT_LISTENER,
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true",
        # log.flush.* stay at Kafka's defaults (the OS page cache decides): a stopped or
        # killed broker process still leaves its writes in the page cache, so data survive.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        # A small machine (2 cores, -Xmx512m): fewer threads, and a 16 MiB instead of a
        # 128 MiB compaction buffer (the control topic is compacted).
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        # After kill() the restarted broker is refused (DUPLICATE_BROKER_REGISTRATION) until
        # its previous session expires: 9 s by default, ~14 s to ready with retry backoff.
        # Heartbeats here cross loopback inside one JVM, so a short session is safe.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "4000",
    }
    for listener in extra_listeners:
        prefix = f"listener.name.{listener.name.lower()}."
        props.update({prefix + key: value for key, value in listener.properties.items()})
    props.update(extra_properties or {})
    return "".join(f"{k}={v}\n" for k, v in props.items())


def log4j_properties(log_file: Path) -> str:
    """WARN and above into ``log_file``, plus the one INFO line that marks each start."""
    return (
        "log4j.rootLogger=WARN, file\n"
        "log4j.appender.file=org.apache.log4j.FileAppender\n"
        f"log4j.appender.file.File={log_file}\n"
        "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
    )
