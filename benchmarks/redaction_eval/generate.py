"""The independent redaction evaluation set: Faker values in the shapes telemetry has.

    .venv/bin/python -m redaction_eval.generate --per-locale 4 | head   # from benchmarks/: a few samples

Nobody who tuned the filters wrote these values: names, cities, phone numbers, emails, card numbers
and IBANs come from Faker (a pinned version, a fixed seed) in 26 locales, set in seven shapes
(chat turns, support tickets, JSON tool arguments and results, CRM records, email drafts,
key=value logs, stack traces), each with technical tokens that must survive (model names, tool
names, error codes, cloud regions, libraries). Every sample falls in the "dev" or the held-out
"test" split by its index (a fixed hash), and nothing was tuned on "test"; the benchmark reports both.

Names: Faker's first and last name of the locale (no titles), romanised for ja_JP and zh_CN. The
Arabic locales give names and cities only in Arabic script, so for ar_AA/ar_EG the PII is the
Latin-script part (emails, phones, IBANs, cards) and the text carries no name label: a PERSON
figure for them would measure a script, not a recognizer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from dataclasses import dataclass, field
from typing import Any

SEED = 20261203
LOCALES = (
    "en_US en_GB en_IN en_NG en_KE de_DE fr_FR es_ES es_MX pt_BR it_IT nl_NL sv_SE pl_PL tr_TR "
    "ar_AA ar_EG ja_JP zh_CN yo_NG ig_NG ha_NG tw_GH zu_ZA cs_CZ fi_FI"
).split()
LATIN_NAMES_MISSING = {"ar_AA", "ar_EG"}  # Faker has these names in Arabic script only
ROMANISED = {"ja_JP", "zh_CN"}
# Internal company domains: an email is an email whatever its suffix.
INTERNAL_DOMAINS = ("corp.internal", "build.local", "eng.lan", "svc.cluster.local", "acme.corp", "intra.example.test")

# Technical tokens that must survive, as telemetry writes them.
MODELS = (
    "gpt-4o-mini claude-3-5-sonnet-20241022 Llama-3.1-70B-Instruct gemini-1.5-pro mistral-large-latest "
    "o3-mini text-embedding-3-small Qwen2.5-Coder-32B command-r-plus deepseek-chat"
).split()
TOOLS = "search_orders get_weather create_ticket lookup_customer send_email run_sql fetch_url refund_payment".split()
ERRORS = (
    "E4012 ORA-00942 ECONNRESET ERR_TLS_CERT_ALTNAME_INVALID HTTP_503 SQLSTATE_40001 ENOSPC "
    "ThrottlingException RateLimitError InvalidRequestError"
).split()
REGIONS = "us-east-1 eu-west-2 ap-southeast-1 westeurope asia-northeast1 eu-central-1 us-central1".split()
LIBRARIES = "numpy PyTorch FastAPI Pydantic LangChain SQLAlchemy Celery Terraform Kubernetes Redis httpx".split()


@dataclass
class Sample:
    index: int
    locale: str
    shape: str
    value: Any  # a string, or a JSON object (tool arguments, CRM records)
    pii: list[dict[str, str]] = field(default_factory=list)  # {"entity": ..., "text": ...}
    keep: list[str] = field(default_factory=list)  # technical tokens that must survive verbatim

    @property
    def split(self) -> str:
        digest = hashlib.sha256(f"{SEED}:{self.index}".encode()).digest()
        return "test" if digest[0] % 2 else "dev"


class Values:
    """One locale's Faker values, plus the technical ones, from one seeded generator."""

    def __init__(self, locale: str, seed: int) -> None:
        from faker import Faker

        self.locale = locale
        self.fake = Faker(locale)
        self.fake.seed_instance(seed)
        self.rng = random.Random(seed)

    def person(self) -> str | None:
        if self.locale in LATIN_NAMES_MISSING:
            return None
        if self.locale in ROMANISED:
            return f"{self.fake.first_romanized_name()} {self.fake.last_romanized_name()}"
        return f"{self.fake.first_name()} {self.fake.last_name()}"

    def city(self) -> str | None:
        if self.locale in LATIN_NAMES_MISSING | ROMANISED:
            return None
        return str(self.fake.city())

    def email(self) -> str:
        if self.rng.random() < 0.35:
            user = self.fake.user_name()
            return f"{user}@{self.rng.choice(INTERNAL_DOMAINS)}"
        return str(self.fake.email())

    def phone(self) -> str:
        return str(self.fake.phone_number())

    def card(self) -> str:
        return str(self.fake.credit_card_number())

    def iban(self) -> str:
        return str(self.fake.iban())

    def ip(self) -> str:
        return str(self.fake.ipv4_public() if self.rng.random() < 0.8 else self.fake.ipv6())

    def pick(self, pool: tuple[str, ...] | list[str]) -> str:
        return self.rng.choice(list(pool))


def _label(sample: Sample, entity: str, text: str | None) -> str:
    if text:
        sample.pii.append({"entity": entity, "text": text})
    return text or ""


def _keep(sample: Sample, token: str) -> str:
    sample.keep.append(token)
    return token


def chat_turn(v: Values, s: Sample) -> None:
    name, city, phone = v.person(), v.city(), v.phone()
    model, err = _keep(s, v.pick(MODELS)), _keep(s, v.pick(ERRORS))
    variant = v.rng.randrange(3)
    if variant == 0 or not name:  # a contact verb before the name
        who = f"Please call {_label(s, 'PERSON', name)} on " if name else "Please call back on "
        where = f" about the late delivery to {_label(s, 'LOCATION', city)}" if city else " about the late delivery"
        turn = f"{who}{_label(s, 'PHONE_NUMBER', phone)}{where}."
    elif variant == 1:  # the name opens the sentence
        turn = (
            f"{_label(s, 'PERSON', name)} says the parcel never arrived"
            + (f" in {_label(s, 'LOCATION', city)}" if city else "")
            + f"; the number on file is {_label(s, 'PHONE_NUMBER', phone)}."
        )
    else:  # the name mid-sentence, no cue word before it
        turn = (
            f"My colleague {_label(s, 'PERSON', name)} tried the export twice"
            + (f" from the {_label(s, 'LOCATION', city)} office" if city else "")
            + f" and asked us to text {_label(s, 'PHONE_NUMBER', phone)} when it works."
        )
    s.value = (
        f"user: {turn} The {model} answer failed with {err} twice.\n"
        f"assistant: I have noted the number and will follow up."
    )


def support_ticket(v: Values, s: Sample) -> None:
    name, city, email = v.person(), v.city(), v.email()
    region, lib = _keep(s, v.pick(REGIONS)), _keep(s, v.pick(LIBRARIES))
    s.value = (
        f"Subject: Export stuck in {region}\n\n"
        + (f"Hi, this is {_label(s, 'PERSON', name)} from the finance team" if name else "Hi, finance team here")
        + (f" in {_label(s, 'LOCATION', city)}" if city else "")
        + f". Our {lib} job stopped after the upgrade. Reply to {_label(s, 'EMAIL_ADDRESS', email)}.\n\n"
        + (f"Thanks,\n{_label(s, 'PERSON', v.person())}" if name else "Thanks")
    )


def tool_arguments(v: Values, s: Sample) -> None:
    name, email, phone = v.person(), v.email(), v.phone()
    tool = _keep(s, v.pick(TOOLS))
    args: dict[str, Any] = {
        "tool": tool,
        "email": _label(s, "EMAIL_ADDRESS", email),
        "region": _keep(s, v.pick(REGIONS)),
    }
    if name:
        args["note"] = f"Escalate to {_label(s, 'PERSON', name)}, callback {_label(s, 'PHONE_NUMBER', phone)}"
    else:
        args["note"] = f"callback {_label(s, 'PHONE_NUMBER', phone)}"
    s.value = json.dumps(args, ensure_ascii=False)


def tool_result(v: Values, s: Sample) -> None:
    card, iban, ip = v.card(), v.iban(), v.ip()
    name = v.person()
    s.value = {
        "status": "ok",
        "model": _keep(s, v.pick(MODELS)),
        "payment": {"card": _label(s, "CREDIT_CARD", card), "payout_iban": _label(s, "IBAN_CODE", iban)},
        "client_ip": _label(s, "IP_ADDRESS", ip),
        "summary": (f"Payment by {_label(s, 'PERSON', name)} accepted" if name else "Payment accepted")
        + f" via {_keep(s, v.pick(TOOLS))}.",
    }


def crm_record(v: Values, s: Sample) -> None:
    name, city, email, phone = v.person(), v.city(), v.email(), v.phone()
    record: dict[str, Any] = {
        "account_tier": "enterprise",
        "email": _label(s, "EMAIL_ADDRESS", email),
        "phone": _label(s, "PHONE_NUMBER", phone),
        "integration": _keep(s, v.pick(LIBRARIES)),
    }
    if name:
        record["contact_name"] = _label(s, "PERSON", name)
        record["notes"] = f"Spoke with {_label(s, 'PERSON', v.person())} about renewal; prefers email."
    if city:
        record["city"] = _label(s, "LOCATION", city)
    if v.locale == "en_US":
        record["ssn"] = _label(s, "US_SSN", v.fake.ssn())
    s.value = record


def email_draft(v: Values, s: Sample) -> None:
    name, sender, email = v.person(), v.person(), v.email()
    model = _keep(s, v.pick(MODELS))
    greeting = f"Dear {_label(s, 'PERSON', name)}," if name else "Dear customer,"
    s.value = (
        f"{greeting}\n\nYour refund was approved; the summary was drafted with {model}. If anything is "
        f"wrong, write to {_label(s, 'EMAIL_ADDRESS', email)} or call {_label(s, 'PHONE_NUMBER', v.phone())}.\n\n"
        f"Kind regards,\n{_label(s, 'PERSON', sender) if sender else 'Support'}"
    )


def kv_log(v: Values, s: Sample) -> None:
    email, ip = v.email(), v.ip()
    name = v.person()
    parts = [
        "level=warn",
        f"region={_keep(s, v.pick(REGIONS))}",
        f"error={_keep(s, v.pick(ERRORS))}",
        f"user_email={_label(s, 'EMAIL_ADDRESS', email)}",
        f"src_ip={_label(s, 'IP_ADDRESS', ip)}",
    ]
    if name:
        parts.append(f'customer_name="{_label(s, "PERSON", name)}"')
    parts.append(f"lib={_keep(s, v.pick(LIBRARIES))}")
    s.value = " ".join(parts)


def stack_trace(v: Values, s: Sample) -> None:
    email, card = v.email(), v.card()
    err = _keep(s, v.pick(ERRORS))
    s.value = (
        "Traceback (most recent call last):\n"
        f'  File "/srv/app/tools/{_keep(s, v.pick(TOOLS))}.py", line 88, in handle\n'
        "    result = client.charge(card, amount)\n"
        f"payments.errors.ChargeError: {err}: card {_label(s, 'CREDIT_CARD', card)} declined for "
        f"{_label(s, 'EMAIL_ADDRESS', email)} (model={_keep(s, v.pick(MODELS))})"
    )


SHAPES = {
    "chat": chat_turn,
    "ticket": support_ticket,
    "tool_args": tool_arguments,
    "tool_result": tool_result,
    "crm": crm_record,
    "email": email_draft,
    "kv_log": kv_log,
    "stack": stack_trace,
}


def generate(per_locale: int = 24, seed: int = SEED) -> list[Sample]:
    """`per_locale` samples per locale and shape, the same list for the same arguments."""
    samples = []
    for li, locale in enumerate(LOCALES):
        values = Values(locale, seed + li)
        for _ in range(per_locale):
            for shape, build in SHAPES.items():
                sample = Sample(len(samples), locale, shape, None)
                build(values, sample)
                samples.append(sample)
    return samples


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--per-locale", type=int, default=24)
    args = p.parse_args(argv)
    for sample in generate(args.per_locale):
        row = {"split": sample.split, "locale": sample.locale, "shape": sample.shape, "value": sample.value}
        print(json.dumps(row | {"pii": sample.pii, "keep": sample.keep}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
