"""compose.yaml, the Dockerfile and .env.example, checked without an engine (none runs here; docs/full-stack.md).

Compose's own parser validates the file where a Compose v2 client is installed; every other test protects one
decision, named in its docstring; the Python compose runs inline runs against the suite's real Kafka broker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "compose.yaml").read_text(encoding="utf-8")
OPERATOR_FILES = (
    ".env",
    "secrets/redaction_key",
    "secrets/evidence_key",
)  # created by the operator from the docs, never committed
# A minimal .env: every required credential, nothing real.
TEST_ENV = {
    name: "test0123456789" for name in ("CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "GRAFANA_CLICKHOUSE_PASSWORD")
}
TEST_ENV |= {"GRAFANA_ADMIN_USER": "admin", "GRAFANA_ADMIN_PASSWORD": "test9876543210"}
# The forms compose.yaml uses: $$ (a literal $), ${VAR}, ${VAR:-default}, ${VAR:?message}.
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:[-?])([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """What Compose makes of `text` given `env` (KeyError for a missing required variable)."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.groups()
        if name is None or env.get(name):
            return env[name] if name else "$"
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return _VARIABLE.sub(one, text)


def load(env: dict[str, str] = TEST_ENV) -> dict[str, Any]:
    """compose.yaml as Compose sees it with `env` as .env."""
    return yaml.safe_load(interpolate(COMPOSE_TEXT, env))


SERVICES: dict[str, dict[str, Any]] = load()["services"]


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """Compose's own parser (schema, interpolation, profiles) accepts the file; skipped without a v2 client."""
    command = ["docker", "compose"]
    if shutil.which("docker") is None or subprocess.run([*command, "version"], capture_output=True).returncode:
        pytest.skip("no Docker Compose v2 client here (`docker compose version` fails)")
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in TEST_ENV.items()))
    args = [*command, "-f", "compose.yaml", "--env-file", str(env_file), "--profile", "traffic", "config", "-q"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_images_and_the_grafana_plugin_are_pinned() -> None:
    """No floating tags; Grafana runs the schema version the dashboards are generated for."""
    from tokentrail.dashboards.spec import GRAFANA_VERSION

    for name, service in SERVICES.items():
        if "build" not in service:
            assert re.search(r":v?\d+(\.\d+)+$", service["image"]), f"{name}: {service['image']} is not pinned"
    assert SERVICES["grafana"]["image"].startswith(f"grafana/grafana:{GRAFANA_VERSION}.")
    plugin = SERVICES["grafana"]["environment"]["GF_INSTALL_PLUGINS"].split()
    assert plugin[0] == "grafana-clickhouse-datasource" and re.fullmatch(r"\d+\.\d+\.\d+", plugin[1]), plugin


def test_start_order_waits_for_health_and_for_the_migration() -> None:
    """The worker starts only on healthy Kafka/ClickHouse and a finished migration; awaited checks exist."""
    conditions = {n: {d: c["condition"] for d, c in s.get("depends_on", {}).items()} for n, s in SERVICES.items()}
    healthy, finished = "service_healthy", "service_completed_successfully"
    assert conditions["worker"] == {"kafka": healthy, "clickhouse": healthy, "migrate": finished}
    assert conditions["grafana"]["clickhouse-grants"] == finished
    for name, deps in conditions.items():
        for dependency, condition in deps.items():
            if condition == healthy:
                assert "healthcheck" in SERVICES[dependency], f"{name} awaits {dependency}'s missing healthcheck"
            if condition == finished:
                assert SERVICES[dependency]["restart"] == "no", f"{dependency} is awaited to exit"
    for name in ("kafka", "clickhouse", "worker", "grafana"):  # the long-running ones report their health
        assert SERVICES[name]["restart"] == "unless-stopped" and SERVICES[name]["healthcheck"]["test"], name


def test_the_worker_command_parses_with_the_worker_own_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """compose's worker command and environment are ones `tokentrail worker` accepts, on the advertised listener."""
    from tokentrail.stream.faust_worker import parse_args

    for key, value in SERVICES["worker"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    command = SERVICES["worker"]["command"]
    config = parse_args(command[1:])
    assert command[0] == "worker" and config.halt_on == ()
    assert config.metrics_port == 9464 and config.metrics_host == "0.0.0.0"  # reachable by Prometheus
    halting = load({**TEST_ENV, "TOKENTRAIL_HALT_ON": "repeated_tool_call"})["services"]["worker"]["command"]
    assert parse_args(halting[1:]).halt_on == ("repeated_tool_call",)
    assert f"//{config.kafka}," in SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_secrets_are_files_or_required_variables_never_literals() -> None:
    """The redaction key is a mounted secret file; each credential missing from .env stops compose; none committed."""
    worker = SERVICES["worker"]
    secret = worker["environment"]["TOKENTRAIL_REDACTION_KEY_FILE"].removeprefix("/run/secrets/")
    assert "TOKENTRAIL_REDACTION_KEY" not in worker["environment"] and secret in worker["secrets"]
    assert load()["secrets"][secret]["file"] == "./secrets/redaction_key"
    evidence = worker["environment"]["TOKENTRAIL_EVIDENCE_KEY_FILE"].removeprefix("/run/secrets/")
    assert "TOKENTRAIL_EVIDENCE_KEY" not in worker["environment"] and evidence in worker["secrets"]
    assert load()["secrets"][evidence]["file"] == "./secrets/evidence_key"
    for name in TEST_ENV:
        with pytest.raises(KeyError, match=name):
            interpolate(COMPOSE_TEXT, {k: v for k, v in TEST_ENV.items() if k != name})
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        assert line.startswith("#") or not re.search("PASSWORD|KEY|SECRET", key) or not value.strip(), line
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *OPERATOR_FILES], cwd=ROOT, capture_output=True)
    assert ignored.stdout.decode().split() == list(OPERATOR_FILES)


def test_every_host_path_is_in_the_repo_or_the_operator_creates_it() -> None:
    """Bind mounts, build contexts and secret files name files that exist (or documented operator files)."""
    paths = [v.split(":")[0] for s in SERVICES.values() for v in s.get("volumes", []) if v.startswith(".")]
    paths += [s["build"]["context"] for s in SERVICES.values() if "build" in s]
    paths += [s["file"] for s in load()["secrets"].values()]
    for path in map(os.path.normpath, paths):
        assert path in OPERATOR_FILES or (ROOT / path).exists(), f"compose.yaml names {path}, not in the repo"


def test_grafana_gets_every_value_its_provisioning_reads() -> None:
    """Grafana refuses to start on an empty datasource host or contact point: compose sets each one."""
    grafana_env = SERVICES["grafana"]["environment"]
    grants = (ROOT / "dashboards/provisioning/clickhouse/readonly_user.sql").read_text()
    assert re.findall(r"CREATE USER IF NOT EXISTS (\w+)", grants) == [grafana_env["GRAFANA_CLICKHOUSE_USER"]]
    for path in (ROOT / "dashboards" / "provisioning").rglob("*.yaml"):
        for name in re.findall(r"\$(?:__env)?\{([A-Z_][A-Z0-9_]*)\}", path.read_text(encoding="utf-8")):
            assert grafana_env.get(name), f"{path.relative_to(ROOT)} reads {name}; compose leaves it empty"


def dockerfile() -> list[tuple[str, str]]:
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    return [(ln.split()[0].upper(), ln.strip().partition(" ")[2]) for ln in lines if ln.strip()[:1] not in ("", "#")]


def test_the_image_installs_the_pipeline_extra_as_a_user_from_a_context_without_secrets() -> None:
    """One `pip install '.[pipeline]'` of the copied package folders; never root; .dockerignore keeps secrets out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(d.startswith("faust-streaming") for d in project["project"]["optional-dependencies"]["pipeline"])
    runs = " ".join(rest for keyword, rest in dockerfile() if keyword == "RUN")
    assert re.findall(r"pip install (\S+)", runs) == ["'.[pipeline]'"]
    assert [rest for keyword, rest in dockerfile() if keyword == "USER"][-1] not in ("root", "0")
    assert json.loads(dict(dockerfile())["ENTRYPOINT"]) == ["tokentrail"]
    needed = {"pyproject.toml", project["project"]["readme"], *project["tool"]["setuptools"]["package-dir"].values()}
    copied = {s.rstrip("/") for keyword, rest in dockerfile() if keyword == "COPY" for s in rest.split()[:-1]}
    assert needed <= copied, f"the Dockerfile does not COPY {sorted(needed - copied)}"
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and p[0] != "#"]

    def excluded(path: str) -> bool:
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(
            fnmatch(p, pat) or (pat[:3] == "**/" and fnmatch(parts[-1], pat[3:])) for p in prefixes for pat in patterns
        )

    assert not [s for s in copied if excluded(s)], "the Dockerfile copies what .dockerignore excludes"
    for secret in (*OPERATOR_FILES, ".env.local", ".git/config", ".venv/bin/python", "stream/__pycache__/x.pyc"):
        assert excluded(secret), f"{secret} would be sent to the Docker daemon"


@pytest.mark.kafka
def test_the_traffic_command_sends_every_line_keyed_like_the_collector(kafka_bootstrap: str, new_topic: Any) -> None:
    """The traffic profile's shell command delivers every generated line, keyed by trace_id, on murmur2's partition."""
    from aiokafka.partitioner import DefaultPartitioner
    from confluent_kafka import Consumer

    topic = new_topic(partitions=6)
    env = {**os.environ, **{k: str(v) for k, v in SERVICES["traffic"]["environment"].items()}, "TRAFFIC_EVENTS": "300"}
    env.update(TOKENTRAIL_KAFKA_BOOTSTRAP=kafka_bootstrap, TOKENTRAIL_EVENTS_TOPIC=topic, TRAFFIC_INTERVAL_SECONDS="0")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `tokentrail` from this venv
    script = [*SERVICES["traffic"]["entrypoint"], SERVICES["traffic"]["command"][0]]
    run = subprocess.run(script, env=env, capture_output=True, text=True, timeout=240)
    delivered = re.search(r"traffic: (\d+) of (\d+) lines delivered", run.stderr)
    assert run.returncode == 0 and delivered and delivered[1] == delivered[2] and int(delivered[1]) >= 300, run.stderr

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    messages: list[Any] = []
    try:
        deadline = time.monotonic() + 60
        while len(messages) < int(delivered[1]) and time.monotonic() < deadline:
            messages += [m for m in consumer.consume(1000, 0.5) if not m.error()]
    finally:
        consumer.close()
    assert len(messages) == int(delivered[1])
    keyed = [m for m in messages if m.key() is not None]
    assert len(keyed) > 0.9 * len(messages)
    partitions = list(range(6))
    for message in keyed:
        assert message.key() == json.loads(message.value())["trace_id"].encode()
        assert message.partition() == DefaultPartitioner()(message.key(), partitions, partitions)


def test_the_traffic_command_fails_when_the_generator_fails() -> None:
    """A failing `tokentrail generate` fails the traffic service (pipefail), not a silent "0 of 0 delivered"."""
    env = {**os.environ, **{k: str(v) for k, v in SERVICES["traffic"]["environment"].items()}, "TRAFFIC_EVENTS": "-1"}
    env.update(TOKENTRAIL_KAFKA_BOOTSTRAP="127.0.0.1:9", TRAFFIC_INTERVAL_SECONDS="0")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    script = [*SERVICES["traffic"]["entrypoint"], SERVICES["traffic"]["command"][0]]
    run = subprocess.run(script, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0, run.stderr


def test_the_worker_healthcheck_passes_only_while_the_worker_says_ready(tmp_path: Path) -> None:
    """The healthcheck's Python asks the worker's /ready (its real HTTP server): 200 passes; 503 fails,
    printing the worker's reasons; nothing listening fails."""
    from tokentrail.stream.faust_worker.health_server import HealthServer
    from tokentrail.stream.faust_worker.metrics import WorkerMetrics
    from tokentrail.stream.faust_worker.readiness import Verdict

    class Probe:
        verdict_now = Verdict(True)

        def verdict(self) -> Verdict:
            return self.verdict_now

    test = SERVICES["worker"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    probe = Probe()
    server = HealthServer(WorkerMetrics(), probe, "127.0.0.1", 0).start()  # type: ignore[arg-type]
    try:
        env = {**os.environ, "TOKENTRAIL_METRICS_PORT": str(server.port)}
        check = [sys.executable, "-c", test[3]]
        assert subprocess.run(check, env=env, capture_output=True, timeout=60).returncode == 0
        probe.verdict_now = Verdict(False, ("the store has been failing for 75s",))
        failed = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60)
        assert failed.returncode == 1 and "the store has been failing for 75s" in failed.stderr
    finally:
        server.close()
    nobody = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60)
    assert nobody.returncode == 1 and "not ready" in nobody.stderr


def test_prometheus_scrapes_every_worker_replica_where_the_dashboards_look() -> None:
    """The scrape job finds the worker service's replicas by DNS on the port the workers serve, under the job
    name the internals dashboard and the worker alert rules select; Grafana's datasource points at it."""
    from tokentrail.dashboards.dash_internals import JOB

    prometheus = SERVICES["prometheus"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"] and discovery["type"] == "A"
    assert str(discovery["port"]) == SERVICES["worker"]["environment"]["TOKENTRAIL_METRICS_PORT"]
    assert SERVICES["grafana"]["environment"]["PROMETHEUS_URL"] == "http://prometheus:9090"
    assert SERVICES["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
