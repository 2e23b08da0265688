"""Loop and legitimate-repetition scenarios, as v1 wire events, for the loop detector's tests.

Each scenario is one trace built step by step the way an agent emits it: prompt → output (maybe
asking for tools) → tool_call events → the next prompt with the grown context. `loop_start` is
the index of the first event of the repeating part, so tests can measure detection delay in
events. `python tests/stream/loop_scenarios.py > scenarios.jsonl` writes them all out.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@dataclass
class Trace:
    """Builds one trace's events."""

    name: str
    kind: str | None  # the loop kind expected, or None for legitimate repetition
    model: str = "gpt-4o"
    events: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    loop_start: int | None = None
    _n: int = 0

    def __post_init__(self) -> None:
        self.trace_id = uuid.uuid5(uuid.NAMESPACE_URL, self.name).hex
        self.messages = [{"role": "system", "content": f"You are the {self.name} agent. Be precise."}]

    def mark_loop(self) -> None:
        self.loop_start = len(self.events)

    def _base(self, kind: str, span: str) -> dict[str, Any]:
        self._n += 1
        ts = T0 + timedelta(seconds=2 * self._n)
        return {
            "schema_version": 1,
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.name}/{self._n}")),
            "type": kind,
            "ts": ts.isoformat().replace("+00:00", "Z"),
            "trace_id": self.trace_id,
            "span_id": span,
            "service": "agents",
            "tenant": "acme",
            "feature": self.name,
        }

    def user(self, text: str) -> Trace:
        self.messages.append({"role": "user", "content": text})
        return self

    def call(
        self,
        answer: str = "",
        tools: Sequence[tuple[str, Any]] = (),
        error: bool = False,
        input_tokens: int | None = None,
        output_tokens: int = 40,
    ) -> Trace:
        """One model call on the current context; its answer (text or tool requests) joins the context."""
        span = f"{self.name}-{self._n}"
        tokens = input_tokens or 200 + 60 * len(self.messages)
        self.events.append(
            {**self._base("prompt", span), "provider": "openai", "model": self.model, "messages": list(self.messages)}
        )
        requested = [{"id": f"call_{self._n}_{i}", "name": n, "arguments": a} for i, (n, a) in enumerate(tools)]
        out = {
            **self._base("output", span),
            "provider": "openai",
            "model": self.model,
            "response_model": self.model + "-2024-08-06",
            "output": [{"role": "assistant", "content": answer}] if answer else [],
            "tool_calls": requested,
            "finish_reason": "error" if error else ("tool_calls" if tools else "stop"),
            "usage": {"input_tokens": tokens, "output_tokens": 0 if error else output_tokens},
        }
        if error:
            out["error"] = {"type": "RateLimitError", "message": "429 Too Many Requests"}
        self.events.append(out)
        if not error:
            self.messages.append({"role": "assistant", "content": answer or json.dumps([[n, a] for n, a in tools])})
        return self

    def tool(self, name: str, arguments: Any, result: Any, status: str = "ok") -> Trace:
        """The agent runs a tool the model asked for; its result joins the context."""
        span = f"{self.name}-tool-{self._n}"
        self.events.append(
            {
                **self._base("tool_call", span),
                "tool": {
                    "name": name,
                    "call_id": f"c{self._n}",
                    "arguments": arguments,
                    "result": result,
                    "status": status,
                },
            }
        )
        self.messages.append({"role": "tool", "content": json.dumps(result), "tool_call_id": f"c{self._n}"})
        return self

    def step(self, name: str, arguments: Any, result: Any) -> Trace:
        """Model asks for one tool, the tool runs."""
        return self.call(tools=[(name, arguments)]).tool(name, arguments, result)


# -- loops ------------------------------------------------------------------------------------


def same_tool_same_result() -> Trace:
    t = Trace("stuck-order-status", "repeated_tool_call").user("Where is order 7781?")
    t.mark_loop()
    for _ in range(10):
        t.step("get_order_status", {"order_id": "7781"}, {"status": "label_created"})
    return t


def same_tool_after_progress() -> Trace:
    t = Trace("progress-then-stuck", "repeated_tool_call").user("Refund order 7781")
    t.step("get_order", {"id": "7781"}, {"total": 42}).step("check_policy", {"id": "7781"}, {"refundable": True})
    t.mark_loop()
    for _ in range(8):
        t.step("issue_refund", {"id": "7781", "amount": 42}, {"error": "gateway timeout"})
    return t


def same_tool_json_string_arguments() -> Trace:
    t = Trace("string-args-loop", "repeated_tool_call").user("Find the invoice")
    t.mark_loop()
    for _ in range(9):
        t.step("search", '{"q": "invoice 2291"}', [])
    return t


def cycle_period_2() -> Trace:
    t = Trace("search-read-cycle", "tool_cycle").user("Where is the retry backoff configured?")
    t.mark_loop()
    for _ in range(6):
        t.step("search_code", {"query": "retry_backoff"}, [{"path": "lib/retry.py"}]).step(
            "read_file", {"path": "lib/retry.py"}, "BACKOFF = cfg"
        )
    return t


def cycle_period_3() -> Trace:
    t = Trace("plan-act-check-cycle", "tool_cycle").user("Deploy the fix")
    t.mark_loop()
    for _ in range(5):
        t.step("plan", {"goal": "deploy"}, "run tests").step("run_tests", {}, {"failed": 3}).step(
            "read_log", {"lines": 50}, "3 failures"
        )
    return t


def cycle_period_4_after_progress() -> Trace:
    t = Trace("four-step-cycle", "tool_cycle").user("Summarise Q3 revenue")
    t.step("list_tables", {}, ["orders", "regions"]).step("describe", {"table": "orders"}, ["amount", "region"])
    t.mark_loop()
    for _ in range(4):
        (
            t.step("run_sql", {"sql": "SELECT sum(amount) FROM orders"}, {"error": "timeout"})
            .step("explain", {"sql": "SELECT sum(amount) FROM orders"}, "full scan")
            .step("list_indexes", {"table": "orders"}, [])
            .step("describe", {"table": "orders"}, ["amount", "region"])
        )
    return t


def retry_storm_errors() -> Trace:
    t = Trace("retry-storm-429", "repeated_prompt").user("Classify ticket #5512")
    t.mark_loop()
    for _ in range(9):
        t.call(error=True)
    return t


def retry_storm_unparseable() -> Trace:
    t = Trace("retry-storm-parse", "repeated_prompt").user("Return JSON for ticket #77")
    t.mark_loop()
    for _ in range(8):
        t.call("Category: billing")  # the client cannot parse it and re-sends the same prompt
        t.messages.pop()  # ...without keeping the answer
    return t


def same_output_growing_context() -> Trace:
    t = Trace("self-feeding-answer", "repeated_output").user("Write the orders query")
    t.mark_loop()
    for _ in range(8):
        t.call("I need to inspect the schema of the orders table first.")
    return t


def same_output_growing_context_after_tools() -> Trace:
    t = Trace("answer-echo-after-tools", "repeated_output").user("What is our churn?")
    t.step("run_sql", {"sql": "SELECT churn FROM kpis"}, {"churn": 0.031})
    t.mark_loop()
    for _ in range(7):
        t.call("Churn is 3.1%. Let me double-check that.")
    return t


def spend_guard() -> Trace:
    t = Trace("huge-context-burn", "spend_guard").user("Analyse every log line")
    t.mark_loop()
    for i in range(6):
        t.user(f"chunk {i}: " + "log " * 50).call(f"Chunk {i} analysed.", input_tokens=120_000, output_tokens=2_000)
    return t


LOOPS: list[Callable[[], Trace]] = [
    same_tool_same_result,
    same_tool_after_progress,
    same_tool_json_string_arguments,
    cycle_period_2,
    cycle_period_3,
    cycle_period_4_after_progress,
    retry_storm_errors,
    retry_storm_unparseable,
    same_output_growing_context,
    same_output_growing_context_after_tools,
    spend_guard,
]


# -- legitimate repetition --------------------------------------------------------------------


def pagination() -> Trace:
    t = Trace("pagination", None).user("List all open orders")
    for page in range(1, 13):
        t.step(
            "search_orders",
            {"status": "open", "page": page},
            {"page": page, "orders": [f"o{page}{i}" for i in range(5)]},
        )
    return t.call("You have 60 open orders.")


def polling_changing_results() -> Trace:
    t = Trace("polling", None).user("Run the revenue report").step("run_sql", {"sql": "SELECT 1"}, {"query_id": "q1"})
    for pct in range(5, 100, 9):
        t.step("get_query_status", {"query_id": "q1"}, {"status": "running", "progress": pct})
    return t.step("get_query_status", {"query_id": "q1"}, {"status": "done"}).call("Done: EMEA leads.")


def batch_classification() -> Trace:
    t = Trace("batch-classifier", None)
    for i in range(25):
        t.messages = t.messages[:1]
        t.user(f"Classify ticket #{1000 + i}: my card was charged {i} times").call(["billing", "refund", "bug"][i % 3])
    return t


def retries_that_end() -> Trace:
    t = Trace("retries-that-end", None).user("Draft the refund email")
    for _ in range(3):
        t.call(error=True)
    return t.call("Dear customer, your refund is on its way.")


def tool_retries_that_end() -> Trace:
    t = Trace("tool-retries-that-end", None).user("Charge the card")
    for _ in range(3):
        t.step("charge", {"card": "tok_1", "amount": 10}, {"error": "timeout"})
    return t.step("charge", {"card": "tok_1", "amount": 10}, {"ok": True}).call("Charged.")


def long_chat() -> Trace:
    t = Trace("long-chat", None)
    for i in range(30):
        t.user("ok" if i % 3 else f"Tell me about topic {i}").call(
            "Sure!" if i % 3 else f"Topic {i} is interesting because {i}."
        )
    return t


def long_agent_distinct_steps() -> Trace:
    t = Trace("long-agent", None).user("Migrate the service")
    for i in range(25):
        t.step(["read_file", "edit_file", "run_tests"][i % 3], {"path": f"src/mod{i}.py"}, {"ok": True, "step": i})
    return t.call("Migration complete.")


def same_args_different_results() -> Trace:
    t = Trace("clock-reader", None).user("Watch the queue depth")
    for i in range(12):
        t.step("queue_depth", {"queue": "orders"}, {"depth": 100 - 7 * i})
    return t.call("The queue drained.")


def alternating_tools_with_progress() -> Trace:
    t = Trace("read-write-progress", None).user("Fix the lint errors")
    for i in range(10):
        t.step("read_file", {"path": f"src/f{i}.py"}, f"code {i}").step(
            "write_file", {"path": f"src/f{i}.py"}, {"written": i}
        )
    return t.call("All files fixed.")


def same_answer_new_inputs() -> Trace:
    t = Trace("faq-bot", None)
    for i in range(12):
        t.user(f"Customer {i}: what are your opening hours?").call("We are open 9-17 on weekdays.")
    return t


def repeated_system_prompt_many_traces() -> list[Trace]:
    return [
        Trace(f"short-trace-{i}", None)
        .user("Summarise: the meeting moved to Tuesday.")
        .call("Meeting moved to Tuesday.")
        for i in range(30)
    ]


LEGIT: list[Callable[[], Trace | list[Trace]]] = [
    pagination,
    polling_changing_results,
    batch_classification,
    retries_that_end,
    tool_retries_that_end,
    long_chat,
    long_agent_distinct_steps,
    same_args_different_results,
    alternating_tools_with_progress,
    same_answer_new_inputs,
    repeated_system_prompt_many_traces,
]


def all_traces() -> tuple[list[Trace], list[Trace]]:
    loops = [make() for make in LOOPS]
    legit: list[Trace] = []
    for make in LEGIT:
        made = make()
        legit += made if isinstance(made, list) else [made]
    return loops, legit


if __name__ == "__main__":
    loops, legit = all_traces()
    for trace in loops + legit:
        for event in trace.events:
            sys.stdout.write(json.dumps(event) + "\n")
