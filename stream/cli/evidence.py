"""`tokentrail trace | evidence | verify | changes` (the work: `tokentrail.stream.evidence`).

Exit codes: 0 fine (for `verify`: the text matches), 1 `verify` found no match, 2 usage or
configuration error (no such trace, no evidence key, hashes under another key, old schema).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from .options import add_clickhouse_option, duration, rfc3339_time

OWNERS_HELP = "owners file (YAML) naming who owns the trace's feature (docs/owners.md; default $TOKENTRAIL_OWNERS_FILE)"


def register(commands: Any) -> None:
    trace = commands.add_parser("trace", help="one trace as a timeline: calls, tools, detections, PII counts, changes")
    trace.add_argument("trace_id")
    trace.add_argument("--tenant", help="only this tenant's events of the trace")
    trace.add_argument("--json", action="store_true", help="the complete timeline as JSON")
    add_clickhouse_option(trace)
    trace.set_defaults(run=_trace, needs_pipeline=True)

    evidence = commands.add_parser("evidence", help="write an evidence bundle (JSON, Markdown, manifest) for a trace")
    evidence.add_argument("trace_id")
    evidence.add_argument("--out", required=True, metavar="DIR", help="folder to write the bundle into")
    evidence.add_argument("--tenant", help="only this tenant's events of the trace")
    evidence.add_argument("--owners", metavar="FILE", help=OWNERS_HELP)
    add_clickhouse_option(evidence)
    evidence.set_defaults(run=_evidence, needs_pipeline=True)

    verify = commands.add_parser(
        "verify", help="was this text a message, output, tool argument or result of the trace? (exit 0 yes, 1 no)"
    )
    verify.add_argument("trace_id")
    verify.add_argument("file", help="a file holding the text, or - for stdin")
    verify.add_argument("--tenant", help="only this tenant's events of the trace")
    add_clickhouse_option(verify)
    verify.set_defaults(run=_verify, needs_pipeline=True)

    changes = commands.add_parser("changes", help="what changed around a time: models, prompts, prices, redaction")
    changes.add_argument(
        "--around", required=True, type=rfc3339_time, metavar="TIME", help="RFC 3339 time, e.g. an alert's"
    )
    changes.add_argument(
        "--window", type=duration, default=timedelta(hours=1), help="look this far either side (default 1h)"
    )
    changes.add_argument("--feature", help="only this feature")
    changes.add_argument("--tenant", help="only this tenant (and per-feature prompt changes)")
    changes.add_argument("--json", action="store_true")
    add_clickhouse_option(changes)
    changes.set_defaults(run=_changes, needs_pipeline=True)


def _client(dsn: str | None) -> Any:
    """A client on the store: an embedded store is migrated, a server's schema only checked."""
    from tokentrail.stream.runtime import open_client

    return open_client(dsn)


def _owners_of(owners: Any, timeline: dict[str, Any]) -> list[str]:
    """ "team (receiver)" for each team owning one of the trace's feature/service/tenant combinations."""
    if owners is None:
        return []
    return sorted(
        {
            f"{team.name} ({team.receiver_summary()})"
            for tenant in timeline["tenants"]
            for service in timeline["services"]
            for feature in timeline["features"]
            if (team := owners.owner_of(feature=feature, service=service, tenant=tenant)) is not None
        }
    )


def _trace(args: argparse.Namespace) -> int:
    from tokentrail.stream.evidence.render import render_text
    from tokentrail.stream.evidence.timeline import TraceNotFound, load_timeline, to_json

    try:
        timeline = load_timeline(_client(args.clickhouse), args.trace_id, tenant=args.tenant)
    except TraceNotFound as exc:
        raise ValueError(str(exc)) from None
    sys.stdout.write(to_json(timeline) if args.json else render_text(timeline))
    return 0


def _evidence(args: argparse.Namespace) -> int:
    from tokentrail.dashboards.owners import resolve_owners
    from tokentrail.stream.evidence.bundle import write_bundle
    from tokentrail.stream.evidence.timeline import TraceNotFound, load_timeline

    # --owners, else TOKENTRAIL_OWNERS_FILE; a bad file fails before the store is opened.
    owners = resolve_owners(args.owners)
    client = _client(args.clickhouse)
    try:
        named = _owners_of(owners, load_timeline(client, args.trace_id, tenant=args.tenant))
        manifest = write_bundle(client, args.trace_id, Path(args.out), tenant=args.tenant, owners=named)
    except TraceNotFound as exc:
        raise ValueError(str(exc)) from None
    for name, entry in sorted(manifest["files"].items()):
        print(f"{entry['sha256']}  {Path(args.out) / name}")
    print(f"manifest: {Path(args.out) / 'manifest.json'}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from tokentrail.stream.evidence.receipts import load_evidence_key
    from tokentrail.stream.evidence.verify import CannotVerify, verify_text

    key = load_evidence_key(allow_ephemeral=False)
    if key is None:
        raise ValueError("no evidence key: set TOKENTRAIL_EVIDENCE_KEY or TOKENTRAIL_EVIDENCE_KEY_FILE")
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise ValueError(f"{args.file}: {exc.strerror}") from None
    text = raw.decode("utf-8")  # not UTF-8: a UnicodeDecodeError, i.e. a usage error
    try:
        matches = verify_text(_client(args.clickhouse), args.trace_id, text, key, tenant=args.tenant)
    except CannotVerify as exc:
        raise ValueError(str(exc)) from None
    if not matches:
        print(f"no match: this text was not a message, output, tool argument or result of trace {args.trace_id}")
        return 1
    for match in matches:
        print(f"match: {match.describe()}")
    return 0


def _changes(args: argparse.Namespace) -> int:
    from tokentrail.stream.evidence.changes import changes_around

    found = changes_around(_client(args.clickhouse), args.around, args.window, feature=args.feature, tenant=args.tenant)
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
        return 0
    from tokentrail.stream.evidence.render import preview, table

    rows = [
        [c["time"], c["kind"], c["silent"], c["tenant"], c["feature"], c["model"] or c["prompt_id"]]
        + [preview(c["from"], 32), preview(c["to"], 32)]
        for c in found
    ]
    headers = ["time", "kind", "silent", "tenant", "feature", "model / prompt", "from", "to"]
    print(table(headers, rows, markdown=False))
    return 0
