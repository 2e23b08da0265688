"""`tokentrail verify` against the stored keyed hashes, and `tokentrail changes --around`."""

from __future__ import annotations

import json

from evidence_store import EVIDENCE_KEY, rows

from tokentrail.stream.evidence.receipts import canonical_text, content_hmac, content_parts, key_id


def test_verify_accepts_the_original_and_rejects_a_one_character_change(store, tmp_path):
    """The raw prompt (PII and all) matches call N of the trace; one changed character does not."""
    original = tmp_path / "original.txt"
    original.write_text(store.planted_prompt + "\n")  # as saved from a ticket: a final newline
    yes = store.cli("verify", store.planted_trace, str(original), "--clickhouse", store.dsn)
    assert yes.returncode == 0, yes.stderr.decode()
    assert b"match: step" in yes.stdout and b"model call" in yes.stdout and b"message[" in yes.stdout
    changed = tmp_path / "changed.txt"
    changed.write_text(store.planted_prompt.replace("refund", "refunt", 1))
    no = store.cli("verify", store.planted_trace, str(changed), "--clickhouse", store.dsn)
    assert no.returncode == 1 and b"no match" in no.stdout


def test_verify_tool_arguments_as_json(store, tmp_path):
    """Tool arguments given as JSON in any key order match their canonical form."""
    shuffled = json.dumps(dict(reversed(list(store.planted_tool_arguments.items()))), indent=4)
    path = tmp_path / "args.json"
    path.write_text(shuffled)
    done = store.cli("verify", store.planted_trace, str(path), "--clickhouse", store.dsn)
    assert done.returncode == 0, done.stderr.decode()
    assert b"tool call" in done.stdout and b"tool.arguments" in done.stdout


def test_verify_needs_the_right_key(store, tmp_path):
    """Without the key, or under another key, verify cannot answer: exit 2, naming the key ids."""
    path = tmp_path / "original.txt"
    path.write_text(store.planted_prompt)
    other = store.cli(
        "verify", store.planted_trace, str(path), "--clickhouse", store.dsn,
        env={"TOKENTRAIL_EVIDENCE_KEY": "another-key-0123456789"},
    )  # fmt: skip
    assert other.returncode == 2 and key_id(EVIDENCE_KEY.encode()).encode() in other.stderr
    none = store.cli(
        "verify", store.planted_trace, str(path), "--clickhouse", store.dsn, env={"TOKENTRAIL_EVIDENCE_KEY": ""}
    )
    assert none.returncode == 2 and b"TOKENTRAIL_EVIDENCE_KEY" in none.stderr


def test_store_holds_hashes_not_text(store):
    """The stored hash of the planted prompt message is the HMAC of the raw text; the text is not stored."""
    stored = rows(
        store,
        "SELECT content_parts, content_hmacs, payload FROM tokentrail.events FINAL "
        "WHERE trace_id = {t:String} AND type = 'prompt' ORDER BY ts LIMIT 1",
        t=store.planted_trace,
    )[0]
    parts = dict(zip(stored[0], stored[1], strict=True))
    digest = content_hmac(EVIDENCE_KEY.encode(), store.planted_prompt)
    assert digest in parts.values()
    assert store.planted_prompt not in stored[2] and "wilhelmina" not in stored[2]


def test_content_parts_and_canonical_text():
    """Every message, output, tool-call argument and tool result is a part; JSON values are canonical."""
    prompt = {"type": "prompt", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
    assert list(content_parts(prompt)) == [("message[0]:system", "s"), ("message[1]:user", "u")]
    output = {"type": "output", "output": [{"content": "o"}], "tool_calls": [{"arguments": {"b": 1, "a": 2}}]}
    assert list(content_parts(output)) == [("output[0]", "o"), ("tool_call[0].arguments", '{"a":2,"b":1}')]
    tool = {"type": "tool_call", "tool": {"arguments": "raw", "result": [1, "é"]}}
    assert list(content_parts(tool)) == [("tool.arguments", "raw"), ("tool.result", '[1,"é"]')]
    assert canonical_text("already text") == "already text"


def test_changes_around_lists_every_kind_in_order(store):
    """Model, prompt, price-table and redaction changes come back oldest first within the window."""
    done = store.cli(
        "changes", "--around", "2026-11-20T11:00:00Z", "--window", "2h", "--json", "--clickhouse", store.dsn
    )
    assert done.returncode == 0, done.stderr.decode()
    found = json.loads(done.stdout)
    assert [c["time"] for c in found] == sorted(c["time"] for c in found)
    kinds = {c["kind"] for c in found}
    assert {"response_model", "system_prompt", "prompt_version", "price_table", "redaction"} <= kinds
    price = [c for c in found if c["kind"] == "price_table"]
    assert all(c["from"].startswith("genai-prices") and "overrides" in c["to"] for c in price)
    assert all(c["time"] >= "2026-11-20T12:00:00" for c in price), "the price table changed with the second replay"
    stored = rows(store, "SELECT count() FROM tokentrail.changes FINAL WHERE first_seen <= '2026-11-20 13:00:00'")
    assert len([c for c in found if c["kind"] not in ("price_table", "redaction")]) == stored[0][0]


def test_changes_window_and_feature_filter(store):
    """Outside the window nothing is listed; --feature keeps that feature's changes only."""
    quiet = store.cli("changes", "--around", "2026-10-01T00:00:00Z", "--json", "--clickhouse", store.dsn)
    assert quiet.returncode == 0 and json.loads(quiet.stdout) == []
    one = store.cli(
        "changes", "--around", "2026-11-20T11:00:00Z", "--window", "2h", "--feature", "order-support", "--json",
        "--clickhouse", store.dsn,
    )  # fmt: skip
    found = json.loads(one.stdout)
    assert found and {c["feature"] for c in found} == {"order-support"}
    table = store.cli("changes", "--around", "2026-11-20T11:00:00Z", "--window", "2h", "--clickhouse", store.dsn)
    assert b"price_table" in table.stdout and b"response_model" in table.stdout
