"""Deterministic synthetic v1 wire traffic, with the ground truth of what is hidden in it.

The input of `tokentrail demo`, `tokentrail generate N`, tests and benchmarks. A seed fixes every
byte, so a test or a benchmark can state what the processor must find. Traffic looks like real
services: several tenants and features, agent traces with tool calls, chats, single-shot
classification and summaries on priced models plus one self-hosted unpriced model; PII and secrets
in a few traces; errors, truncations. With `with_anomalies`, scenarios the processor must detect
are injected at fixed points of the stream (four runaway loops, a silent `response_model` swap, a
system-prompt edit without a version bump, a spend spike) next to look-alikes it must NOT flag
(pagination, polling, batch classification, retries that recover, an announced prompt bump).
Malformed lines and exact re-deliveries are mixed in from a separate random stream, so changing
their ratios leaves the valid traffic byte-identical.

`events` is approximate: traces are whole, so the number of valid distinct events lands in
[events, events + size of the last trace). Scenarios sit at fixed shares of `events`; from ~1,000
events all of them are reached (one not reached is absent from the truth), below ~2,000 they
dominate the traffic. Valid lines are in time order; a re-delivery repeats an earlier line, so its
timestamp is older than its neighbours', as on a real at-least-once transport.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import random
import re
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import text

__all__ = [
    "GeneratorConfig",
    "Truth",
    "Traffic",
    "generate",
    "iter_lines",
    "main",
    "DEFAULT_START",
    "LOOP_KINDS",
    "LEGIT_KINDS",
    "MALFORMED_KINDS",
]

DEFAULT_START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LOOP_KINDS = ("repeated_tool_call", "tool_cycle", "repeated_prompt", "repeated_output")
LEGIT_KINDS = ("pagination", "polling", "batch", "retry_recovered")
# How a line is broken -> the reason `decode_event` must give for it.
MALFORMED_KINDS = {
    "truncated": "not_json",
    "json_array": "not_object",
    "missing_field": "missing_field",
    "bad_uuid": "invalid_value",
    "negative_tokens": "invalid_value",
    "unknown_type": "unknown_type",
    "schema_version_2": "unsupported_schema_version",
}
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_TENANT_WEIGHT = {"northwind": 3, "acme": 3, "globex": 2, "initech": 2}
_SPIKE = (0.72, 0.10, 2.0)  # window start and width (fractions of the duration), extra rate (x total)
_SWAP = ("order-support", "gpt-4o", "gpt-4o-2024-11-20")  # for the first tenant: feature, model, new snapshot
_EDITED = "refund-drafts"  # the feature whose system prompt is edited without a version bump


@dataclass
class GeneratorConfig:
    """What to generate. Same config, same bytes."""

    seed: int = 7
    events: int = 10_000  # valid distinct events wanted (approximate, see the module docstring)
    start: datetime = DEFAULT_START  # fixed by default so output is reproducible; the demo passes now - duration
    duration: timedelta = timedelta(hours=1)
    malformed_ratio: float = 0.01  # malformed lines per valid line
    redelivery_ratio: float = 0.01  # exact re-deliveries per valid line
    tenants: tuple[str, ...] = ("northwind", "acme", "globex", "initech")
    with_anomalies: bool = True
    sensitive_ratio: float = 0.07  # share of ordinary traces carrying PII or a secret

    def __post_init__(self) -> None:
        self.tenants = tuple(self.tenants)
        if self.events < 1:
            raise ValueError(f"events must be >= 1, got {self.events}")
        for name in ("malformed_ratio", "redelivery_ratio", "sensitive_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.duration <= timedelta(0):
            raise ValueError(f"duration must be positive, got {self.duration}")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware, e.g. datetime(..., tzinfo=timezone.utc)")
        if not self.tenants or not all(self.tenants):
            raise ValueError("tenants must be a non-empty list of names")


@dataclass
class Truth:
    """What the generated lines contain, for asserting what the processor found. Line indexes are 0-based."""

    seed: int
    requested_events: int
    lines: int = 0
    valid_events: int = 0  # distinct valid events (re-deliveries and malformed lines excluded)
    events_by_type: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "output": 0, "tool_call": 0})
    traces: int = 0
    model_calls: int = 0
    error_calls: int = 0
    unpriced: dict[str, Any] = field(default_factory=lambda: {"models": list(text.UNPRICED_MODELS), "calls": 0})
    malformed: dict[str, int] = field(default_factory=dict)  # reason -> lines
    malformed_lines: dict[int, str] = field(default_factory=dict)  # line index -> reason
    redeliveries: int = 0
    redelivered_lines: dict[int, int] = field(default_factory=dict)  # duplicate's index -> original's
    loops: list[dict] = field(default_factory=list)  # {trace_id, kind, tenant, feature, model, repeats, ts}
    legit_repetition: list[dict] = field(default_factory=list)  # same shape, kind in LEGIT_KINDS
    model_swap: dict | None = None  # {tenant, feature, provider, model, from, to, ts}
    prompt_change: dict | None = None  # {feature, prompt_id, prompt_version, from_sha256, to_sha256, ts}
    prompt_bump: dict | None = None  # announced (version bumped): must NOT be flagged
    spend_spike: dict | None = None  # {tenant, start, end, extra_rate, extra_traces}
    sensitive: dict[str, int] = field(default_factory=dict)  # entity kind -> values injected
    sensitive_samples: dict[str, list[str]] = field(default_factory=dict)  # up to 5 values per kind
    sensitive_traces: int = 0
    technical_samples: list[str] = field(default_factory=list)  # non-PII look-alikes, up to 20

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Traffic:
    lines: list[str]  # JSON Lines in emission order, malformed lines and re-deliveries included
    truth: Truth


def generate(config: GeneratorConfig | None = None) -> Traffic:
    """All lines in memory plus the complete ground truth. For big N use `iter_lines`."""
    config = config or GeneratorConfig()
    truth = Truth(config.seed, config.events)
    return Traffic(list(iter_lines(config, truth)), truth)


def iter_lines(config: GeneratorConfig | None = None, truth: Truth | None = None) -> Iterator[str]:
    """Stream the lines (no trailing newline). `truth`, if given, is complete once the iterator is exhausted."""
    config = config or GeneratorConfig()
    return _Generator(config, truth or Truth(config.seed, config.events)).lines()


def _sha256(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def _as_text(result: Any) -> str:
    """A tool result as the tool message content the model sees."""
    return result if isinstance(result, str) else _ENCODE(result)


class _Trace:
    """One trace being built: who, which model, and its own clock."""

    __slots__ = (
        "id",
        "tenant",
        "feature",
        "spec",
        "base",
        "call",
        "params",
        "system",
        "t",
        "cached",
        "leaks",
        "leaked",
        "model",
        "slots",
    )


class _Generator:
    def __init__(self, config: GeneratorConfig, truth: Truth):
        self.c, self.truth = config, truth
        self.rng = random.Random(f"traffic:{config.seed}")
        self.noise = random.Random(f"noise:{config.seed}")  # malformed + re-deliveries only
        self.heap: list = []
        self.seq = self.produced = 0
        self.t0 = int(config.start.timestamp() * 1000)
        self.span = int(config.duration.total_seconds() * 1000)
        self.recent: deque = deque(maxlen=1000)
        self.sec_cache: dict[int, str] = {}
        self.system = dict(text.SYSTEM_PROMPTS)
        self.version = {f: s["prompt"][1] for f, s in text.FEATURES.items()}
        self.swap: tuple | None = None  # (new response_model, from ms), once the scenario ran
        self.prompt_edit: tuple | None = None  # (new system text, from ms), once the scenario ran
        # Events the silent changes may touch are tagged when built, and rewritten when emitted.
        self.watch = (
            ((config.tenants[0], *_SWAP[:2]), (_EDITED, self.version[_EDITED])) if config.with_anomalies else None
        )
        self.tenant_w = [_TENANT_WEIGHT.get(t, 2) for t in config.tenants]
        self.mix = {t: text.TENANT_FEATURES.get(t, text.DEFAULT_FEATURES) for t in config.tenants}
        self.spike_tenant = config.tenants[1 % len(config.tenants)] if config.with_anomalies else None
        a, w, e = _SPIKE  # the window in progress units: it holds (1 + e) times the usual rate
        self.spike_window = (a / (1 + w * e), (a + w * (1 + e)) / (1 + w * e)) if self.spike_tenant else (2, 2)
        self.scenarios = deque(sorted(self._scenarios()) if config.with_anomalies else [])

    # --- driving -------------------------------------------------------------------------------

    def lines(self) -> Iterator[str]:
        while self.produced < self.c.events:
            progress = self.produced / self.c.events
            job = self.scenarios.popleft()[1] if self.scenarios and self.scenarios[0][0] <= progress else None
            yield from self._drain(self._clock())
            (job or self._ordinary)()
        yield from self._drain(None)

    def _clock(self) -> int:
        """Stream time for the current progress (share of `events` produced): events are spread
        evenly over the duration, except that the spike window packs (1 + extra) times as many."""
        p, (p1, p2) = self.produced / self.c.events, self.spike_window
        (a, w, e), f = _SPIKE, p
        if self.spike_tenant:
            k = 1 + w * e
            f = p * k if p < p1 else a + (p - p1) * k / (1 + e) if p < p2 else p * k - w * e
        return self.t0 + int(min(f, 1.0) * self.span)

    def _drain(self, until: int | None) -> Iterator[str]:
        heap, truth, noise = self.heap, self.truth, self.noise
        while heap and (until is None or heap[0][0] <= until):
            ts, _, kind, line, tag = heapq.heappop(heap)
            if tag:
                line = self._silent_change(line, tag, ts)
            truth.valid_events += 1
            truth.events_by_type[kind] += 1
            self.recent.append((truth.lines, line))
            truth.lines += 1
            yield line
            if noise.random() < self.c.malformed_ratio:
                bad, reason = self._malformed(json.loads(line))
                truth.malformed[reason] = truth.malformed.get(reason, 0) + 1
                truth.malformed_lines[truth.lines] = reason
                truth.lines += 1
                yield bad
            if noise.random() < self.c.redelivery_ratio:
                index, again = noise.choice(self.recent)
                truth.redeliveries += 1
                truth.redelivered_lines[truth.lines] = index
                truth.lines += 1
                yield again

    def _silent_change(self, line: str, tag: str, ts: int) -> str:
        """A change happens at one instant: events from then on carry it, in-flight traces included."""
        change = self.swap if tag == "swap" else self.prompt_edit
        if change is None or ts < change[1]:
            return line
        ev = json.loads(line)
        if tag == "prompt":
            ev["messages"][0] = {"role": "system", "content": change[0]}
        elif ev["response_model"]:  # failed calls report none
            ev["response_model"] = change[0]
        return _ENCODE(ev)

    def _malformed(self, ev: dict) -> tuple[str, str]:
        """A broken copy of the event just emitted (fresh event_id, so it never shadows a valid one)."""
        rng = self.noise
        kinds = [k for k in MALFORMED_KINDS if k != "negative_tokens" or ev["type"] == "output"]
        kind = rng.choice(kinds)
        bad = dict(ev, event_id=self._uuid(self.t0, rng))
        if kind == "truncated":
            line = _ENCODE(bad)
            return line[: rng.randint(1, len(line) - 1)], MALFORMED_KINDS[kind]
        if kind == "json_array":
            return _ENCODE([bad]), MALFORMED_KINDS[kind]
        if kind == "missing_field":
            name = rng.choice(("tenant", "ts", "trace_id", "service", "feature", "event_id"))
            if rng.random() < 0.3:
                bad[name] = None
            else:
                del bad[name]
        elif kind == "bad_uuid":
            bad["event_id"] = rng.choice(
                [bad["event_id"][:-1], f"evt_{rng.getrandbits(48):012x}", bad["event_id"].replace("-", "", 1) + "zz"]
            )
        elif kind == "negative_tokens":
            bad["usage"] = dict(ev["usage"], output_tokens=-rng.randint(1, 500))
        elif kind == "unknown_type":
            bad["type"] = rng.choice(["embedding", "metric", "completion"])
        else:
            bad["schema_version"] = 2
        return _ENCODE(bad), MALFORMED_KINDS[kind]

    # --- events --------------------------------------------------------------------------------

    def _uuid(self, ms: int, rng: random.Random) -> str:
        """UUIDv7 from the event time and the seeded RNG: time-ordered, and reproducible."""
        v = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
        h = f"{v:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _fmt(self, ms: int) -> str:
        sec, milli = divmod(ms, 1000)
        prefix = self.sec_cache.get(sec)
        if prefix is None:
            if len(self.sec_cache) > 10_000:
                self.sec_cache.clear()
            prefix = self.sec_cache[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{prefix}.{milli:03d}Z"

    def _push(self, tr: _Trace, kind: str, ts: int, span: str, parent: str | None, fields: dict) -> None:
        ev = {
            "schema_version": 1,
            "event_id": self._uuid(ts, self.rng),
            "type": kind,
            "ts": self._fmt(ts),
            "trace_id": tr.id,
            "span_id": span,
            "parent_span_id": parent,
            **tr.base,
            **fields,
        }
        tag = None
        if self.watch and kind != "tool_call":
            if kind == "output" and (tr.tenant, tr.feature, tr.model) == self.watch[0]:
                tag = "swap"
            elif kind == "prompt" and (tr.feature, fields["prompt_version"]) == self.watch[1]:
                tag = "prompt"
        # Serialised now: a pending line takes a fraction of the memory of a pending dict.
        heapq.heappush(self.heap, (ts, self.seq, kind, _ENCODE(ev), tag))
        self.seq += 1
        self.produced += 1

    def _call(
        self,
        tr: _Trace,
        msgs: list,
        out: str = "",
        calls: list | None = None,
        finish: str = "stop",
        error: tuple[str, str] | None = None,
        tools: tuple = (),
    ) -> str:
        """One model call: a prompt, then its output after the latency. Returns the span id."""
        rng, span, t = self.rng, f"{self.rng.getrandbits(64):016x}", tr.t
        prompt = {**tr.call, "messages": msgs, "params": tr.params}  # serialised at once: no copy needed
        if tools:
            prompt["tools"] = tools
        self._push(tr, "prompt", t, span, None, prompt)
        self.truth.model_calls += 1
        if tr.model in text.UNPRICED_MODELS:
            self.truth.unpriced["calls"] += 1
        input_tokens = sum(len(m["content"]) for m in msgs) // 4 + 4 * len(msgs) + 150 * len(tools)
        if error:
            self.truth.error_calls += 1
            latency = rng.uniform(30_000, 60_000) if error[0] == "timeout" else rng.uniform(80, 900)
            out_fields = {
                "response_model": None,
                "output": [],
                "tool_calls": [],
                "finish_reason": "error",
                "usage": {"input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "reasoning_tokens": 0},
                "latency_ms": round(latency, 1),
                "ttft_ms": None,
                "error": {"type": error[0], "message": error[1].format(model=tr.model)},
            }
        else:
            visible = len(out) // 4 + 1 if out else 0
            visible += sum(len(_ENCODE(c["arguments"])) // 4 + 12 for c in calls or ())
            if finish == "length":
                visible = next((v for k, v in tr.params.items() if k.startswith("max_")), visible)
            reasoning = rng.randrange(128, 2048, 64) if tr.model == "o3-mini" else 0
            ttft_base, per_token = text.MODEL_SPEED[tr.model]
            ttft = ttft_base * rng.uniform(0.6, 1.8) + reasoning * per_token * 0.5
            latency = ttft + (visible + reasoning) * per_token * rng.uniform(0.8, 1.3)
            out_fields = {
                "response_model": text.RESPONSE_MODELS[tr.model],
                "output": [{"role": "assistant", "content": out}] if out else [],
                "tool_calls": calls or [],
                "finish_reason": finish,
                "usage": {
                    "input_tokens": input_tokens,
                    "output_tokens": visible + reasoning,
                    "cached_input_tokens": min(tr.cached, input_tokens) // 64 * 64,
                    "reasoning_tokens": reasoning,
                },
                "latency_ms": round(latency, 1),
                "ttft_ms": round(ttft, 1),
                "error": None,
            }
            if tr.call["provider"] != "vllm":
                tr.cached = input_tokens  # providers cache the prefix this call just sent
        self._push(tr, "output", t + int(latency) + 1, span, None, {**tr.call, **out_fields})
        tr.t = t + int(latency) + rng.randint(5, 400)
        return span

    def _tool(self, tr: _Trace, parent: str, call: dict, result: Any, status: str = "ok") -> None:
        duration = self.rng.uniform(15, 1200)
        tool = {
            "name": call["name"],
            "call_id": call["id"],
            "arguments": call["arguments"],
            "result": result,
            "status": status,
            "duration_ms": round(duration, 1),
        }
        self._push(tr, "tool_call", tr.t, f"{self.rng.getrandbits(64):016x}", parent, {"tool": tool})
        tr.t += int(duration) + 1

    def _request(self, name: str, args: dict) -> dict:
        return {"id": f"call_{self.rng.getrandbits(96):024x}", "name": name, "arguments": args}

    # --- traces --------------------------------------------------------------------------------

    def _begin(self, tenant: str, feature: str, model: str | None = None, session: bool = False) -> _Trace:
        rng, spec = self.rng, text.FEATURES[feature]
        provider, chosen = next(((p, m) for p, m, _ in spec["models"] if m == model), (None, None))
        if chosen is None:
            provider, chosen, _ = rng.choices(spec["models"], [w for *_, w in spec["models"]])[0]
        prompt_id, version = spec["prompt"][0], self.version[feature]
        tr = _Trace()
        tr.id, tr.tenant, tr.feature, tr.spec, tr.model = f"{rng.getrandbits(128):032x}", tenant, feature, spec, chosen
        tr.base = {
            "session_id": f"{tenant}-session-{rng.randrange(60):03d}" if session else None,
            "service": spec["service"],
            "environment": "production",
            "tenant": tenant,
            "feature": feature,
            "user_id": f"{tenant}-user-{rng.randrange(300):04d}",
            "attributes": {"sdk": "tokentrail-py/0.1.0", "region": "eu-west-1" if len(tenant) % 2 else "us-east-1"},
        }
        tr.call = {"provider": provider, "model": chosen, "prompt_id": prompt_id, "prompt_version": version}
        tr.params, tr.system = spec["params"], self.system[(prompt_id, version)]
        tr.t, tr.leaks, tr.leaked, tr.slots = self._clock(), {}, False, text.Slots(rng)
        sys_tokens = len(tr.system) // 4
        tr.cached = sys_tokens if provider != "vllm" and rng.random() < 0.75 else 0
        self.truth.traces += 1
        return tr

    def _ordinary(self) -> None:
        rng, e = self.rng, _SPIKE[2]
        if self.spike_window[0] <= self.produced / self.c.events < self.spike_window[1] and rng.random() < e / (1 + e):
            tenant = self.spike_tenant
            self.truth.spend_spike["extra_traces"] += 1
        else:
            tenant = rng.choices(self.c.tenants, self.tenant_w)[0]
        mix = self.mix[tenant]
        self._trace(tenant, rng.choices(list(mix), list(mix.values()))[0])

    def _trace(self, tenant: str, feature: str, model: str | None = None) -> None:
        spec = text.FEATURES[feature]
        tr = self._begin(tenant, feature, model, session=spec["shape"] == "chat")
        self._decorate(tr)
        {"agent": self._agent, "chat": self._chat}.get(spec["shape"], self._single)(tr)

    def _decorate(self, tr: _Trace) -> None:
        """Maybe put PII/secrets (recorded) and non-PII identifiers into this trace's text."""
        rng = self.rng
        if rng.random() < self.c.sensitive_ratio:
            for kind in rng.sample(tr.spec["sensitive"], rng.choice((1, 1, 2))):
                where = rng.choice(("user", "user", "tool", "output"))
                where = "user" if where == "tool" and tr.spec["shape"] != "agent" else where
                tr.leaks.setdefault(where, []).append((kind, *text.sensitive_value(kind, rng)))
        if rng.random() < 0.25:
            tr.leaks.setdefault("user", []).append(("technical", *text.technical_value(rng)))

    def _with(self, tr: _Trace, where: str, s: str) -> str:
        """`s` plus the planned sentences for this place; recorded in the truth only once really used."""
        leaks, truth = tr.leaks.pop(where, ()), self.truth
        for kind, value, _ in leaks:
            if kind == "technical":
                if len(truth.technical_samples) < 20:
                    truth.technical_samples.append(value)
                continue
            truth.sensitive[kind] = truth.sensitive.get(kind, 0) + 1
            samples = truth.sensitive_samples.setdefault(kind, [])
            if len(samples) < 5:
                samples.append(value)
            if not tr.leaked:
                tr.leaked = True
                truth.sensitive_traces += 1
        return " ".join([s, *(sentence for *_, sentence in leaks)])

    def _complete(self, tr: _Trace, msgs: list, out: str, tools: tuple = (), calls: list | None = None) -> str | None:
        """A call that may fail like real providers do (~1.5%); half the failures are retried once."""
        rng = self.rng
        if rng.random() < 0.015:
            self._call(tr, msgs, error=rng.choice(text.ERRORS[tr.call["provider"]]), tools=tools)
            if rng.random() < 0.5:
                return None
        finish = "tool_calls" if calls else "length" if rng.random() < 0.03 else "stop"
        if finish == "length":
            out = out[: max(20, len(out) * 3 // 5)]
        if not calls:
            out = self._with(tr, "output", out)
        return self._call(tr, msgs, out, calls, finish, tools=tools)

    def _opening(self, tr: _Trace) -> list[dict]:
        return [
            {"role": "system", "content": tr.system},
            {"role": "user", "content": self._with(tr, "user", text.user_text(tr.feature, self.rng, tr.slots))},
        ]

    def _single(self, tr: _Trace) -> None:
        self._complete(tr, self._opening(tr), text.output_text(tr.feature, self.rng, tr.slots))

    def _chat(self, tr: _Trace) -> None:
        rng, msgs = self.rng, self._opening(tr)
        for _ in range(rng.choice((0, 0, 1, 2, 3))):  # earlier turns of the session, sent again
            msgs[1:1] = [
                {"role": "user", "content": text.user_text(tr.feature, rng)},
                {"role": "assistant", "content": text.output_text(tr.feature, rng)},
            ]
        self._complete(tr, msgs, text.output_text(tr.feature, rng, tr.slots))

    def _agent(self, tr: _Trace) -> None:
        rng, msgs, tools = self.rng, self._opening(tr), tr.spec["tools"]
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
            calls = [self._request(n, text.tool_args(n, rng)) for n in rng.sample(tools, rng.choice((1, 1, 2)))]
            span = self._complete(tr, msgs, "", tools, calls)
            if span is None:
                return
            msgs.append({"role": "assistant", "content": ""})
            for call in calls:
                result, status = text.tool_result(call["name"], call["arguments"], rng), "ok"
                if rng.random() < 0.03:  # tools fail too; the model then answers without the data
                    result, status = {"error": f"{rng.choice(text.ERROR_CODES)}: upstream did not respond"}, "error"
                elif "tool" in tr.leaks:
                    result = {"result": result, "note": self._with(tr, "tool", "").strip()}
                self._tool(tr, span, call, result, status)
                msgs.append(
                    {"role": "tool", "content": _as_text(result), "tool_call_id": call["id"], "name": call["name"]}
                )
        self._complete(tr, msgs, text.output_text(tr.feature, rng, tr.slots), tools)

    # --- scenarios -----------------------------------------------------------------------------

    def _scenarios(self) -> list[tuple[float, Any]]:
        t = self.c.tenants
        first_with = lambda f: next((x for x in t if f in self.mix[x]), t[0])  # noqa: E731
        a, w, e = _SPIKE
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
            (0.39, lambda: self._prompt_change(first_with(_EDITED))),
            (0.45, lambda: self._retry_storm(t[2 % len(t)])),
            (0.50, self._prompt_bump),
            (0.54, lambda: self._model_swap(t[0])),
            (0.62, lambda: self._same_output_loop(t[-1])),
            (0.68, lambda: self._retry_recovered(first_with("refund-drafts"))),
        ]

    def _record(self, tr: _Trace, kind: str, repeats: int) -> None:
        entry = {
            "trace_id": tr.id,
            "kind": kind,
            "tenant": tr.tenant,
            "feature": tr.feature,
            "model": tr.model,
            "repeats": repeats,
            "ts": self._fmt(self._clock()),
        }
        (self.truth.loops if kind in LOOP_KINDS else self.truth.legit_repetition).append(entry)

    def _tool_rounds(self, tr: _Trace, msgs: list, rounds: list[tuple[str, dict, Any]], tools: tuple) -> None:
        """The model asks for each (tool, args) in turn and gets `result` back; the context grows."""
        for name, args, result in rounds:
            call = self._request(name, args)
            span = self._call(tr, msgs, "", [call], "tool_calls", tools=tools)
            self._tool(tr, span, call, result)
            msgs += [
                {"role": "assistant", "content": ""},
                {"role": "tool", "content": _as_text(result), "tool_call_id": call["id"], "name": name},
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
        pair = [
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
        rounds = [("run_sql", {"sql": "SELECT region, sum(amount) FROM orders GROUP BY region"}, {"query_id": qid})]
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
            self._call(tr, msgs, error=text.ERRORS["anthropic"][0])
        self._call(tr, msgs, text.output_text("refund-drafts", self.rng, tr.slots))

    def _prompt_change(self, tenant: str) -> None:
        """Refund-email v4 is edited in place; traffic on both sides makes the change observable."""
        feature, (pid, ver) = _EDITED, text.FEATURES[_EDITED]["prompt"]
        for _ in range(3):
            self._trace(tenant, feature)
        old, new = self.system[(pid, ver)], text.CHANGED_SYSTEM_PROMPTS[(pid, ver)]
        self.system[(pid, ver)] = new
        self.prompt_edit = (new, self._clock())
        self.truth.prompt_change = {
            "feature": feature,
            "prompt_id": pid,
            "prompt_version": ver,
            "from_sha256": _sha256(old),
            "to_sha256": _sha256(new),
            "ts": self._fmt(self._clock()),
        }
        for _ in range(3):
            self._trace(tenant, feature)

    def _prompt_bump(self) -> None:
        pid = text.FEATURES["ticket-triage"]["prompt"][0]
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
        feature, model, snapshot = _SWAP
        for _ in range(3):
            self._trace(tenant, feature, model)
        self.swap = (snapshot, self._clock())
        self.truth.model_swap = {
            "tenant": tenant,
            "feature": feature,
            "provider": "openai",
            "model": model,
            "from": text.RESPONSE_MODELS[model],
            "to": snapshot,
            "ts": self._fmt(self._clock()),
        }
        for _ in range(3):
            self._trace(tenant, feature, model)


# --- command line -------------------------------------------------------------------------------


def _duration(value: str) -> timedelta:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", value.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {value!r} (examples: 90s, 15m, 1h, 2d)")
    unit = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
    return timedelta(**{unit: float(m.group(1))})


def _start(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    """`tokentrail generate N`: N synthetic events as JSON Lines on stdout."""
    p = argparse.ArgumentParser(prog="tokentrail generate", description=main.__doc__)
    p.add_argument("events", type=int, help="valid distinct events to generate (approximate)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start", type=_start, default=DEFAULT_START, help="RFC 3339 time of the first event")
    p.add_argument("--duration", type=_duration, default=timedelta(hours=1), help="e.g. 90s, 15m, 1h")
    p.add_argument("--malformed-ratio", type=float, default=0.01)
    p.add_argument("--redelivery-ratio", type=float, default=0.01)
    p.add_argument("--sensitive-ratio", type=float, default=0.07)
    p.add_argument("--tenants", default=",".join(GeneratorConfig.tenants), help="comma-separated")
    p.add_argument("--no-anomalies", action="store_true", help="ordinary traffic only")
    p.add_argument("--truth", metavar="FILE", help="also write the ground truth as JSON to FILE")
    args = p.parse_args(argv)
    try:
        config = GeneratorConfig(
            seed=args.seed,
            events=args.events,
            start=args.start,
            duration=args.duration,
            malformed_ratio=args.malformed_ratio,
            redelivery_ratio=args.redelivery_ratio,
            tenants=tuple(x.strip() for x in args.tenants.split(",") if x.strip()),
            with_anomalies=not args.no_anomalies,
            sensitive_ratio=args.sensitive_ratio,
        )
    except ValueError as exc:
        p.error(str(exc))
    truth = Truth(config.seed, config.events)
    out, batch = sys.stdout, []
    try:
        for line in iter_lines(config, truth):
            batch.append(line)
            if len(batch) >= 2000:
                out.write("\n".join(batch) + "\n")
                batch.clear()
        out.write("\n".join(batch) + "\n" if batch else "")
        out.flush()
    except BrokenPipeError:  # `tokentrail generate 1000000 | head` is fine
        sys.stderr.close()
        return 0
    if args.truth:
        with open(args.truth, "w", encoding="utf-8") as fh:
            json.dump(truth.to_dict(), fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
