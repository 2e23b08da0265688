"""The redact stage: every string an emitter sent is redacted or pseudonymised before it is stored.

What is treated how (README.md, "Guarantees", says the same for users):

- free text, as JSON at any depth (keys included, numbers under PII-named keys, valid card and
  IBAN numbers): `attributes`, prompt `messages` and `params`, `output`, requested `tool_calls`
  (ids, names, arguments), `error` (type and message), a tool's `arguments` and `result`;
- identifiers that join events (`trace_id`, `span_id`, `parent_span_id`, a tool's `call_id`):
  searched like text, so an ordinary id is kept as sent (joins with the emitter's tracing still
  work) and one that holds PII is replaced by its token, the same token everywhere;
- `user_id` and `session_id`: pseudonymised whole (`Redactor.pseudonym`), whatever they hold;
- dead letters: the payload with `Redactor.redact_raw_many` (as JSON when it parses, identifiers
  pseudonymised like valid events', as text when it does not), the validator's field path and
  detail as text.

- dimension labels (`tenant`, `service`, `environment`, `feature`, `provider`, `model`,
  `response_model`, prompt id and version, finish reason, a tool's name, the offered `tools`):
  searched like text, so an ordinary label is kept as sent (dashboards group by it, pricing reads
  the model) and one that holds PII is replaced by its token. Labels repeat: `redact_many` looks
  at each distinct string once per batch, and the redactor's result cache answers most of those
  across batches. Every model id in genai-prices' data and every label of the synthetic traffic
  came through unchanged when this was added.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

from tokentrail.collectors.events import InvalidEvent

from .batch import Accepted, Batch, DeadLetter

__all__ = ["ID_FIELDS", "Redact", "TextRedactor", "free_text", "redaction_values"]

ID_FIELDS = ("trace_id", "span_id", "parent_span_id")  # top-level identifiers searched like text
PSEUDONYMISED_FIELDS = ("user_id", "session_id")  # identifiers replaced whole by their pseudonym
LABEL_FIELDS = (  # top-level dimension labels, searched like text
    "tenant",
    "service",
    "environment",
    "feature",
    "provider",
    "model",
    "response_model",
    "prompt_id",
    "prompt_version",
    "finish_reason",
)


class TextRedactor(Protocol):
    """What the redact stage needs from tokentrail.redaction's `Redactor`."""

    key_id: str  # names the key (never the key itself); stored with every row

    def redact_many(self, values: list[Any]) -> list[tuple[Any, Counter[str]]]: ...

    def redact_raw_many(self, payloads: list[bytes | str]) -> list[tuple[str, Counter[str]]]: ...

    def pseudonym(self, value: str) -> str: ...


def free_text(doc: dict[str, Any]) -> dict[str, Any]:
    """The parts of an event that hold free text (and so may hold PII or secrets)."""
    kind = doc["type"]
    attributes = doc.get("attributes") or {}
    if kind == "prompt":
        return {"attributes": attributes, "messages": doc["messages"], "params": doc.get("params") or {}}
    if kind == "output":
        return {
            "attributes": attributes,
            "output": doc["output"],
            "tool_calls": doc["tool_calls"],
            "error": doc.get("error"),
        }
    tool = doc["tool"]
    return {"attributes": attributes, "tool": {"arguments": tool.get("arguments"), "result": tool.get("result")}}


def _labels(doc: dict[str, Any]) -> list[Any]:
    """The dimension labels in a fixed order: the top-level ones, a tool's name, the offered tools."""
    labels: list[Any] = [doc.get(name) or "" for name in LABEL_FIELDS]
    labels.append(doc["tool"].get("name") or "" if doc["type"] == "tool_call" else "")
    labels.append(list(doc.get("tools") or []))
    return labels


def _identifiers(doc: dict[str, Any]) -> list[str]:
    """The identifiers searched like text, in a fixed order (a list: no key names to misread)."""
    ids = [doc.get(name) or "" for name in ID_FIELDS]
    if doc["type"] == "tool_call":
        ids.append(doc["tool"].get("call_id") or "")
    return ids


def redaction_values(doc: dict[str, Any]) -> list[Any]:
    """What the stage hands the redactor for one event: its free text, identifiers and labels."""
    return [free_text(doc), _identifiers(doc), _labels(doc)]


class Redact:
    """Replaces PII and secrets in every emitter string of each event and of each dead letter."""

    def __init__(self, redactor: TextRedactor) -> None:
        self.redactor = redactor

    def __call__(self, batch: Batch) -> None:
        dead = list(batch.dead)
        values: list[Any] = [redaction_values(item.doc) for item in batch.accepted]
        values += [[letter.field, letter.detail] for letter in dead]
        results = self.redactor.redact_many(values)
        kept: list[Accepted] = []
        for item, (clean, findings) in zip(batch.accepted, results, strict=False):  # results: accepted, then dead
            if isinstance(clean, list) and len(clean) == 3:
                self._put_back(item, clean[0], clean[1])
                self._put_back_labels(item, clean[2])
                item.findings = findings
                kept.append(item)
            else:  # too deep to walk: fail closed, store none of it
                dead.append(self._too_deep(item))
                batch.receipts = [r for r in batch.receipts if r["event_id"] != item.event.event_id]
        for letter, (clean, _) in zip(dead, results[len(batch.accepted) :], strict=False):
            field, detail = clean if isinstance(clean, list) and len(clean) == 2 else ("", "")
            letter.field, letter.detail = str(field), str(detail)
        batch.accepted, batch.dead = kept, dead
        payloads: list[bytes | str] = [letter.payload for letter in dead]
        for letter, (payload, _) in zip(dead, self.redactor.redact_raw_many(payloads), strict=True):
            letter.payload = payload

    def _put_back(self, item: Accepted, text: dict[str, Any], ids: list[str]) -> None:
        doc = item.doc
        doc["attributes"] = text.pop("attributes")
        if doc["type"] == "tool_call":
            doc["tool"].update(text["tool"])
        else:
            doc.update(text)
        for name in PSEUDONYMISED_FIELDS:
            if doc.get(name):
                doc[name] = self.redactor.pseudonym(doc[name])
        changed = {name: new for name, new in zip(ID_FIELDS, ids, strict=False) if new != (doc.get(name) or "")}
        if doc["type"] == "tool_call" and ids[-1] != (doc["tool"].get("call_id") or ""):
            doc["tool"]["call_id"] = ids[-1]
        if changed:  # rare: an id that held PII. Later stages read ids from the model too.
            doc.update(changed)
            item.event = item.event.model_copy(update=changed)

    @staticmethod
    def _put_back_labels(item: Accepted, labels: list[Any]) -> None:
        """Labels that held PII take their token; the rare case, so the model is copied only then."""
        doc = item.doc
        changed = {
            name: new
            for name, new in zip(LABEL_FIELDS, labels, strict=False)
            if doc.get(name) is not None and new != (doc.get(name) or "")
        }
        if changed:
            doc.update(changed)
            item.event = item.event.model_copy(update=changed)
        tool_name, tools = labels[len(LABEL_FIELDS)], labels[len(LABEL_FIELDS) + 1]
        if doc["type"] == "tool_call" and tool_name != (doc["tool"].get("name") or ""):
            doc["tool"]["name"] = tool_name
            tool = getattr(item.event, "tool", None)
            if tool is not None:
                item.event = item.event.model_copy(update={"tool": tool.model_copy(update={"name": tool_name})})
        if doc.get("tools") and tools != list(doc["tools"]):
            doc["tools"] = tools
            item.event = item.event.model_copy(update={"tools": tools})

    @staticmethod
    def _too_deep(item: Accepted) -> DeadLetter:
        invalid = InvalidEvent("too_deep", "", "nested too deep to redact", item.inbound.raw)
        return DeadLetter(item.inbound, invalid, "")
