"""First names and surnames from a word list: names the small spaCy model does not know, found without it.

The list (`name_lexicon.json`) is built by `build_name_lexicon.py` from the `names-dataset` package:
names ranked in the top 1,000 of at least one of 105 countries, so "Ayşe", "Oluwaseun", "Thi Hoa"
and "Wróbel" are in it as well as "James". Many such names are also English words ("Will", "Grant",
"May", "Hope", "Page"), so one listed word alone is never a name: a name here is a first name
followed by a surname, both capitalised, neither a word of the telemetry vocabulary (tools,
vendors, instructions). The list is loaded once per process, on first use (~20 ms).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from .secret_rules import Finding

__all__ = ["NameLexicon", "name_lexicon", "lexicon_findings", "LEXICON_PRIORITY"]

LEXICON_PRIORITY = 20
_PATH = Path(__file__).with_name("name_lexicon.json")
_WORD = r"[A-ZÀ-ÖØ-ÞĀ-Ž][a-zà-öø-ÿā-ž]+(?:['’-][A-ZÀ-ÖØ-ÞĀ-Ža-zà-öø-ÿā-ž]+)?"
# First name, an optional middle name or particle, a surname: "Ayşe Yılmaz", "Ana María López",
# "Jan van der Berg". Not preceded or followed by an identifier character (code, paths, emails).
_PAIR = re.compile(
    rf"(?<![\w@./\\-])({_WORD})((?:[ \t]+(?:{_WORD}|de|da|di|van|von|der|den|del|la|le|dos|das|bin|al)){{1,3}})"
    r"(?![\w@/\\]|\.\w)"
)


class NameLexicon:
    """Sets of first names and surnames, in the case the list gives them ("Ayşe", "Yılmaz")."""

    def __init__(self, first: frozenset[str], last: frozenset[str], exclude: frozenset[str]) -> None:
        self.first = first
        self.last = last
        self.exclude = exclude  # lowercase words never part of a name here (tools, instructions)

    def is_first(self, word: str) -> bool:
        return word in self.first and word.lower() not in self.exclude

    def is_last(self, word: str) -> bool:
        return word in self.last and word.lower() not in self.exclude

    def is_name_word(self, word: str) -> bool:
        return self.is_first(word) or self.is_last(word)


@cache
def name_lexicon() -> NameLexicon:
    from .names import NOT_NAMES, TECH_TERMS

    data = json.loads(_PATH.read_text(encoding="utf-8"))
    exclude = frozenset(NOT_NAMES | TECH_TERMS | _NOT_NAME_WORDS)
    return NameLexicon(frozenset(data["first"]), frozenset(data["last"]), exclude)


# English words the list also holds as names, frequent in telemetry text at the head of a phrase
# ("Will Smith" stays a name: "Will" is excluded only as a first word when the next is no surname).
_NOT_NAME_WORDS = frozenset(
    """
the and for with from into onto about after before over under per via not but yet also only just
new old next last first second third final main default general global local public private
happy sorry great good best kind warm dear hello hi hey thanks welcome please sure okay ok yes no
monday tuesday wednesday thursday friday saturday sunday january february march april june july
august september october november december today tomorrow yesterday morning evening night
north south east west central street road avenue city county state region zone cloud server
customer client user admin owner agent bot model service services worker job jobs task tasks
""".split()
)


def lexicon_findings(text: str) -> list[Finding]:
    """PERSON spans: a listed first name followed by a listed surname (middle names allowed)."""
    lex = name_lexicon()
    out = []
    pos = 0
    while (m := _PAIR.search(text, pos)) is not None:
        pos = m.start(2)  # on a miss, the second word may start a name: "Meet Ayşe Yılmaz"
        if not lex.is_first(m.group(1)):
            continue
        words = m.group(2).split()
        end_word = 0
        for i, word in enumerate(words):
            if word[:1].islower():
                continue  # a particle: only inside a name
            if lex.is_last(word) or (i + 1 < len(words) and lex.is_name_word(word)):
                end_word = i + 1
            else:
                break
        while end_word and words[end_word - 1][:1].islower():
            end_word -= 1
        if end_word == 0 or not lex.is_last(words[end_word - 1]):
            continue
        end = m.start(2)
        for word in words[:end_word]:
            end = text.index(word, end) + len(word)
        out.append(Finding(m.start(1), end, "PERSON", 0.75, LEXICON_PRIORITY))
        pos = end
    return out
