"""The scenarios the processor must detect, and the look-alikes it must not flag.

Four runaway loops (the same tool call, a tool cycle, a retried prompt, a repeated output), a
silent `response_model` swap, a system-prompt edit without a version bump; next to pagination,
polling, batch classification, retries that recover and an announced prompt bump. Each sits at a
fixed share of the requested events (`schedule`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from . import catalog, text
from .config import EDITED, SPIKE, SWAP
from .traces import ToolRound, TraceWriter

Scenario = Callable[[], None]


def sha256_hex(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


class ScenarioWriter(TraceWriter):
    """A `TraceWriter` that also writes the scenarios, at the points `_scenarios` schedules."""

    def _scenarios(self) -> list[tuple[float, Scenario]]:
        """(share of the events produced, scenario) for each scenario; sets the spike's truth."""
        t = self.c.tenants

        def first_with(feature: str) -> str:
            return next((x for x in t if feature in self.mix[x]), t[0])

        a, w, e = SPIKE
        self.truth.spend_spike = {
            "tenant": self.spike_tenant,
            "start": self._fmt(self.t0 + int(a * self.span)),
            "end": self._fmt(self.t0 + int((a + w) * self.span)),
            "extra_rate": e,
            "extra_traces": 0,
        }
        return [
            (0.08, lambda: self._pagination(first_with("order-support"))),
            (0.15, lambda: self._same_tool_loop(t[-1])),
            (0.22, lambda: self._polling(first_with("sql-analyst"))),
            (0.30, lambda: self._cycle_loop(first_with("code-review"))),
            (0.36, lambda: self._batch(first_with("ticket-triage"))),
            (0.39, lambda: self._prompt_change(first_with(EDITED))),
            (0.45, lambda: self._retry_storm(t[2 % len(t)])),
            (0.50, self._prompt_bump),
            (0.54, lambda: self._model_swap(t[0])),
            (0.62, lambda: self._same_output_loop(t[-1])),
            (0.68, lambda: self._retry_recovered(first_with("refund-drafts"))),
        ]

    def _same_tool_loop(self, tenant: str) -> None:
        tr, order = self._begin(tenant, "order-support", "gpt-4o"), text.SLOTS["order"](self.rng)
        self._record(tr, "repeated_tool_call", 14)
        msgs = [{"role": "system", "content": tr.system}, {"role": "user", "content": f"Where is my order {order}?"}]
        stuck = {"order_id": order, "status": "label_created", "carrier": None, "eta": None}
        self._tool_rounds(tr, msgs, [("get_order_status", {"order_id": order}, stuck)] * 14, tr.spec["tools"])

    def _cycle_loop(self, tenant: str) -> None:
        tr = self._begin(tenant, "code-review")
        self._record(tr, "tool_cycle", 8)
        msgs = [
            {"role": "system", "content": tr.system},
            {"role": "user", "content": "Review PR #4711: where is the retry backoff configured?"},
        ]
        hit = [{"path": "lib/retry.py", "line": 42}]
        code = "from config import BACKOFF\n\ndef retry(fn):\n    return with_backoff(fn, BACKOFF)\n"
        pair: list[ToolRound] = [
            ("search_code", {"query": "retry_backoff"}, hit),
            ("read_file", {"path": "lib/retry.py", "start_line": 1}, code),
        ]
        self._tool_rounds(tr, msgs, pair * 8, tr.spec["tools"])

    def _retry_storm(self, tenant: str) -> None:
        tr = self._begin(tenant, "ticket-triage")
        self._record(tr, "repeated_prompt", 18)
        msgs = self._opening(tr)  # the client cannot parse the answer and re-sends the same prompt
        for _ in range(18):
            self._call(tr, msgs, "Category: billing. Priority: p2.")

    def _same_output_loop(self, tenant: str) -> None:
        tr = self._begin(tenant, "sql-analyst")
        self._record(tr, "repeated_output", 10)
        msgs, out = self._opening(tr), "I need to inspect the schema of the orders table before writing the query."
        for _ in range(10):  # the framework feeds the answer back and asks again: no new input
            self._call(tr, msgs, out)
            msgs.append({"role": "assistant", "content": out})

    def _pagination(self, tenant: str) -> None:
        tr = self._begin(tenant, "order-support", "gpt-4o")
        self._record(tr, "pagination", 7)
        msgs = [
            {"role": "system", "content": tr.system},
            {"role": "user", "content": "List all my open orders from this year, please."},
        ]
        pages = [
            (
                "search_orders",
                {"query": "*", "status": "open", "page": n},
                {"page": n, "orders": [text.SLOTS["order"](self.rng) for _ in range(5)], "has_more": n < 7},
            )
            for n in range(1, 8)
        ]
        self._tool_rounds(tr, msgs, pages, tr.spec["tools"])
        self._call(tr, msgs, "You have 35 open orders; 3 of them are awaiting payment.")

    def _polling(self, tenant: str) -> None:
        tr = self._begin(tenant, "sql-analyst")
        self._record(tr, "polling", 6)
        msgs, qid = self._opening(tr), f"q-{self.rng.getrandbits(32):08x}"
        tools = (*tr.spec["tools"], "get_query_status")
        rounds: list[ToolRound] = [
            ("run_sql", {"sql": "SELECT region, sum(amount) FROM orders GROUP BY region"}, {"query_id": qid})
        ]
        rounds += [
            ("get_query_status", {"query_id": qid}, {"status": "running", "progress": pct})
            for pct in (5, 22, 47, 71, 93)
        ]
        rounds.append(("get_query_status", {"query_id": qid}, {"status": "succeeded", "rows": 3}))
        self._tool_rounds(tr, msgs, rounds, tools)
        self._call(tr, msgs, "EMEA leads with 41% of revenue, then AMER with 37%.")

    def _batch(self, tenant: str) -> None:
        tr = self._begin(tenant, "ticket-triage")
        self._record(tr, "batch", 20)
        for _ in range(20):  # distinct tickets, answers from a handful of labels
            tr.slots = text.Slots(self.rng)
            self._call(tr, self._opening(tr), text.label_text(self.rng))

    def _retry_recovered(self, tenant: str) -> None:
        tr = self._begin(tenant, "refund-drafts")
        self._record(tr, "retry_recovered", 3)
        msgs = self._opening(tr)
        for _ in range(2):
            self._call(tr, msgs, error=catalog.ERRORS["anthropic"][0])
        self._call(tr, msgs, text.output_text("refund-drafts", self.rng, tr.slots))

    def _prompt_change(self, tenant: str) -> None:
        """Refund-email v4 is edited in place; traffic on both sides makes the change observable."""
        feature, (pid, ver) = EDITED, catalog.FEATURES[EDITED]["prompt"]
        for _ in range(3):
            self._trace(tenant, feature)
        old, new = self.system[(pid, ver)], catalog.CHANGED_SYSTEM_PROMPTS[(pid, ver)]
        self.system[(pid, ver)] = new
        self.prompt_edit = (new, self._clock())
        self.truth.prompt_change = {
            "feature": feature,
            "prompt_id": pid,
            "prompt_version": ver,
            "from_sha256": sha256_hex(old),
            "to_sha256": sha256_hex(new),
            "ts": self._fmt(self._clock()),
        }
        for _ in range(3):
            self._trace(tenant, feature)

    def _prompt_bump(self) -> None:
        pid = catalog.FEATURES["ticket-triage"]["prompt"][0]
        self.version["ticket-triage"] = "v3"
        self.truth.prompt_bump = {
            "feature": "ticket-triage",
            "prompt_id": pid,
            "from_version": "v2",
            "to_version": "v3",
            "ts": self._fmt(self._clock()),
        }

    def _model_swap(self, tenant: str) -> None:
        """The provider serves a new snapshot under the same name for one (tenant, feature, model)."""
        feature, model, snapshot = SWAP
        for _ in range(3):
            self._trace(tenant, feature, model)
        self.swap = (snapshot, self._clock())
        self.truth.model_swap = {
            "tenant": tenant,
            "feature": feature,
            "provider": "openai",
            "model": model,
            "from": catalog.RESPONSE_MODELS[model],
            "to": snapshot,
            "ts": self._fmt(self._clock()),
        }
        for _ in range(3):
            self._trace(tenant, feature, model)
