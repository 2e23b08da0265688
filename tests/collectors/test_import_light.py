"""Importing the collector must stay light: services do not pay for the pipeline's dependencies."""

import subprocess
import sys

HEAVY = ["presidio_analyzer", "presidio_anonymizer", "faust", "spacy", "chdb", "clickhouse_connect", "aiokafka"]


def test_importing_collectors_pulls_in_nothing_heavy():
    """`import tokentrail.collectors` (and its Kafka transport) imports none of the pipeline's libraries."""
    code = (
        "import sys, tokentrail.collectors, tokentrail.collectors.kafka, tokentrail.collectors.events\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"heavy modules imported: {out}"
