"""Secret rules: every kind is found in prose, config and JSON; look-alikes and placeholders are not."""

from __future__ import annotations

import re

import pytest

from tokentrail.redaction.quality import SECRET_MAKERS
from tokentrail.redaction.secret_rules import entropy, secret_name_entity

TOKEN = re.compile(r"<([A-Z_]+):[0-9a-f]{16}>")

# (maker in quality.SECRET_MAKERS, entity, sentence): values are generated so no live-looking
# credential sits in this file.
CASES = [
    ("openai_project", "OPENAI_API_KEY", "key {v} leaked"),
    ("openai_short", "OPENAI_API_KEY", "OPENAI_API_KEY={v}"),
    ("openai_legacy", "OPENAI_API_KEY", "old key: {v}"),
    ("anthropic", "ANTHROPIC_API_KEY", "x-api-key: {v}"),
    ("aws_key_id", "AWS_ACCESS_KEY_ID", "aws_access_key_id = {v}"),
    ("github_pat", "GITHUB_TOKEN", "git clone https://{v}@github.com/acme/app.git"),
    ("github_fine", "GITHUB_TOKEN", "GH_TOKEN={v}"),
    ("gitlab_pat", "GITLAB_TOKEN", "PRIVATE-TOKEN: {v}"),
    ("slack_bot", "SLACK_TOKEN", "token {v} revoked"),
    ("slack_webhook", "SLACK_WEBHOOK_URL", "post to {v} now"),
    ("stripe_live", "STRIPE_KEY", "stripe key {v}"),
    ("stripe_webhook", "STRIPE_KEY", "endpoint secret {v}"),
    ("google_api", "GOOGLE_API_KEY", "maps?key={v}&q=x"),
    ("huggingface", "HUGGINGFACE_TOKEN", "--token {v}"),
    ("groq", "API_KEY", "GROQ_API_KEY={v}"),
    ("sendgrid", "API_KEY", "{v}"),
    ("jwt", "JWT", "Authorization: Bearer {v}"),
    ("opaque", "BEARER_TOKEN", "-H 'Authorization: Bearer {v}'"),
    ("private_key_rsa", "PRIVATE_KEY", "key:\n{v}\nrotate it"),
    ("private_key_openssh", "PRIVATE_KEY", "{v}"),
    ("private_key_truncated", "PRIVATE_KEY", "output was cut:\n{v}"),
    ("secret_hex", "SECRET", "api_key: {v}"),
    ("secret_b64", "SECRET", "WEBHOOK_SECRET={v}"),
]


@pytest.mark.parametrize("maker, entity, sentence", CASES, ids=[c[0] for c in CASES])
def test_secret_kind_is_found(pattern_redactor, maker, entity, sentence):
    """Each kind is replaced whole, under its own entity type, and nothing of it survives."""
    import random

    value = SECRET_MAKERS[maker](random.Random(maker))
    out, counts = pattern_redactor.redact_text(sentence.format(v=value))
    assert value not in out and value[-12:] not in out
    assert counts[entity] >= 1, (out, counts)


def test_aws_secret_with_its_key_id(pattern_redactor):
    """The 40-character secret is found next to its key id and after its variable name."""
    import random

    key_id, secret = SECRET_MAKERS["aws_key_id"](random.Random(1)), SECRET_MAKERS["aws_secret"](random.Random(2))
    for text in (f"{key_id} / {secret}", f"aws_secret_access_key = {secret}", f'"AWS_SECRET_ACCESS_KEY": "{secret}"'):
        out, counts = pattern_redactor.redact_text(text)
        assert secret not in out and counts["AWS_SECRET_ACCESS_KEY"] == 1, out


def test_json_escaped_private_key(pattern_redactor):
    """A PEM block inside a JSON string with literal \\n escapes (a service-account file in a prompt)."""
    import json
    import random

    pem = SECRET_MAKERS["private_key_pkcs8"](random.Random(3))
    text = 'my creds: {"private_key": ' + json.dumps(pem) + ', "client_email": "x"}'
    out, counts = pattern_redactor.redact_text(text)
    assert pem.split("\n")[1] not in out and counts["PRIVATE_KEY"] == 1
    assert '"client_email": "x"' in out


@pytest.mark.parametrize(
    "text, secret",
    [
        ("postgres://app:Zx8Kq2Lm9Np4Rt@db-3.internal.acme.net:5432/orders", "Zx8Kq2Lm9Np4Rt"),
        ("redis://:r3dis-P4ss@cache-2:6379/0", "r3dis-P4ss"),
        ("Server=sql01;User Id=sa;Password=Bl4ck-Pepper#77;Encrypt=True;", "Bl4ck-Pepper#77"),
        ("DB_PASSWORD=correcthorse42", "correcthorse42"),
        ('password: "Sup3r$ecret"', "Sup3r$ecret"),
        ("my password is Tr0ub4dor&3.", "Tr0ub4dor&3"),
        ("curl -u deploy:d3ploy-T0ken-99 https://x.example.com", "d3ploy-T0ken-99"),
        ("Authorization: Basic YWRtaW46czNjcmV0UGFzcw==", "YWRtaW46czNjcmV0UGFzcw=="),
    ],
)
def test_passwords_in_urls_strings_and_assignments(pattern_redactor, text, secret):
    """Only the password is replaced: host, user and database stay readable for debugging."""
    out, counts = pattern_redactor.redact_text(text)
    assert secret not in out and counts["PASSWORD"] == 1, out
    assert TOKEN.search(out)


def test_connection_string_keeps_host(pattern_redactor):
    """The host of a database URL survives; the password part is not taken for an email address."""
    out, counts = pattern_redactor.redact_text("postgres://app:Zx8Kq2Lm9Np4Rt@db-3.internal.acme.net:5432/orders")
    assert out.startswith("postgres://app:<PASSWORD:") and out.endswith("@db-3.internal.acme.net:5432/orders")
    assert set(counts) == {"PASSWORD"}


@pytest.mark.parametrize(
    "text",
    [
        "password: required",
        "Your password is incorrect, please reset it.",
        "password=${DB_PASSWORD}",
        "password = os.environ['DB_PASSWORD']",
        "api_key = settings.openai_api_key",
        "API_TOKEN=<your-token-here>",
        "auth: password: ******** token: [REDACTED]",
        "max_tokens=1024",
        "token_count: 1234",
        "the token is expired",
        '"next_page_token": "eyJwYWdlIjoyfQ"',
        "cache_key=425c9e15aa3a4f0246d2cd6ea0ce1b29",
        "sha256:425c9e15aa3a4f0246d2cd6ea0ce1b29a5e9000cd4a5c3fcfcb866b45b8eeaca",
        "commit 9f1c3e7a2b4d6f8091a2b3c4d5e6f7081928374a",
        "password_hint: ask the admin",
        "Task-123 about sk-learn",
        "passed: 120, failed: 0",
        "request_id=3f9a8c7e-1d2b-4c5d-9e8f-7a6b5c4d3e2f",
        "key_id: 9e107d9d372bb682",
    ],
)
def test_look_alikes_and_placeholders_survive(pattern_redactor, text):
    """Hashes, ids, token counts, placeholders and prose about passwords are not secrets."""
    out, counts = pattern_redactor.redact_text(text)
    assert out == text and not counts, (out, counts)


@pytest.mark.parametrize(
    "name, entity",
    [
        ("password", "PASSWORD"),
        ("DB_PASSWORD", "PASSWORD"),
        ("db_pass", "PASSWORD"),
        ("api_key", "SECRET"),
        ("X-API-Key", "SECRET"),
        ("client_secret", "SECRET"),
        ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        ("max_tokens", None),
        ("next_page_token", None),
        ("cache_key", None),
        ("key_id", None),
        ("password_hint", None),
        ("tokens", None),
        ("author", None),
        ("bypass", None),
    ],
)
def test_secret_field_names(name, entity):
    """Which JSON keys and variable names hold a secret."""
    assert secret_name_entity(name) == entity


def test_entropy():
    """Shannon entropy in bits per character, as gitleaks computes it."""
    assert entropy("aaaa") == 0 and entropy("abcd") == 2 and entropy("") == 0
