"""Names and places: spaCy NER spans made precise, and the context that gives them away without NER.

The small English model finds most names in prose but also tags tools, vendors, error codes and
capitalised instructions ("Kafka", "ORA-00942", "Summarise") as people and places; the filters
here drop those. Structured context finds what NER misses or cannot see: a value under a field
named for a person or an address (in JSON keys and in key=value text), a name after "Dear" or a
sign-off, a street address. These work without a model, so pattern-only mode is not blind.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from .name_lexicon import lexicon_findings
from .secret_rules import Finding

__all__ = ["ner_findings", "context_findings", "pii_key_entity", "pii_value_fits", "NER_LABELS", "TECH_TERMS"]

NER_PRIORITY = 20
# spaCy labels -> Presidio entities (Presidio's mapping, plus FAC: streets and buildings).
NER_LABELS = {
    "PERSON": "PERSON",
    "PER": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "ORG": "ORGANIZATION",
    "NORP": "NRP",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
}
_TOKEN_RE = re.compile(r"^<[A-Z_]+:[0-9a-f]{8}(?:[0-9a-f]{8})?>$")  # a token from an earlier pass

# Names spaCy's small English model tags as PERSON/LOCATION in technical text; never personal.
TECH_TERMS = frozenset(
    """
openai anthropic claude sonnet haiku opus gemini gpt llama mistral mixtral gemma qwen deepseek grok
cohere bedrock vertex azure aws gcp kafka redis postgres postgresql mysql sqlite clickhouse grafana
prometheus kubernetes docker python java rust golang node nodejs react django flask fastapi pydantic
spacy presidio github gitlab slack stripe jira confluence sentry datadog langchain langfuse pytorch
tensorflow numpy pandas linux ubuntu debian nginx terraform ansible jenkins vllm ollama huggingface
hugging face json yaml http https sql api sdk cli utc oauth jwt ssh tls ssl dns cdn s3 ec2 lambda
faust chdb tokentrail openapi graphql grpc webhook celery airflow dbt snowflake bigquery databricks
elasticsearch opensearch mongodb cassandra rabbitmq pagerduty opsgenie okta auth0 vercel netlify
cloudflare heroku supabase firebase twilio sendgrid mailgun shopify salesforce hubspot zendesk
intercom notion linear figma vscode copilot cursor chatgpt bard
ups usps dhl fedex dpd royal mail hermes gls tnt
starter pro plus premium enterprise basic free business team teams
""".split()
)
_IDENTIFIER = re.compile(r"[A-Za-z][-_]?\d|\d[-_]?[A-Za-z]{1,}\d|\d[-_][A-Za-z]")
_CODE_CHARS = re.compile(r"[_/\\=<>{}\[\]@#$%|`*~^]|://|\w\.\w|\(\)")


# Capitalised words the small model tags as names at the start of an instruction or after a
# status code ("Summarise this:", "403 Forbidden"); the forms of address that open a letter.
NOT_NAMES = frozenset(
    """
summarise summarize translate explain classify extract rewrite write draft list describe generate answer
respond reply check fix review refactor please thanks thank hello hi hey dear regards best cheers
forbidden unauthorized accepted created found gone conflict error warning note todo fixme info debug
critical fatal success failed pending status result output input user assistant system tool function
customer customers team support sir madam all everyone the a an this that our your my we they
password refund order orders invoice payment account login feature request shipping delivery tracking
subscription billing plan ticket issue bug
escalate route forward assign send notify contact call ask email message tell update cancel close spoke
reopen refund ship deliver confirm approve reject merge deploy restart investigate transfer schedule book
find show give get make let
""".split()
)
# Lowercase words allowed inside a name or an address: "Rue de Rivoli", "Ludwig van Beethoven".
_PARTICLES = frozenset("de da di du das dos do del della van von der den la le bin al ter of upon on y".split())


def _keep_ner(entity: str, span: str) -> bool:
    tokens = span.split()
    if not tokens or len(span) < 2 or _CODE_CHARS.search(span):
        return False
    if any(not t[:1].isupper() and not t[:1].isdigit() and t.lower() not in _PARTICLES for t in tokens):
        return False  # spaCy tags lowercase words and identifiers; names are written capitalised
    if not any(t[:1].isupper() for t in tokens):
        return False  # "420ms", "2026": numbers alone are no place
    if any(_IDENTIFIER.search(t) for t in tokens):
        return False  # "ORA-00942", "TCK-92982", "v2": codes and ids
    if all(t.lower().strip(".,'\"") in TECH_TERMS or t.isupper() and len(t) <= 5 for t in tokens):
        return False  # "Claude Sonnet", "Kafka", "EMEA", "UTC": tools, vendors, acronyms
    if tokens[0].lower().strip(".,:;!") in NOT_NAMES:
        return False
    if entity == "PERSON" and any(c.isdigit() for c in span):
        return False
    if len(tokens) == 1 and span.isupper() and len(span) > 3:
        return False  # "ECONNRESET", "SQLSTATE": error constants, not a name written in capitals
    return True


def ner_findings(
    text: str,
    spans: Iterable[tuple[int, int, str]],
    offset: int,
    entities: frozenset[str],
    thresholds: dict[str, float],
) -> list[Finding]:
    """PERSON/LOCATION (and optional NER entities) from spaCy's entity spans (start, end, label)
    over the piece of `text` that starts at `offset`."""
    out = []
    for ent_start, ent_end, label in spans:
        entity = NER_LABELS.get(label)
        if entity is None or entity not in entities:
            continue
        span = text[offset + ent_start : offset + ent_end]
        stripped = span.strip(" \t\n.,;:!?\"'()")
        if stripped.endswith("'s"):
            stripped = stripped[:-2]
        if not stripped or not _keep_ner(entity, stripped):
            continue
        start = ent_start + span.find(stripped)
        score = 0.85  # Presidio's fixed NER score: spaCy gives none
        if score >= thresholds.get(entity, 0.5):
            out.append(Finding(offset + start, offset + start + len(stripped), entity, score, NER_PRIORITY))
    return out


# -- structured values ------------------------------------------------------------------------

# Tool arguments name their fields: {"customer_name": ..., "shipping_address": ..., "phone": ...}.
# The key says what the value is even where no recognizer could (a lowercase name, a bare number).
_PERSON_NAMES = (
    r"(?:(?:customer|contact|full|first|last|given|family|middle|display|account[_-]?holder"
    r"|card[_-]?holder|holder|recipient|sender|patient|employee|person|owner|billing|shipping"
    r"|legal|maiden)[_-]?name|firstname|lastname|surname|fullname)"
)
_LOCATION_NAMES = (
    r"(?:(?:(?:shipping|billing|home|street|postal|mailing|delivery|residential|customer)[_-]?)?"
    r"(?:address(?:[_-]?line[_-]?\d)?|street|city|town|postcode|postal[_-]?code|zip(?:[_-]?code)?))"
)
_PHONE_NAMES = r"(?:(?:[a-z0-9]+[_-])?(?:phone|mobile|cell|tel|telephone|fax)(?:[_-]?(?:number|no))?)"
_PERSON_KEY = re.compile(rf"(?i)^{_PERSON_NAMES}$")
_LOCATION_KEY = re.compile(rf"(?i)^{_LOCATION_NAMES}$")
_PHONE_KEY = re.compile(rf"(?i)^{_PHONE_NAMES}$")
_KV_TEXT = re.compile(
    rf"""(?i)(?<![\w.-])({_PERSON_NAMES}|{_LOCATION_NAMES}|{_PHONE_NAMES})["']?[ \t]*[:=][ \t]*"""
    r"""(?:"([^"\n]{1,120})"|'([^'\n]{1,120})'|([^\s"'{}\[\],;&|][^\n,;&|"'{}\[\]]{0,119}))"""
)
_KV_CUT = re.compile(r"\s+[\w.-]+[:=]|\s{2,}|\s+\(")  # the next key=value on a log line
# Latin-1 and Latin Extended-A (Ayşe, Łukasz, Wróbel), hyphenated (Lars-Erik, Devaux-Dumont).
_NAME_WORD = r"[A-ZÀ-ÖØ-ÞĀ-Ž][a-zà-öø-ÿā-ž'’]+(?:-[A-ZÀ-ÖØ-ÞĀ-Ža-zà-öø-ÿā-ž][a-zà-öø-ÿā-ž'’]+)*"
_ADDRESSED = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam)\.?[ \t]+|\b(?:[Mm]y name is|[Nn]ame:|[Dd]ear|[Ss]igned by|[Ss]igned,"
    r"|[Uu]nder the name|[Nn]ame is|[Nn]amed|[Ss]poke (?:to|with)|[Aa]sk for|[Oo]n behalf of)[ \t]+"
    r"|^[ \t]*(?:Thanks|Thank you|Regards|Best regards|Kind regards|Best|Cheers|Sincerely|Warm regards"
    r"|Many thanks),?[ \t]*\n[ \t]*)"
    rf"({_NAME_WORD}(?:[ \t]+(?:(?:de|da|di|das|dos|do|van|von|der|del|la|le)[ \t]+)?{_NAME_WORD}){{0,3}})",
    re.M,
)


# Cues found on the evaluation set's dev split, in their own regex behind substring tests so the
# text without them (nearly all) pays a few `in` checks, not more alternatives at every position.
_CUES: tuple[str, ...] = ("this is", " by ", "colleague", "manager", "boss", "wife", "husband", "partner")
_CUES += ("friend", "son ", "daughter", "mother", "father", "teammate", "worker", "client ", "customer ")
_CUED = re.compile(
    r"\b(?:(?:[Pp]aid|[Pp]ayment|[Pp]laced|[Oo]rdered|[Ss]ubmitted|[Rr]eported|[Rr]equested|[Aa]pproved) by"
    r"|[Tt]his is|(?:[Mm]y|[Oo]ur|[Yy]our) (?:colleague|manager|boss|wife|husband|partner|friend|son|daughter"
    r"|mother|father|teammate|coworker|co-worker|client|customer))[ \t]+"
    rf"({_NAME_WORD}(?:[ \t]+(?:(?:de|da|di|das|dos|do|van|von|der|del|la|le)[ \t]+)?{_NAME_WORD}){{0,3}})"
)


# Literal pieces of _ADDRESSED's alternatives, case as written there: text with none of them (nearly
# all) skips the regex, which otherwise tries a dozen alternatives at every word boundary.
# Keep in step with _ADDRESSED above ("Mr" covers "Mrs"; "ame is" covers "my name is").
_ADDRESSED_PIECES: tuple[str, ...] = ("Mr", "Ms", "Miss", "Mx", "Dr", "Prof", "Sir", "Madam", "ame:")
_ADDRESSED_PIECES += ("ame is", "amed", "Dear", "dear", "igned", "nder the name", "poke ", "sk for", "n behalf of")
_SIGN_OFFS = (
    "Thank",
    "Regards",
    "regards",
    "Best",
    "Cheers",
    "Sincerely",
    "Many thanks",
)  # _ADDRESSED's sign-offs, after a newline


def _addressed(text: str) -> list[re.Match[str]]:
    if any(piece in text for piece in _ADDRESSED_PIECES) or ("\n" in text and any(word in text for word in _SIGN_OFFS)):
        return list(_ADDRESSED.finditer(text))
    return []


def _cued(text: str) -> list[re.Match[str]]:
    low = text.lower()
    return list(_CUED.finditer(text)) if any(cue in low for cue in _CUES) else []


# Street addresses and postcodes, written the ways a customer writes them; found without NER.
_STREET = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Way|Court|Ct|Place|Pl|Parkway|Square"
    r"|Terrace|Crescent|Close|Gardens|Row|Highway|Hwy)"
)
# One regex per shape: as alternatives of one pattern they cost twice their sum (the lookbehinds
# defeat the regex engine's prefix scan). The German shape only when one of its suffixes is there.
_ADDRESSES = (
    re.compile(rf"\b\d{{1,5}}[a-zA-Z]?,?[ \t]+(?:[A-Z][a-z]+[ \t]+){{1,3}}{_STREET}\b\.?"),  # "12 Baker Street"
    re.compile(r"(?<=, )[A-Z]{2}[ \t]+\d{5}(?:-\d{4})?\b"),  # ", TX 78701"
    re.compile(r"(?<=[a-z] )[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2}\b"),  # "London SW1A 2AA"
)
_GERMAN_SUFFIXES = ("straße", "strasse", "weg", "gasse", "platz", "allee", "ring", "damm")
_GERMAN_ADDRESS = re.compile(
    r"\b[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|weg|gasse|platz|allee|ring|damm)[ \t]+\d{1,4}[a-z]?\b"
)  # "Hauptstraße 5"


def _addresses(text: str) -> list[re.Match[str]]:
    found = [m for pattern in _ADDRESSES for m in pattern.finditer(text)]
    if any(suffix in text for suffix in _GERMAN_SUFFIXES):
        found.extend(_GERMAN_ADDRESS.finditer(text))
    return found


# Two capitalised words in a row (particles allowed between): what _CONTACTED needs, searched
# first because it is five times cheaper and rules out most telemetry text.
_PLACE_GATE = re.compile(r"[a-z] [A-ZÀ-ÖØ-ÞĀ-Ž][a-zà-öø-ÿā-ž]")  # a capitalised word after a lowercase one
_NAME_PARTICLES = r"(?:de|da|di|das|dos|do|van|von|der|den|del|la|le|bin|al)"
_NAME_PAIR = re.compile(rf"{_NAME_WORD}[ \t]+(?:{_NAME_PARTICLES}[ \t]+){{0,2}}[A-ZÀ-ÖØ-ÞĀ-Ž]")
# "call <name> on <phone>": a person named right after a verb of contacting. Two or more capitalised
# words, so "call Support" and "ask Claude" stay; names of tools are dropped by _keep_contacted.
_CONTACTED = re.compile(
    r"\b(?:[Cc]all|[Pp]hone|[Ww]hats[Aa]pp|[Cc]ontact|[Aa]sk|[Pp]ing|[Tt]ext|[Rr]ing|[Tt]ell|[Ee]-?mail|[Mm]essage|[Vv]isit"
    r"|(?:[Ee]scalate|[Ff]orward|[Rr]each out|[Aa]ssign(?:ed)?|[Hh]and(?: it)? over|[Tt]alk|[Ss]peak|[Rr]eply)"
    r" to)[ \t]+"
    rf"({_NAME_WORD}(?:[ \t]+(?:{_NAME_PARTICLES}[ \t]+){{0,2}}{_NAME_WORD}){{1,3}})"
)


# "delivery to Wrocław", "based in Ankara": capitalised words after a preposition of place, when no
# word is a tool, a month or a function word. NER misses places it has not seen in English news.
_PLACED = re.compile(
    r"\b(?:[Dd]elivery to|[Ss]hip(?:ped|ping)? to|[Ss]ent to|[Ii]n|[Ff]rom|[Nn]ear|[Aa]t|[Ii]nto|[Tt]owards?|[Vv]ia"
    r"|[Bb]ased in|[Ll]ives? in|[Mm]oved to|[Tt]ravel(?:ling|ing)? to|[Ff]light to|[Oo]ffice in|[Ss]tore in)[ \t]+"
    rf"({_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,2}})(?=[ \t]*(?:[.,;:!?)]|$|\n|[ \t]+[a-z]))",
    re.M,
)
_NOT_PLACES = frozenset(
    """
january february march april may june july august september october november december monday tuesday
wednesday thursday friday saturday sunday production staging development prod dev test settings english
french german spanish markdown excel word chrome firefox safari windows mac macos ios android production
""".split()
)


def _keep_place(place: str) -> bool:
    words = [w.lower().strip(".,'\"") for w in place.split()]
    return not any(w in TECH_TERMS or w in NOT_NAMES or w in _NOT_PLACES for w in words)


# "Sibonelo Ndawonde says ...": two or more capitalised words, then a verb people do.
_SUBJECT = re.compile(
    rf"(?<![\w.-])({_NAME_WORD}(?:[ \t]+(?:{_NAME_PARTICLES}[ \t]+){{0,2}}{_NAME_WORD}){{1,3}})[ \t]+"
    r"(?:says|said|asks|asked|wrote|writes|reported|reports|mentioned|told|tried|called|emailed|confirmed"
    r"|complained|requested|wants|needs|replied|approved|signed|paid|ordered|booked|cancelled|canceled)\b"
)


def _keep_contacted(name: str) -> bool:
    """A name after a contact verb: no word of it a tool, vendor or product ("ask Claude Code")."""
    words = name.split()
    return len(words) >= 2 and not any(w.lower().strip(".,'\"") in TECH_TERMS for w in words)


def pii_key_entity(name: str, text: bool = False) -> str | None:
    """PERSON / LOCATION / PHONE_NUMBER when a JSON key (or a key=value in text) names a personal field.

    A bare "address" names a location only as a JSON key: in logs it is as often a memory address.
    """
    if _PERSON_KEY.match(name):
        return "PERSON"
    if _LOCATION_KEY.match(name):
        return None if text and name.lower() == "address" else "LOCATION"
    if _PHONE_KEY.match(name):
        return "PHONE_NUMBER"
    return None


def pii_value_fits(entity: str, value: str) -> bool:
    """The value under a personal key looks like one: a short name, an address, seven digits."""
    value = value.strip()
    if not value or "://" in value or "@" in value:
        return False
    if entity == "PHONE_NUMBER":
        return sum(c.isdigit() for c in value) >= 7
    try:
        ipaddress.ip_address(value)
        return False
    except ValueError:
        pass
    words = value.split()
    if value.lower().startswith("0x") or _TOKEN_RE.match(value):
        return False
    if entity == "PERSON":
        return 1 <= len(words) <= 5 and any(c.isalpha() for c in value) and not _CODE_CHARS.search(value)
    return 1 <= len(words) <= 15 and any(c.isalnum() for c in value)


_KV_WORDS = ("name", "address", "street", "city", "town", "post", "zip", "phone", "mobile", "cell", "tel", "fax")
_KV_GATE = re.compile("(?i)" + "|".join(_KV_WORDS))


def _may_name_a_field(text: str) -> bool:
    """Whether _KV_TEXT can match at all: every key it knows contains one of _KV_WORDS, then ':' or '='.

    Substring tests on the lowered text, much cheaper than a case-insensitive regex; non-ASCII
    text takes the regex, which also matches case variants that str.lower() does not map.
    """
    if ":" not in text and "=" not in text:
        return False
    if text.isascii():
        low = text.lower()
        return any(word in low for word in _KV_WORDS)
    return _KV_GATE.search(text) is not None


def context_findings(text: str, entities: frozenset[str]) -> list[Finding]:
    """Values named by their field in logs and configs (customer_name=..., city: ...), street
    addresses, and names after a form of address or a sign-off: found without NER, so also in
    pattern-only mode."""
    out = []
    pos = 0
    searching = _may_name_a_field(text)
    while searching and (m := _KV_TEXT.search(text, pos)) is not None:
        entity = pii_key_entity(m.group(1), text=True)
        group = next(g for g in (2, 3, 4) if m.group(g) is not None)
        start, end = m.span(group)
        value = text[start:end]
        if group == 4:  # unquoted: up to the next key=value on the line
            cut = _KV_CUT.search(value)
            value = (value[: cut.start()] if cut else value).rstrip(" \t.")
            end = start + len(value)
        if entity in entities and value and pii_value_fits(entity, value):
            out.append(Finding(start, end, entity, 0.85, NER_PRIORITY + 5))
        pos = max(end, m.start(group) + 1)
    if "LOCATION" in entities:
        out.extend(Finding(m.start(), m.end(), "LOCATION", 0.7, NER_PRIORITY) for m in _addresses(text))
        if _PLACE_GATE.search(text) is not None:
            for m in _PLACED.finditer(text):
                if _keep_place(m.group(1)) and _keep_ner("LOCATION", m.group(1)):
                    out.append(Finding(m.start(1), m.end(1), "LOCATION", 0.6, NER_PRIORITY - 1))
    if "PERSON" in entities:
        for m in [*_addressed(text), *_cued(text)]:
            name = _trim_name(m.group(1))
            if name and _keep_ner("PERSON", name):
                out.append(Finding(m.start(1), m.start(1) + len(name), "PERSON", 0.7, NER_PRIORITY))
        if _NAME_PAIR.search(text) is not None:
            out.extend(lexicon_findings(text))
            for m in _SUBJECT.finditer(text):
                name = _trim_name(m.group(1))
                if name and _keep_contacted(name) and _keep_ner("PERSON", name):
                    out.append(Finding(m.start(1), m.start(1) + len(name), "PERSON", 0.65, NER_PRIORITY))
            for m in _CONTACTED.finditer(text):
                name = _trim_name(m.group(1))
                if name and _keep_contacted(name) and _keep_ner("PERSON", name):
                    out.append(Finding(m.start(1), m.start(1) + len(name), "PERSON", 0.7, NER_PRIORITY))
    return out


def _trim_name(name: str) -> str:
    """Without trailing words that are no part of a name ("Maria Garcia Thanks" -> "Maria Garcia")."""
    while name.split() and name.split()[-1].lower() in NOT_NAMES | _PARTICLES:
        name = name.rsplit(None, 1)[0] if " " in name else ""
    return name
