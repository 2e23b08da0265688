"""The labelled corpus (corpus.json) and how a Redactor is scored on it.

Each snippet is prose, a JSON tool call or result, a multi-line config file or a log excerpt, with
markup: `[[ENTITY|value]]` marks a value that must not survive redaction, `[[KEEP|value]]` a
technical token that must (versions, error codes, model names, paths, prices, ids, hashes). A value
written `@maker` is generated here at load time, deterministically per snippet, so that no string
shaped like a live credential sits in the repository for secret scanners to flag.

Scores: per entity, the share of labelled values that no longer appear in the output (recall) and
the share replaced under the right type; over all replacements, the share that covered a labelled
value (precision); and the share of technical tokens that survived.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Snippet", "Label", "Report", "load_corpus", "evaluate", "CORPUS_PATH", "SECRET_MAKERS"]

CORPUS_PATH = Path(__file__).with_name("corpus.json")
_MARK = re.compile(r"\[\[([A-Z_]+)\|(.+?)\]\]")
_ALNUM = string.ascii_letters + string.digits


def _tok(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
    claims = {"sub": str(rng.randint(10**7, 10**8)), "iat": 1795000000 + rng.randint(0, 10**6), "scope": "read write"}
    return f"{header}.{_b64url(json.dumps(claims).encode())}.{_b64url(rng.randbytes(32))}"


def _pem(rng: random.Random, kind: str, nbytes: int) -> str:
    body = base64.b64encode(rng.randbytes(nbytes)).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----"


def _password(rng: random.Random) -> str:
    words = ["Tr0ub4dor", "S3cure", "Winter", "Blue!Fish", "Passw0rd", "Dragon", "Sunny"]
    return rng.choice(words) + rng.choice("!#%&*$") + str(rng.randint(10, 9999))


SECRET_MAKERS: dict[str, Callable[[random.Random], str]] = {
    "openai_project": lambda r: "sk-proj-" + _tok(r, 74, _ALNUM + "-_") + "T3BlbkFJ" + _tok(r, 74, _ALNUM + "-_"),
    "openai_short": lambda r: "sk-proj-" + _tok(r, 48, _ALNUM + "-_"),
    "openai_legacy": lambda r: "sk-" + _tok(r, 20) + "T3BlbkFJ" + _tok(r, 20),
    "openai_svcacct": lambda r: "sk-svcacct-" + _tok(r, 58, _ALNUM + "-_") + "T3BlbkFJ" + _tok(r, 58, _ALNUM + "-_"),
    "anthropic": lambda r: "sk-ant-api03-" + _tok(r, 93, _ALNUM + "-_") + "AA",
    "aws_key_id": lambda r: r.choice(["AKIA", "ASIA"]) + _tok(r, 16, string.ascii_uppercase + "234567"),
    "aws_secret": lambda r: _tok(r, 40, _ALNUM + "/+"),
    "github_pat": lambda r: "ghp_" + _tok(r, 36),
    "github_oauth": lambda r: "gho_" + _tok(r, 36),
    "github_app": lambda r: "ghs_" + _tok(r, 36),
    "github_fine": lambda r: "github_pat_" + _tok(r, 22) + "_" + _tok(r, 59),
    "gitlab_pat": lambda r: "glpat-" + _tok(r, 20, _ALNUM + "-_"),
    "slack_bot": lambda r: f"xoxb-{_tok(r, 11, string.digits)}-{_tok(r, 12, string.digits)}-{_tok(r, 24)}",
    "slack_user": lambda r: (
        f"xoxp-{_tok(r, 11, string.digits)}-{_tok(r, 11, string.digits)}-"
        f"{_tok(r, 13, string.digits)}-{_tok(r, 32, '0123456789abcdef')}"
    ),
    "slack_webhook": lambda r: (
        f"https://hooks.slack.com/services/T{_tok(r, 8, string.ascii_uppercase)}/"
        f"B{_tok(r, 10, string.ascii_uppercase)}/{_tok(r, 24)}"
    ),
    "stripe_live": lambda r: "sk_" + "live_" + _tok(r, 99),
    "stripe_test": lambda r: "sk_" + "test_" + _tok(r, 24),
    "stripe_restricted": lambda r: "rk_" + "live_" + _tok(r, 24),
    "stripe_webhook": lambda r: "whsec_" + _tok(r, 32),
    "google_api": lambda r: "AIza" + _tok(r, 35, _ALNUM + "-_"),
    "huggingface": lambda r: "hf_" + _tok(r, 34, string.ascii_letters),
    "groq": lambda r: "gsk_" + _tok(r, 52),
    "sendgrid": lambda r: "SG." + _tok(r, 22, _ALNUM + "-_") + "." + _tok(r, 43, _ALNUM + "-_"),
    "npm": lambda r: "npm_" + _tok(r, 36),
    "replicate": lambda r: "r8_" + _tok(r, 37),
    "deepseek": lambda r: "sk-" + _tok(r, 32, "0123456789abcdef"),
    "jwt": _jwt,
    "opaque": lambda r: _tok(r, 40, _ALNUM + "._-"),
    "private_key_rsa": lambda r: _pem(r, "RSA ", 600),
    "private_key_pkcs8": lambda r: _pem(r, "", 400),
    "private_key_openssh": lambda r: _pem(r, "OPENSSH ", 300),
    "private_key_ec": lambda r: _pem(r, "EC ", 120),
    "private_key_truncated": lambda r: _pem(r, "RSA ", 300).split("\n-----END")[0][:-20],
    "password": _password,
    "secret_hex": lambda r: _tok(r, 32, "0123456789abcdef"),
    "secret_b64": lambda r: base64.b64encode(r.randbytes(30)).decode(),
}


@dataclass(frozen=True)
class Label:
    entity: str
    value: str


@dataclass
class Snippet:
    id: str
    form: str  # prose | json | config | log | code
    text: str
    labels: list[Label]
    keep: list[str]

    def value(self) -> Any:
        return json.loads(self.text) if self.form == "json" else self.text


def load_corpus(path: Path | str | None = None) -> list[Snippet]:
    """The snippets with markup expanded; generated values are the same on every load."""
    items = json.loads(Path(path or CORPUS_PATH).read_text(encoding="utf-8"))
    return [_expand(item) for item in items]


def _expand(item: dict[str, Any]) -> Snippet:
    labels, keep = [], []
    form = item["form"]

    def replace(m: re.Match[str]) -> str:
        entity, raw = m.group(1), m.group(2)
        value = raw
        if raw.startswith("@"):
            maker = raw[1:].split("#")[0]
            value = SECRET_MAKERS[maker](random.Random(f"{item['id']}:{raw}"))
        (keep.append(value) if entity == "KEEP" else labels.append(Label(entity, value)))
        return json.dumps(value, ensure_ascii=False)[1:-1] if form == "json" else value

    return Snippet(item["id"], form, _MARK.sub(replace, item["text"]), labels, keep)


@dataclass
class Report:
    snippets: int = 0
    by_entity: dict[str, list[int]] = field(default_factory=dict)  # entity -> [labelled, removed, typed]
    tokens: int = 0
    true_tokens: int = 0
    false_positives: list[tuple[str, str, str]] = field(default_factory=list)  # (snippet, entity, value)
    leaks: list[tuple[str, str]] = field(default_factory=list)  # (snippet, entity): labelled value survived
    keep_total: int = 0
    keep_survived: int = 0
    lost: list[tuple[str, str]] = field(default_factory=list)  # (snippet, technical token) redacted

    @property
    def recall(self) -> float:
        labelled = sum(v[0] for v in self.by_entity.values())
        return sum(v[1] for v in self.by_entity.values()) / max(labelled, 1)

    @property
    def precision(self) -> float:
        return self.true_tokens / max(self.tokens, 1)

    @property
    def survival(self) -> float:
        return self.keep_survived / max(self.keep_total, 1)

    def table(self) -> str:
        lines = [f"{'entity':<22}{'labelled':>9}{'removed':>9}{'recall':>8}{'right type':>12}"]
        for entity in sorted(self.by_entity):
            n, removed, typed = self.by_entity[entity]
            lines.append(f"{entity:<22}{n:>9}{removed:>9}{removed / n:>8.1%}{typed / n:>12.1%}")
        lines.append(
            f"{'all':<22}{sum(v[0] for v in self.by_entity.values()):>9}"
            f"{sum(v[1] for v in self.by_entity.values()):>9}{self.recall:>8.1%}"
        )
        lines.append(
            "precision (replacements covering a labelled value): "
            f"{self.true_tokens}/{self.tokens} = {self.precision:.1%}"
        )
        lines.append(f"technical tokens surviving: {self.keep_survived}/{self.keep_total} = {self.survival:.1%}")
        return "\n".join(lines)


def _strings(value: Any) -> list[str]:
    """Every key and scalar of a JSON value as text (numbers too: a technical token may be a
    number; keys too: an email may be a key)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (str(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [json.dumps(value)]


def _survives(label: Label, output: str) -> bool:
    if label.value in output:
        return True
    if label.entity == "PERSON":  # a surname left behind is still a leak
        return any(
            re.search(rf"(?<!\w){re.escape(part)}(?!\w)", output) for part in label.value.split() if len(part) > 2
        )
    return False


def evaluate(redactor: Any, snippets: list[Snippet] | None = None, entities: set[str] | None = None) -> Report:
    """Score `redactor` on the corpus (or `snippets`); labels outside `entities` are not scored."""
    from .result_cache import ResultCache

    snippets = load_corpus() if snippets is None else snippets
    report, recorded = Report(snippets=len(snippets)), []
    real_token = redactor.token

    def recording_token(entity: str, value: str) -> str:
        recorded.append((entity, value))
        token: str = real_token(entity, value)
        return token

    saved_cache = redactor._cache
    redactor.token, redactor._cache = recording_token, ResultCache(0)  # every string analysed afresh
    try:
        for snip in snippets:
            recorded.clear()
            out, _ = redactor.redact_json(snip.value())
            output = "\n".join(_strings(out))
            labels = [lab for lab in snip.labels if entities is None or lab.entity in entities]
            for lab in labels:
                row = report.by_entity.setdefault(lab.entity, [0, 0, 0])
                row[0] += 1
                if _survives(lab, output):
                    report.leaks.append((snip.id, lab.entity))
                else:
                    row[1] += 1
                if any(e == lab.entity and (v in lab.value or lab.value in v) for e, v in recorded):
                    row[2] += 1
            for entity, value in recorded:
                report.tokens += 1
                if any(value in lab.value or lab.value in value for lab in snip.labels):
                    report.true_tokens += 1
                else:
                    report.false_positives.append((snip.id, entity, value))
            for k in snip.keep:
                report.keep_total += 1
                if k in output:
                    report.keep_survived += 1
                else:
                    report.lost.append((snip.id, k))
    finally:
        del redactor.token
        redactor._cache = saved_cache
    return report
