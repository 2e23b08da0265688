"""`tokentrail redact` (tokentrail.stream.cli.redact.run): JSON Lines through, bad lines reported, exit statuses."""

from __future__ import annotations

import io
import json

import pytest

from tokentrail.stream.cli.redact import run


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("TOKENTRAIL_REDACTION_KEY", "cli-test-key-0123456789")
    monkeypatch.delenv("TOKENTRAIL_REDACTION_KEY_FILE", raising=False)
    monkeypatch.setenv("TOKENTRAIL_REDACTION_NLP_MODEL", "none")


def _run(stdin: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(io.StringIO(stdin), out, err, list(argv))
    return status, out.getvalue(), err.getvalue()


def test_lines_are_redacted_in_order(env):
    """Each JSON line comes out as the same JSON value with its strings (keys too) redacted, in order."""
    lines = [
        '{"a": "mail jo.doe@gmail.com", "n": 1, "k": [true, null]}',
        '"call +1 415-555-0132"',
        "42",
        '{"password": "hunter22", "jo.doe@gmail.com": "x"}',
    ]
    status, out, err = _run("\n".join(lines) + "\n")
    assert status == 0
    values = [json.loads(line) for line in out.splitlines()]
    assert len(values) == 4
    assert values[0]["n"] == 1 and values[0]["k"] == [True, None] and "jo.doe" not in values[0]["a"]
    assert values[1].startswith("call <PHONE_NUMBER:") and values[2] == 42
    # A key holding PII is redacted like any string; a plain key stays, with its secret value redacted.
    (email_key,) = set(values[3]) - {"password"}
    assert "hunter22" not in values[3]["password"] and email_key.startswith("<EMAIL_ADDRESS:")
    assert values[3][email_key] == "x"


def test_bad_line_reported_rest_processed(env):
    """A line that is not JSON goes to stderr by number (not content), the others still come out, exit 1."""
    status, out, err = _run('{"a": "jo.doe@gmail.com"}\n{"broken": jo.doe@gmail.com\n\n["ok"]\n')
    assert status == 1
    assert [json.loads(line) for line in out.splitlines()][1] == ["ok"]
    assert len(out.splitlines()) == 2
    assert "line 2: not JSON" in err and "jo.doe" not in err


def test_batches_do_not_change_output(env):
    """The batch size is an implementation detail: 1 and 256 give the same lines."""
    stdin = "\n".join(json.dumps({"i": i, "t": f"user{i}@example.org"}) for i in range(10)) + "\n"
    assert _run(stdin, "--batch-size", "1")[1] == _run(stdin)[1]


def test_counts_on_stderr(env):
    """--counts prints the findings per entity type to stderr, keeping stdout pure JSON Lines."""
    status, out, err = _run('"jo.doe@gmail.com and AKIAIOSFODNN7ABCDEFG"\n', "--counts")
    assert status == 0 and '"AWS_ACCESS_KEY_ID": 1' in err and '"EMAIL_ADDRESS": 1' in err
    assert json.loads(out)


def test_missing_key_is_a_usage_error(env, monkeypatch):
    """Without a key the command exits 2 and says how to set one; --ephemeral-key runs anyway."""
    monkeypatch.delenv("TOKENTRAIL_REDACTION_KEY")
    status, out, err = _run('"x"\n')
    assert status == 2 and out == "" and "TOKENTRAIL_REDACTION_KEY" in err
    status, out, err = _run('"jo.doe@gmail.com"\n', "--ephemeral-key")
    assert status == 0 and "EMAIL_ADDRESS" in out and "ephemeral" in err


def test_usage_errors(env):
    """Bad arguments exit 2 with usage on stderr; --help exits 0."""
    assert _run("", "--batch-size", "0")[0] == 2
    assert _run("", "--no-such-flag")[0] == 2
    status, out, _ = _run("", "--help")
    assert status == 0 and "tokentrail redact" in out


def test_store_raw_text_flag(env):
    """--store-raw-text keeps PII and still removes secrets."""
    status, out, _ = _run('"jo.doe@gmail.com password=hunter22"\n', "--store-raw-text")
    assert status == 0 and "jo.doe@gmail.com" in out and "hunter22" not in out
