"""What kind of thing a question asks for, and what kinds of things a memory names.

A multi-hop walk reaches many memories through one link: "Brackenridge Recycling Centre" leads
to its opening times, its room prices, the directorate that runs it and the ward it is in, and
the link alone cannot tell them apart. The question can: "which part of the city…" wants a
place, "who…" a person, "when…" a time. So the walk favours a continuation that names
something *new* of the asked kind (:mod:`colony.memory._paths`).

Both sides use signals any English text has, not one corpus's sentence shapes:

- the question: its first wh-word (``who``/``whose``, ``where``, ``when``), or ``which``/``what``
  before a noun of a kind ("which councillor", "what neighbourhood", "which day");
- the memory: times from their written forms (weekdays, months, ``9am``, ``14:30``, ``12/07``);
  places from the preposition before a name (``in``, ``at``, ``near``…) or a place noun beside it
  ("district Saltmarsh", "the Fellgate area"); people from titles ("Dr Yamamoto", "Cllr Vance")
  and from names of two or three capitalised words that are not a place, not behind a
  determiner ("the Resources Committee") and not ending in a noun that heads institutions and
  places ("Yew Tree Library", "Ashcombe Park").

:func:`mentioned_kinds` reads every kind a question speaks of, not only the first: "who is the
councillor for the *place where* the vans park?" asks for a person through a place, and the walk
favours paths that pass through one.

It is a heuristic with no model behind it, so the walk only multiplies a path's weight by it
(see ``KIND_BOOST``): a wrong guess moves a memory a few places, it never hides one.
"""

from __future__ import annotations

import re
from typing import Literal

from colony.memory._relations import word_set

__all__ = ["Kind", "answer_kind", "mentioned_kinds", "named_kinds"]

Kind = Literal["person", "place", "time"]

_PERSON_NOUNS = (r"person|people|politician|councill?ors?|officers?|officials?|members?|managers?|directors?|boss|"
                 r"leaders?|owners?|contacts?|organi[sz]ers?|doctors?|vets?|dentists?|chair(?:person)?|"
                 r"representatives?|engineers?|colleagues?|friends?|partners?|teachers?|employees?|founders?|"
                 r"maintainers?|supervisors?")
_PLACE_NOUNS = (r"city|cities|towns?|country|countries|regions?|areas?|neighbou?rhoods?|districts?|wards?|places?|"
                r"locations?|villages?|suburbs?|streets?|address|county|borough|datacent(?:er|re)s?|"
                r"part of (?:the )?(?:town|city|country|world)")
_QUESTION: list[tuple[Kind, re.Pattern[str]]] = [
    ("person", re.compile(rf"\bwho(?:m|se)?\b|\b(?:which|what)\s+(?:\w+\s+)?(?:{_PERSON_NOUNS})\b|"
                          rf"\bname of (?:the |my |their |our )?(?:\w+\s+)?(?:{_PERSON_NOUNS})\b", re.IGNORECASE)),
    ("place", re.compile(rf"\bwhere\b|\b(?:which|what)\s+(?:\w+\s+)?(?:{_PLACE_NOUNS})\b", re.IGNORECASE)),
    ("time", re.compile(r"\bwhen\b|\bwhat time\b|\b(?:which|what)\s+(?:day|date|month|year|time)\b", re.IGNORECASE)),
]

#: Any mention of a kind, wherever it stands: "the place where the fleet parks", "the area around".
_MENTIONED: list[tuple[Kind, re.Pattern[str]]] = [
    ("person", re.compile(rf"\bwho(?:m|se)?\b|\b(?:{_PERSON_NOUNS})\b", re.IGNORECASE)),
    ("place", re.compile(rf"\bwhere\b|\b(?:{_PLACE_NOUNS})\b", re.IGNORECASE)),
    ("time", re.compile(r"\bwhen\b|\b(?:day|date|month|year|time)\b", re.IGNORECASE)),
]

_WEEKDAY = r"(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?s?"
_MONTH = (r"January|February|March|April|May|June|July|August|September|October|November|December|"
          r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec")
_TIME = re.compile(rf"\b(?:{_WEEKDAY}|{_MONTH})\b|\b\d{{1,2}}(?:[:.]\d{{2}})?\s?(?:am|pm)\b|\b(?:noon|midnight)\b|"
                   r"\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b|\b\d{4}-\d{2}-\d{2}\b")
_DIGIT = re.compile(r"\d")
_POSSESSIVE = re.compile(r"['’]s?$")
_CAP_WORD = r"[A-Z][\w'’&-]*"
_NAME_RUN = rf"{_CAP_WORD}(?:\s+(?:(?:of|and|&|de|van|von|der|la|le|du|da)\s+)?{_CAP_WORD})*"
#: Prepositions that put a name in a place ("from" and "to" do not: "a nod from Dana Okafor").
_LOCATIVES = r"in|at|near|outside|inside|within|around"
_LOCATIVE = re.compile(rf"\b(?i:{_LOCATIVES})\s+(?:the\s+)?({_NAME_RUN})")
_PLACE_NOUN_BESIDE = re.compile(rf"\b(?:{_PLACE_NOUNS})\s+({_NAME_RUN})|({_NAME_RUN})\s+(?:{_PLACE_NOUNS})\b")
_TITLES = r"Dr|Mr|Mrs|Ms|Mx|Prof|Cllr|Sir|Dame|Lord|Lady"
_TITLED = re.compile(rf"\b(?:{_TITLES})\.?\s+({_NAME_RUN})")
#: A run opening with a determiner or a title is a thing's name, or a titled one read above.
_OPENER = re.compile(rf"^(?:The|A|An|This|That|Our|Their|Its|{_TITLES})\b")
_CAPITALISED_RUN = re.compile(rf"(?<![\w'’])({_CAP_WORD}(?:\s+{_CAP_WORD})*)(?![\w'’])")
_BEHIND_DETERMINER = re.compile(rf"\b(?:the|a|an|this|that|our|their|its|{_LOCATIVES})\s+$", re.IGNORECASE)
#: Nouns that head the names of institutions, places and things rather than people.
_INSTITUTION_HEADS = word_set("""centre center library museum park parks garden gardens ground grounds field fields
    common green square street road lane avenue way drive place court hall house hub station yard depot garage
    market bridge hospital clinic surgery practice school college university academy church chapel theatre
    theater cinema gallery hotel cafe café bar pub inn restaurant club society circle committee board panel forum
    council cabinet team group squad department directorate division office agency service services company
    corporation ltd inc llc lab labs software systems games studio studios works partners associates trust
    foundation institute union association project programme program river lake hill valley wood woods forest
    meadow meadows heath island bay beach port harbour harbor airport tower building estate estates band
    choir league""")


def answer_kind(question: str) -> Kind | None:
    """The kind of thing ``question`` asks for: the first kind cue in it wins ("who … the place
    where …" asks for a person); None when it asks for none of them."""
    text = question[:2000]
    found = [(m.start(), kind) for kind, pattern in _QUESTION for m in [pattern.search(text)] if m]
    return min(found)[1] if found else None


def mentioned_kinds(question: str) -> frozenset[Kind]:
    """Every kind of thing ``question`` speaks of, the asked one and those on the way to it:
    "who is the elected member for the *place where* the fleet parks" asks for a person *through*
    a place."""
    text = question[:2000]
    return frozenset(kind for kind, pattern in _MENTIONED if pattern.search(text))


def named_kinds(text: str) -> dict[Kind, frozenset[str]]:
    """The lower-case words of the names ``text`` gives to things of each kind."""
    text = text[:2000]
    out: dict[Kind, set[str]] = {}

    def add(kind: Kind, name: str) -> None:
        # Words as the entity keys spell them: "Paddlers' Wharf" and "Parisa's" name paddlers, parisa.
        out.setdefault(kind, set()).update(_POSSESSIVE.sub("", word) for word in name.lower().split())

    for m in _TIME.finditer(text):
        add("time", m.group(0))
    places = [m.group(1) for m in _LOCATIVE.finditer(text)]
    places += [m.group(1) or m.group(2) for m in _PLACE_NOUN_BESIDE.finditer(text)]
    # A name with digits is a code or a number plate ("in KZ42 SKD"), not a place.
    places = [p for p in places if p and not _TIME.fullmatch(p) and not _DIGIT.search(p)]
    for place in places:
        add("place", place)
    for m in _TITLED.finditer(text):
        add("person", m.group(1))
    for m in _CAPITALISED_RUN.finditer(text):
        name = m.group(1)
        words = name.split()
        if (2 <= len(words) <= 3 and not _OPENER.match(name) and not _TIME.search(name) and not _DIGIT.search(name)
                and words[-1].lower() not in _INSTITUTION_HEADS
                and not _BEHIND_DETERMINER.search(text[max(0, m.start() - 12):m.start()])
                and not any(name in place or place in name for place in places)):
            add("person", name)
    return {kind: frozenset(words) for kind, words in out.items()}
