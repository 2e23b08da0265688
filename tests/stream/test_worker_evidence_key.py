"""`tokentrail worker` refuses to start without an evidence key (issue 14 §2); replay keeps an ephemeral one.

Checked before anything connects: the Kafka address below is a closed port, and the refusal comes
first. No broker needed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REDACTION = {"TOKENTRAIL_REDACTION_KEY": "k" * 32}


def _clean_env(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOKENTRAIL_")}
    return {**clean, **env}


def _worker(tmp_path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "tokentrail.stream.cli", "worker", "--kafka", "127.0.0.1:1", *args]
    return subprocess.run(command, capture_output=True, env=env, cwd=tmp_path, timeout=120)


def test_worker_without_an_evidence_key_exits_naming_both_ways_to_set_it(tmp_path):
    """No TOKENTRAIL_EVIDENCE_KEY(_FILE): exit 2, and the message says which variables to set."""
    result = _worker(tmp_path, "--clickhouse", f"chdb://{tmp_path / 'store'}", env=_clean_env(**REDACTION))
    assert result.returncode == 2, result.stderr
    assert b"no evidence key" in result.stderr
    assert b"TOKENTRAIL_EVIDENCE_KEY " in result.stderr and b"TOKENTRAIL_EVIDENCE_KEY_FILE" in result.stderr


def test_worker_refuses_an_ephemeral_evidence_key_with_a_clickhouse_server(tmp_path):
    """--allow-ephemeral-key stands in for a key only with an embedded store, as for the redaction key."""
    env = _clean_env(**REDACTION)
    result = _worker(tmp_path, "--allow-ephemeral-key", "--clickhouse", "http://127.0.0.1:1", env=env)
    assert result.returncode == 2 and b"--allow-ephemeral-key with a ClickHouse server" in result.stderr


@pytest.mark.parametrize(
    "env, message",
    [
        ({"TOKENTRAIL_EVIDENCE_KEY": "short"}, b"at least 16"),
        ({"TOKENTRAIL_EVIDENCE_KEY_FILE": "/nonexistent/evidence_key"}, b"cannot be read"),
    ],
)
def test_worker_refuses_an_unusable_evidence_key(tmp_path, env, message):
    """A key that is set but unusable is an error at startup, never a silent 'no receipts'."""
    result = _worker(tmp_path, "--clickhouse", f"chdb://{tmp_path / 'store'}", env=_clean_env(**REDACTION, **env))
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_worker_with_a_key_gets_past_the_key_checks(tmp_path):
    """With both keys the worker goes on to its first Kafka contact (a closed port here: that is what fails)."""
    env = _clean_env(**REDACTION, TOKENTRAIL_EVIDENCE_KEY="e" * 24)
    result = _worker(tmp_path, "--clickhouse", f"chdb://{tmp_path / 'store'}", env=env)
    assert result.returncode != 0 and b"evidence key" not in result.stderr, result.stderr
