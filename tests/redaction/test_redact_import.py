"""Reading redaction's names is cheap: the stream stages import them without loading the detector."""

import subprocess
import sys

HEAVY = ["presidio_analyzer", "spacy", "tldextract", "requests"]


def test_entity_names_import_nothing_heavy():
    """`tokentrail.redaction` (config, settings, entity lists) imports no engine; Redactor loads on use."""
    code = (
        "import sys, tokentrail.redaction.config\n"
        "from tokentrail.redaction import SECRET_ENTITIES, RedactionConfig, load_key\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
        "from tokentrail.redaction import Redactor\n"
        "print(Redactor.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["Redactor"], f"heavy modules imported: {out[:-1]}"
