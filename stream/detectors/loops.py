"""Token-spend loops, per trace: what repeats without progress, and what it has burned.

Shapes caught (docs/architecture.md, token-spend loops):
- `repeated_tool_call`: the same tool with the same arguments returning the same result, again
  and again. Pagination (arguments change) and polling (results change) are different calls.
- `tool_cycle`: a cycle of 2 to 4 different tool calls repeating, also after genuine progress
  (only the tail of the trace is compared).
- `repeated_prompt`: the same prompt re-sent (a retry storm). Retries that end stay below the bar.
- `repeated_output`: the model giving the same answer with no new user or tool input in between
  while its context grows (a framework feeding the answer back to itself).
- `spend_guard`: tokens or cost in a trace above a threshold within a window.

Progress is what separates a loop from legitimate repetition: every signature includes what
would change if work were advancing (arguments, results, new input). Each kind is reported (to the
alerts topic) once per trace, again when its repeats have doubled; the stored row is updated on
every repeat (same `detection_id`, higher `version`), so the store shows the loop still burning.

State is one JSON-ready dict per (tenant, trace) in any MutableMapping, keyed by `state_key`: a
dict in the embedded runner, a changelog-backed faust Table in the worker (so a restart keeps it).
Tenants are kept apart: a tenant that reuses another tenant's trace id gets a state, a detection
id and a halt of its own, never the other's. Event time orders what happens inside a trace (spend
windows, first seen); state expires by processing time (when the processor last touched the
trace, `seen_ms`), so no event, however far in the future its `ts`, can expire other traces.
`expire` bounds memory (idle time, then `max_traces`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..batch import Accepted, Batch

DETECTION_NAMESPACE = uuid.UUID("b2f5d7a4-31c1-4c8e-8f1e-7d5b2a9c0e11")
MAX_STEPS = 24  # tool steps remembered per trace: enough for 3 cycles of period 4, twice
MAX_KEYS = 256  # distinct signatures counted per trace
EVIDENCE_CHARS = 300


@dataclass(frozen=True)
class LoopConfig:
    """Thresholds. Defaults sit above what legitimate retries do (2-3) and catch loops within a few steps."""

    repeated_tool_call: int = 5  # identical (tool, arguments, result) occurrences
    cycle_repeats: int = 3  # full cycles of a period-2..4 pattern
    repeated_prompt: int = 5  # identical prompts sent
    repeated_output: int = 4  # identical answers in a row with no new input and a growing context
    spend_tokens: int = 400_000  # tokens per trace within spend_window_s ...
    spend_usd: Decimal = Decimal("5")  # ... or cost
    spend_window_s: int = 900
    trace_ttl_s: int = 6 * 3600  # state of a trace not seen for this long (processing time) is dropped
    # At a sweep, beyond this many states the least recently seen go: a replay of days of history
    # reads them in minutes, so idle time alone would keep every trace (the pipeline process caches as many).
    max_traces: int = 200_000
    halt_on: frozenset[str] = field(default_factory=frozenset)  # kinds that also publish a halt record

    def __post_init__(self) -> None:
        for name in ("repeated_tool_call", "cycle_repeats", "repeated_prompt", "repeated_output"):
            if getattr(self, name) < 2:
                raise ValueError(f"loop threshold {name} must be >= 2 (a single occurrence is not a repetition)")
        unknown = set(self.halt_on) - set(KINDS)
        if unknown:
            raise ValueError(f"halt_on names unknown detection kinds {sorted(unknown)}; known: {list(KINDS)}")


def state_key(tenant: str, trace_id: str) -> str:
    """The detector's state key for a trace of a tenant. A label cannot hold NUL (docs/events.md),
    so the pair splits back unambiguously (`split_state_key`)."""
    return f"{tenant}\x00{trace_id}"


def split_state_key(key: str) -> tuple[str, str]:
    """(tenant, trace_id) from a `state_key`."""
    tenant, sep, trace_id = key.partition("\x00")
    if not sep:
        raise KeyError(f"not a (tenant, trace) state key: {key!r}")
    return tenant, trace_id


def detection_id(tenant: str, trace_id: str, kind: str) -> uuid.UUID:
    """Stable per (tenant, trace, kind): each repeat updates one stored row; tenants never share one."""
    return uuid.uuid5(DETECTION_NAMESPACE, f"{tenant}\x00{trace_id}\x00{kind}")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


KINDS = ("repeated_tool_call", "tool_cycle", "repeated_prompt", "repeated_output", "spend_guard")


# Built once (json.dumps with options builds an encoder per call); the output is json.dumps's.
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str).encode


def _sig(*parts: Any) -> str:
    text = _CANONICAL(parts)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _clip(value: Any) -> Any:
    text = value if isinstance(value, str) else _CANONICAL(value)
    return text if len(text) <= EVIDENCE_CHARS else text[:EVIDENCE_CHARS] + "…"


def _bump(counts: dict[str, int], key: str) -> int:
    counts[key] = counts.get(key, 0) + 1
    if len(counts) > MAX_KEYS:  # forget the rarest: a loop's key is never the rarest
        counts.pop(min(counts, key=counts.__getitem__))
    return counts[key]


def _new_state(item: Accepted, ts_ms: int, seen_ms: int) -> dict[str, Any]:
    e = item.event
    return {
        "tenant": e.tenant,
        "service": e.service,
        "feature": e.feature,
        "first_ms": ts_ms,
        "last_ms": ts_ms,
        "seen_ms": seen_ms,  # processing time of the last event: what expiry goes by
        "events": 0,
        "tokens": 0,
        "cost": "0",
        "spend": [],
        "steps": [],
        "step_info": {},
        "step_first": {},
        "tool_counts": {},
        "prompt_counts": {},
        "prompt_first": {},
        "last_prompt": [],
        "span_new_input": {},
        "output": None,
        "reported": {},
    }


class LoopDetector:
    """A pipeline stage: updates per-trace state from each event and emits loop detections."""

    EXPIRE_EVERY = 50  # batches between expiry sweeps

    def __init__(
        self, config: LoopConfig | None = None, state: MutableMapping[str, dict[str, Any]] | None = None
    ) -> None:
        self.config = config or LoopConfig()
        self.state: MutableMapping[str, dict[str, Any]] = state if state is not None else {}
        self._batches = 0

    def __call__(self, batch: Batch) -> None:
        touched: dict[str, dict[str, Any]] = {}
        rows = batch.rows.setdefault("loop_detections", [])
        ttl_ms = self.config.trace_ttl_s * 1000
        seen_ms = 0
        for item in batch.accepted:
            key = state_key(item.event.tenant, item.event.trace_id)
            st = touched.get(key)
            ts_ms = _ms(item.event.ts)
            seen_ms = _ms(item.inbound.received_at)  # processing time: when the processor read it
            if st is None:
                st = self.state.get(key)
                # States written before seen_ms existed count as seen now (kept one more TTL).
                if st is not None and seen_ms - st.setdefault("seen_ms", seen_ms) > ttl_ms:
                    st = None  # expired, whether or not a sweep (expire) has removed it yet
            if st is None:
                st = _new_state(item, ts_ms, seen_ms)
            st["seen_ms"] = max(st["seen_ms"], seen_ms)
            touched[key] = st
            for detection in self.observe(st, item, ts_ms):
                if detection.pop("notify"):
                    batch.detections.append(detection)
                rows.append(detection)
        for key, st in touched.items():  # one write per trace per batch: one changelog record
            self.state[key] = st
        self._batches += 1
        if touched and self._batches % self.EXPIRE_EVERY == 0:
            self.expire(seen_ms)

    # -- per event ------------------------------------------------------------------------------

    def observe(self, st: dict[str, Any], item: Accepted, ts_ms: int) -> list[dict[str, Any]]:
        """Fold one event into its trace's state; return any detections it triggers."""
        st["events"] += 1
        st["last_ms"] = max(st["last_ms"], ts_ms)
        doc, found = item.doc, []
        kind = doc["type"]
        if kind == "tool_call":
            found += self._tool(st, doc, ts_ms)
        elif kind == "prompt":
            found += self._prompt(st, doc, ts_ms)
        else:
            found += self._output(st, item, ts_ms)
        reports = (self._report(st, item, ts_ms, *f) for f in found if f is not None)
        return [r for r in reports if r is not None]

    def _tool(self, st: dict[str, Any], doc: dict[str, Any], ts_ms: int) -> list[tuple[Any, ...] | None]:
        tool = doc["tool"]
        sig = _sig(tool["name"], tool.get("arguments"), tool.get("result"))
        st["step_info"].setdefault(
            sig, {"tool": tool["name"], "arguments": _clip(tool.get("arguments")), "result": _clip(tool.get("result"))}
        )
        st["step_first"].setdefault(sig, ts_ms)
        if len(st["step_info"]) > MAX_KEYS:
            st["step_info"].pop(next(iter(st["step_info"])))
            st["step_first"].pop(next(iter(st["step_first"])), None)
        st["steps"] = (st["steps"] + [sig])[-MAX_STEPS:]
        count = _bump(st["tool_counts"], sig)
        out: list[tuple[Any, ...] | None] = []
        cycle = self._cycle(st["steps"])
        if cycle is not None:
            period, cycles = cycle
            pattern = st["steps"][-period:]
            evidence = {"period": period, "cycles": cycles, "cycle": [st["step_info"].get(s, {}) for s in pattern]}
            out.append(("tool_cycle", cycles, evidence, st["step_first"].get(pattern[0], ts_ms)))
        elif count >= self.config.repeated_tool_call and "tool_cycle" not in st["reported"]:
            evidence = {**st["step_info"][sig], "occurrences": count}
            out.append(("repeated_tool_call", count, evidence, st["step_first"][sig]))
        return out

    def _cycle(self, steps: list[str]) -> tuple[int, int] | None:
        """(period, full cycles) if the tail of `steps` repeats a pattern of 2-4 distinct steps enough times."""
        need = self.config.cycle_repeats
        for period in (2, 3, 4):
            pattern = steps[-period:]
            if len(steps) < period * need or len(set(pattern)) < 2:
                continue
            cycles = 1
            while len(steps) >= period * (cycles + 1) and steps[-period * (cycles + 1) : -period * cycles] == pattern:
                cycles += 1
            if cycles >= need:
                return period, cycles
        return None

    def _prompt(self, st: dict[str, Any], doc: dict[str, Any], ts_ms: int) -> list[tuple[Any, ...] | None]:
        messages = doc["messages"]
        hashes = [_sig(m["role"], m["content"]) for m in messages]
        prompt = _sig(hashes)
        # New input = a user or tool message appended since this trace's previous prompt. A prompt
        # that does not extend the previous one starts a new conversation branch: new input too.
        previous = st["last_prompt"]
        extends = len(hashes) > len(previous) and hashes[: len(previous)] == previous
        appended = messages[len(previous) :] if extends else messages
        st["span_new_input"][doc["span_id"]] = not extends or any(m["role"] in ("user", "tool") for m in appended)
        st["last_prompt"] = hashes[-MAX_KEYS:] if len(hashes) <= MAX_KEYS else []
        if len(st["span_new_input"]) > 64:
            st["span_new_input"].pop(next(iter(st["span_new_input"])))
        st["prompt_first"].setdefault(prompt, ts_ms)
        count = _bump(st["prompt_counts"], prompt)
        if count >= self.config.repeated_prompt:
            last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            evidence = {
                "prompt_hash": prompt,
                "sends": count,
                "messages": len(messages),
                "last_user_message": _clip(last_user),
            }
            return [("repeated_prompt", count, evidence, st["prompt_first"][prompt])]
        return []

    def _output(self, st: dict[str, Any], item: Accepted, ts_ms: int) -> list[tuple[Any, ...] | None]:
        e, doc = item.event, item.doc
        cost = Decimal(st["cost"]) + (item.price.cost_usd if item.price else 0)
        tokens = e.usage.input_tokens + e.usage.output_tokens
        st["tokens"] += tokens
        st["cost"] = str(cost)
        out: list[tuple[Any, ...] | None] = [
            self._spend(st, ts_ms, tokens, item.price.cost_usd if item.price else Decimal(0))
        ]
        if e.error is not None or doc["tool_calls"]:
            # A failed call answers nothing (retries are the prompt detector's business); a model
            # asking for tools is judged by what the tools return (the tool detectors).
            return out
        text = "\n".join(m["content"] for m in doc["output"])
        answer = _sig(" ".join(text.lower().split()))
        new_input = st["span_new_input"].pop(e.span_id, True)
        prev = st["output"]
        if prev and prev["hash"] == answer and not new_input and e.usage.input_tokens > prev["input_tokens"]:
            streak, since = prev["streak"] + 1, prev["since"]
        else:
            streak, since = 1, ts_ms
        st["output"] = {"hash": answer, "streak": streak, "since": since, "input_tokens": e.usage.input_tokens}
        if streak >= self.config.repeated_output:
            evidence = {"output": _clip(text), "streak": streak, "input_tokens_now": e.usage.input_tokens}
            out.append(("repeated_output", streak, evidence, since))
        return out

    def _spend(self, st: dict[str, Any], ts_ms: int, tokens: int, cost: Decimal) -> tuple[Any, ...] | None:
        horizon = ts_ms - self.config.spend_window_s * 1000
        st["spend"] = [s for s in st["spend"] if s[0] >= horizon] + [[ts_ms, tokens, str(cost)]]
        window_tokens = sum(s[1] for s in st["spend"])
        window_cost = sum(Decimal(s[2]) for s in st["spend"])
        if window_tokens > self.config.spend_tokens or window_cost > self.config.spend_usd:
            evidence = {
                "window_s": self.config.spend_window_s,
                "window_tokens": window_tokens,
                "window_cost_usd": str(window_cost),
                "threshold_tokens": self.config.spend_tokens,
                "threshold_usd": str(self.config.spend_usd),
                "calls": len(st["spend"]),
            }
            return ("spend_guard", len(st["spend"]), evidence, st["spend"][0][0])
        return None

    # -- reporting ------------------------------------------------------------------------------

    def _report(
        self,
        st: dict[str, Any],
        item: Accepted,
        ts_ms: int,
        kind: str,
        repeats: int,
        evidence: dict[str, Any],
        first_ms: int,
    ) -> dict[str, Any] | None:
        """The detection row, stored on every new repeat; `notify` on the first and when repeats double."""
        notified = st["reported"].get(kind)
        notify = notified is None or repeats >= 2 * notified
        if notify:
            st["reported"][kind] = repeats
        e = item.event
        return {
            "notify": notify,
            "detection_id": detection_id(e.tenant, e.trace_id, kind),
            "version": repeats,
            "is_update": 1 if notified is not None else 0,
            "trace_id": e.trace_id,
            "tenant": st["tenant"],
            "service": st["service"],
            "feature": st["feature"],
            "kind": kind,
            "repeats": repeats,
            "tokens": st["tokens"],
            "cost_usd": Decimal(st["cost"]),
            "first_seen": _dt(first_ms),
            "trace_started": _dt(st["first_ms"]),
            "detected_at": e.ts,
            "event_id": e.event_id,
            "events_in_trace": st["events"],
            "halt": 1 if kind in self.config.halt_on else 0,
            "evidence": _CANONICAL(evidence),
        }

    def expire(self, now_ms: int | None = None) -> int:
        """Drop traces the processor has not seen for trace_ttl_s (processing time, `now_ms`: the
        wall clock by default), then the least recently seen beyond max_traces. Returns how many went.

        Never by event time: one event stamped far ahead would otherwise expire every other trace.
        """
        now_ms = _ms(datetime.now(UTC)) if now_ms is None else now_ms
        horizon = now_ms - self.config.trace_ttl_s * 1000
        seen = {key: st.get("seen_ms", now_ms) for key, st in list(self.state.items())}
        stale = [key for key, at in seen.items() if at < horizon]
        over = len(seen) - len(stale) - self.config.max_traces
        if over > 0:
            fresh = sorted((at, key) for key, at in seen.items() if at >= horizon)
            stale += [key for _, key in fresh[:over]]
        for key in stale:
            del self.state[key]
        return len(stale)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
