"""Which parts of a text NER must read: the sentences with a word that can be part of a name or a place.

NER is the redactor's one expensive step (spaCy's small model: ~0.3 ms per short sentence on
one core, ten times all patterns together), and most telemetry sentences hold no candidate for it:
instructions ("Summarise this ticket."), code, ids, logs. A candidate is a capitalised word that is
not where capitals come from anyway:
- not at the start of a sentence, a line, a field or a quotation, unless it is a listed first name
  ("Priya asked ..."): sentence-initial capitals are grammar, not names;
- not an acronym or an identifier (SQLSTATE, TCK-1234, v2, snake_case), not inside `code`, a URL,
  a path or an email address;
- not a function word, an instruction, or a tool or vendor name (names.NOT_NAMES, TECH_TERMS).
Only the sentences holding a candidate go to NER, with their offsets, so a 4 kB tool result with
one name sends one sentence. The filters that run on NER's spans (names.ner_findings) are the same
with or without this gate: it only decides what NER never needed to read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from spacy.lang.en.stop_words import STOP_WORDS

from .name_lexicon import name_lexicon
from .names import NOT_NAMES, TECH_TERMS

__all__ = ["ner_pieces", "MAX_PIECE"]

_SHORT_VALUE = 40  # characters: a field value, not a sentence
MAX_PIECE = 50_000  # characters per piece: bounds memory on huge tool results
# A sentence ends at . ! ? followed by space, at a line break, or at a ; or | between clauses.
_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*[ \t]+|\n+|[;|][ \t]*|\t")
# A word with its surroundings: what precedes it says whether it starts something.
_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿĀ-ž][\w'’-]*")
_CODE = re.compile(r"`[^`\n]*`|\b\w+://\S+|\S+@\S+|(?:[\w.-]*[/\\])+[\w.-]*|\{\{.*?\}\}")
_INITIAL_BEFORE = frozenset(":\"'([{<>*#-–—•,=")  # after these a capital starts a field, a quote or an item
_SKIP = frozenset(w.lower() for w in NOT_NAMES | TECH_TERMS | set(STOP_WORDS))


def _identifier(word: str, text: str, start: int, end: int) -> bool:
    """An id or code token: digits or underscores inside, ALL CAPS, or glued to code characters."""
    if any(c.isdigit() or c == "_" for c in word) or (word.isupper() and len(word) > 1):
        return True
    inner_caps = sum(c.isupper() for c in word[1:])
    if inner_caps >= 2 or (inner_caps and word[-1].isupper()):
        return True  # BadRequestError, IdP (McDonald, DeShawn stay words)
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return (
        before.isdigit()
        or before in "._$@/\\"
        or (after == "." and end + 1 < len(text) and text[end + 1].isalnum())
        or after in "(_"
    )


def _candidates(text: str, start: int, end: int, short: bool = False) -> bool:
    """Whether text[start:end] (one sentence) holds a word that may be part of a name or a place.

    `short`: the text is a short value on its own (a JSON field: "Munich", "Ngozi Eze"), where a
    capital at the start is no grammar."""
    segment = text[start:end]
    if _may_hold_code(segment):
        segment = _CODE.sub(lambda m: " " * len(m.group()), segment)
    lex = None
    first = True
    for m in _WORD.finditer(segment):
        word = m.group()
        was_first, first = first, False
        if not word[0].isupper() or word.lower() in _SKIP:
            continue
        if _identifier(word, segment, m.start(), m.end()):
            continue
        if short or not (was_first or _opens_something(segment, m.start())):
            return True
        lex = lex or name_lexicon()
        if lex.is_first(word):  # "Priya asked ...": surnames that open a sentence are verbs ("Read", "Find")
            return True
    return False


def _opens_something(segment: str, start: int) -> bool:
    """Whether the word at `start` follows (past spaces and tabs) nothing or a field, quote or item opener."""
    i = start - 1
    while i >= 0 and segment[i] in " \t":
        i -= 1
    return i < 0 or segment[i] in _INITIAL_BEFORE


def _may_hold_code(piece: str) -> bool:
    return "`" in piece or "/" in piece or "@" in piece or "\\" in piece or "{{" in piece


def _sentences(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    for m in _BOUNDARY.finditer(text):
        if m.start() > pos:
            yield pos, m.start()
        pos = m.end()
    if pos < len(text):
        yield pos, len(text)


def ner_pieces(text: str) -> list[tuple[int, str]]:
    """(offset, piece) for the runs of sentences NER must read; none for most telemetry text.

    Adjacent candidate sentences are sent together (a name and its place often span two), and
    each piece is cut to MAX_PIECE characters at whitespace so no name is split.
    """
    if text.islower() or not any(c.isupper() for c in text):  # islower: one C pass for the common case
        return []
    runs: list[list[int]] = []
    short = len(text) <= _SHORT_VALUE and "\n" not in text
    for s, e in _sentences(text):
        if not _candidates(text, s, e, short):
            continue
        if runs and not text[runs[-1][1] : s].strip(" \t\n.!?;|\"')]"):
            runs[-1][1] = e
        else:
            runs.append([s, e])
    pieces = []
    for s, e in runs:
        while s < e:
            cut = e
            if e - s > MAX_PIECE:
                space = text.rfind(" ", s + MAX_PIECE // 2, s + MAX_PIECE)
                cut = space if space > s else s + MAX_PIECE
            pieces.append((s, text[s:cut]))
            s = cut
    return pieces
