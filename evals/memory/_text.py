"""Word-level helpers shared by the generator and its tests.

The eval's promise is that some questions cannot be answered by shared words: a multi-hop
question shares no content word with the memories it needs beyond the first hop, and a
paraphrase question none with its memory. These helpers define "content word" strictly (a
crude stemmer plus a five-letter shared-prefix rule), stricter than SQLite's porter stemmer,
so a check that passes here cannot be beaten by keyword search.
"""

from __future__ import annotations

import re

__all__ = ["IDENTIFIER_RE", "content_words", "identifiers", "shared_content_words"]

#: Exact identifiers: tickets (INC-48213, PLAT-1234), hosts (db-07.eu-west), pins (ledger==4.2.1), errors (E1742).
IDENTIFIER_RE = re.compile(
    r"\b(?:[A-Z]{3,5}-\d{3,5}"
    r"|[a-z]+-\d{2}\.[a-z]{2}-[a-z]+"
    r"|[a-z][a-z0-9-]*==\d+\.\d+\.\d+"
    r"|E\d{4})\b"
)

_WORD = re.compile(r"[a-z0-9]+")

_STOPWORD_TEXT = """
    a about above after again all also am an and any anyone anything are as at be been before being
    below both but by can could did do does doing done down during each else ever every few for from
    further get gets getting got had has have having he her here hers him his how i if in into is it
    its itself just let like ll may me might more most much must my no nor not now of off often on
    once one only or other our ours out over own per re s same shall she should so some such t than
    that the their theirs them then there these they this those through to too under until up upon
    us very was we were what when where which while who whom whose why will with would you your
    yours ve d m long ago still yet okay ok
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_SUFFIXES = ("ations", "ation", "ments", "ment", "ings", "ing", "ness", "ies", "ied", "ers", "er", "ed", "es", "ly", "s")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("i" if suffix in ("ies", "ied") else "")
            break
    if word.endswith("y"):
        word = word[:-1] + "i"
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """The words of `text` that carry meaning: lower-cased, stopwords and one-letter tokens dropped."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


def _related(a: str, b: str) -> bool:
    if a == b or _stem(a) == _stem(b):
        return True
    # Catches deploy/deployment, rotate/rotation, engineer/engineering that the stemmer misses.
    return len(a) >= 5 and len(b) >= 5 and a[:5] == b[:5]


def shared_content_words(a: str, b: str) -> list[tuple[str, str]]:
    """Pairs of related content words between two texts (empty when only meaning links them)."""
    words_b = sorted(set(content_words(b)))
    return [(x, y) for x in sorted(set(content_words(a))) for y in words_b if _related(x, y)]


def identifiers(text: str) -> list[str]:
    """Every exact identifier in `text`, in order."""
    return IDENTIFIER_RE.findall(text)
