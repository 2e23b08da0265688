"""Redaction never touches the network: no public-suffix list, no model download.

Each check runs in a fresh interpreter whose sockets refuse to connect and whose DNS refuses to
resolve, and which records every attempt; the test fails on any attempt, not only on a failure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

GUARD = textwrap.dedent("""
    import json, socket, sys
    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network disabled by test")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
""")


def _run_offline(body: str) -> dict:
    code = GUARD + textwrap.dedent(body) + "\nprint(json.dumps({'attempts': attempts, **result}))\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_redaction_runs_with_network_blocked():
    """Emails are validated by syntax (no suffix list to fetch); the model loads from disk."""
    result = _run_offline("""
        from tokentrail.redaction import RedactionConfig, Redactor
        r = Redactor(RedactionConfig(), b"offline-key-0123456789")
        out, counts = r.redact_text("Write to ana@example.museum or bo@mail.co.uk or cy@hr.internal, Maria Garcia.")
        result = {"out": out, "counts": dict(counts), "pattern_only": r.pattern_only}
    """)
    assert result["attempts"] == []
    assert result["counts"]["EMAIL_ADDRESS"] == 3
    assert "ana@example.museum" not in result["out"] and "cy@hr.internal" not in result["out"]


def test_missing_model_is_never_downloaded():
    """A configured model that is not installed fails at construction, without any download attempt."""
    result = _run_offline("""
        from tokentrail.redaction import RedactionConfig, Redactor
        try:
            Redactor(RedactionConfig(nlp_model="en_core_web_lg"), b"offline-key-0123456789")
            result = {"error": None}
        except ValueError as exc:
            result = {"error": str(exc)}
    """)
    assert result["attempts"] == []
    assert "en_core_web_lg" in result["error"] and "never downloaded" in result["error"]
