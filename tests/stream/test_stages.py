"""The pipeline's pure stages: validation to dead letters, dedupe, redaction hook, pricing, rows."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from tokentrail.stream.pricing import PriceBook
from tokentrail.stream.stages import Inbound, build_pipeline

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
BASE = {
    "schema_version": 1,
    "ts": "2026-11-20T09:01:00.000Z",
    "trace_id": "t1",
    "span_id": "s1",
    "service": "svc",
    "tenant": "acme",
    "feature": "f",
    "provider": "openai",
    "model": "gpt-4o",
    "prompt_id": "p",
    "prompt_version": "v1",
}


def prompt(event_id: str, system: str = "You are terse.", user: str = "hi", span: str = "s1") -> dict[str, Any]:
    return {
        **BASE,
        "event_id": event_id,
        "type": "prompt",
        "span_id": span,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
    }


def output(
    event_id: str, text: str = "Hello there", model: str = "gpt-4o", span: str = "s1", **extra: Any
) -> dict[str, Any]:
    return {
        **BASE,
        "event_id": event_id,
        "type": "output",
        "span_id": span,
        "model": model,
        "response_model": model + "-2024",
        "output": [{"role": "assistant", "content": text}],
        "finish_reason": "stop",
        "usage": {"input_tokens": 1000, "output_tokens": 100, "cached_input_tokens": 400},
        **extra,
    }


def inbound(*docs: Any) -> list[Inbound]:
    out = []
    for i, doc in enumerate(docs):
        raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        out.append(Inbound(f"test:{i + 1}", raw, T0))
    return out


def uid(n: int) -> str:
    return f"00000000-0000-7000-8000-{n:012d}"


def test_invalid_messages_become_dead_letters_and_valid_ones_flow():
    """Invalid input is a dead-letter row with its reason; it does not stop the valid events around it."""
    pipeline = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True)
    batch = pipeline.process(
        inbound(
            prompt(uid(1)),
            b"{not json",
            {**output(uid(2)), "usage": {"input_tokens": -1, "output_tokens": 1}},
            output(uid(3)),
        )
    )
    assert [r["event_id"].int & 0xFFFFFFFFFFFF for r in batch.rows["events"]] == [1, 3]
    dead = batch.rows["deadletter"]
    assert [(d["reason"], d["field"], d["source"]) for d in dead] == [
        ("not_json", "", "test:2"),
        ("invalid_value", "usage.input_tokens", "test:3"),
    ]
    assert dead[0]["payload"] == "{not json"


def test_dead_letter_ids_are_deterministic():
    """The same raw message at the same source gets the same id, so re-delivery stores it once."""
    first = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True).process(inbound(b"oops"))
    again = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True).process(inbound(b"oops"))
    assert first.rows["deadletter"][0]["id"] == again.rows["deadletter"][0]["id"]


def test_dedupe_drops_repeated_event_ids_across_batches():
    """A re-delivered event is processed once; its delivery still leaves a receipt."""
    pipeline = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True)
    first = pipeline.process(inbound(prompt(uid(1))))
    second = pipeline.process(inbound(prompt(uid(1)), prompt(uid(2), span="s2")))
    assert len(first.rows["events"]) == 1 and len(second.rows["events"]) == 1
    assert second.duplicates == 1 and len(second.rows["receipts"]) == 2


def test_call_row_joins_its_prompt_and_is_priced():
    """The output's call row carries its prompt's hashes, tokens, and the genai-prices cost."""
    batch = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True).process(
        inbound(prompt(uid(1)), output(uid(2)))
    )
    (call,) = batch.rows["calls"]
    assert call["system_prompt_hash"] and call["prompt_hash"]
    expected = PriceBook().price("openai", "gpt-4o", 1000, 400, 100, T0)
    assert call["cost_usd"] == expected.cost_usd > 0 and call["priced"] == 1
    assert (call["input_tokens"], call["cached_input_tokens"], call["output_tokens"]) == (1000, 400, 100)
    assert call["status"] == "ok" and call["output_text"] == "Hello there"


def test_unknown_model_is_unpriced_not_free():
    """A model without a price is marked unpriced."""
    batch = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True).process(
        inbound(output(uid(1), model="in-house-7b"))
    )
    (call,) = batch.rows["calls"]
    assert call["priced"] == 0 and call["cost_usd"] == 0


def test_same_answer_same_output_hash_regardless_of_case_and_spacing():
    """Output hashes normalise case and whitespace; different answers differ."""
    rows = (
        build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True)
        .process(
            inbound(
                output(uid(1), "Refund approved.", span="a"),
                output(uid(2), "refund   APPROVED.", span="b"),
                output(uid(3), "Refund denied.", span="c"),
            )
        )
        .rows["calls"]
    )
    assert rows[0]["output_hash"] == rows[1]["output_hash"] != rows[2]["output_hash"]


def test_error_output_has_error_status():
    """An output with an error is a call with status error and the error type."""
    doc = output(uid(1), error={"type": "RateLimitError", "message": "429"}, finish_reason="error")
    (call,) = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True).process(inbound(doc)).rows["calls"]
    assert (call["status"], call["error_type"], call["finish_reason"]) == ("error", "RateLimitError", "error")


class UpperRedactor:
    """A stand-in for tokentrail.redaction: replaces 'secret' and counts it, so the hook's wiring is visible."""

    key_id = "upper"

    def redact_raw_many(self, payloads: list[bytes | str]) -> list[tuple[str, Counter[str]]]:
        texts = [p.decode() if isinstance(p, bytes) else p for p in payloads]
        return [(str(text), found) for text, found in self.redact_many(list(texts))]

    def redact_many(self, values: list[Any]) -> list[tuple[Any, Counter[str]]]:
        def walk(v: Any, found: Counter[str]) -> Any:
            if isinstance(v, str):
                found["SECRET"] += v.count("secret")
                return v.replace("secret", "<SECRET>")
            if isinstance(v, list):
                return [walk(x, found) for x in v]
            if isinstance(v, dict):
                return {walk(k, found): walk(x, found) for k, x in v.items()}
            return v

        out = []
        for value in values:
            found: Counter[str] = Counter()
            out.append((walk(value, found), found))
        return out

    def pseudonym(self, value: str) -> str:
        return f"<USER:{len(value)}>"


def test_redact_stage_cleans_text_payloads_and_dead_letters():
    """The redact stage reaches messages, outputs, tool results, user ids and dead-letter payloads."""
    tool = {
        **{k: BASE[k] for k in ("schema_version", "ts", "trace_id", "span_id", "service", "tenant", "feature")},
        "event_id": uid(3),
        "type": "tool_call",
        "tool": {"name": "db", "arguments": {"q": "secret"}, "result": "the secret"},
    }
    pipeline = build_pipeline(prices=PriceBook(), redactor=UpperRedactor())
    batch = pipeline.process(
        inbound(
            {**prompt(uid(1), user="my secret"), "user_id": "alice@example.com"},
            output(uid(2), "a secret"),
            tool,
            b"secret garbage",
        )
    )
    payloads = " ".join(r["payload"] for r in batch.rows["events"])
    assert "secret" not in payloads.replace("<SECRET>", "")
    assert batch.rows["events"][0]["user"] == "<USER:17>"
    assert batch.rows["calls"][0]["output_text"] == "a <SECRET>"
    assert json.loads(batch.rows["tool_calls"][0]["arguments"]) == {"q": "<SECRET>"}
    assert batch.rows["deadletter"][0]["payload"] == "<SECRET> garbage"
    assert [dict(a.findings) for a in batch.accepted] == [{"SECRET": 1}, {"SECRET": 1}, {"SECRET": 2}]
    assert {r["redaction_key_id"] for t in ("events", "calls", "tool_calls", "deadletter") for r in batch.rows[t]} == {
        "upper"
    }


def test_redact_stage_reaches_attributes_session_ids_and_ids_holding_pii():
    """Attributes (keys and values), session ids (pseudonymised) and a trace id holding PII are redacted;
    the rows and the event model both carry the redacted trace id."""
    doc = {
        **output(uid(1), "fine"),
        "attributes": {"note": "a secret", "secret-key": "v"},
        "session_id": "sess-secret",
        "trace_id": "trace-secret",
        "error": {"type": "E", "message": "the secret failed"},
    }
    batch = build_pipeline(prices=PriceBook(), redactor=UpperRedactor()).process(inbound(doc))
    (event,) = batch.rows["events"]
    (call,) = batch.rows["calls"]
    assert "secret" not in event["payload"].replace("<SECRET>", "")
    assert json.loads(event["payload"])["attributes"] == {"note": "a <SECRET>", "<SECRET>-key": "v"}
    assert event["session_id"] == call["session_id"] == "<USER:11>"
    assert event["trace_id"] == call["trace_id"] == batch.accepted[0].event.trace_id == "trace-<SECRET>"
    assert json.loads(event["payload"])["error"]["message"] == "the <SECRET> failed"


def test_redact_stage_reaches_dimension_labels_and_keeps_ordinary_ones():
    """A label holding PII takes its token in the payload and in every column read from the event model;
    ordinary labels (model, tenant, provider) come through as sent, so pricing and dashboards still work."""
    doc = {**output(uid(1), "fine"), "feature": "secret-plan", "finish_reason": "stop"}
    tool = {
        **{k: BASE[k] for k in ("schema_version", "ts", "trace_id", "span_id", "service", "tenant", "feature")},
        "event_id": uid(2),
        "type": "tool_call",
        "tool": {"name": "secret_lookup", "arguments": {}, "result": "ok"},
    }
    batch = build_pipeline(prices=PriceBook(), redactor=UpperRedactor()).process(inbound(doc, tool))
    (call,) = batch.rows["calls"]
    (tool_row,) = batch.rows["tool_calls"]
    assert call["feature"] == json.loads(batch.rows["events"][0]["payload"])["feature"] == "<SECRET>-plan"
    assert batch.accepted[0].event.feature == "<SECRET>-plan"
    assert (call["model"], call["tenant"], call["provider"], call["finish_reason"]) == (
        "gpt-4o",
        "acme",
        "openai",
        "stop",
    )
    assert tool_row["tool_name"] == "<SECRET>_lookup"
    assert batch.accepted[1].event.tool.name == "<SECRET>_lookup"


def test_raw_text_is_stored_only_when_asked_for():
    """Without a redactor, text is stored as sent only with allow_raw_text=True; otherwise building fails."""
    raw = build_pipeline(prices=PriceBook(), redactor=None, allow_raw_text=True)
    batch = raw.process(inbound(prompt(uid(1), user="keep me")))
    assert "keep me" in batch.rows["events"][0]["payload"]
    assert batch.rows["pii_findings"] == [] and batch.accepted[0].findings == {}


def test_pipeline_without_redactor_fails_closed():
    """Forgetting the redactor is a construction error that names both fixes, not silent raw storage."""
    with pytest.raises(ValueError, match="redactor=.*allow_raw_text=True"):
        build_pipeline(prices=PriceBook(), redactor=None)
