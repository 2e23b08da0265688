"""Traces of model calls and tool calls, written as v1 wire events onto a time-ordered heap.

`TraceWriter` holds the generator's state (random stream, clock, pending lines) and writes the
ordinary traffic: single-shot calls, chats and agents with tool calls, some carrying PII, secrets or
their look-alikes (recorded in the truth once really used), ~1.5% failing like real providers do.
"""

from __future__ import annotations

import heapq
import random
import time
from typing import Any

from . import catalog, sensitive, text
from .config import EDITED, ENCODE, LOOP_KINDS, SPIKE, SWAP, TENANT_WEIGHT, GeneratorConfig, Truth

Message = dict[str, Any]
ToolRound = tuple[str, dict[str, Any], Any]  # (tool name, arguments, result)


def uuid7(ms: int, rng: random.Random) -> str:
    """UUIDv7 from the event time and the seeded RNG: time-ordered, and reproducible."""
    v = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    h = f"{v:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def as_text(result: Any) -> str:
    """A tool result as the tool message content the model sees."""
    return result if isinstance(result, str) else ENCODE(result)


class Trace:
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
    id: str
    tenant: str
    feature: str
    spec: catalog.Feature
    base: dict[str, Any]  # the fields every event of the trace shares
    call: dict[str, Any]  # provider, model, prompt id and version
    params: dict[str, Any]
    system: str
    t: int  # the trace's own clock, ms
    cached: int  # prompt tokens the provider has cached
    leaks: dict[str, list[tuple[str, str, str]]]  # where -> [(kind, value, sentence)] still to place
    leaked: bool
    model: str
    slots: text.Slots


class TraceWriter:
    """Writes whole traces; `produced` counts the events written so far."""

    def __init__(self, config: GeneratorConfig, truth: Truth) -> None:
        self.c, self.truth = config, truth
        self.rng = random.Random(f"traffic:{config.seed}")
        self.heap: list[tuple[int, int, str, str, str | None]] = []
        self.seq = self.produced = 0
        self.t0 = int(config.start.timestamp() * 1000)
        self.span = int(config.duration.total_seconds() * 1000)
        self.sec_cache: dict[int, str] = {}
        self.system = dict(catalog.SYSTEM_PROMPTS)
        self.version = {f: s["prompt"][1] for f, s in catalog.FEATURES.items()}
        self.swap: tuple[str, int] | None = None  # (new response_model, from ms), once the scenario ran
        self.prompt_edit: tuple[str, int] | None = None  # (new system text, from ms), once the scenario ran
        # Events the silent changes may touch are tagged when built, and rewritten when emitted.
        self.watch = ((config.tenants[0], *SWAP[:2]), (EDITED, self.version[EDITED])) if config.with_anomalies else None
        self.tenant_w = [TENANT_WEIGHT.get(t, 2) for t in config.tenants]
        self.mix = {t: catalog.TENANT_FEATURES.get(t, catalog.DEFAULT_FEATURES) for t in config.tenants}
        self.spike_tenant = config.tenants[1 % len(config.tenants)] if config.with_anomalies else None
        a, w, e = SPIKE  # the window in progress units: it holds (1 + e) times the usual rate
        self.spike_window = (a / (1 + w * e), (a + w * (1 + e)) / (1 + w * e)) if self.spike_tenant else (2, 2)

    def _clock(self) -> int:
        """Stream time for the current progress (share of `events` produced): events are spread
        evenly over the duration, except that the spike window packs (1 + extra) times as many."""
        p, (p1, p2) = self.produced / self.c.events, self.spike_window
        (a, w, e), f = SPIKE, p
        if self.spike_tenant:
            k = 1 + w * e
            f = p * k if p < p1 else a + (p - p1) * k / (1 + e) if p < p2 else p * k - w * e
        return self.t0 + int(min(f, 1.0) * self.span)

    # --- events --------------------------------------------------------------------------------
    def _fmt(self, ms: int) -> str:
        sec, milli = divmod(ms, 1000)
        prefix = self.sec_cache.get(sec)
        if prefix is None:
            if len(self.sec_cache) > 10_000:
                self.sec_cache.clear()
            prefix = self.sec_cache[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{prefix}.{milli:03d}Z"

    def _push(self, tr: Trace, kind: str, ts: int, span: str, parent: str | None, fields: dict[str, Any]) -> None:
        ev = {
            "schema_version": 1,
            "event_id": uuid7(ts, self.rng),
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
        heapq.heappush(self.heap, (ts, self.seq, kind, ENCODE(ev), tag))
        self.seq += 1
        self.produced += 1

    def _call(
        self,
        tr: Trace,
        msgs: list[Message],
        out: str = "",
        calls: list[dict[str, Any]] | None = None,
        finish: str = "stop",
        error: tuple[str, str] | None = None,
        tools: tuple[str, ...] = (),
    ) -> str:
        """One model call: a prompt, then its output after the latency. Returns the span id."""
        rng, span, t = self.rng, f"{self.rng.getrandbits(64):016x}", tr.t
        prompt = {**tr.call, "messages": msgs, "params": tr.params}  # serialised at once: no copy needed
        if tools:
            prompt["tools"] = tools
        self._push(tr, "prompt", t, span, None, prompt)
        self.truth.model_calls += 1
        if tr.model in catalog.UNPRICED_MODELS:
            self.truth.unpriced["calls"] += 1
        input_tokens = sum(len(m["content"]) for m in msgs) // 4 + 4 * len(msgs) + 150 * len(tools)
        if error:
            self.truth.error_calls += 1
            latency = rng.uniform(30_000, 60_000) if error[0] == "timeout" else rng.uniform(80, 900)
            out_fields: dict[str, Any] = {
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
            visible += sum(len(ENCODE(c["arguments"])) // 4 + 12 for c in calls or ())
            if finish == "length":
                visible = next((v for k, v in tr.params.items() if k.startswith("max_")), visible)
            reasoning = rng.randrange(128, 2048, 64) if tr.model == "o3-mini" else 0
            ttft_base, per_token = catalog.MODEL_SPEED[tr.model]
            ttft = ttft_base * rng.uniform(0.6, 1.8) + reasoning * per_token * 0.5
            latency = ttft + (visible + reasoning) * per_token * rng.uniform(0.8, 1.3)
            out_fields = {
                "response_model": catalog.RESPONSE_MODELS[tr.model],
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

    def _tool(self, tr: Trace, parent: str, call: dict[str, Any], result: Any, status: str = "ok") -> None:
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

    def _request(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"id": f"call_{self.rng.getrandbits(96):024x}", "name": name, "arguments": args}

    # --- traces --------------------------------------------------------------------------------

    def _begin(self, tenant: str, feature: str, model: str | None = None, session: bool = False) -> Trace:
        rng, spec = self.rng, catalog.FEATURES[feature]
        provider, chosen = next(((p, m) for p, m, _ in spec["models"] if m == model), (None, None))
        if chosen is None:
            provider, chosen, _ = rng.choices(spec["models"], [w for *_, w in spec["models"]])[0]
        prompt_id, version = spec["prompt"][0], self.version[feature]
        tr = Trace()
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
        rng, e = self.rng, SPIKE[2]
        spike, spike_truth = self.spike_tenant, self.truth.spend_spike  # both set when anomalies are on
        in_window = self.spike_window[0] <= self.produced / self.c.events < self.spike_window[1]
        if spike is not None and spike_truth is not None and in_window and rng.random() < e / (1 + e):
            tenant = spike
            spike_truth["extra_traces"] += 1
        else:
            tenant = rng.choices(self.c.tenants, self.tenant_w)[0]
        mix = self.mix[tenant]
        self._trace(tenant, rng.choices(list(mix), list(mix.values()))[0])

    def _trace(self, tenant: str, feature: str, model: str | None = None) -> None:
        spec = catalog.FEATURES[feature]
        tr = self._begin(tenant, feature, model, session=spec["shape"] == "chat")
        self._decorate(tr)
        {"agent": self._agent, "chat": self._chat}.get(spec["shape"], self._single)(tr)

    def _decorate(self, tr: Trace) -> None:
        """Maybe put PII/secrets (recorded) and non-PII identifiers into this trace's text."""
        rng = self.rng
        if rng.random() < self.c.sensitive_ratio:
            for kind in rng.sample(tr.spec["sensitive"], rng.choice((1, 1, 2))):
                where = rng.choice(("user", "user", "tool", "output"))
                where = "user" if where == "tool" and tr.spec["shape"] != "agent" else where
                tr.leaks.setdefault(where, []).append((kind, *sensitive.sensitive_value(kind, rng)))
        if rng.random() < 0.25:
            tr.leaks.setdefault("user", []).append(("technical", *sensitive.technical_value(rng)))

    def _with(self, tr: Trace, where: str, s: str) -> str:
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

    def _complete(
        self,
        tr: Trace,
        msgs: list[Message],
        out: str,
        tools: tuple[str, ...] = (),
        calls: list[dict[str, Any]] | None = None,
    ) -> str | None:
        """A call that may fail like real providers do (~1.5%); half the failures are retried once."""
        rng = self.rng
        if rng.random() < 0.015:
            self._call(tr, msgs, error=rng.choice(catalog.ERRORS[tr.call["provider"]]), tools=tools)
            if rng.random() < 0.5:
                return None
        finish = "tool_calls" if calls else "length" if rng.random() < 0.03 else "stop"
        if finish == "length":
            out = out[: max(20, len(out) * 3 // 5)]
        if not calls:
            out = self._with(tr, "output", out)
        return self._call(tr, msgs, out, calls, finish, tools=tools)

    def _opening(self, tr: Trace) -> list[Message]:
        return [
            {"role": "system", "content": tr.system},
            {"role": "user", "content": self._with(tr, "user", text.user_text(tr.feature, self.rng, tr.slots))},
        ]

    def _single(self, tr: Trace) -> None:
        self._complete(tr, self._opening(tr), text.output_text(tr.feature, self.rng, tr.slots))

    def _chat(self, tr: Trace) -> None:
        rng, msgs = self.rng, self._opening(tr)
        for _ in range(rng.choice((0, 0, 1, 2, 3))):  # earlier turns of the session, sent again
            msgs[1:1] = [
                {"role": "user", "content": text.user_text(tr.feature, rng)},
                {"role": "assistant", "content": text.output_text(tr.feature, rng)},
            ]
        self._complete(tr, msgs, text.output_text(tr.feature, rng, tr.slots))

    def _agent(self, tr: Trace) -> None:
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
                    result, status = {"error": f"{rng.choice(catalog.ERROR_CODES)}: upstream did not respond"}, "error"
                elif "tool" in tr.leaks:
                    result = {"result": result, "note": self._with(tr, "tool", "").strip()}
                self._tool(tr, span, call, result, status)
                msgs.append(
                    {"role": "tool", "content": as_text(result), "tool_call_id": call["id"], "name": call["name"]}
                )
        self._complete(tr, msgs, text.output_text(tr.feature, rng, tr.slots), tools)

    def _record(self, tr: Trace, kind: str, repeats: int) -> None:
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

    def _tool_rounds(self, tr: Trace, msgs: list[Message], rounds: list[ToolRound], tools: tuple[str, ...]) -> None:
        """The model asks for each (tool, args) in turn and gets `result` back; the context grows."""
        for name, args, result in rounds:
            call = self._request(name, args)
            span = self._call(tr, msgs, "", [call], "tool_calls", tools=tools)
            self._tool(tr, span, call, result)
            msgs += [
                {"role": "assistant", "content": ""},
                {"role": "tool", "content": as_text(result), "tool_call_id": call["id"], "name": name},
            ]
