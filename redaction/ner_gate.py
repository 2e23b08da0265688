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
from bisect import bisect_right
from functools import cache, lru_cache
from itertools import chain

from spacy.lang.en.stop_words import STOP_WORDS

from .name_lexicon import name_lexicon
from .names import NOT_NAMES, TECH_TERMS

__all__ = ["ner_pieces", "MAX_PIECE"]

_SHORT_VALUE = 40  # characters: a field value, not a sentence
MAX_PIECE = 50_000  # characters per piece: bounds memory on huge tool results
# A sentence ends at . ! ? followed by space, at a line break, or at a ; or | between clauses.
# The lookahead names every boundary's first character, so the scan jumps between them instead of
# trying four alternatives at each position (2.4x faster on the pipeline benchmark's text).
_BOUNDARY = re.compile(r"(?=[.!?\n;|\t])(?:[.!?]+[\"')\]]*[ \t]+|\n+|[;|][ \t]*|\t)")
# A word starts at a letter (one of these) that no letter precedes in its run of word characters,
# and runs on through word characters, apostrophes and hyphens ("O'Neil", "Jean-Luc").
_LETTERS = "A-Za-zÀ-ÖØ-öø-ÿĀ-ž"
_LETTER = re.compile(f"[{_LETTERS}]")
# Code, URLs, e-mail addresses, paths and templates; _code_kinds says which of them a sentence
# holds the literals of (a backtick, ://, @, a slash or backslash, {{), in this order. A sentence
# is blanked with the alternation of only those kinds: dropping an alternative that cannot match
# changes no match, and the e-mail and path ones rescan each token from every position.
_CODE_KINDS = (
    r"`[^`\n]*`",
    r"\b\w+://\S+",
    r"\S+@\S+",
    r"(?:[\w.-]*[/\\])+[\w.-]*",
    r"\{\{.*?\}\}",
)
_CODE = re.compile("|".join(_CODE_KINDS))
_INITIAL_BEFORE = frozenset(":\"'([{<>*#-–—•,=")  # after these a capital starts a field, a quote or an item
_SKIP = frozenset(w.lower() for w in NOT_NAMES | TECH_TERMS | set(STOP_WORDS))

# A capitalised word. Scanning for these visits only the capitalised words (most words are not);
# a match is a word when it starts one (_starts_word), and then it is the whole word.
_UPPER = "".join(c for c in map(chr, range(0x17F)) if c.isupper() and _LETTER.fullmatch(c))
_CAPITALISED = re.compile(f"[{_UPPER}][\\w'’-]*")


@lru_cache(maxsize=1 << 16)
def _plain_word(word: str) -> bool:
    """Whether a capitalised word can be part of a name by its letters alone: not a function word,
    instruction or tool name, and not shaped like an id (digits or underscores inside, ALL CAPS,
    CamelCase). Cached: telemetry repeats its words."""
    if word.lower() in _SKIP:
        return False
    if not word.isalpha() and any(c.isdigit() or c == "_" for c in word):
        return False
    if len(word) > 1 and not word[1:].islower():  # islower: one C pass for the common "Word"
        if word.isupper():
            return False
        inner_caps = sum(c.isupper() for c in word[1:])
        if inner_caps >= 2 or (inner_caps and word[-1].isupper()):
            return False  # BadRequestError, IdP (McDonald, DeShawn stay words)
    return True


def _glued_to_code(text: str, start: int, end: int) -> bool:
    """Whether the word text[start:end] touches code characters: an id's part (v2.Client, $Var, f(x))."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    return (
        before.isdigit()
        or before in "._$@/\\"
        or (after == "." and end + 1 < len(text) and text[end + 1].isalnum())
        or after in "(_"
    )


def _candidate_sentences(text: str, short: bool) -> list[tuple[int, int]]:
    """The sentences of `text` that hold a word that may be part of a name or a place.

    One scan over the capitalised words of the whole text. A word never crosses a sentence boundary
    (no boundary character is a word character), so each word belongs to one sentence, and what
    its sentence says about it is read around it: whether it is the sentence's first word, or
    follows a field, quote or item opener. Code is blanked out sentence by sentence first.
    `short`: the text is a short value on its own (a JSON field: "Munich", "Ngozi Eze"), where a
    capital at the start is no grammar.
    """
    sentences: list[tuple[int, int]] = []  # cut only once a word needs them: most texts have none
    if _may_hold_code(text):
        if _CAPITALISED.search(text) is None:
            return []
        sentences = _sentences(text)
        text = _blank_code(text, sentences)
    if not any(map(_plain_word, _CAPITALISED.findall(text))):  # the common case, without a Python loop
        return []
    starts = [s for s, _ in sentences]
    found: list[tuple[int, int]] = []
    lex = None
    for m in _CAPITALISED.finditer(text):
        word = m.group()
        if not _plain_word(word) or not _starts_word(text, m.start()) or _glued_to_code(text, m.start(), m.end()):
            continue
        if not sentences:
            sentences = _sentences(text)
            starts = [s for s, _ in sentences]
        sentence = sentences[bisect_right(starts, m.start()) - 1]
        if found and found[-1] == sentence:
            continue
        if short or not _starts_something(text, sentence[0], m.start()):
            found.append(sentence)
            continue
        lex = lex or name_lexicon()
        if lex.is_first(word):  # "Priya asked ...": surnames that open a sentence are verbs ("Read", "Find")
            found.append(sentence)
    return found


def _starts_word(text: str, start: int) -> bool:
    """Whether a word starts at `start`: no letter before it in its run of word characters ("ç’Żß" is one word)."""
    i = start - 1
    while i >= 0 and (text[i].isalnum() or text[i] in "_'’-"):
        if _LETTER.match(text[i]):
            return False
        i -= 1
    return True


def _starts_something(text: str, sentence_start: int, start: int) -> bool:
    """Whether the word at `start` is its sentence's first word, or follows (past spaces and tabs) a
    field, quote or item opener."""
    if _LETTER.search(text, sentence_start, start) is None:
        return True
    i = start - 1
    while i >= sentence_start and text[i] in " \t":
        i -= 1
    return i < sentence_start or text[i] in _INITIAL_BEFORE


def _may_hold_code(piece: str) -> bool:
    return "`" in piece or "/" in piece or "@" in piece or "\\" in piece or "{{" in piece


def _blank_code(text: str, sentences: list[tuple[int, int]]) -> str:
    """`text` with the code, URLs, paths and emails of each sentence replaced by spaces (offsets kept)."""
    parts = []
    pos = 0
    for s, e in sentences:
        parts.append(text[pos:s])
        sentence = text[s:e]
        code = _code_in(_code_kinds(sentence))
        parts.append(code.sub(_spaces, sentence) if code is not None else sentence)
        pos = e
    parts.append(text[pos:])
    return "".join(parts)


def _code_kinds(s: str) -> tuple[bool, ...]:
    return ("`" in s, "://" in s, "@" in s, "/" in s or "\\" in s, "{{" in s)


@cache
def _code_in(present: tuple[bool, ...]) -> re.Pattern[str] | None:
    """_CODE with only the kinds marked present (None for none)."""
    kinds = [pattern for pattern, here in zip(_CODE_KINDS, present, strict=True) if here]
    return re.compile("|".join(kinds)) if kinds else None


def _spaces(m: re.Match[str]) -> str:
    return " " * len(m.group())


def _sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-empty sentence: the text between boundaries."""
    cuts = [0, *chain.from_iterable(m.span() for m in _BOUNDARY.finditer(text)), len(text)]
    return [(s, e) for s, e in zip(cuts[::2], cuts[1::2], strict=True) if e > s]


def ner_pieces(text: str) -> list[tuple[int, str]]:
    """(offset, piece) for the runs of sentences NER must read; none for most telemetry text.

    Adjacent candidate sentences are sent together (a name and its place often span two), and
    each piece is cut to MAX_PIECE characters at whitespace so no name is split.
    """
    if text.islower():  # one C pass for the common case
        return []
    runs: list[list[int]] = []
    short = len(text) <= _SHORT_VALUE and "\n" not in text
    for s, e in _candidate_sentences(text, short):
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
