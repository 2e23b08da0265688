"""Secret detection: provider keys, tokens, private keys, credentials in URLs and assignments.

Presidio has no secrets recognizer, and in prompts secrets are the leak that matters most. The
rules follow gitleaks' maintained rule set (config/gitleaks.toml, MIT): its provider prefixes,
its `keywords` prefilter (a rule's regex only runs when one of its keywords occurs in the text),
its per-rule entropy floors and its generic-api-key approach (a key-like name, an assignment, a
high-entropy value). gitleaks was chosen over detect-secrets because its rules are plain data
(regex + keywords + entropy) that port to Python one by one, it covers far more providers, and
its keyword prefilter is exactly the cheap check a stream processor needs. Deviations, each
because telemetry is not a git diff: prefixes are loosened where providers have changed token
lengths (OpenAI project keys, Anthropic keys) so new formats are not missed; only the secret
part of a URL or assignment is replaced so hosts and names stay debuggable; multi-line private
key blocks also match when JSON-escaped (\\n) or truncated.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["Finding", "SecretScanner", "entropy", "is_placeholder", "secret_name_entity", "RULES"]


class Finding(NamedTuple):
    """A span to replace. Higher priority wins where spans overlap (secrets before PII)."""

    start: int
    end: int
    entity: str
    score: float
    priority: int


def entropy(value: str) -> float:
    """Shannon entropy in bits per character (gitleaks' measure)."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_PLACEHOLDER = re.compile(
    r"""(?ix)^(?: \*+ | x{3,} | \.{3} | <[^>]*> | \$\{?[\w.:-]+\}? | \{\{.*\}\} | %[\w]+% | @[\w]+@
    | null | none | nil | true | false | undefined | empty | required | optional | redacted | hidden
    | masked | secret | password | passwd | str | string | int | bool | bytes | secretstr | env
    | \[?redacted\]? | your[_-]?\w* | my[_-]?\w* | example\w* | dummy\w* | test | n/?a )$"""
)
# A value that is a reference to where the secret lives, not the secret.
_REFERENCE = re.compile(r"^(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|[a-z]+(?:_[a-z]+)+|(?:os|process)\.\S*|getenv\S*)$")
# Words that follow "password:" in prose ("password: required", "password is incorrect").
_PROSE = frozenset(
    """a an the is was be been it its this that your my our their his her to for of on in
and or not no must should will can cannot could would required incorrect invalid wrong expired reset
changed updated please click here below above again field policy manager protected strength length
characters chars rules hint prompt login sign set change forgot forgotten""".split()
)


def is_placeholder(value: str) -> bool:
    """A template variable, a mask, a type name or a reference: nothing to hide."""
    return bool(_PLACEHOLDER.match(value) or _REFERENCE.match(value))


def _plausible_password(value: str) -> bool:
    return not is_placeholder(value) and value.lower() not in _PROSE


def _mixed(value: str) -> bool:
    """At least two of lower, upper, digit, symbol: what a typed password looks like in prose."""
    classes = (
        any(c.islower() for c in value),
        any(c.isupper() for c in value),
        any(c.isdigit() for c in value),
        any(not c.isalnum() for c in value),
    )
    return sum(classes) >= 2 and _plausible_password(value)


def _high_entropy(value: str, floor: float = 3.5) -> bool:
    """gitleaks' generic-api-key test: not letters-only, entropy >= 3.5."""
    return not re.fullmatch(r"[A-Za-z_.-]+", value) and entropy(value) >= floor and not is_placeholder(value)


@dataclass(frozen=True)
class Rule:
    """One detector: a regex gated by keywords, the secret in `group`, optional value checks."""

    id: str
    entity: str
    regex: re.Pattern[str]
    keywords: tuple[str, ...]
    group: int = 0
    min_entropy: float = 0.0
    check: Callable[[str], bool] | None = None
    priority: int = 90


_END = r"(?![\w-])"  # a token ends where no token character follows
_ASSIGN = r"""["']?[ \t]*(?:=|:|=>|:=|\?=)[ \t]*"""
# Names that hold a secret: PASSWORD for passwords, SECRET for the rest (generic-api-key's list,
# narrowed so that max_tokens, cache_key, next_page_token, key_id and friends are not secrets).
_PASSWORD_NAME = r"(?:passw(?:or)?d|passwd|passphrase|pwd|[a-z0-9]+[_.-]pass)"
_SECRET_NAME = (
    r"(?:api[_.-]?key|apikey|secret|token|access[_.-]?key|private[_.-]?key|auth[_.-]?key"
    r"|credentials?|creds|signing[_.-]?key|encryption[_.-]?key|master[_.-]?key"
    r"|session(?:[_.-]?(?:id|key|token))?|cookie)"
)
_NOT_SECRET_NAME = re.compile(
    r"(?i)(?:^|[_.-])(?:max|input|output|total|cached|reasoning|completion|prompt|num|n|page|next|"
    r"continuation|csrf|public|pub|primary|foreign|partition|sort|cache|idempotency|dedupe?|hash|"
    r"cursor|refresh[_.-]?interval)[_.-]?(?:tokens?|keys?)$|(?:keys?|tokens?|secrets?)[_.-]?(?:ids?|names?|"
    r"alias|path|file|size|length|type|count|usage|limit|arn|ref|url|uri|endpoint|version|field)$|"
    r"[_.-](?:hint|policy|reset|strength|expiry|expires|expires[_.-]at|changed|updated|required|enabled|rotated|"
    r"last[_.-]\w+|min|max|rules?|label|prompt|placeholder)$|"
    r"^(?:tokens|keys)$"
)
_NAME_RE = re.compile(rf"(?i)^(?:[a-z0-9]+[_.-])*(?:{_PASSWORD_NAME}|{_SECRET_NAME})(?:[_.-][a-z0-9]+)*$")


def secret_name_entity(name: str) -> str | None:
    """PASSWORD / SECRET / AWS_SECRET_ACCESS_KEY when a JSON key or variable names a secret."""
    if not _NAME_RE.match(name) or _NOT_SECRET_NAME.search(name):
        return None
    low = name.lower()
    if "aws" in low and "secret" in low:
        return "AWS_SECRET_ACCESS_KEY"
    return "PASSWORD" if re.search(r"pass|pwd", low) else "SECRET"


def _r(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


RULES: tuple[Rule, ...] = (
    # -- blocks and structured tokens --------------------------------------------------------
    Rule(
        "private-key",
        "PRIVATE_KEY",
        _r(
            r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]{0,20000}?-----END[ A-Z0-9_-]{0,100}"
            r"PRIVATE KEY(?: BLOCK)?-----|(?:(?:\s|\\[nr])*[A-Za-z0-9+/=]{16,})*)"
        ),
        ("-----begin",),
        priority=100,
    ),
    Rule(
        "jwt",
        "JWT",
        _r(r"\bey[A-Za-z0-9_-]{15,}\.ey[A-Za-z0-9_-]{15,}\.(?:[A-Za-z0-9_-]{10,}={0,2})?"),
        ("eyj",),
        min_entropy=3.0,
        priority=80,
    ),
    # -- model providers -------------------------------------------------------------------
    Rule(
        "anthropic-api-key",
        "ANTHROPIC_API_KEY",
        _r(r"\bsk-ant-(?:api|admin|oat|sid)\d\d-[\w-]{20,300}" + _END),
        ("sk-ant-",),
    ),
    Rule(
        "openai-api-key",
        "OPENAI_API_KEY",
        _r(
            r"\bsk-(?:proj|svcacct|admin|None)-[\w-]{20,300}" + _END + r"|\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}\b"
            r"|\bsk-[A-Za-z0-9]{40,100}" + _END
        ),
        ("sk-",),
        min_entropy=3.0,
    ),
    Rule(
        "huggingface-access-token",
        "HUGGINGFACE_TOKEN",
        _r(r"\b(?:hf|api_org)_[A-Za-z0-9]{30,40}\b"),
        ("hf_", "api_org_"),
        min_entropy=3.0,
    ),
    Rule(
        "llm-provider-keys",
        "API_KEY",
        _r(
            r"\bsk-or-v1-[a-f0-9]{64}\b|\bsk-[A-Za-z0-9]{32,39}" + _END + r"|\bgsk_[A-Za-z0-9]{48,56}\b"
            r"|\bpplx-[A-Za-z0-9]{48}\b|\bxai-[A-Za-z0-9]{60,100}\b|\br8_[A-Za-z0-9]{37}\b|\bnvapi-[\w-]{60,70}"
        ),
        ("sk-", "gsk_", "pplx-", "xai-", "r8_", "nvapi-"),
        min_entropy=3.0,
        priority=85,
    ),
    # -- cloud and code hosting -------------------------------------------------------------
    Rule(
        "aws-access-token",
        "AWS_ACCESS_KEY_ID",
        _r(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b"),
        ("akia", "asia", "abia", "acca", "a3t"),
        min_entropy=3.0,
    ),
    Rule(
        "aws-secret-access-key",
        "AWS_SECRET_ACCESS_KEY",
        _r(
            r"(?i)\baws[\w.-]{0,30}?(?:secret|sk)[\w.-]{0,30}"
            + _ASSIGN
            + r"""["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"""
        ),
        ("aws",),
        group=1,
        min_entropy=3.5,
        priority=88,
    ),
    Rule(
        "aws-key-pair",
        "AWS_SECRET_ACCESS_KEY",
        _r(r"""\b(?:A3T[A-Z0-9]|AKIA|ASIA)[A-Z2-7]{16}[\s,:;/|"']{1,5}([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"""),
        ("akia", "asia", "a3t"),
        group=1,
        min_entropy=3.5,
        priority=88,
    ),
    Rule("gcp-api-key", "GOOGLE_API_KEY", _r(r"\bAIza[\w-]{35}" + _END), ("aiza",), min_entropy=3.5),
    Rule(
        "google-oauth", "API_KEY", _r(r"\bGOCSPX-[\w-]{28}|\bya29\.[\w-]{30,}"), ("gocspx-", "ya29."), min_entropy=3.0
    ),
    Rule(
        "github-token",
        "GITHUB_TOKEN",
        _r(r"\bgh[pousr]_[A-Za-z0-9]{36,251}\b|\bgithub_pat_\w{22,255}"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        min_entropy=3.0,
    ),
    Rule(
        "gitlab-token",
        "GITLAB_TOKEN",
        _r(r"\bgl(?:pat|dt|rt|ptt|ft|imt|agent|oas|soat|ffct|cbt)-[\w.-]{20,300}|\bGR1348941[\w-]{20}"),
        (
            "glpat-",
            "gldt-",
            "glrt-",
            "glptt-",
            "glft-",
            "glimt-",
            "glagent-",
            "gloas-",
            "glsoat-",
            "glffct-",
            "glcbt-",
            "gr1348941",
        ),
        min_entropy=3.0,
    ),
    Rule(
        "slack-token",
        "SLACK_TOKEN",
        _r(
            r"\bxox[abposer]-(?:\d+-)?[0-9A-Za-z][0-9A-Za-z-]{8,250}|\bxoxe\.xox[bp]-\d-[A-Za-z0-9]{100,}"
            r"|(?i:\bxapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+)"
        ),
        ("xox", "xapp-"),
        min_entropy=3.0,
    ),
    Rule(
        "slack-webhook-url",
        "SLACK_WEBHOOK_URL",
        _r(r"(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,120}"),
        ("hooks.slack.com",),
    ),
    Rule(
        "stripe-access-token",
        "STRIPE_KEY",
        _r(r"\b(?:sk|rk)_(?:test|live|prod)_[A-Za-z0-9]{10,99}\b|\bwhsec_[A-Za-z0-9]{24,}"),
        ("sk_test", "sk_live", "sk_prod", "rk_test", "rk_live", "rk_prod", "whsec_"),
        min_entropy=2.0,
    ),
    Rule(
        "saas-tokens",
        "API_KEY",
        _r(
            r"\bSG\.[\w-]{20,24}\.[\w-]{40,50}|\bnpm_[A-Za-z0-9]{36}\b|\bpypi-AgEIcHlwaS5vcmc[\w-]{50,}"
            r"|\bdo[opr]_v1_[a-f0-9]{64}\b|\bdapi[a-f0-9]{32}(?:-\d)?\b|\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"
            r"|\bSK[0-9a-fA-F]{32}\b|\bATATT3[\w=-]{150,}|\blin_api_[A-Za-z0-9]{40}\b|\bntn_\d{11}[A-Za-z0-9]{35}\b"
            r"|\bhv[sb]\.[\w-]{90,300}|\bglsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b|\bglc_[A-Za-z0-9+/]{32,400}={0,3}"
            r"|\bsntry[us]_[\w+/=]{40,}|\bdp\.pt\.[A-Za-z0-9]{43}|\bHRKU-AA[\w-]{58}|\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b"
            r"|\bAGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}|\bpscale_(?:tkn|oauth|pw)_[\w=.-]{32,64}"
            r"|\bsq0(?:atp|csp)-[\w-]{22,60}|\bEAA[MC][A-Za-z0-9]{100,}|\bdt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}"
            r"|\bAKCp[A-Za-z0-9]{69}\b|\b[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}" + _END
        ),
        (
            "sg.",
            "npm_",
            "pypi-",
            "_v1_",
            "dapi",
            "shp",
            "sk",
            "atatt3",
            "lin_api_",
            "ntn_",
            "hvs.",
            "hvb.",
            "glsa_",
            "glc_",
            "sntry",
            "dp.pt.",
            "hrku-",
            "pmak-",
            "age-secret-key-",
            "pscale_",
            "sq0",
            "eaa",
            "dt0c01.",
            "akcp",
            "q~",
        ),
        min_entropy=3.0,
    ),
    # -- credentials in headers, URLs, commands and assignments --------------------------------
    Rule(
        "authorization-basic",
        "PASSWORD",
        _r(r"(?i)\bauthorization[\"']?[ \t]*[:=][ \t]*[\"']?basic[ \t]+([A-Za-z0-9+/]{8,}={0,2})"),
        ("basic",),
        group=1,
        priority=70,
    ),
    Rule(
        "bearer-token",
        "BEARER_TOKEN",
        _r(r"(?i)(?:\bbearer|\bauthorization[\"']?[ \t]*[:=][ \t]*[\"']?token)[ \t]+([\w.~+/-]{16,}=*)"),
        ("bearer", "authorization"),
        group=1,
        min_entropy=3.0,
        priority=60,
    ),
    Rule(
        "api-key-header",
        "SECRET",
        _r(
            r"(?i)\b(?:x-api-key|api-key|x-auth-token|x-access-token|private-token|x-goog-api-key|ocp-apim-subscription-key)"
            r"[\"']?[ \t]*[:=][ \t]*[\"']?([\w.~+/-]{8,}=*)"
        ),
        ("api-key", "-token", "subscription-key"),
        group=1,
        check=_high_entropy,
        priority=60,
    ),
    Rule(
        "url-credentials",
        "PASSWORD",
        _r(r"\b[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s:/@\"'<>]{0,128}:([^\s/@\"'<>]{1,256})@[\w.\[-]"),
        ("://",),
        group=1,
        check=_plausible_password,
        priority=70,
    ),
    Rule(
        "curl-auth-user",
        "PASSWORD",
        _r(r"(?i)\bcurl\b[^\n]*?\s(?:-u|--user)[ =]?[\"']?[^:\s\"']+:([^\s\"']{3,})"),
        ("curl",),
        group=1,
        check=_plausible_password,
        priority=70,
    ),
)

# Assignments: `DB_PASSWORD=...`, `password: "..."`, `"client_secret": "..."`, `api_key = ...`.
_ASSIGNMENT = _r(
    rf"""(?i)(?<![A-Za-z0-9])((?:[a-z0-9]+[_.-])*(?:{_PASSWORD_NAME}|{_SECRET_NAME})(?:[_.-][a-z0-9]+)*)"""
    + _ASSIGN
    + r"""(?:(["'`])([^"'`\n]{1,256}?)\2|([^\s"'`,;<>{}()\[\]]{3,256}))"""
)
_ASSIGNMENT_KEYWORDS = ("pass", "pwd", "key", "secret", "token", "cred", "session", "cookie")
# Prose: "my password is Tr0ub4dor&3", "the api key is 9f8e...".
_PROSE_CREDENTIAL = _r(
    r"(?i)\b(password|passcode|passphrase|pwd|api[ _-]?key|secret|token)[ \t]+(?:is|was|=|:)[ \t]+"
    r"[\"'`]?([^\s\"'`,;]{4,128})"
)
_TRAILING_PUNCT = ".!?)]}"


class SecretScanner:
    """Runs the rules over a text; only rules whose keywords occur are tried (gitleaks' prefilter)."""

    def __init__(self, entities: frozenset[str] | set[str]) -> None:
        self.entities = frozenset(entities)
        self.rules = tuple(r for r in RULES if r.entity in self.entities)
        self._assignments = bool(self.entities & {"PASSWORD", "SECRET", "AWS_SECRET_ACCESS_KEY"})
        words = {k for r in self.rules for k in r.keywords}
        if self._assignments:
            words.update(_ASSIGNMENT_KEYWORDS)
        self._keywords = re.compile("|".join(sorted(map(re.escape, words), key=len, reverse=True))) if words else None
        self._by_keyword = {k: tuple(r for r in self.rules if k in r.keywords) for k in words}

    def scan(self, text: str) -> list[Finding]:
        if self._keywords is None:
            return []
        low = text.lower()
        found = set(self._keywords.findall(low))
        if not found:
            return []
        rules: dict[str, Rule] = {}
        for k in found:
            for rule in self._by_keyword.get(k, ()):
                rules[rule.id] = rule
        out: list[Finding] = []
        for rule in rules.values():
            for m in rule.regex.finditer(text):
                start, end = m.span(rule.group)
                if start < 0 or end <= start:
                    continue
                value = text[start:end]
                if rule.min_entropy and entropy(value) < rule.min_entropy:
                    continue
                if rule.check is not None and not rule.check(value):
                    continue
                out.append(Finding(start, end, rule.entity, 1.0, rule.priority))
        if self._assignments and found & set(_ASSIGNMENT_KEYWORDS):
            out.extend(self._scan_assignments(text))
        return out

    def _scan_assignments(self, text: str) -> list[Finding]:
        out = []
        for m in _ASSIGNMENT.finditer(text):
            entity = secret_name_entity(m.group(1))
            if entity is None or entity not in self.entities:
                continue
            group = 3 if m.group(3) is not None else 4
            start, end = m.span(group)
            value = text[start:end]
            if group == 4:  # unquoted: "password: hunter2." ends a sentence
                while value and value[-1] in _TRAILING_PUNCT:
                    value, end = value[:-1], end - 1
            # An explicit name is strong evidence: a lower entropy floor than prose (3.0 vs 3.5).
            ok = _plausible_password(value) if entity == "PASSWORD" else _high_entropy(value, 3.0) and len(value) >= 8
            if ok and value.strip():
                out.append(Finding(start, end, entity, 1.0, 50))
        for m in _PROSE_CREDENTIAL.finditer(text):
            name, (start, end) = m.group(1).lower(), m.span(2)
            value = m.group(2).rstrip(_TRAILING_PUNCT)
            end = start + len(value)
            is_password = name.startswith("pass") or name == "pwd"
            entity = "PASSWORD" if is_password else "SECRET"
            if entity not in self.entities:
                continue
            if (is_password and _mixed(value)) or (not is_password and len(value) >= 16 and _high_entropy(value, 3.0)):
                out.append(Finding(start, end, entity, 1.0, 50))
        return out
