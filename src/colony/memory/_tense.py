"""Whether a question asks about an earlier state ("where was the board meeting before it moved?").

Recall reads the answer to decide whether superseded versions belong in the answer and come first
(`colony.memory.service.Memory.recall`). Getting it wrong either way costs: a question about the past
read as present hides the old version it asks for; a present question read as past puts an outdated
fact first. So the rule separates two kinds of wording:

- **Words that point to the past on their own**: "previously", "formerly", "used to" (and its question
  form "did … use to"), "original(ly)", "former", "previous", "back then", "in the past", "anymore",
  "once was", "had been", "changed/moved/switched from", and "old" after a possessive ("my old
  address", "Sam's old job").
- **Time words that order things in any tense**: "before", "earlier", "prior", "until", "at first",
  "initially", "no longer", and any other "old" ("the old oak"; never an age: "how old", "years old").
  "What must I check before deploying?" and "how long until the lamp is fixed?" are about now; "where
  was it before it moved?" is not. These count only in a clause in the past tense: its first finite verb
  is a past auxiliary (was, were, did, had) or a past form ("which tool handled …", "who dealt with
  …"). "What is needed before …", "has it changed since …" and "which services are no longer
  supported?" are present; a past form after a determiner is an adjective ("a signed form"); a
  preface is its own clause ("can you check: what was it before …?" is past).

"use to" alone is not past ("what do I use to sign in?"), nor "any more" before a noun ("is there any
more news?").
"""

from __future__ import annotations

import re

from colony.memory._relations import word_set

__all__ = ["asks_about_past"]

_ALONE = re.compile(
    r"\b(previous(?:ly)?|formerly|former|original(?:ly)?|used to|back then|in the past|anymore|any more(?!\s*\w)|"
    r"once was|had been|(?:changed|moved|switched) from|did(?:n't| not)?\b[^?.!]*?\buse to|"
    r"(?:my|your|our|their|his|her|its|\b(?!(?:it|that|what|there|here|who|he|she)'s)\w+'s) old)\b", re.IGNORECASE)
#: "old" giving an age is no time word at all.
_AGE = re.compile(r"\bhow old\b|\b(?:years?|months?|weeks?|days?)[\s-]old\b|\bold (?:enough|age)\b", re.IGNORECASE)
_ORDERING = re.compile(r"\b(before|earlier|prior|until|at first|initially|no longer|old)\b", re.IGNORECASE)

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_CLAUSES = re.compile(r"[:;—–]|,\s|\s-\s")
_PAST_AUX = word_set("was were did had wasn't weren't didn't hadn't")
#: Simple past forms of common irregular verbs (those that differ from the base form and are seldom nouns).
_IRREGULAR_PAST = word_set("""
    ate became began bent bought brought broke built burnt caught chose came dealt drew drank drove felt fought
    found fled flew forgot froze gave went grew hung heard held hid kept knew laid led lent lost made meant met
    paid rode rang rose ran said sat saw sold sent shook shot showed shone sang sank slept slid spoke spent spun
    stood stole stuck struck swept swam swung taught tore told thought threw understood woke wore won wrote
    oversaw overtook rewrote withdrew undertook upheld""")
#: Finite verbs in the present (or a modal): the first finite verb of a question gives its tense.
_PRESENT = word_set("""
    is are am isn't aren't do does don't doesn't has have hasn't haven't can can't cannot will won't shall
    should shouldn't must may might would wouldn't could couldn't need needs what's who's where's when's how's
    it's that's there's here's what're who're where're""")
#: Words before a past form that make it an adjective, not a verb ("a signed form").
_DETERMINERS = word_set("a an the this that these those my your our their his her its some any no every each")
#: Adverbs skipped when looking back from a past form ("never signed", "no longer supported").
_ADVERBS = word_set("not never already just still also always ever usually often longer")
#: Words ending in -ed that are not past forms.
_NOT_VERBS = word_set("hundred sacred naked wicked rugged beloved kindred ragged crooked")


def _tense(clause: str) -> bool | None:
    """A clause's tense from its first finite verb: True past — a past auxiliary (was, were, did, had)
    or a past form ("handled", "dealt") that is no adjective after a determiner —, False present (or a
    modal), None when it has no finite verb. "Where are the records kept before …" is present: "are"
    comes first."""
    words = _WORD.findall(clause.lower())
    for i, word in enumerate(words):
        if word in _PAST_AUX:
            return True
        if word in _PRESENT:
            return False
        regular = len(word) > 4 and word.endswith("ed") and not word.endswith("eed") and word not in _NOT_VERBS
        if not (regular or word in _IRREGULAR_PAST):
            continue
        j = i - 1
        while j >= 0 and words[j] in _ADVERBS:
            j -= 1
        if j < 0 or words[j] not in _DETERMINERS:
            return True
    return None


def _ordered_in_past(query: str) -> bool:
    """Whether a time word that orders things sits in a past-tense clause: its own, or the next one
    with a finite verb ("before the move, where did she live?"). Clauses split at colons, semicolons,
    dashes and commas, so a preface does not decide ("can you check: what was it before …?")."""
    clauses = _CLAUSES.split(query)
    for i, clause in enumerate(clauses):
        if not _ORDERING.search(clause):
            continue
        for later in clauses[i:]:
            tense = _tense(later)
            if tense is not None:
                if tense:
                    return True
                break
    return False


def asks_about_past(query: str) -> bool:
    """Whether a question is about an earlier state ("where was X before it moved?")."""
    query = _AGE.sub(" ", query.replace("’", "'"))
    if _ALONE.search(query):
        return True
    return _ordered_in_past(query)
