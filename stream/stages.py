"""The processor's standard stage list.

A stage is a small callable `stage(batch) -> None` (stream/batch.py) that reads and extends a
`Batch`; none does I/O. The faust worker and the embedded runner both call `Pipeline.process`,
so there is one code path with two drivers (docs/architecture.md, the data flow). Expensive
things (the redactor, the price book) are built once and passed in. Stateful stages keep
bounded, in-memory state keyed by event or span.

The stages live in modules by job: validation and dedupe (validate_stage.py), redaction
(redact_stage.py), pricing and rows (rows.py). The processor's own modules import from those;
the few names re-exported here are the ones tests and benchmarks outside stream/ still read
from this module (Inbound, now_utc, free_text, the output-text hash).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tokentrail.collectors.event_bounds import DEFAULT_TS_WINDOW, TsWindow
from tokentrail.collectors.events import DEFAULT_MAX_EVENT_BYTES

from .batch import Inbound, Pipeline, Stage, now_utc
from .pricing import PriceBook
from .redact_stage import Redact, TextRedactor, free_text, redaction_values
from .rows import BuildRows, PriceCalls, normalise_output_text, short_hash
from .tenant_binding import BindTenants
from .validate_stage import Dedupe, Validate

__all__ = [
    "Inbound",
    "Pipeline",
    "build_pipeline",
    "free_text",
    "redaction_values",
    "normalise_output_text",
    "now_utc",
    "short_hash",
]


def build_pipeline(
    *,
    prices: PriceBook,
    redactor: TextRedactor | None,
    allow_raw_text: bool = False,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ts_window: TsWindow = DEFAULT_TS_WINDOW,
    detectors: Iterable[Stage] = (),
    tenant_topics: Mapping[str, str] | None = None,
) -> Pipeline:
    """The standard stage list; per-trace detectors run last, over redacted, priced events.

    `ts_window`: how far an event's `ts` may lie from the time the processor read it.
    `tenant_topics`: {Kafka topic: tenant}; an event from a bound topic must name its tenant
    (`tenant_mismatch` otherwise, stream/tenant_binding.py).
    Fails closed: without a `redactor` the pipeline would store what emitters sent as sent, so
    that is a construction error unless `allow_raw_text=True` says raw storage is intended (the
    Redact stage is then left out; tests of the other stages use it).
    """
    if redactor is None and not allow_raw_text:
        raise ValueError(
            "a pipeline without a redactor would store raw prompts and outputs: pass "
            "redactor=tokentrail.redaction.build_redactor(...), or allow_raw_text=True if raw storage is intended"
        )
    redact: list[Stage] = [] if redactor is None else [Redact(redactor)]
    key_id = "raw" if redactor is None else redactor.key_id
    return Pipeline(
        [
            Validate(max_event_bytes, ts_window),
            *([BindTenants(tenant_topics)] if tenant_topics else []),
            Dedupe(),
            *redact,
            PriceCalls(prices),
            BuildRows(redaction_key_id=key_id),
            *detectors,
        ]
    )
