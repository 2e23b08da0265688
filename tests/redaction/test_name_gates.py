"""The substring gates in front of the name and address regexes (redaction/names.py) skip only text
the regexes cannot match: with the gate, the same matches as the regex alone, on a sentence for every
alternative of `_ADDRESSED` and every address shape, and on the labelled corpus.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tokentrail.redaction import names

CORPUS = Path(names.__file__).with_name("corpus.json")

# One sentence per alternative of _ADDRESSED (forms of address, cues, sign-offs), both cases where it has two.
ADDRESSED = [
    "Please ask Mr Alvarez to call back.",
    "Mrs. Okafor approved it.",
    "Ms Tanaka wrote in.",
    "Miss Dubois is away.",
    "Mx Rivera replied.",
    "Dr. Lindqvist signed.",
    "Prof Nakamura reviewed.",
    "Sir Edmund asked again.",
    "Madam Rossi complained.",
    "my name is Aisha Khan",
    "My name is Aisha Khan",
    "name: Joao Pereira",
    "Name: Joao Pereira",
    "Dear Lukas,",
    "dear Lukas, thanks",
    "signed by Priya Raman",
    "Signed, Priya Raman",
    "booked under the name Tomasz Nowak",
    "Under the name Tomasz Nowak",
    "her name is Chloe Martin",
    "a customer named Chloe Martin",
    "Named Chloe Martin",
    "I spoke to Daniel Kim",
    "Spoke with Daniel Kim",
    "ask for Fatima Zahra",
    "Ask for Fatima Zahra",
    "on behalf of Mateo Silva",
    "On behalf of Mateo Silva",
    "Thanks,\nSofia Conti",
    "Thank you\nSofia Conti",
    "Regards,\nSofia Conti",
    "Best regards,\nSofia Conti",
    "Kind regards\nSofia Conti",
    "Best,\nSofia Conti",
    "Cheers,\nSofia Conti",
    "Sincerely,\nSofia Conti",
    "Warm regards,\nSofia Conti",
    "Many thanks,\nSofia Conti",
]
ADDRESSES = [
    "ship to 221B Baker Street today",
    "office at 12, Elm Avenue.",
    "Austin, TX 78701-1234",
    "in London SW1A 2AA now",
    "Wohnt in der Hauptstraße 5a",
    "Lindenweg 12",
    "Am Marktplatz 3",
]


def _spans(matches: list[re.Match[str]]) -> list[tuple[int, int, str]]:
    return sorted((m.start(), m.end(), m.group()) for m in matches)


@pytest.mark.parametrize("text", ADDRESSED)
def test_every_form_of_address_passes_the_gate(text: str) -> None:
    """Each alternative is found, exactly as by the regex alone."""
    expected = _spans(list(names._ADDRESSED.finditer(text)))
    assert expected, f"the sentence does not exercise _ADDRESSED: {text!r}"
    assert _spans(names._addressed(text)) == expected


@pytest.mark.parametrize("text", ADDRESSES)
def test_every_address_shape_passes_the_gate(text: str) -> None:
    """Each shape is found, as by the four regexes run without the German suffix gate."""
    everything = [*names._ADDRESSES, names._GERMAN_ADDRESS]
    expected = _spans([m for pattern in everything for m in pattern.finditer(text)])
    assert expected, f"the sentence does not exercise an address shape: {text!r}"
    assert _spans(names._addresses(text)) == expected


def test_the_gates_change_nothing_on_the_corpus() -> None:
    """Every corpus text (labels unwrapped), alone and as a sign-off block: the gated and ungated matches agree."""
    texts = [re.sub(r"\[\[[A-Z_]+\|(.*?)\]\]", r"\1", entry["text"]) for entry in json.loads(CORPUS.read_text())]
    everything = [*names._ADDRESSES, names._GERMAN_ADDRESS]
    for text in [*texts, *(f"Thanks,\n{t}" for t in texts)]:
        assert _spans(names._addressed(text)) == _spans(list(names._ADDRESSED.finditer(text))), text
        assert _spans(names._addresses(text)) == _spans([m for p in everything for m in p.finditer(text)]), text
