"""Tests for tokentrail.stream.synthetic: deterministic synthetic traffic and its ground truth."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from tokentrail.collectors.events import REASONS, InvalidEvent, decode_event
from tokentrail.stream.cli import main
from tokentrail.stream.synthetic import (
    DEFAULT_START,
    LEGIT_KINDS,
    LOOP_KINDS,
    GeneratorConfig,
    catalog,
    generate,
    iter_lines,
    sensitive,
)

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def traffic():
    return generate(GeneratorConfig(events=4000))


@pytest.fixture(scope="module")
def events(traffic):
    """The valid, first-delivery events, parsed, in emission order."""
    t = traffic.truth
    skip = set(t.malformed_lines) | set(t.redelivered_lines)
    return [json.loads(line) for i, line in enumerate(traffic.lines) if i not in skip]


def _by_trace(events, trace_id):
    return [e for e in events if e["trace_id"] == trace_id]


def _only(events, kind):
    return [e for e in events if e["type"] == kind]


def _sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def test_same_seed_gives_identical_lines():
    """Two runs with one config produce the same bytes, so tests and benchmarks can rely on them."""
    config = GeneratorConfig(events=1500)
    assert generate(config).lines == generate(config).lines


def test_different_seed_gives_different_lines():
    """The seed changes the traffic."""
    assert generate(GeneratorConfig(events=1500, seed=1)).lines != generate(GeneratorConfig(events=1500, seed=2)).lines


def test_iter_lines_streams_the_same_lines(traffic):
    """The streaming API yields exactly what generate() collects."""
    assert list(iter_lines(GeneratorConfig(events=4000))) == traffic.lines


def test_noise_does_not_change_the_valid_traffic(traffic):
    """Malformed lines and re-deliveries come from their own random stream: turning them off keeps the rest."""
    clean = generate(GeneratorConfig(events=4000, malformed_ratio=0, redelivery_ratio=0))
    skip = set(traffic.truth.malformed_lines) | set(traffic.truth.redelivered_lines)
    assert clean.lines == [line for i, line in enumerate(traffic.lines) if i not in skip]
    assert clean.truth.malformed == {} and clean.truth.redeliveries == 0


def test_event_count_is_close_to_requested(traffic):
    """The number of valid distinct events is the requested one, give or take the last trace."""
    assert 4000 <= traffic.truth.valid_events < 4000 + 200


def test_every_line_not_marked_malformed_validates(traffic):
    """Valid lines and re-deliveries pass the v1 contract."""
    for i, line in enumerate(traffic.lines):
        if i not in traffic.truth.malformed_lines:
            result = decode_event(line)
            assert not isinstance(result, InvalidEvent), (i, result)


def test_malformed_lines_give_the_recorded_reason():
    """Each malformed line is rejected with exactly the reason the ground truth names, all kinds occurring."""
    t = generate(GeneratorConfig(events=3000, malformed_ratio=0.2))
    assert len(t.truth.malformed_lines) == sum(t.truth.malformed.values()) > 0
    for i, reason in t.truth.malformed_lines.items():
        assert reason in REASONS
        result = decode_event(t.lines[i])
        assert isinstance(result, InvalidEvent) and result.reason == reason, (i, reason, result)
    assert set(t.truth.malformed) == {
        "not_json",
        "not_object",
        "missing_field",
        "invalid_value",
        "unknown_type",
        "unsupported_schema_version",
    }


def test_malformed_share_is_about_the_ratio(traffic):
    """Around 1% of lines are malformed and around 1% are re-deliveries by default."""
    t = traffic.truth
    assert 0.003 < len(t.malformed_lines) / t.valid_events < 0.02
    assert 0.003 < t.redeliveries / t.valid_events < 0.02


def test_redeliveries_are_byte_identical_earlier_lines(traffic):
    """A re-delivery repeats an earlier valid line byte for byte."""
    t = traffic.truth
    assert t.redelivered_lines
    for dup, original in t.redelivered_lines.items():
        assert original < dup
        assert original not in t.malformed_lines and original not in t.redelivered_lines
        assert traffic.lines[dup] == traffic.lines[original]


def test_counts_match_the_lines(traffic, events):
    """Ground-truth counts agree with what is in the lines."""
    t = traffic.truth
    assert t.lines == len(traffic.lines)
    assert t.valid_events == len(events) == len({e["event_id"] for e in events})
    assert t.events_by_type == dict(Counter(e["type"] for e in events))
    assert t.traces == len({e["trace_id"] for e in events})
    assert t.model_calls == len(_only(events, "prompt"))
    assert t.error_calls == sum(1 for e in _only(events, "output") if e["finish_reason"] == "error")
    unpriced = [e for e in _only(events, "prompt") if e["model"] in catalog.UNPRICED_MODELS]
    assert t.unpriced["calls"] == len(unpriced) > 0 and {e["provider"] for e in unpriced} == {"vllm"}


def test_event_ids_are_uuid7_and_unique(events):
    """Event ids are UUIDv7 strings, one per event."""
    ids = [e["event_id"] for e in events]
    assert all(UUID7.match(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_events_are_in_time_order_within_the_window(events):
    """First deliveries are ordered by ts, start at `start` and stay near `start + duration`."""
    ts = [e["ts"] for e in events]
    assert ts == sorted(ts) and all(t.endswith("Z") for t in ts)
    first = datetime.fromisoformat(ts[0].replace("Z", "+00:00"))
    last = datetime.fromisoformat(ts[-1].replace("Z", "+00:00"))
    assert first == DEFAULT_START
    assert last <= DEFAULT_START + timedelta(hours=1, minutes=5)


def test_start_and_duration_are_honoured():
    """A demo can place traffic at any time span."""
    start = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    t = generate(GeneratorConfig(events=2000, start=start, duration=timedelta(minutes=10), with_anomalies=False))
    ts = [json.loads(line)["ts"] for i, line in enumerate(t.lines) if i not in t.truth.malformed_lines]
    assert min(ts) == "2025-01-02T03:04:05.000Z"
    assert max(ts) < "2025-01-02T03:16"


def test_each_output_follows_its_prompt(events):
    """A model call is a prompt then an output with the same span and trace, later in time."""
    prompts = {}
    for e in events:
        if e["type"] == "prompt":
            prompts[e["span_id"]] = e
        elif e["type"] == "output":
            p = prompts[e["span_id"]]
            assert p["trace_id"] == e["trace_id"] and p["model"] == e["model"] and p["ts"] < e["ts"]
    assert len(prompts) == len(_only(events, "output"))


def test_tool_calls_answer_a_request(events):
    """Every tool_call event answers a tool request of an earlier output in its trace."""
    requested = {}
    for e in events:
        if e["type"] == "output":
            assert (e["finish_reason"] == "tool_calls") == bool(e["tool_calls"])
            for call in e["tool_calls"]:
                requested[call["id"]] = (e["trace_id"], e["span_id"], call)
        elif e["type"] == "tool_call":
            trace_id, span_id, call = requested[e["tool"]["call_id"]]
            assert e["trace_id"] == trace_id and e["parent_span_id"] == span_id
            assert e["tool"]["name"] == call["name"] and e["tool"]["arguments"] == call["arguments"]


def test_traffic_is_varied_and_realistic(events):
    """Tenants, features, providers, finish reasons and token fields all show up as real traffic has them."""
    outputs = _only(events, "output")
    assert {e["tenant"] for e in events} == {"northwind", "acme", "globex", "initech"}
    assert {e["feature"] for e in events} == set(catalog.FEATURES)
    assert {e["provider"] for e in outputs} == {"openai", "anthropic", "google", "vllm"}
    assert {"stop", "tool_calls", "length", "error"} <= {e["finish_reason"] for e in outputs}
    for e in outputs:
        u = e["usage"]
        assert u["cached_input_tokens"] <= u["input_tokens"] and u["reasoning_tokens"] <= u["output_tokens"]
        if e["finish_reason"] == "error":
            assert e["error"]["type"] and e["error"]["message"] and e["response_model"] is None
        else:
            assert e["response_model"] and e["latency_ms"] >= e["ttft_ms"] > 0
    assert all(e["usage"]["reasoning_tokens"] > 0 for e in outputs if e["model"] == "o3-mini" and e["error"] is None)
    assert sum(e["usage"]["cached_input_tokens"] > 0 for e in outputs) > len(outputs) / 3
    assert any(e["session_id"] for e in events)
    assert {"ok", "error"} == {e["tool"]["status"] for e in _only(events, "tool_call")}


def test_system_prompt_repeats_per_template_and_user_messages_are_unique(events, traffic):
    """One system prompt per (feature, prompt_id, prompt_version) at a time; user messages vary."""
    change = traffic.truth.prompt_change
    hashes = defaultdict(set)
    first_users = []
    for e in _only(events, "prompt"):
        key = (e["feature"], e["prompt_id"], e["prompt_version"])
        if key != (change["feature"], change["prompt_id"], change["prompt_version"]):
            hashes[key].add(_sha(e["messages"][0]["content"]))
        if len(e["messages"]) == 2:
            first_users.append(e["messages"][1]["content"])
    assert all(len(h) == 1 for h in hashes.values())
    assert len(set(first_users)) > 0.8 * len(first_users)


def _loop(traffic, kind):
    (entry,) = [x for x in traffic.truth.loops + traffic.truth.legit_repetition if x["kind"] == kind]
    return entry


def test_all_scenarios_are_recorded(traffic):
    """Every loop kind and every legitimate-repetition kind appears once in the ground truth."""
    assert sorted(x["kind"] for x in traffic.truth.loops) == sorted(LOOP_KINDS)
    assert sorted(x["kind"] for x in traffic.truth.legit_repetition) == sorted(LEGIT_KINDS)


def test_repeated_tool_call_loop_repeats(traffic, events):
    """Same tool, same arguments, same result, again and again."""
    entry = _loop(traffic, "repeated_tool_call")
    tools = _only(_by_trace(events, entry["trace_id"]), "tool_call")
    assert len(tools) == entry["repeats"] >= 10
    assert len({json.dumps([t["tool"]["name"], t["tool"]["arguments"], t["tool"]["result"]]) for t in tools}) == 1


def test_tool_cycle_loop_has_period_two(traffic, events):
    """Two tool calls alternate with unchanged arguments and results."""
    entry = _loop(traffic, "tool_cycle")
    calls = [
        json.dumps([t["tool"]["name"], t["tool"]["arguments"], t["tool"]["result"]])
        for t in _only(_by_trace(events, entry["trace_id"]), "tool_call")
    ]
    assert len(calls) == 2 * entry["repeats"]
    assert calls[0] != calls[1] and calls == calls[:2] * entry["repeats"]


def test_retry_storm_resends_the_same_prompt(traffic, events):
    """The same messages are sent many times in one trace."""
    entry = _loop(traffic, "repeated_prompt")
    prompts = [json.dumps(p["messages"]) for p in _only(_by_trace(events, entry["trace_id"]), "prompt")]
    assert len(prompts) == entry["repeats"] >= 10 and len(set(prompts)) == 1


def test_same_output_loop_grows_the_context(traffic, events):
    """The model answers identically while the input grows with nothing new from user or tools."""
    entry = _loop(traffic, "repeated_output")
    trace = _by_trace(events, entry["trace_id"])
    outputs = _only(trace, "output")
    assert len(outputs) == entry["repeats"] and len({o["output"][0]["content"] for o in outputs}) == 1
    inputs = [o["usage"]["input_tokens"] for o in outputs]
    assert inputs == sorted(inputs) and len(set(inputs)) == len(inputs)
    assert all(m["role"] in ("system", "assistant") for p in _only(trace, "prompt") for m in p["messages"][2:])


def test_legitimate_repetition_makes_progress(traffic, events):
    """Pagination changes arguments, polling changes results, batches change inputs, retries end."""
    pages = _only(_by_trace(events, _loop(traffic, "pagination")["trace_id"]), "tool_call")
    assert len({t["tool"]["name"] for t in pages}) == 1
    assert len({json.dumps(t["tool"]["arguments"]) for t in pages}) == len(pages) >= 5
    polls = [
        t
        for t in _only(_by_trace(events, _loop(traffic, "polling")["trace_id"]), "tool_call")
        if t["tool"]["name"] == "get_query_status"
    ]
    assert len({json.dumps(t["tool"]["arguments"]) for t in polls}) == 1
    assert len({json.dumps(t["tool"]["result"]) for t in polls}) == len(polls) >= 5
    batch = _by_trace(events, _loop(traffic, "batch")["trace_id"])
    inputs = [p["messages"][1]["content"] for p in _only(batch, "prompt")]
    answers = [o["output"][0]["content"] for o in _only(batch, "output")]
    assert len(set(inputs)) == len(inputs) >= 10 and len(set(answers)) < len(answers)
    retry = _only(_by_trace(events, _loop(traffic, "retry_recovered")["trace_id"]), "output")
    assert [o["finish_reason"] for o in retry] == ["error", "error", "stop"]


def test_model_swap_changes_response_model_silently(traffic, events):
    """For one (tenant, feature, model) the response model changes at the recorded time, nothing else does."""
    swap = traffic.truth.model_swap
    key = (swap["tenant"], swap["feature"], swap["model"])
    outs = [
        e for e in _only(events, "output") if (e["tenant"], e["feature"], e["model"]) == key and e["response_model"]
    ]
    before = {e["response_model"] for e in outs if e["ts"] < swap["ts"]}
    after = {e["response_model"] for e in outs if e["ts"] >= swap["ts"]}
    assert before == {swap["from"]} and after == {swap["to"]}
    others = {
        e["response_model"]
        for e in _only(events, "output")
        if e["model"] == swap["model"] and (e["tenant"], e["feature"]) != key[:2] and e["response_model"]
    }
    assert others == {swap["from"]}


def test_system_prompt_changes_without_a_version_bump(traffic, events):
    """The recorded prompt template's system text hash changes at the recorded time; the version stays."""
    change = traffic.truth.prompt_change
    prompts = [
        e for e in _only(events, "prompt") if (e["feature"], e["prompt_id"]) == (change["feature"], change["prompt_id"])
    ]
    assert {p["prompt_version"] for p in prompts} == {change["prompt_version"]}
    assert {_sha(p["messages"][0]["content"]) for p in prompts if p["ts"] < change["ts"]} == {change["from_sha256"]}
    assert {_sha(p["messages"][0]["content"]) for p in prompts if p["ts"] >= change["ts"]} == {change["to_sha256"]}


def test_announced_prompt_bump_changes_the_version(traffic, events):
    """The bumped template moves to a new version with new text; the old version's text never changes."""
    bump = traffic.truth.prompt_bump
    prompts = [e for e in _only(events, "prompt") if e["prompt_id"] == bump["prompt_id"]]
    old = {_sha(p["messages"][0]["content"]) for p in prompts if p["prompt_version"] == bump["from_version"]}
    new = {_sha(p["messages"][0]["content"]) for p in prompts if p["prompt_version"] == bump["to_version"]}
    assert len(old) == len(new) == 1 and old != new
    assert all(p["ts"] >= bump["ts"] for p in prompts if p["prompt_version"] == bump["to_version"])


def test_spend_spike_raises_one_tenants_traffic(traffic, events):
    """Inside the spike window the spike tenant sends several times its usual rate."""
    spike = traffic.truth.spend_spike
    calls = [e for e in _only(events, "prompt") if e["tenant"] == spike["tenant"]]
    inside = sum(spike["start"] <= e["ts"] < spike["end"] for e in calls)
    outside = len(calls) - inside
    assert spike["extra_traces"] > 0
    assert inside / 0.1 > 3 * outside / 0.9  # the window is a tenth of the hour


def test_pii_and_secrets_appear_in_a_modest_share(traffic, events):
    """Sensitive values sit in ~5-10% of traces, and every recorded sample is really in the lines."""
    t = traffic.truth
    assert 0.03 < t.sensitive_traces / t.traces < 0.12
    blob = "\n".join(traffic.lines)
    for kind, samples in t.sensitive_samples.items():
        for value in samples:
            assert json.dumps(value, ensure_ascii=False)[1:-1] in blob, (kind, value)
    for value in t.technical_samples:
        assert value in blob


def test_every_sensitive_kind_is_generated_and_well_formed():
    """All PII and secret kinds occur, shaped so validators accept them (Luhn, mod-97, key prefixes)."""
    t = generate(GeneratorConfig(events=4000, sensitive_ratio=1.0, with_anomalies=False)).truth
    assert set(t.sensitive) == set(sensitive.SENSITIVE)
    samples = t.sensitive_samples
    for card in samples["CREDIT_CARD"]:
        digits = re.sub(r"\D", "", card)
        assert len(digits) == 16 and sensitive.luhn_complete(digits[:-1]) == digits
    for iban in samples["IBAN_CODE"]:
        code = iban.replace(" ", "")
        assert int("".join(str(int(c, 36)) for c in code[4:] + code[:4])) % 97 == 1
    assert all(v.startswith("sk-proj-") for v in samples["OPENAI_KEY"])
    assert all(re.fullmatch(r"AKIA[A-Z2-7]{16}", v) for v in samples["AWS_ACCESS_KEY"])
    assert all(re.fullmatch(r"ghp_[A-Za-z0-9]{36}", v) for v in samples["GITHUB_TOKEN"])
    assert all(v.count(".") == 2 and v.startswith("eyJ") for v in samples["JWT"])
    assert all(v.startswith("postgres://") and "@" in v for v in samples["DATABASE_URL"])
    assert all("BEGIN RSA PRIVATE KEY" in v for v in samples["PRIVATE_KEY"])


def test_without_anomalies_there_is_nothing_to_find():
    """Ordinary traffic only: no loops, no swap, no prompt change, no spike."""
    t = generate(GeneratorConfig(events=2000, with_anomalies=False)).truth
    assert t.loops == [] and t.legit_repetition == []
    assert t.model_swap is None and t.prompt_change is None and t.prompt_bump is None and t.spend_spike is None


def test_custom_tenants_are_used():
    """Tenants the catalog does not know still get traffic, and only the configured tenants appear."""
    t = generate(GeneratorConfig(events=2000, tenants=("umbrella", "wayne")))
    skip = set(t.truth.malformed_lines)
    tenants = {json.loads(line)["tenant"] for i, line in enumerate(t.lines) if i not in skip}
    assert tenants == {"umbrella", "wayne"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"events": 0},
        {"malformed_ratio": 1.5},
        {"redelivery_ratio": -0.1},
        {"duration": timedelta(0)},
        {"start": datetime(2026, 1, 1)},
        {"tenants": ()},
    ],
)
def test_bad_config_is_refused_when_built(kwargs):
    """Bad settings raise ValueError at configuration time."""
    with pytest.raises(ValueError):
        GeneratorConfig(**kwargs)


def test_main_writes_json_lines_and_truth(tmp_path, capsys):
    """`tokentrail generate N` prints JSON Lines and can save the ground truth."""
    truth_file = tmp_path / "truth.json"
    assert (
        main(
            [
                "generate",
                "300",
                "--seed",
                "3",
                "--malformed-ratio",
                "0",
                "--redelivery-ratio",
                "0",
                "--duration",
                "5m",
                "--no-anomalies",
                "--truth",
                str(truth_file),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    truth = json.loads(truth_file.read_text())
    assert len(lines) == truth["lines"] == truth["valid_events"] >= 300
    assert all(not isinstance(decode_event(line), InvalidEvent) for line in lines)
    config = GeneratorConfig(
        seed=3, events=300, duration=timedelta(minutes=5), malformed_ratio=0, redelivery_ratio=0, with_anomalies=False
    )
    assert lines == generate(config).lines


def test_output_does_not_depend_on_the_process():
    """Hash randomisation differs per process; the bytes must not."""
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-m", "tokentrail.stream.cli", "generate", "400"], capture_output=True, env=env, check=True
        )
        outputs.append(run.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].decode().splitlines() == generate(GeneratorConfig(events=400)).lines
