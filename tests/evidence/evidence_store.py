"""A store filled the way an operator fills one: `tokentrail generate` output, with PII planted in one
trace, replayed by `tokentrail replay` into an embedded ClickHouse (chDB), then a second replay of
later traffic under a price overrides file and another redaction key (a price-table and a
redaction-config change).

chDB lets one process hold a store: the tests' own client is closed before every command run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tokentrail.sinks import close_embedded, connect

EVIDENCE_KEY = "evidence-test-key-0123456789"
PLANTED = {
    "email": "wilhelmina.planted@example.org",
    "secret": "AKIAQ3EGRTXWZB4NUY7K",
    "tool_email": "ferdinand.toolarg@example.net",
    "output_email": "ottilie.output@example.com",
}
PRICES = {"models": [{"provider": "openai", "model": "gpt-4o", "input_per_mtok": 9, "output_per_mtok": 30}]}


@dataclass
class Store:
    path: Path
    dsn: str
    planted_trace: str
    planted_prompt: str  # the raw user message, PII and all, as the service sent it
    planted_tool_arguments: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)

    def client(self) -> Any:
        return connect(self.dsn)

    def cli(self, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> Any:
        """`tokentrail ARGS` in a child process against this store (our client closed first)."""
        close_embedded()
        return subprocess.run(
            [sys.executable, "-m", "tokentrail.stream.cli", *args],
            input=stdin,
            capture_output=True,
            timeout=600,
            env={**self.env, **(env or {})},
        )


def _generate(seed: int, events: int, start: str | None = None) -> list[str]:
    args = ["generate", str(events), "--seed", str(seed)] + (["--start", start] if start else [])
    done = subprocess.run([sys.executable, "-m", "tokentrail.stream.cli", *args], capture_output=True, check=True)
    return done.stdout.decode().splitlines()


def _plant(lines: list[str]) -> tuple[list[str], str, str, dict[str, Any]]:
    """Put the planted values into one trace with a prompt, a tool call and a text output."""
    docs = []
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            doc = None
        docs.append(doc if isinstance(doc, dict) else None)
    kinds: dict[str, set[str]] = {}
    for doc in docs:
        if doc and "trace_id" in doc and "type" in doc:
            if doc["type"] == "output" and not doc.get("output"):
                continue
            kinds.setdefault(doc["trace_id"], set()).add(doc["type"])
    trace = next(t for t, k in kinds.items() if k >= {"prompt", "output", "tool_call"})
    prompt_text = f"Please mail the refund to {PLANTED['email']} today; the deploy key is {PLANTED['secret']}, use it."
    tool_args = {"customer_email": PLANTED["tool_email"], "order": "7781"}
    changed: dict[str, dict[str, Any]] = {}
    done: set[str] = set()
    for doc in docs:
        if not doc or doc.get("trace_id") != trace or doc["type"] in done:
            continue
        if doc["type"] == "prompt":
            doc["messages"][-1]["content"] = prompt_text
        elif doc["type"] == "tool_call":
            doc["tool"]["arguments"] = tool_args
        elif doc["type"] == "output" and doc.get("output"):
            doc["output"][0]["content"] = f"Done, a copy went to {PLANTED['output_email']}."
        else:
            continue
        done.add(doc["type"])
        changed[doc["event_id"]] = doc
    out = []
    for line, doc in zip(lines, docs, strict=True):
        # Redelivered copies of a planted event carry the same event id: plant them too.
        if doc and doc.get("event_id") in changed and doc.get("trace_id") == trace:
            out.append(json.dumps(changed[doc["event_id"]]))
        else:
            out.append(line)
    return out, trace, prompt_text, tool_args


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("evidence")
    lines, trace, prompt_text, tool_args = _plant(_generate(seed=11, events=3000))
    (folder / "first.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "later.jsonl").write_text("\n".join(_generate(seed=12, events=600, start="2026-11-20T12:00:00Z")) + "\n")
    (folder / "prices.json").write_text(json.dumps(PRICES))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENTRAIL_")}
    env["TOKENTRAIL_EVIDENCE_KEY"] = EVIDENCE_KEY
    made = Store(folder / "store", f"chdb://{folder / 'store'}", trace, prompt_text, tool_args, env)
    first = made.cli(
        "replay", str(folder / "first.jsonl"), "--clickhouse", made.dsn, env={"TOKENTRAIL_REDACTION_KEY": "r" * 32}
    )
    assert first.returncode == 0, first.stderr.decode()
    later = made.cli(
        "replay",
        str(folder / "later.jsonl"),
        "--clickhouse",
        made.dsn,
        "--prices",
        str(folder / "prices.json"),
        env={"TOKENTRAIL_REDACTION_KEY": "s" * 32},
    )
    assert later.returncode == 0, later.stderr.decode()
    yield made
    close_embedded()


def rows(store: Store, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    result: list[tuple[Any, ...]] = store.client().query(sql, parameters=params).result_rows
    return result


def looped_trace(store: Store) -> str:
    """The trace of the first loop detection (by trace id): a trace with model calls, tool calls and a detection."""
    return str(
        rows(store, "SELECT min(trace_id) FROM tokentrail.loop_detections FINAL WHERE kind = 'tool_cycle'")[0][0]
    )
