"""The NER gate's scan over capitalised words decides as a walk over every word would.

`ner_gate` visits only capitalised words of the whole text and reads each one's sentence around it
(fast: most words are lower case). The oracle below is the plain reading of the gate's rules: cut
the text into sentences, blank code out of each, walk every word. Both must send the same pieces,
on text built from the characters where the two could part: letters inside a run of word
characters ("ç’Żß" is one word, "iPhone" holds no capitalised word), code that splits a word when
blanked ("dir/AB'Cd" leaves "Cd"), sentence and field openers, apostrophes, digits, underscores.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from tokentrail.redaction import ner_gate
from tokentrail.redaction.name_lexicon import name_lexicon

_WORD = re.compile(f"[{ner_gate._LETTERS}][\\w'’-]*")


def _oracle_candidates(segment: str, short: bool) -> bool:
    if ner_gate._may_hold_code(segment):
        segment = ner_gate._CODE.sub(lambda m: " " * len(m.group()), segment)
    first = True
    for m in _WORD.finditer(segment):
        word = m.group()
        was_first, first = first, False
        if not word[0].isupper() or not ner_gate._plain_word(word):
            continue
        if ner_gate._glued_to_code(segment, m.start(), m.end()):
            continue
        i = m.start() - 1
        while i >= 0 and segment[i] in " \t":
            i -= 1
        opens = i < 0 or segment[i] in ner_gate._INITIAL_BEFORE
        if short or not (was_first or opens) or name_lexicon().is_first(word):
            return True
    return False


def _oracle_sentences(text: str) -> list[tuple[int, int]]:
    if text.islower():
        return []
    short = len(text) <= 40 and "\n" not in text
    return [(s, e) for s, e in ner_gate._sentences(text) if _oracle_candidates(text[s:e], short)]


def _gate_sentences(text: str) -> list[tuple[int, int]]:
    if text.islower():
        return []
    return ner_gate._candidate_sentences(text, len(text) <= 40 and "\n" not in text)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="aAbBzZéÉłŁŻżİıÆæçÇßŸ '’-_.!?;|\t\n`/@:\"(),3", max_size=60))
def test_scan_sends_what_a_walk_over_every_word_sends(text):
    assert _gate_sentences(text) == _oracle_sentences(text)


def test_scan_on_words_the_shortcuts_could_misread():
    cases = {
        "Ask the iPhone team.": [],  # a capital inside a word starts nothing
        "Route via ç’Żßa today.": [],  # one word, lower case first
        "See dir/AB'Cd for it": [(0, 20)],  # blanking the path leaves the word "Cd"
        "Notify ops; then Oyelaran Adebayo signs.": [(12, 40)],
        "Priya asked twice.": [(0, 18)],  # a listed first name may open a sentence
        "Summarise the log.": [],  # an instruction opens it
    }
    for text, expected in cases.items():
        assert _gate_sentences(text) == _oracle_sentences(text) == expected, text
