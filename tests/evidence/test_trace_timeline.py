"""`tokentrail trace` and `tokentrail evidence` on a replayed store: the numbers are the store's, the
bundle is byte-identical across runs and tamper-evident, and no planted PII reaches any file."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from evidence_store import PLANTED, looped_trace, rows

from tokentrail.sinks import required_version
from tokentrail.stream.evidence.bundle import check_bundle
from tokentrail.stream.evidence.timeline import TraceNotFound, load_timeline


def test_timeline_counts_costs_and_detections_match_the_store(store):
    """Calls, tool calls, tokens, cost and the loop detection are exactly what the store holds."""
    trace = looped_trace(store)
    timeline = load_timeline(store.client(), trace)
    (calls, cost, tokens_in, tokens_out) = rows(
        store,
        "SELECT count(), sum(cost_usd), sum(input_tokens), sum(output_tokens) FROM tokentrail.calls FINAL "
        "WHERE trace_id = {t:String}",
        t=trace,
    )[0]
    (tools,) = rows(store, "SELECT count() FROM tokentrail.tool_calls FINAL WHERE trace_id = {t:String}", t=trace)[0]
    totals = timeline["totals"]
    assert totals["model_calls"] == calls > 0 and totals["tool_calls"] == tools > 0
    assert Decimal(totals["cost_usd"]) == cost
    assert sum(Decimal(s["cost_usd"]) for s in timeline["steps"] if s["kind"] == "model_call") == cost
    assert (totals["tokens"]["input"], totals["tokens"]["output"]) == (tokens_in, tokens_out)
    stored = rows(
        store,
        "SELECT kind, repeats, tokens, toString(cost_usd), halt FROM tokentrail.loop_detections FINAL "
        "WHERE trace_id = {t:String} ORDER BY kind",
        t=trace,
    )
    shown = sorted(
        (d["kind"], d["repeats"], d["tokens"], d["cost_usd"], int(d["halted"])) for d in timeline["detections"]
    )
    assert shown == [tuple(r) for r in stored] and shown
    # Causal order: numbered 1..n, and a step never comes before its parent span's step.
    assert [s["step"] for s in timeline["steps"]] == list(range(1, calls + tools + 1))
    position = {s["span_id"]: s["step"] for s in timeline["steps"]}
    assert all(position[s["parent_span_id"]] < s["step"] for s in timeline["steps"] if s["parent_span_id"] in position)


def test_pii_counts_by_type_match_the_store(store):
    """The planted trace's PII section is the store's counts by entity type (and no values)."""
    timeline = load_timeline(store.client(), store.planted_trace)
    stored = rows(
        store,
        "SELECT entity, sum(count) FROM tokentrail.pii_findings FINAL WHERE trace_id = {t:String} GROUP BY entity",
        t=store.planted_trace,
    )
    by_entity: dict[str, int] = {}
    for finding in timeline["pii"]:
        by_entity[finding["entity"]] = by_entity.get(finding["entity"], 0) + finding["count"]
    assert by_entity == dict(stored)
    assert by_entity.get("EMAIL_ADDRESS", 0) >= 3, "three planted addresses were found"


def test_trace_command_prints_sections_and_complete_json(store):
    """`trace --json` is the library's timeline; the text form has a table per section."""
    trace = looped_trace(store)
    expected = load_timeline(store.client(), trace)
    as_json = store.cli("trace", trace, "--json", "--clickhouse", store.dsn)
    assert as_json.returncode == 0, as_json.stderr.decode()
    assert json.loads(as_json.stdout) == expected
    text = store.cli("trace", trace, "--clickhouse", store.dsn).stdout.decode()
    for title in ("Steps (causal order)", "Detections", "PII and secrets found", "Changes in effect", "Totals"):
        assert title in text
    assert expected["totals"]["cost_usd"] in text and "tool_cycle" in text


def test_unknown_trace_is_a_usage_error(store):
    """A trace that is not in the store (or not in that tenant) exits 2 and says so."""
    missing = store.cli("trace", "0" * 32, "--clickhouse", store.dsn)
    assert missing.returncode == 2 and b"not in the store" in missing.stderr
    wrong_tenant = store.cli("trace", looped_trace(store), "--tenant", "nobody", "--clickhouse", store.dsn)
    assert wrong_tenant.returncode == 2
    try:
        load_timeline(store.client(), looped_trace(store), tenant="nobody")
    except TraceNotFound:
        pass
    else:
        raise AssertionError("a trace read under another tenant must not be found")


def test_bundle_is_byte_identical_and_complete(store, tmp_path):
    """Two runs give the same bytes; the manifest's hashes and versions are right; tampering shows."""
    trace = looped_trace(store)
    for run in ("one", "two"):
        done = store.cli("evidence", trace, "--out", str(tmp_path / run), "--clickhouse", store.dsn)
        assert done.returncode == 0, done.stderr.decode()
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == ["manifest.json", "summary.md", "timeline.json"]
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((tmp_path / "one" / name).read_bytes()).hexdigest()
    versions = manifest["versions"]
    assert versions["schema"] == {"store": required_version(), "code": required_version()}
    assert versions["price_tables"] and versions["redaction"] and versions["evidence_key_ids"]
    assert json.loads((tmp_path / "one" / "timeline.json").read_text()) == load_timeline(store.client(), trace)
    assert check_bundle(tmp_path / "one") == []
    summary = tmp_path / "one" / "summary.md"
    summary.write_text(summary.read_text().replace("tool_cycle", "tool_cyclf", 1))
    assert check_bundle(tmp_path / "one") == ["summary.md"]


def test_no_planted_pii_in_any_output(store, tmp_path):
    """Neither the bundle's files nor the terminal output hold a planted value (redacted before storage)."""
    done = store.cli("evidence", store.planted_trace, "--out", str(tmp_path / "b"), "--clickhouse", store.dsn)
    assert done.returncode == 0, done.stderr.decode()
    texts = [p.read_text() for p in (tmp_path / "b").iterdir()]
    texts.append(store.cli("trace", store.planted_trace, "--clickhouse", store.dsn).stdout.decode())
    texts.append(store.cli("trace", store.planted_trace, "--json", "--clickhouse", store.dsn).stdout.decode())
    timeline = json.loads(texts[-1])
    assert {s["kind"] for s in timeline["steps"]} == {"model_call", "tool_call"}, "the planted trace has both"
    for text in texts:
        for value in PLANTED.values():
            assert value not in text
    assert "EMAIL_ADDRESS" in texts[-1]
