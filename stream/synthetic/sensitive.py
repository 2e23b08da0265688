"""PII, secrets and their look-alikes, fake but shaped like the real thing.

Luhn-valid card numbers, mod-97-valid IBANs, the key prefixes secret scanners know, so redaction is
exercised for real; they are built at run time, so no literal key sits in this file for a scanner
to flag. `technical_value` makes identifiers that look like numbers but are not personal data.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable

from .catalog import CITIES, ERROR_CODES, FIRST, LAST, PATHS, STREETS, TABLES
from .text import SLOTS, digits, hex_digits

# --- PII, secrets and their look-alikes ----------------------------------------------------------


def luhn_complete(prefix: str) -> str:
    """Append the Luhn check digit, so card validators (and redactors using them) accept the number."""
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return prefix + str((10 - total % 10) % 10)


def iban(rng: random.Random) -> str:
    """A German or British IBAN with correct mod-97 check digits."""
    country, bban = rng.choice(
        [("DE", digits(rng, 18)), ("GB", rng.choice(["NWBK", "BARC", "MIDL"]) + digits(rng, 14))]
    )
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    code = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4)) if rng.random() < 0.5 else code


def _card(rng: random.Random) -> str:
    prefix = rng.choice(["4", "4539", "51", "55"])  # Visa, Mastercard
    number = luhn_complete(prefix + digits(rng, 15 - len(prefix)))
    sep = rng.choice(["", " ", "-"])
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(rng: random.Random) -> str:
    header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
    payload = _b64url(json.dumps({"sub": digits(rng, 8), "iat": 1795000000 + rng.randint(0, 10**6)}).encode())
    return f"{header}.{payload}.{_b64url(rng.randbytes(32))}"


def _private_key(rng: random.Random) -> str:
    body = base64.b64encode(rng.randbytes(144)).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{lines}\n-----END RSA PRIVATE KEY-----"


_ALNUM = string.ascii_letters + string.digits


def _token(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


SENSITIVE: dict[str, tuple[Callable[[random.Random], str], str]] = {
    "EMAIL_ADDRESS": (
        lambda r: (
            f"{r.choice(FIRST).lower()}.{r.choice(LAST).lower().replace(chr(39), '')}"
            f"{r.randint(1, 99)}@{r.choice(['gmail.com', 'outlook.com', 'example.org', 'proton.me'])}"
        ),
        "You can reach me at {v}.",
    ),
    "PHONE_NUMBER": (
        lambda r: r.choice(
            [
                f"+1 415-555-{digits(r, 4)}",
                f"+44 20 7946 {digits(r, 4)}",
                f"(212) 555-{digits(r, 4)}",
                f"+49 30 {digits(r, 8)}",
            ]
        ),
        "Call me back on {v} if anything is unclear.",
    ),
    "CREDIT_CARD": (_card, "Please charge the difference to my card {v}, exp 08/28."),
    "IBAN_CODE": (iban, "Please send the refund to IBAN {v}."),
    "PERSON": (lambda r: f"{r.choice(FIRST)} {r.choice(LAST)}", "The account is under the name {v}."),
    "LOCATION": (lambda r: f"{r.randint(1, 240)} {r.choice(STREETS)}, {r.choice(CITIES)}", "Ship it to {v}."),
    "IP_ADDRESS": (
        lambda r: f"{r.choice([81, 94, 145, 188, 212])}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
        "The failing requests came from {v}.",
    ),
    "OPENAI_KEY": (lambda r: "sk-proj-" + _token(r, 48, _ALNUM + "-_"), "Our config has OPENAI_API_KEY={v} in it."),
    "AWS_ACCESS_KEY": (
        lambda r: "AKIA" + _token(r, 16, string.ascii_uppercase + "234567"),
        "The deploy uses aws_access_key_id = {v} from the env file.",
    ),
    "GITHUB_TOKEN": (lambda r: "ghp_" + _token(r, 36), "CI clones with https://{v}@github.com/acme/payments.git"),
    "JWT": (_jwt, "The request header was Authorization: Bearer {v}"),
    "DATABASE_URL": (
        lambda r: (
            f"postgres://{r.choice(['app', 'admin', 'etl'])}:{_token(r, 14)}@"
            f"db-{r.randint(1, 9)}.internal.{r.choice(['acme', 'corp'])}.net:5432/{r.choice(TABLES)}"
        ),
        "The connection string is {v}",
    ),
    "PRIVATE_KEY": (_private_key, "This key was committed to the repo:\n{v}"),
}
# Technical strings that look like numbers or identifiers but are not personal data.
TECHNICAL: dict[str, tuple[str, Callable[[random.Random], str]]] = {
    "version": ("Running {v} in production.", lambda r: SLOTS["version"](r)),
    "order_id": ("Reference: {v}.", lambda r: SLOTS["order"](r)),
    "error_code": ("The log shows {v}.", lambda r: r.choice(ERROR_CODES)),
    "file_path": ("See {v} for details.", lambda r: r.choice(PATHS)),
    "sha256": ("Artifact sha256:{v}.", lambda r: hex_digits(r, 64)),
}


def sensitive_value(kind: str, rng: random.Random) -> tuple[str, str]:
    """A fake value of `kind` and a sentence that carries it."""
    make, sentence = SENSITIVE[kind]
    value = make(rng)
    return value, sentence.format(v=value)


def technical_value(rng: random.Random) -> tuple[str, str]:
    """A non-PII identifier (version, order id, error code, path, hash) and a sentence carrying it."""
    sentence, make = TECHNICAL[rng.choice(list(TECHNICAL))]
    value = make(rng)
    return value, sentence.format(v=value)
