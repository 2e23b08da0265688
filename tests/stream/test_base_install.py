"""`pip install tokentrail` (no extras) in a clean venv: the `tokentrail` command is honest about what it needs.

The base install is the collector (pydantic, confluent-kafka). Its `tokentrail` command must run
`schema events` (and the pure-Python `generate`), and every command that needs the `pipeline`
extra must say so in one line and exit 2, with no traceback. The venv is built from this working
tree with pip, which fetches the build backend and the two base dependencies from the package
index (or pip's cache); nothing of the dev environment leaks in.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tokentrail.collectors.events import event_json_schema
from tokentrail.stream.synthetic import GeneratorConfig, generate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("collectors", "stream", "sinks", "dashboards", "redaction")
HINT = "pip install 'tokentrail[pipeline]'"

# Every command that needs the pipeline extra, with arguments that would otherwise be valid.
PIPELINE_COMMANDS = {
    "replay": ["replay", "events.jsonl"],
    "demo": ["demo", "--events", "10"],
    "worker": ["worker", "--kafka", "localhost:9092"],
    "redact": ["redact", "--ephemeral-key"],
    "dashboards": ["dashboards", "build", "--check"],
    "alerts": ["alerts", "check"],
    "schema apply": ["schema", "apply"],
}


@pytest.fixture(scope="module")
def base_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with `pip install <this tree>` and no extras; returns its bin directory."""
    root = tmp_path_factory.mktemp("base-install")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for folder in SOURCES:
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True, clear=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, f"pip install of the base package failed:\n{install.stdout}\n{install.stderr}"
    return env_dir / "bin"


def run(bin_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "tokentrail"), *args], capture_output=True, text=True, timeout=120, cwd=cwd, env={}
    )


def test_the_venv_has_the_collector_and_none_of_the_pipeline(base_install: Path) -> None:
    """The premise: the collector imports, faust/Presidio/ClickHouse do not (else the other tests prove nothing)."""
    probe = (
        "import importlib.util as u, tokentrail.collectors;"
        "print([m for m in ('faust', 'presidio_analyzer', 'clickhouse_connect', 'chdb') if u.find_spec(m)])"
    )
    result = subprocess.run([str(base_install / "python"), "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert not Path(sys.prefix).samefile(base_install.parent)


def test_schema_events_works_on_the_base_install(base_install: Path) -> None:
    """`tokentrail schema events` prints the v1 JSON Schema without the pipeline extra."""
    result = run(base_install, "schema", "events")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == event_json_schema()


def test_generate_works_on_the_base_install(base_install: Path) -> None:
    """The synthetic traffic generator is pure Python: it runs on the collector's install too."""
    result = run(base_install, "generate", "200", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == generate(GeneratorConfig(events=200, seed=3)).lines


@pytest.mark.parametrize("command", sorted(PIPELINE_COMMANDS))
def test_pipeline_commands_say_what_to_install(base_install: Path, tmp_path: Path, command: str) -> None:
    """Each pipeline command prints one line naming the extra to install and exits 2: no traceback, no output."""
    (tmp_path / "events.jsonl").write_text("{}\n")
    result = run(base_install, *PIPELINE_COMMANDS[command], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tokentrail {command.split()[0]}: needs the pipeline extra") and HINT in lines[0]
    assert not (tmp_path / ".tokentrail").exists(), "nothing may be written before the check"
