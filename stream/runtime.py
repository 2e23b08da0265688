"""Wiring shared by the commands: open the store, build the pipeline, replay a stream into it."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tokentrail.collectors.event_bounds import DEFAULT_TS_WINDOW, TsWindow

from .batch import Pipeline
from .detectors import LoopConfig, LoopDetector
from .embedded import EmbeddedRunner, RunStats, read_lines
from .otlp.stage import OtlpExpand, OtlpSettings
from .pricing import PriceBook
from .stages import build_pipeline

if TYPE_CHECKING:
    from tokentrail.redaction.redactor import Redactor

log = logging.getLogger("tokentrail.stream")


def tune_gc() -> None:
    """For a long-running pipeline process: freeze what start-up built, and collect less often.

    Presidio, spaCy and faust leave long-lived objects the collector would otherwise walk again
    and again (-13% CPU per message in benchmarks/pipeline.py); the stages make many short-lived
    objects per event, none of them cyclic garbage worth collecting every 700 allocations.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def is_embedded(dsn: str) -> bool:
    """True for an embedded chDB store (`chdb://...`): a local file this process opens alone."""
    return dsn.strip().lower().startswith("chdb://")


def open_client(dsn: str | None) -> Any:
    """A ClickHouse client (server or embedded), the schema checked first.

    A ClickHouse server is migrated by `tokentrail schema apply` (compose's `migrate` one-shot),
    never by a worker, a replay or a CLI command: against a server this only checks the schema
    version and raises ValueError naming the fix when the store is older than this code. An
    embedded store (`chdb://`, the default of replay and demo) is a local file with no migrator
    role and no other user, so opening it applies the pending migrations.
    """
    from tokentrail.sinks import SchemaVersionError, check_schema_version, connect, migrations, resolve_dsn

    resolved = resolve_dsn(dsn)
    client = connect(resolved)
    if is_embedded(resolved):
        migrations.apply(client)
    else:
        try:
            check_schema_version(client)
        except SchemaVersionError as exc:
            raise ValueError(str(exc)) from exc
    return client


def open_store(dsn: str | None, *, max_attempts: int | None = None) -> tuple[Any, Any]:
    """`open_client` and a sink on it. `max_attempts`: the sink's retry budget per insert for
    store failures (None: retry until it succeeds)."""
    from tokentrail.sinks.writer import ClickHouseSink

    client = open_client(dsn)
    return client, ClickHouseSink(client, max_attempts=max_attempts)


def check_key_for_store(dsn: str | None, key: bytes) -> None:
    """Refuse an ephemeral redaction key unless the store is embedded (ValueError names the fix):
    pseudonyms under a throwaway key would join nothing in a shared store."""
    from tokentrail.redaction import is_ephemeral_key, require_persistent_key
    from tokentrail.sinks import resolve_dsn

    require_persistent_key(resolve_dsn(dsn), is_ephemeral_key(key))


def make_redactor(*, allow_ephemeral_key: bool, key: bytes | None = None) -> Redactor:
    """The redactor the pipeline plugs in, configured from the environment (ValueError names a missing key)."""
    from tokentrail.redaction import build_redactor

    return build_redactor(allow_ephemeral_key=allow_ephemeral_key, key=key)


def make_pipeline(
    *,
    prices: str | Path | None,
    allow_ephemeral_key: bool,
    redaction_key: bytes | None = None,
    loops: LoopConfig | None = None,
    loop_state: MutableMapping[str, dict[str, Any]] | None = None,
    tenant_topics: Mapping[str, str] | None = None,
    ts_window: TsWindow = DEFAULT_TS_WINDOW,
    otlp: OtlpSettings | None = None,
) -> Pipeline:
    """The full pipeline: stages plus the per-trace loop detector (state in `loop_state`, a dict by default).

    `redaction_key`: a key already loaded (the worker passes its own to its pipeline process);
    otherwise it is read from the environment. `ts_window`: around the time each message is read.
    `otlp`: the OTLP topics and mapping defaults (docs/otlp.md); OTLP/JSON lines are recognised
    whatever it says.
    """
    detector = LoopDetector(loops, loop_state)
    redactor = make_redactor(allow_ephemeral_key=allow_ephemeral_key, key=redaction_key)
    book = PriceBook(prices)
    pipeline = build_pipeline(
        tenant_topics=tenant_topics, prices=book, redactor=redactor, ts_window=ts_window, detectors=[detector]
    )
    # Content receipts (docs/evidence.md): keyed hashes of the raw text, taken before Redact.
    from .evidence.receipts import load_evidence_key, with_receipts

    key = load_evidence_key(allow_ephemeral_key or redactor.key_is_ephemeral)
    with_evidence: Pipeline = with_receipts(pipeline, key=key, redactor=redactor, overrides=book.overrides)
    # First: OTLP messages become v1 events that every later stage treats like any other.
    return Pipeline([OtlpExpand(otlp), *with_evidence.stages])


def replay_source(
    stream: IO[bytes],
    name: str,
    client: Any,
    sink: Any,
    *,
    prices: str | Path | None = None,
    batch_size: int = 5_000,
    progress: Callable[[int], None] | None = None,
    ts_window: TsWindow = DEFAULT_TS_WINDOW,
    redaction_key: bytes | None = None,
) -> RunStats:
    """Read JSON Lines from `stream` through the embedded pipeline into the store.

    `redaction_key`: one already loaded and checked against the store (`check_key_for_store`);
    None: from the environment, an ephemeral one if none is configured.
    """
    pipeline = make_pipeline(prices=prices, allow_ephemeral_key=True, redaction_key=redaction_key, ts_window=ts_window)
    runner = EmbeddedRunner(pipeline, sink, batch_size=batch_size)
    stats = runner.run(read_lines(stream, name), progress=progress)
    expand = pipeline.stages[0]
    if isinstance(expand, OtlpExpand) and expand.counts.messages:
        stats.otlp = expand.counts.as_dict()
    return stats


def finish_run(client: Any, *, budgets: str | Path | None = None) -> Any:
    """After a replay: compute variance, changes and budget breaches over everything stored, and refresh
    the dashboards' rollups.

    `now` is the latest stored call plus one window, so every window of the input closes.
    """
    from tokentrail.sinks import rollups

    from .insights import run_insights
    from .insights.jobs import closing_time

    now = closing_time(client)
    if now is None:
        return None
    report = run_insights(client, now=now, budgets=budgets)
    rollups.refresh(client)  # the dashboards' rollups cover what this run stored
    return report
