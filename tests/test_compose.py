"""Tests for compose.yaml, the Dockerfile and .env.example: the full stack, checked without an engine.

These machines run no Docker engine, so nothing here starts a container. What is checked instead:
the compose file parses and says what the issue asks (services, pinned images, healthchecks,
depends_on conditions, profile); every host path it names exists or is one the operator creates
and the docs say so; every variable it reads is documented; the Dockerfile installs the package
from the same extra that holds the worker's dependencies, from files the build context really
has; and the Python the compose file runs inline (traffic producer, worker healthcheck) runs
against the real Kafka broker of the test suite. `docker compose config` runs only where a
Compose v2 client is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from datetime import UTC
from fnmatch import fnmatch
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
DOCS = ROOT / "docs" / "full-stack.md"
PYPROJECT = ROOT / "pyproject.toml"

# The issue's services, and the services each must wait for, with the condition.
EXPECTED_DEPENDS = {
    "migrate": {"clickhouse": "service_healthy"},
    "clickhouse-grants": {"migrate": "service_completed_successfully"},
    "worker": {
        "kafka": "service_healthy",
        "clickhouse": "service_healthy",
        "migrate": "service_completed_successfully",
    },
    "grafana": {"clickhouse": "service_healthy", "clickhouse-grants": "service_completed_successfully"},
    "traffic": {"kafka": "service_healthy"},
}
LONG_RUNNING = ("kafka", "clickhouse", "grafana", "worker")
ONE_SHOT = ("migrate", "clickhouse-grants")
# Files the operator creates from the docs; they must never be in the repository.
OPERATOR_FILES = (".env", "secrets/redaction_key")
# What a test .env holds: credentials of the right shape, nothing real.
TEST_ENV = {
    "CLICKHOUSE_USER": "tokentrail",
    "CLICKHOUSE_PASSWORD": "0123456789abcdef0123456789abcdef",
    "GRAFANA_CLICKHOUSE_PASSWORD": "fedcba9876543210fedcba9876543210",
    "GRAFANA_ADMIN_USER": "admin",
    "GRAFANA_ADMIN_PASSWORD": "00112233445566778899aabbccddeeff",
}

# Compose interpolation: $$ is a literal $, then ${VAR}, ${VAR:-x}, ${VAR-x}, ${VAR:?x}, ${VAR?x},
# ${VAR:+x}, ${VAR+x}, $VAR.
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(text: str, env: dict[str, str]) -> str:
    """What Compose makes of `text` given `env` (raises KeyError for a missing required variable)."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        unset_or_empty = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return arg if unset_or_empty else value
        if op in (":?", "?"):
            if unset_or_empty:
                raise KeyError(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        return value or ""

    return _INTERPOLATION.sub(one, text)


def variables(text: str) -> dict[str, str | None]:
    """Every variable Compose reads from `text`, with its operator (None, ':-', ':?', ...)."""
    found: dict[str, str | None] = {}
    for m in _INTERPOLATION.finditer(text):
        name = m.group("braced") or m.group("bare")
        if name and (found.get(name) is None or (m.group("op") or "").endswith("?")):
            found[name] = m.group("op")
    return found


def resolved(value: Any, env: dict[str, str] = TEST_ENV) -> Any:
    """`value` (a str, list or dict from compose.yaml) with interpolation applied."""
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [resolved(v, env) for v in value]
    if isinstance(value, dict):
        return {k: resolved(v, env) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def docs() -> str:
    return DOCS.read_text(encoding="utf-8")


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the list form: ["KEY=value", ...]
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def image_tag(service: dict[str, Any]) -> tuple[str, str]:
    image = service["image"]
    assert "@" not in image or ":" in image.split("@")[0], image
    name, _, tag = image.split("@")[0].rpartition(":")
    return name, tag


# -- the compose file ---------------------------------------------------------------------------


def test_every_service_the_issue_names_is_there_with_an_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    """Kafka, ClickHouse, Grafana, the migration, the worker and the traffic generator are defined and runnable."""
    for name in ("kafka", "clickhouse", "grafana", "migrate", "worker", "traffic", "clickhouse-grants"):
        assert name in services, f"compose.yaml has no service {name!r}"
        assert services[name].get("image") or services[name].get("build"), f"{name} has neither image nor build"
    for name in ("migrate", "worker", "traffic", "clickhouse-grants"):
        build = services[name].get("build")
        assert build, f"{name} must build the repo's Dockerfile"
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        assert (
            context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
        ).is_file()


def test_images_are_pinned_to_the_versions_the_project_targets(services: dict[str, dict[str, Any]]) -> None:
    """No floating tags: Kafka 3.9.1, a ClickHouse 24/25 build, a Grafana x.y.z."""
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    name, tag = image_tag(services["clickhouse"])
    assert name == "clickhouse/clickhouse-server" and re.fullmatch(r"2[45]\.\d+(\.\d+)*", tag), services["clickhouse"][
        "image"
    ]
    name, tag = image_tag(services["grafana"])
    assert name == "grafana/grafana" and re.fullmatch(r"\d+\.\d+\.\d+", tag), services["grafana"]["image"]
    for service in services.values():
        if "image" in service and "build" not in service:
            assert not service["image"].endswith(":latest") and ":" in service["image"], service["image"]


def test_grafana_runs_the_version_the_dashboards_are_built_for(services: dict[str, dict[str, Any]]) -> None:
    """The Grafana image's major.minor is the schema the installed grafana-foundation-sdk build targets."""
    _, tag = image_tag(services["grafana"])
    running = ".".join(tag.split(".")[:2])
    # The SDK's versions are "<epoch>!<grafana version>", e.g. 1769699379!11.6.0. pyproject's pin is
    # what CI and the image install; the installed build is what this venv builds dashboards with.
    pins = [
        d
        for deps in tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["optional-dependencies"].values()
        for d in deps
        if d.startswith("grafana-foundation-sdk")
    ]
    assert pins, "pyproject.toml does not depend on grafana-foundation-sdk"
    for sdk in (*(p.split("==", 1)[-1] for p in pins), metadata.version("grafana-foundation-sdk")):
        targeted = ".".join(sdk.split("!")[-1].split(".")[:2])
        assert running == targeted, (
            f"compose runs Grafana {tag}; grafana-foundation-sdk {sdk} builds for Grafana {targeted}"
        )
    try:
        from tokentrail.dashboards import spec
    except ImportError:
        return  # the dashboards package states its version once it exists
    assert running == spec.GRAFANA_VERSION, (
        f"dashboards/spec.py says Grafana {spec.GRAFANA_VERSION}, compose runs {tag}"
    )


def test_grafana_installs_a_pinned_clickhouse_plugin_and_mounts_the_provisioning(
    services: dict[str, dict[str, Any]],
) -> None:
    """The ClickHouse plugin at a fixed version, provisioning from the repo, admin credentials from .env."""
    grafana = services["grafana"]
    env = environment(grafana)
    plugins = [p.split() for p in env["GF_INSTALL_PLUGINS"].split(",")]
    assert ["grafana-clickhouse-datasource"] == [p[0] for p in plugins if p[0] == "grafana-clickhouse-datasource"]
    version = next(p for p in plugins if p[0] == "grafana-clickhouse-datasource")
    assert len(version) == 2 and re.fullmatch(r"\d+\.\d+\.\d+", version[1]), f"plugin version not pinned: {version}"
    assert "./dashboards/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    for key in ("GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"):
        assert variables(env[key]) and set(variables(env[key]).values()) == {":?"}, (
            f"{key} must come from .env, required"
        )


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    """Kafka answers metadata, ClickHouse /ping, Grafana /api/health, the worker's group has members."""
    tests = {name: " ".join(services[name]["healthcheck"]["test"]) for name in LONG_RUNNING}
    assert re.search(r"kafka-(broker-api-versions|topics)\.sh", tests["kafka"])
    assert "/ping" in tests["clickhouse"]
    assert "/api/health" in tests["grafana"]
    assert "describe_consumer_groups" in tests["worker"]
    for name in LONG_RUNNING:
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check.get("interval") and check.get("retries"), name


def test_depends_on_conditions_order_the_start(services: dict[str, dict[str, Any]]) -> None:
    """Migration after ClickHouse is healthy; worker after Kafka, ClickHouse and the migration; Grafana after its grants."""
    for name, expected in EXPECTED_DEPENDS.items():
        actual = depends_on(services[name])
        for dependency, condition in expected.items():
            assert actual.get(dependency) == condition, f"{name} must wait for {dependency}: {condition} (has {actual})"
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], (
                    f"{name} waits for {dependency} to be healthy; it has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert services[dependency].get("restart", "no") == "no", (
                    f"{dependency} is awaited to exit: restart must be 'no'"
                )
    for name in ONE_SHOT:
        assert services[name].get("restart") == "no", f"{name} is one-shot"


def test_only_the_traffic_generator_is_optional(services: dict[str, dict[str, Any]]) -> None:
    """`docker compose up` starts the stack; the generator needs --profile traffic."""
    assert services["traffic"]["profiles"] == ["traffic"]
    assert [n for n, s in services.items() if s.get("profiles")] == ["traffic"]


def test_the_tokentrail_services_run_real_commands(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """migrate runs `tokentrail schema apply`; the worker's command and environment parse with its own flags."""
    from tokentrail.sinks.connection import resolve_dsn
    from tokentrail.stream.faust_worker import parse_args

    assert "entrypoint" not in services["migrate"] and services["migrate"]["command"] == ["schema", "apply"]
    assert "entrypoint" not in services["worker"]
    for key, value in resolved(environment(services["worker"])).items():
        monkeypatch.setenv(key, value)
    command = resolved(services["worker"]["command"])
    assert command[0] == "worker"
    config = parse_args(command[1:])
    assert config.halt_on == () and config.kafka == "kafka:19092"
    config = parse_args(
        resolved(services["worker"]["command"], {**TEST_ENV, "TOKENTRAIL_HALT_ON": "repeated_tool_call"})[1:]
    )
    assert config.halt_on == ("repeated_tool_call",)
    for name in ("migrate", "worker", "clickhouse-grants"):
        dsn = resolved(environment(services[name])["TOKENTRAIL_CLICKHOUSE_URL"])
        assert resolve_dsn(dsn) == dsn and "@clickhouse:8123" in dsn, dsn
    # The worker reaches Kafka on the listener the broker advertises to containers.
    advertised = environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    for name in ("worker", "traffic"):
        bootstrap = environment(services[name])["TOKENTRAIL_KAFKA_BOOTSTRAP"]
        assert f"//{bootstrap}" in advertised, f"{name} uses {bootstrap}; kafka advertises {advertised}"


def test_the_worker_gets_its_redaction_key_from_a_secret_file(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], docs: str
) -> None:
    """TOKENTRAIL_REDACTION_KEY_FILE names a mounted secret; the file is the operator's, documented and git-ignored."""
    env = environment(services["worker"])
    assert "TOKENTRAIL_REDACTION_KEY" not in env
    secret = env["TOKENTRAIL_REDACTION_KEY_FILE"].removeprefix("/run/secrets/")
    assert secret in services["worker"]["secrets"]
    path = compose["secrets"][secret]["file"].removeprefix("./")
    assert path in OPERATOR_FILES
    assert path in docs, f"docs/full-stack.md must say how to create {path}"


def test_every_host_path_exists_or_is_created_by_the_operator(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], docs: str
) -> None:
    """Bind mounts, build contexts and secret files point at files in the repo (or at documented operator files)."""
    paths: list[str] = []
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                paths.append(source)
        build = service.get("build")
        if build:
            paths.append(build if isinstance(build, str) else build.get("context", "."))
    for spec in (compose.get("secrets") or {}).values():
        paths.append(spec["file"])
    assert paths
    for path in paths:
        relative = os.path.normpath(path)
        assert not os.path.isabs(relative) and not relative.startswith(".."), f"{path} is outside the repo"
        if relative in OPERATOR_FILES:
            assert relative in docs
            continue
        assert (ROOT / relative).exists(), f"compose.yaml refers to {path}, which is not in the repo"


def test_grafana_logs_in_as_the_user_the_grants_create(services: dict[str, dict[str, Any]]) -> None:
    """clickhouse-grants runs the dashboards' readonly_user.sql; Grafana's datasource user is the one it creates."""
    grants = services["clickhouse-grants"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grants["volumes"]}
    sql_path = ROOT / mounts[environment(grants)["GRANTS_SQL"]]
    sql = sql_path.read_text(encoding="utf-8")
    users = re.findall(r"CREATE USER IF NOT EXISTS (\w+)", sql)
    assert users == [environment(services["grafana"])["GRAFANA_CLICKHOUSE_USER"]], f"{sql_path.name} creates {users}"
    assert "${GRAFANA_CLICKHOUSE_PASSWORD}" in sql and "GRANT SELECT ON tokentrail.*" in sql


def test_operator_files_are_git_ignored() -> None:
    """.env and the redaction key can never be committed by accident."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in OPERATOR_FILES:
        result = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT, capture_output=True)
        assert result.returncode == 0, f"{path} is not git-ignored: add it to .gitignore"


def test_every_variable_is_documented_and_required_ones_fail_clearly(docs: str) -> None:
    """Each ${VAR} compose.yaml reads is in docs/full-stack.md and .env.example; credentials are required, not defaulted."""
    text = COMPOSE.read_text(encoding="utf-8")
    found = variables(text)
    example = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert found
    for name, op in found.items():
        assert f"`{name}`" in docs, f"{name} is read by compose.yaml but not documented in docs/full-stack.md"
        assert re.search(rf"^#? ?{name}=", example, re.MULTILINE), f"{name} is missing from .env.example"
    for name in TEST_ENV:
        assert found[name] == ":?", f"{name} must be ${{{name}:?message}}"
        assert re.search(rf"^{name}=", example, re.MULTILINE), f".env.example must list {name} uncommented"
    with pytest.raises(KeyError, match="CLICKHOUSE_PASSWORD"):
        interpolate(text, {k: v for k, v in TEST_ENV.items() if k != "CLICKHOUSE_PASSWORD"})
    interpolate(text, TEST_ENV)


def test_env_example_holds_no_secrets() -> None:
    """Every password in .env.example is empty, so a copied file fails loudly until the operator sets one."""
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if "PASSWORD" in key or "KEY" in key or "SECRET" in key:
            assert value.strip() == "", f".env.example sets {key}; leave it empty"


def grafana_variables(text: str) -> set[str]:
    """Environment variables a Grafana provisioning file reads: $__env{VAR}, ${VAR} and $VAR.

    Only upper-case names count: the lower-case ones are alert templates ($labels, $values) and
    the ClickHouse plugin's macros ($__timeFilter), which Grafana leaves alone.
    """
    names = set(re.findall(r"\$__env\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    names |= {n for n in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text) if n.isupper() and not n.startswith("__")}
    return names


def test_the_grafana_provisioning_reads_only_what_compose_provides(services: dict[str, dict[str, Any]]) -> None:
    """What dashboards/provisioning reads from the environment is set, and non-empty with a minimal .env."""
    provisioning = ROOT / "dashboards" / "provisioning"
    if not provisioning.is_dir():
        pytest.fail("dashboards/provisioning does not exist: compose.yaml mounts it into Grafana")
    grafana_env = resolved(environment(services["grafana"]))
    files = [p for p in provisioning.rglob("*") if p.suffix in (".yaml", ".yml")]
    assert files, "dashboards/provisioning holds no provisioning files"
    for path in files:
        text = path.read_text(encoding="utf-8")
        for name in grafana_variables(text):
            # Grafana refuses to start on an empty datasource host or contact point URL/key.
            assert grafana_env.get(name), (
                f"{path.relative_to(ROOT)} reads {name}; compose gives Grafana no value for it"
            )
        document = (
            yaml.safe_load(re.sub(r"\$__env\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: grafana_env[m.group(1)], text))
            or {}
        )
        for datasource in document.get("datasources", []) or []:
            host = (datasource.get("jsonData") or {}).get("host") or datasource.get("url", "")
            host = re.sub(r"^\w+://", "", str(host)).split(":")[0].split("/")[0]
            if host:
                assert host in services, f"{path.name}: datasource host {host!r} is not a compose service"
        for provider in document.get("providers", []) or []:
            target = (provider.get("options") or {}).get("path", "")
            assert str(target).startswith("/etc/grafana/provisioning/"), (
                f"{path.name}: {target} is outside the mounted folder"
            )


# -- the Dockerfile -----------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def worker_extra() -> str:
    """The optional-dependencies extra that holds the worker's dependencies (faust) and no test tools."""
    extras = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    names = lambda deps: {re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0].lower() for d in deps}  # noqa: E731
    holding = [
        extra for extra, deps in extras.items() if "faust-streaming" in names(deps) and "pytest" not in names(deps)
    ]
    assert len(holding) == 1, f"expected one extra with faust-streaming and no pytest, found {holding}"
    return holding[0]


def test_dockerfile_installs_the_package_from_the_worker_extra_the_way_ci_does() -> None:
    """A venv, then `pip install '.[<the extra with faust>]'` from the copied source; no dev extra."""
    instructions = dockerfile_instructions()
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "python -m venv" in runs
    installs = re.findall(r"pip install (?:-\S+ )*'?\.\[([a-z,-]+)\]'?", runs)
    assert installs == [worker_extra()], f"pip installs extras {installs}; the worker's are in [{worker_extra()}]"
    assert "-e " not in runs.split("pip install", 1)[1].split("&&")[0], (
        "the image installs the package, not an editable checkout"
    )
    assert "'.[dev]'" in (ROOT / "scripts" / "_setup.sh").read_text(), "CI's install line moved: re-check the image's"


def test_dockerfile_base_user_and_entrypoint() -> None:
    """python:3.11-slim, a non-root user, `tokentrail` as entrypoint and `worker` as default command."""
    instructions = dockerfile_instructions()
    assert [rest for keyword, rest in instructions if keyword == "FROM"][0].startswith("python:3.11-slim")
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    assert json.loads(dict(instructions)["ENTRYPOINT"]) == ["tokentrail"]
    assert json.loads(dict(instructions)["CMD"]) == ["worker"]


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the context (plain patterns; this file uses no '!')."""
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "exceptions need a real matcher"
    parts = Path(path).parts
    for pattern in patterns:
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch(prefix, pattern) or (pattern.startswith("**/") and fnmatch(parts[i - 1], pattern[3:])):
                return True
    return False


def test_the_build_context_has_what_pip_needs_and_no_secrets() -> None:
    """COPY takes pyproject.toml, its readme and every package folder it maps; .dockerignore keeps secrets out."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    needed = {"pyproject.toml", project["project"]["readme"], *project["tool"]["setuptools"]["package-dir"].values()}
    copied: set[str] = set()
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY":
            sources = [s for s in rest.split()[:-1] if not s.startswith("--")]
            copied.update(s.rstrip("/") for s in sources)
    assert needed <= copied, f"the Dockerfile does not COPY {sorted(needed - copied)}"
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not dockerignore_excludes(source), f".dockerignore excludes {source}, which the Dockerfile copies"
    for secret in (
        *OPERATOR_FILES,
        ".env.local",
        ".git/config",
        ".venv/bin/python",
        "stream/__pycache__/cli.cpython-311.pyc",
    ):
        assert dockerignore_excludes(secret), f"{secret} would be sent to the Docker daemon"


# -- the inline Python the compose file runs, against the real broker ---------------------------


@pytest.mark.kafka
def test_traffic_profile_produces_generated_events_keyed_and_partitioned_like_the_collector(
    services: dict[str, dict[str, Any]], kafka_bootstrap: str, new_topic: Any
) -> None:
    """The traffic service's own shell command sends every generated line, keyed by trace_id, on murmur2's partition."""
    from aiokafka.partitioner import DefaultPartitioner
    from confluent_kafka import Consumer

    traffic = services["traffic"]
    assert traffic["entrypoint"][:2] == ["/bin/sh", "-ec"]
    topic = new_topic(partitions=6)
    env = {k: resolved(v) for k, v in environment(traffic).items()}
    env.update(
        TOKENTRAIL_KAFKA_BOOTSTRAP=kafka_bootstrap,
        TOKENTRAIL_EVENTS_TOPIC=topic,
        TRAFFIC_EVENTS="300",
        TRAFFIC_INTERVAL_SECONDS="0",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    script = resolved(traffic["command"][0])
    run = subprocess.run(
        ["/bin/sh", "-ec", script], env={**os.environ, **env}, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr
    delivered = re.search(r"traffic: (\d+) of (\d+) lines delivered", run.stderr)
    assert delivered and delivered.group(1) == delivered.group(2), run.stderr
    expected = range(int(delivered.group(2)))
    assert len(expected) >= 300  # every valid event plus the malformed lines and re-deliveries

    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": f"check-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    messages = []
    try:
        for _ in range(120):
            messages += [m for m in consumer.consume(1000, 0.5) if not m.error()]
            if len(messages) >= len(expected):
                break
    finally:
        consumer.close()
    assert len(messages) == len(expected)
    partitioner, partitions = DefaultPartitioner(), list(range(6))
    keyed = 0
    for message in messages:
        try:
            trace_id = json.loads(message.value()).get("trace_id")
        except (ValueError, AttributeError):
            trace_id = None
        if message.key() is None:
            assert not trace_id
            continue
        keyed += 1
        assert message.key() == trace_id.encode()
        assert message.partition() == partitioner(message.key(), partitions, partitions), (
            "not the collector's partitioner"
        )
    assert keyed > len(expected) * 0.9
    # Spread over the last TRAFFIC_WINDOW_MINUTES, not the generator's fixed default start.
    from datetime import datetime, timedelta

    timestamps = [json.loads(m.value())["ts"] for m in messages if m.key() is not None]
    earliest = datetime.fromisoformat(min(timestamps).replace("Z", "+00:00"))
    assert datetime.now(UTC) - earliest < timedelta(minutes=int(env["TRAFFIC_WINDOW_MINUTES"]) + 5)


@pytest.mark.kafka
def test_worker_healthcheck_is_healthy_only_while_its_group_has_members(
    services: dict[str, dict[str, Any]], kafka_bootstrap: str, new_topic: Any
) -> None:
    """The healthcheck's Python exits 1 for a group nobody is in and 0 once a consumer has joined it."""
    from confluent_kafka import Consumer

    test = services["worker"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    code = resolved(test[3])
    group = f"health-{uuid.uuid4().hex}"
    env = {**os.environ, "TOKENTRAIL_KAFKA_BOOTSTRAP": kafka_bootstrap, "TOKENTRAIL_WORKER_GROUP": group}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60).returncode == 1

    topic = new_topic(partitions=1)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        for _ in range(60):
            consumer.poll(0.5)
            if consumer.assignment():
                break
        assert consumer.assignment(), "the consumer never joined its group"
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    finally:
        consumer.close()


# -- Docker Compose itself, where a client is installed ------------------------------------------


def _compose_v2() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"]):
        try:
            result = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0 and re.search(r"\bv?2\.\d+", result.stdout):
            return command
    return None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """`docker compose config -q` (no engine needed) validates the file against the Compose schema."""
    command = _compose_v2()
    if command is None:
        pytest.skip(
            "no Docker Compose v2 client here (`docker compose version` fails): compose.yaml checked by the tests above only"
        )
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in TEST_ENV.items()))
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "--env-file", str(env_file), "--profile", "traffic", "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
