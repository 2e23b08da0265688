"""The collector SDK as a service owner uses it: events are valid, nested, and never hurt the caller."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

import tokentrail.collectors as tt
from tokentrail.collectors.events import OutputEvent, PromptEvent, decode_event

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Where is order 7781?"}]


def test_model_call_emits_prompt_then_output(collector, memory, sent):
    """A finished model call emits a valid prompt and output sharing a span, with usage and latency."""
    with collector.model_call(
        provider="openai",
        model="gpt-4o",
        messages=MESSAGES,
        feature="order-support",
        prompt_id="order_assistant",
        prompt_version="v3",
        params={"temperature": 0.2},
    ) as call:
        call.finish(
            response_model="gpt-4o-2024-08-06",
            output="It shipped.",
            finish_reason="stop",
            usage={"input_tokens": 40, "output_tokens": 3, "cached_input_tokens": 32},
        )
    prompt, output = sent(collector, memory)
    assert isinstance(prompt, PromptEvent) and isinstance(output, OutputEvent)
    assert prompt.span_id == output.span_id and prompt.trace_id == output.trace_id
    assert prompt.messages[1].content == "Where is order 7781?" and prompt.params == {"temperature": 0.2}
    assert (output.tenant, output.feature, output.prompt_version) == ("northwind", "order-support", "v3")
    assert output.output[0].content == "It shipped." and output.usage.cached_input_tokens == 32
    assert output.latency_ms is not None and output.latency_ms >= 0 and output.error is None
    assert prompt.ts <= output.ts and prompt.event_id != output.event_id


def test_messages_are_snapshotted(collector, memory, sent):
    """Appending to the message history after the call does not change what the prompt recorded."""
    history = list(MESSAGES)
    with collector.model_call(provider="openai", model="gpt-4o", messages=history, feature="f") as call:
        call.finish(output="ok")
    history.append({"role": "assistant", "content": "later"})
    prompt, _ = sent(collector, memory)
    assert len(prompt.messages) == 2


def test_user_exception_propagates_and_is_recorded(collector, memory, sent):
    """The user's exception passes through untouched; the output event records it as an error."""

    class RateLimited(Exception):
        pass

    with pytest.raises(RateLimited, match="slow down"):
        with collector.model_call(provider="openai", model="gpt-4o", messages=MESSAGES, feature="f"):
            raise RateLimited("slow down")
    _, output = sent(collector, memory)
    assert output.error.type == "RateLimited" and output.error.message == "slow down"
    assert output.finish_reason == "error"


def test_unfinished_call_still_leaves_evidence(collector, memory, sent):
    """A call left without finish() still emits an output marked as unfinished."""
    with collector.model_call(provider="openai", model="gpt-4o", messages=MESSAGES, feature="f"):
        pass
    _, output = sent(collector, memory)
    assert output.error.type == "unfinished"


def test_nested_calls_share_the_trace(collector, memory, sent):
    """Calls inside a trace share its trace_id and defaults and record the trace's span as parent."""
    with collector.trace(feature="refund-drafts", user_id="u-17", session_id="s-1") as scope:
        with collector.model_call(provider="anthropic", model="claude-sonnet-4-0", messages=MESSAGES) as call:
            call.finish(output="draft")
        with collector.tool_call("lookup_refund", arguments={"order": "7781"}, call_id="call_1") as tool:
            tool.set_result({"status": "eligible"})
    prompt, output, tool_event = sent(collector, memory)
    assert {prompt.trace_id, output.trace_id, tool_event.trace_id} == {scope.trace_id}
    assert prompt.parent_span_id == tool_event.parent_span_id == scope.context.span_id
    assert prompt.feature == tool_event.feature == "refund-drafts"
    assert (prompt.user_id, prompt.session_id) == ("u-17", "s-1")
    assert tool_event.tool.result == {"status": "eligible"} and tool_event.tool.call_id == "call_1"


def test_separate_traces_get_separate_ids(collector, memory, sent):
    """Two top-level calls are two traces."""
    for _ in range(2):
        with collector.model_call(provider="openai", model="gpt-4o", messages=MESSAGES, feature="f") as call:
            call.finish(output="x")
    events = sent(collector, memory)
    assert events[0].trace_id != events[2].trace_id


def test_tool_call_decorator_sync_and_async(collector, memory, sent):
    """As a decorator, a tool call records bound arguments, the return value, and errors."""

    @collector.tool_call
    def search_orders(query: str, limit: int = 5) -> list[str]:
        return [query] * 2

    @collector.tool_call("refund")
    async def refund(order: str) -> dict[str, str]:
        raise PermissionError("not allowed")

    with collector.trace(feature="order-support"):
        assert search_orders("7781") == ["7781", "7781"]
        with pytest.raises(PermissionError):
            asyncio.run(refund("7781"))
    ok, failed = sent(collector, memory)
    assert (
        ok.tool.name == "search_orders"
        and ok.tool.arguments == {"query": "7781"}
        and ok.tool.result == ["7781", "7781"]
    )
    assert failed.tool.name == "refund" and failed.tool.status == "error"
    assert failed.tool.result == {"error": "PermissionError", "message": "not allowed"}


def test_adopts_the_active_opentelemetry_span(collector, memory, sent):
    """With no tokentrail trace, the active OpenTelemetry span's ids are adopted."""
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("handle request") as span:
        with collector.model_call(provider="openai", model="gpt-4o", messages=MESSAGES, feature="f") as call:
            call.finish(output="x")
    prompt, _ = sent(collector, memory)
    assert prompt.trace_id == f"{span.get_span_context().trace_id:032x}"
    assert prompt.parent_span_id == f"{span.get_span_context().span_id:016x}"


def test_unencodable_values_are_kept_as_text(collector, memory, sent):
    """A tool result that JSON cannot encode is recorded as its repr rather than lost."""

    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque>"

    with collector.tool_call("t", arguments={"x": {1, 2}}, feature="f") as tool:
        tool.set_result(Opaque())
    (event,) = sent(collector, memory)
    assert event.tool.result == "<Opaque>" and sorted(event.tool.arguments["x"]) == [1, 2]


class SlowTransport(tt.InMemoryTransport):
    """The in-memory transport, taking a long time per batch, so the queue fills up."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def export(self, batch: Sequence[Any]) -> None:
        self.gate.wait(10)
        super().export(batch)


def test_full_queue_drops_and_counts_without_blocking():
    """When the queue is full, emitting drops and counts `queue_full` and returns immediately."""
    transport = SlowTransport()
    c = tt.Collector(
        service="s",
        transport=transport,
        register_atexit=False,
        settings=tt.CollectorSettings(max_queue=100, batch_size=10, flush_interval=0.01),
    )
    times = []
    for _ in range(1000):
        t0 = time.perf_counter()
        with c.model_call(provider="openai", model="m", messages=MESSAGES, feature="f") as call:
            call.finish(output="x")
        times.append(time.perf_counter() - t0)
    times.sort()
    stats = c.stats()
    assert stats["emitted"] == 2000
    assert stats["dropped"]["queue_full"] >= 2000 - 100 - 10  # at most one batch in flight plus the queue
    # The bound of docs/collector.md: p99 under 5 ms, no call near the transport's 10 s stall.
    assert times[990] < 0.005 and times[-1] < 0.5, f"p99 {times[990] * 1e3:.2f} ms, max {times[-1] * 1e3:.1f} ms"
    transport.gate.set()
    assert c.close(5)
    assert len(transport.records) + c.stats()["dropped"]["queue_full"] == 2000


class ExplodingTransport(SlowTransport):
    def export(self, batch: Sequence[Any]) -> None:
        raise RuntimeError("transport bug")

    def flush(self, timeout: float) -> bool:
        raise RuntimeError("flush bug")


def test_a_raising_transport_never_reaches_the_caller():
    """Transport failures are counted and logged, never raised into the service's code."""
    c = tt.Collector(service="s", transport=ExplodingTransport(), register_atexit=False)
    with c.model_call(provider="openai", model="m", messages=MESSAGES, feature="f") as call:
        call.finish(output="x")
    c.flush(2)
    assert c.stats()["dropped"]["transport_error"] == 2
    c.close(2)


def test_bad_configuration_fails_at_startup():
    """Missing service or destination is a ValueError that says how to fix it."""
    with pytest.raises(ValueError, match="service"):
        tt.Collector(service="", transport=tt.InMemoryTransport())
    with pytest.raises(ValueError, match="lacks export"):
        tt.Collector(service="s", transport=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_queue"):
        tt.CollectorSettings(max_queue=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENTRAIL_")}
    code = "import tokentrail.collectors as tt; tt.init(service='svc')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "TOKENTRAIL_KAFKA_BOOTSTRAP" in proc.stderr


def test_module_api_is_a_noop_before_init():
    """Before init(), the module-level functions accept calls and record nothing."""
    code = """
import tokentrail.collectors as tt
with tt.trace(feature="f"):
    with tt.model_call(provider="openai", model="m", messages=[]) as call:
        call.finish(output="x")
    @tt.tool_call
    def f(x): return x + 1
    assert f(1) == 2
assert tt.stats()["emitted"] == 0
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_init_with_jsonl_file(tmp_path):
    """init(jsonl_path=...) captures events to a JSON Lines file that replay can read."""
    path = tmp_path / "events.jsonl"
    code = f"""
import tokentrail.collectors as tt
tt.init(service="svc", tenant="acme", jsonl_path={str(path)!r})
with tt.model_call(provider="openai", model="m", messages=[{{"role": "user", "content": "hi"}}], feature="f") as call:
    call.finish(output="x")
"""  # no explicit close: the atexit hook must flush
    subprocess.run([sys.executable, "-c", code], check=True)
    lines = path.read_bytes().splitlines()
    assert [decode_event(line).type for line in lines] == ["prompt", "output"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_keeps_emitting(tmp_path):
    """After fork, the child gets its own exporter thread and its events still go out."""
    path = tmp_path / "events.jsonl"
    c = tt.Collector(service="s", transport=tt.JsonlFileTransport(path), register_atexit=False)
    with c.model_call(provider="openai", model="m", messages=MESSAGES, feature="parent") as call:
        call.finish(output="x")
    assert c.flush(5)
    pid = os.fork()
    if pid == 0:  # child
        try:
            with c.model_call(provider="openai", model="m", messages=MESSAGES, feature="child") as call:
                call.finish(output="y")
            ok = c.flush(5)
            os._exit(0 if ok else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    c.close()
    features = [json.loads(line)["feature"] for line in path.read_bytes().splitlines()]
    assert features == ["parent", "parent", "child", "child"]
