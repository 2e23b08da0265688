"""compose.cluster.yaml and deploy/cluster/: the cluster the cluster schema is written for, checked without Docker.

Compose's own parser validates the file where a Compose v2 client is installed (skipped otherwise,
as in tests/test_compose.py); the other tests check that the topology, the macros and the
cluster name agree with what `tokentrail schema sql --cluster tokentrail` generates.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tokentrail.sinks.cluster import split_guard
from tokentrail.sinks.migrations import schema_sql

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.cluster.yaml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
CLUSTER_XML = ET.parse(ROOT / "deploy/cluster/cluster.xml").getroot()
KEEPER_XML = ET.parse(ROOT / "deploy/cluster/keeper.xml").getroot()


def test_docker_compose_config_accepts_the_file():
    """Compose's own parser (schema, anchors, merges) accepts the file; skipped without a v2 client."""
    command = ["docker", "compose"]
    if shutil.which("docker") is None or subprocess.run([*command, "version"], capture_output=True).returncode:
        pytest.skip("no Docker Compose v2 client here (`docker compose version` fails)")
    result = subprocess.run(
        [*command, "-f", "compose.cluster.yaml", "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_images_are_pinned_and_match_the_single_node_stack():
    """Every service runs the exact ClickHouse build compose.yaml runs (Keeper included)."""
    single = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    expected = re.search(r"^  clickhouse:\n    image: (\S+)$", single, re.MULTILINE).group(1)
    assert re.fullmatch(r"clickhouse/clickhouse-server:\d+(\.\d+){3}", expected)
    assert {service["image"] for service in SERVICES.values()} == {expected}


def test_two_shards_of_two_replicas_with_unique_macros():
    """Four servers, macros (shard, replica) unique per server, two per shard, all listed in remote_servers."""
    servers = {name: s for name, s in SERVICES.items() if name.startswith("ch-")}
    macros = {name: (s["environment"]["CH_SHARD"], s["environment"]["CH_REPLICA"]) for name, s in servers.items()}
    assert len(servers) == 4 and len(set(macros.values())) == 4
    assert sorted(shard for shard, _ in macros.values()) == ["01", "01", "02", "02"]
    assert all(replica == name for name, (_, replica) in macros.items())
    cluster = CLUSTER_XML.find("remote_servers/tokentrail")
    assert cluster is not None
    shards = [[r.findtext("host") for r in shard.findall("replica")] for shard in cluster.findall("shard")]
    by_shard = sorted(sorted(n for n, (s, _) in macros.items() if s == shard) for shard in ("01", "02"))
    assert sorted(sorted(hosts) for hosts in shards) == by_shard
    assert all(shard.findtext("internal_replication") == "true" for shard in cluster.findall("shard"))
    assert CLUSTER_XML.find("macros/shard").get("from_env") == "CH_SHARD"
    assert CLUSTER_XML.find("macros/replica").get("from_env") == "CH_REPLICA"


def test_three_keeper_nodes_one_raft_group_known_to_every_server():
    """Three Keeper services with ids 1-3, the same three in Raft and in every server's <zookeeper>."""
    keepers = {name: s for name, s in SERVICES.items() if name.startswith("keeper")}
    assert sorted(s["environment"]["KEEPER_SERVER_ID"] for s in keepers.values()) == [1, 2, 3]
    raft = {(int(s.findtext("id")), s.findtext("hostname")) for s in KEEPER_XML.iter("server")}
    assert raft == {(s["environment"]["KEEPER_SERVER_ID"], name) for name, s in keepers.items()}
    assert {n.findtext("host") for n in CLUSTER_XML.iter("node")} == set(keepers)
    for name, service in SERVICES.items():
        if name.startswith("ch-"):
            assert set(service["depends_on"]) == set(keepers)


def test_cluster_name_is_the_one_the_generated_ddl_uses():
    """`schema sql --cluster tokentrail` names the cluster this compose file defines.

    Every DDL statement runs ON CLUSTER; the data statements (the copies of migrations 0011 and
    0012 and their checks) run once, from one node, through the Distributed tables.
    """
    statements = [split_guard(s)[1] for s in schema_sql(cluster="tokentrail")]
    data = [s for s in statements if s.startswith(("INSERT INTO", "SELECT "))]
    copies = [s for s in data if s.startswith("INSERT INTO")]
    assert len(data) == 4 and len(copies) == 2
    assert all("distributed_foreground_insert = 1" in s for s in copies)
    assert all("ON CLUSTER tokentrail" in s for s in statements if s not in data)
    assert CLUSTER_XML.find("remote_servers/tokentrail") is not None


def test_no_password_is_written_into_the_configs():
    """Inter-server auth is the cluster secret from the environment; configs hold no credentials."""
    assert CLUSTER_XML.find("remote_servers/tokentrail/secret").get("from_env") == "CLUSTER_SECRET"
    assert not list(CLUSTER_XML.iter("password"))
    assert not list(CLUSTER_XML.iter("user"))
