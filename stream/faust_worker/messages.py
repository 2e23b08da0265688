"""What the worker sends to Kafka: dead letters, detections and the kill switch's halt records."""

from __future__ import annotations

import json
from typing import Any

from tokentrail.collectors.control import halt_key


def to_json(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, default=str, sort_keys=True).encode()


# The producer refuses a message over its max request size (1 MiB by default) and a refused send
# would stop the worker: the topic gets at most this much of a payload (the table keeps all of it).
MAX_PUBLISHED_PAYLOAD_BYTES = 256 * 1024


def dead_letter_message(row: dict[str, Any]) -> bytes:
    """A dead-letter row as the topic's JSON message; a payload whose JSON form is over
    `MAX_PUBLISHED_PAYLOAD_BYTES` is cut there (escapes counted: a control character takes six bytes),
    with `payload_truncated` and the full payload's UTF-8 size in `payload_bytes`."""
    out = {k: (str(v) if k in ("id", "received_at") else v) for k, v in row.items()}
    payload = out.get("payload")
    if isinstance(payload, str) and len(payload) > MAX_PUBLISHED_PAYLOAD_BYTES // 6:
        size = len(_json_bytes(payload))
        if size > MAX_PUBLISHED_PAYLOAD_BYTES:
            cut = payload[: len(payload) * MAX_PUBLISHED_PAYLOAD_BYTES // size]
            while len(_json_bytes(cut)) > MAX_PUBLISHED_PAYLOAD_BYTES:
                cut = cut[: len(cut) * 9 // 10]
            out["payload"] = cut
            out["payload_truncated"] = True
            out["payload_bytes"] = len(payload.encode("utf-8", "replace"))
    return _json_bytes(out)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "replace")


def halt_message_key(detection: dict[str, Any]) -> bytes:
    """The control topic's key for a halt: the (tenant, trace) pair (collectors/control.py), so
    compaction keeps one record per tenant's trace and a collector honours only its own tenant's."""
    return halt_key(detection["tenant"], detection["trace_id"])


def halt_record(detection: dict[str, Any]) -> bytes:
    """What a collector's kill switch reads from the control topic (compacted, keyed by `halt_message_key`)."""
    return to_json(
        {
            "tenant": detection["tenant"],
            "trace_id": detection["trace_id"],
            "halt": True,
            "kind": detection["kind"],
            "repeats": detection["repeats"],
            "detection_id": detection["detection_id"],
            "detected_at": detection["detected_at"],
        }
    )


def as_bytes(value: Any) -> bytes:
    """A message value as bytes (faust hands raw values over as bytes; None is an empty line)."""
    if isinstance(value, bytes):
        return value
    return b"" if value is None else str(value).encode()
