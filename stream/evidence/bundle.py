"""The evidence bundle: the timeline as JSON, a Markdown summary, and a manifest that names each
file's SHA-256 and the versions that produced it.

Deterministic by construction: the timeline is sorted by stored values, JSON is written with
sorted keys, and nothing reads the clock, so the same store gives byte-identical files (the
manifest says when the trace happened, never when the bundle was made).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .render import render_markdown
from .timeline import load_timeline, to_json

BUNDLE_FILES = ("timeline.json", "summary.md")
MANIFEST = "manifest.json"


def tokentrail_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tokentrail")
    except PackageNotFoundError:
        return "unknown"


def _distinct(client: Any, sql: str, database: str, trace_id: str) -> list[str]:
    rows = client.query(sql.replace("$db", database), parameters={"trace": trace_id}).result_rows
    return sorted({str(r[0]) for r in rows if r[0]})


def versions(client: Any, timeline: dict[str, Any], database: str) -> dict[str, Any]:
    """What produced the stored numbers: tokentrail, price table, redaction, evidence key, schema."""
    from tokentrail.sinks.migrations import required_version, store_version

    calls = [s for s in timeline["steps"] if s["kind"] == "model_call"]
    evidence_keys = _distinct(
        client,
        "SELECT DISTINCT content_key_id FROM $db.events WHERE trace_id = {trace:String}",
        database,
        timeline["trace_id"],
    )
    return {
        "tokentrail": tokentrail_version(),
        "timeline_format": timeline["format_version"],
        "price_tables": sorted({c["price_table"] for c in calls if c["price_table"]}),
        "redaction": sorted(
            {f"key {c['redaction_key_id']} config {c['redaction_config']}" for c in calls if c["redaction_key_id"]}
        ),
        "evidence_key_ids": evidence_keys,
        "schema": {"store": store_version(client, database=database), "code": required_version()},
    }


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_bundle(
    client: Any,
    trace_id: str,
    out: Path,
    *,
    tenant: str | None = None,
    database: str = "tokentrail",
    owners: Sequence[str] = (),
) -> dict[str, Any]:
    """Write timeline.json, summary.md and manifest.json under `out` (created); return the manifest."""
    timeline = load_timeline(client, trace_id, tenant=tenant, database=database)
    out.mkdir(parents=True, exist_ok=True)
    contents = {
        "timeline.json": to_json(timeline),
        "summary.md": render_markdown(timeline, owners=owners),
    }
    for name, text in contents.items():
        (out / name).write_bytes(text.encode("utf-8"))
    manifest = {
        "trace_id": trace_id,
        "tenant": tenant,
        "trace_started": timeline["started"],
        "trace_ended": timeline["ended"],
        "owners": sorted(owners),
        "files": {name: {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size} for name in contents},
        "versions": versions(client, timeline, database),
    }
    (out / MANIFEST).write_bytes((json.dumps(manifest, sort_keys=True, indent=2) + "\n").encode("utf-8"))
    return manifest


def check_bundle(folder: Path) -> list[str]:
    """Files whose SHA-256 no longer matches the manifest (empty: the bundle is intact)."""
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    return sorted(
        name
        for name, entry in manifest["files"].items()
        if not (folder / name).is_file() or sha256_file(folder / name) != entry["sha256"]
    )
