"""Entities from generic signals: what a memory *names*, whatever its sentence shape.

The typed triples of :mod:`colony.memory.graph` need a relation phrase the parser knows
("X depends on Y"); a memory written another way ("Payments — owned by team Falcon, see
INC-2231") yields no triple, and a graph built only from triples cannot link it. Multi-hop
recall needs only to know that two memories *name the same thing*, so this module finds the
things a memory names from signals that do not depend on phrasing:

- identifiers: tokens mixing letters and digits or joined by ``_ . / : = @ #`` (``INC-123``,
  ``ERR_CONN_RESET``, ``db-07.eu-west``, ``s3sync==2.5.5``, ``src/app.py``), camelCase code
  names, command-line flags, version numbers;
- capitalised names and multi-word proper nouns, particles and hyphens included
  (``Ingrid van der Berg``, ``Jean-Luc Moreau``, ``Bank of America``), and all-caps acronyms;
- quoted and back-ticked terms;
- each item of a numbered list under its own name ("routes 46 and 28" names route 46 and route
  28, which questions ask about one at a time);
- noun phrases, from a small rule-based chunker: maximal runs of words between stop words,
  punctuation and verbs (a verb list plus suffix rules, checked against the words around), so
  lower-case names like "the pricing API" or "libfixed" count too.

One thing is written many ways, so a phrase also yields its parts: the capitalised run inside it
("the Willow team" → "willow"), its leading and trailing sub-phrases ("the Tundra team retro" →
"tundra team"), a hyphenated qualifier ("the billing-meter service" → "billing-meter"), and both
readings of "Culture and Leisure" (one name, or two).

:func:`relation_cues` reads, with the same pass, which relations a memory's words speak of
("led by" → ``leads``) without needing a sentence the triple parser understands.

Why rules and not an NLP library: spaCy installs from PyPI but its English models do not (only
unofficial re-uploads do), and a model would cost milliseconds per memory at ingest, where this
costs tens of microseconds. The chunker errs towards too many phrases rather than too few: a
spurious phrase names one memory and links nothing, while a missed name breaks a path.

Keys are normalised exactly like the triple parser's entities (:func:`normalize_words`: lower
case, determiners and adverbs trimmed from the ends), so a question's n-grams
(:func:`colony.memory.graph.query_entities`) find them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from colony.memory._relations import (
    AUX_KIND,
    MAX_ENTITY_WORDS,
    NOUN_MARKERS,
    PRONOUNS,
    RELATION_FIRST_WORDS,
    STOPWORDS,
    SURFACES,
    clean,
    normalize_words,
    sentences,
    word_set,
)

__all__ = ["MAX_CUES", "MAX_MENTIONS", "analyse", "extract_entities", "relation_cues"]

#: Keys kept per memory: enough for any note, bounded for a pasted document.
MAX_MENTIONS = 48
MAX_CUES = 16
MAX_TEXT_CHARS = 64_000
_MAX_SENTENCE_TOKENS = 200
_MAX_QUOTED_WORDS = 6

_TOKEN_RE = re.compile(r"[^\s,;()\[\]{}<>\"“”«»!?|]+|[,;()\[\]{}<>!?|\"“”«»]")
_QUOTED_RE = re.compile(r"[\"“”«»]([^\"“”«»\n]{1,120})[\"“”«»]|`([^`\n]{1,120})`")
_LEAD = "'`*‘’"
_TRAIL = ".:'`*…‘’"
_HAS_DIGIT = re.compile(r"\d")
_HAS_ALNUM = re.compile(r"[^\W_]")
_HAS_ALPHA = re.compile(r"[^\W\d_]")
_JOINED = re.compile(r"[^\W_][_./:=@#+]+[^\W_]|^--?[^\W\d_]|^#\w")
_NUMBER = re.compile(r"^[#$€£]?\d[\d,.]*[%kKmMbB]?$")
_CAMEL = re.compile(r"^[a-z]+[A-Z]")
_ALL_SINGLE_LETTERS = re.compile(r"^(?:[^\W\d_][./])+[^\W\d_]?$")  # U.S, e.g, a.m

#: Particles inside a proper name: "Ingrid van der Berg", "Bank of America", "AT & T".
_NAME_PARTICLES = word_set("van der den de del della di da du la le von zu bin al ibn ben y of &")

# Common verbs beyond the relation vocabulary (base forms; regular inflections are derived).
_COMMON_VERBS = word_set("""say get make go take see come think look want give find tell ask seem feel try leave
    mean keep let begin show hear put bring happen provide sit stand lose pay meet continue set change understand
    stop speak allow add spend grow open walk win offer remember consider appear wait die expect stay fall cut
    reach remain suggest raise pass decide pull explain hope carry return agree ship merge release roll rotate
    restart fail crash resolve close assign migrate patch rewrite redeploy escalate page notify approve handle
    oversee head coordinate decide sign chair staff govern supervise administer own sit live stay lie hold""")
_IRREGULAR = word_set("""said got gotten made went gone took taken saw seen came thought gave given found told felt
    left meant kept began begun showed shown heard put brought happened sat stood lost paid met set understood
    spoke spoken spent grew grown won offered fell fallen cut sent built ran broke broken drove driven sold wrote
    written led held oversaw overseen rewrote rewritten lay""")


def _inflect(base: str) -> tuple[str, str]:
    """Third person and past of a regular verb (good enough for a membership test)."""
    if base.endswith(("s", "x", "z", "ch", "sh", "o")):
        third = base + "es"
    elif base.endswith("y") and len(base) > 2 and base[-2] not in "aeiou":
        third = base[:-1] + "ies"
    else:
        third = base + "s"
    if base.endswith("e"):
        past = base + "d"
    elif base.endswith("y") and len(base) > 2 and base[-2] not in "aeiou":
        past = base[:-1] + "ied"
    else:
        past = base + "ed"
    return third, past


def _verb_tables() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[tuple[str, str]]]:
    """The verb forms the chunker stops at.

    Returns (third-person forms, past forms, base forms, (verb, particle) pairs such as
    ("depends", "on")): the relation vocabulary's verbs plus common ones, regular forms derived.
    """
    third: set[str] = set()
    past: set[str] = set(_IRREGULAR)
    bases: set[str] = set(_COMMON_VERBS)
    particles: set[tuple[str, str]] = set()
    for key, rel in SURFACES.items():
        if rel.forms & {"phrase", "be", "have"}:
            continue
        if len(key) == 2:
            particles.add(key)
        target = third if "third" in rel.forms else past if rel.forms & {"past", "part"} else None
        if "base" in rel.forms:
            bases.add(key[0])
        if target is not None:
            target.add(key[0])
    for base in _COMMON_VERBS:
        t, p = _inflect(base)
        third.add(t)
        past.add(p)
    # Forms far more often nouns or names than verbs in notes.
    third -= word_set("news series means species")
    return frozenset(third), frozenset(past), frozenset(bases), frozenset(particles)


_THIRD, _PAST, _BASES, _PARTICLE_VERBS = _verb_tables()
_ARTICLES = word_set("a an the")
#: Nouns that open a relation phrase ("member of", "part of", "responsible for"): relation, not thing.
_RELATION_NOUNS: frozenset[tuple[str, str]] = frozenset(
    (words[0], words[1])
    for key, rel in SURFACES.items() if "phrase" in rel.forms
    for words in [tuple(w for w in key if w not in _ARTICLES)] if len(words) == 2
)
_PREPOSITIONS = word_set("""of for in at on with from to during via by after before into onto through per as than
    about over under without within across against among between except around near upon behind beyond""")
#: Words that end a phrase and never start one.
_STOP = STOPWORDS | frozenset(PRONOUNS) | frozenset(AUX_KIND) | _PREPOSITIONS | word_set("""
    yes ok okay vs versus e.g i.e etc also too instead rather quite almost maybe perhaps soon later up down out
    off earlier first last next new old same different own whole each every much more most less least
    then there here again once twice thing things stuff way lot lots kind sort""")
#: Before a verb form, these make it a verb ("to use", "we use", "which covers").
_VERB_CUES = frozenset(AUX_KIND) | word_set("to we they i you he she it who which that not never also just")
#: -ly words that are nouns, not adverbs.
_LY_NOUNS = word_set("family supply reply assembly anomaly monopoly butterfly rally ally italy july jelly belly")
_ED_NOUNS = word_set("hundred embed shred sled bed red")
_CONTRACTIONS = ("'ll", "'re", "'ve", "'d", "'m", "n't")


def _reads_as_name(word: str) -> bool:
    """Whether a word reads as a name or an identifier on its own (capitalised, digits, joins)."""
    return word[:1].isupper() or _is_identifier(word)


def _core(raw: str) -> str:
    if raw.isalnum():
        return raw  # most words: nothing to strip
    word = raw.replace("’", "'").replace("‘", "'")
    return word.lstrip(_LEAD).rstrip(_TRAIL)


def _is_identifier(word: str) -> bool:
    if word.isalpha():
        return word[0].islower() and not word.islower()  # only camelCase ("parseConfig")
    if _ALL_SINGLE_LETTERS.match(word):
        return False
    if _HAS_DIGIT.search(word):
        return bool(_HAS_ALPHA.search(word)) or "." in word.strip(".")  # INC-12, e404, 2.5.5
    return bool(_JOINED.search(word) or _CAMEL.match(word))


# Token classes.
_WORD, _CAP, _IDENT, _NUM, _VERB, _STOPW, _BREAK, _PARTICLE = range(8)


def _classify(words: list[str], lowers: list[str]) -> list[int]:
    """One class per token, using the words around it where a suffix or form is ambiguous."""
    classes: list[int] = []
    n = len(words)
    for i, (word, low) in enumerate(zip(words, lowers, strict=True)):
        prev = lowers[i - 1] if i else ""
        prev_class = classes[i - 1] if i else _BREAK
        nxt = lowers[i + 1] if i + 1 < n else ""
        after_noun = prev_class in (_WORD, _CAP, _IDENT)
        # After a name ("Alice calls", "Bob use") a verb form is a verb; after an acronym or a
        # name behind a determiner it heads a compound ("API calls", "the Python build").
        after_name = (prev_class == _CAP and not words[i - 1].isupper()
                      and not (i > 1 and lowers[i - 2] in NOUN_MARKERS))
        if not word:
            kind = _BREAK
        elif _NUMBER.match(word) and "." not in word.strip("."):
            kind = _NUM
        elif _is_identifier(word):
            kind = _IDENT
        elif low in _NAME_PARTICLES and prev_class in (_CAP, _PARTICLE) and not word[:1].isupper():
            kind = _PARTICLE  # resolved below: a particle stays only between two capitalised words
        elif low in _STOP:
            kind = _CAP if word[:1].isupper() and i and low not in STOPWORDS else _STOPW  # "New York"
        elif word[:1].isupper() and i:
            kind = _CAP
        elif i == 0 and word[:1].isupper():
            # Sentence start: capitalised by position only, so judge the word by its lower case.
            # An instruction ("Restart the worker") is a verb; "Deploy keys are rotated" is not.
            if low in _BASES:
                kind = _VERB if not nxt or nxt in _STOP or _reads_as_name(words[1]) else _WORD
            elif low in _THIRD or low in _PAST:
                kind = _VERB
            else:  # a name when a name goes on after it: "Ingrid van der Berg", "Kofi MacLeod"
                kind = _CAP if n > 1 and (words[1][:1].isupper() or nxt in _NAME_PARTICLES
                                          or (nxt == "and" and n > 2 and words[2][:1].isupper())) else _WORD
        elif (low, nxt) in _RELATION_NOUNS:
            kind = _VERB  # "a member of", "located in": the relation, not a thing
        elif prev in NOUN_MARKERS:
            kind = _WORD  # "the calls", "two tests", "the deprecated API"
        elif (low, nxt) in _PARTICLE_VERBS:
            kind = _VERB  # "depends on", "reports to"
        elif prev in _VERB_CUES and (low in _BASES or low in _THIRD or low in _PAST or low.endswith(("ed", "ing", "es"))
                                     or (low.endswith("s") and not low.endswith("ss"))):
            kind = _VERB  # "we recovered", "which covers", "to use", "was delayed", "is failing"
        elif low in _COMMON_VERBS and prev_class == _BREAK and i:
            kind = _VERB  # an instruction after a comma: "…, see INC-2231"
        elif low in _THIRD:
            # "Alice tests the parser" but "unit tests need mocks", "tests of the backend".
            noun_next = not nxt or nxt == "of" or nxt in AUX_KIND or nxt in _BASES
            kind = _VERB if after_name or not noun_next else _WORD
        elif low in _PAST:
            kind = _VERB if after_noun or nxt in _PREPOSITIONS else _WORD
        elif low in _BASES and (after_name or (after_noun and prev.endswith("s") and not prev.endswith("ss"))):
            kind = _VERB  # "engineers use Rust", "Alice and Bob use Rust"
        elif low.endswith("ly") and len(low) > 4 and low not in _LY_NOUNS:
            kind = _STOPW  # an adverb
        elif low.endswith("ed") and len(low) > 4 and not low.endswith("eed") and low not in _ED_NOUNS and after_noun:
            kind = _VERB  # after a noun, an -ed word is its verb: "the team shipped"
        elif low.endswith("ing") and len(low) > 5 and after_noun and (not nxt or nxt in _STOP):
            kind = _VERB  # "the team handling the pager"; "data processing pipeline" stays a phrase
        else:
            kind = _WORD
        classes.append(kind)
    # A particle stays only between capitalised words ("van der Berg"), else it is a stop word.
    for i, kind in enumerate(classes):
        if kind == _PARTICLE:
            j = i
            while j < n and classes[j] == _PARTICLE:
                j += 1
            if j >= n or classes[j] != _CAP:
                for k in range(i, j):
                    classes[k] = _STOPW
    return classes


def _tokens(sentence: str) -> tuple[list[str], list[str], list[bool]]:
    """Case-preserving words, their lower case, and whether a phrase must end after each one."""
    words: list[str] = []
    lowers: list[str] = []
    ends: list[bool] = []
    owners: list[bool] = []
    for match in _TOKEN_RE.finditer(sentence):
        if len(words) >= _MAX_SENTENCE_TOKENS:
            break
        raw = match.group()
        core = _core(raw)
        possessive = core.lower().endswith("'s") and len(core) > 2
        if possessive:
            core = core[:-2]
        elif raw.replace("’", "'").rstrip(".:,").endswith("s'"):  # plural possessive: "the teams' pager"
            possessive = True
        low = core.lower()
        if "'" in low and (low.endswith(_CONTRACTIONS) or low.split("'")[0] in PRONOUNS):
            core = ""  # "you'll", "isn't", "that's": function words
        if core != "&" and (not core or len(core) > 100 or not (core.isalnum() or _HAS_ALNUM.search(core))):
            words.append("")
            lowers.append("")
            ends.append(True)
            owners.append(False)
            continue
        words.append(core)
        lowers.append(core.lower())
        # A possessive, or punctuation glued to the word ("Berlin:" / "Acme."), ends the phrase.
        ends.append(possessive or (len(raw) > len(core) and raw.rstrip(_LEAD)[-1:] in ".:…"))
        # "Anselm's" (not "Anselm's." nor the plural "Teams'") may carry on into the next name.
        owners.append(possessive and core[:1].isupper() and raw.replace("’", "'").endswith("'s"))
    # A capitalised possessive inside a capitalised name stays in it: "St Anselm's Children's Centre".
    for i, owner in enumerate(owners):
        if owner and i + 1 < len(words) and words[i + 1][:1].isupper():
            words[i] += "'s"
            lowers[i] += "'s"
            ends[i] = False
    return words, lowers, ends


def _sentence_keys(sentence: str, out: dict[str, None], cues: dict[str, None]) -> None:
    words, lowers, ends = _tokens(sentence)
    if not words:
        return
    _cues_of(lowers, cues)
    classes = _classify(words, lowers)
    # "Culture and Leisure" may be one name or two ("Alice and Bob"): keep the whole as well.
    for i, low in enumerate(lowers):
        if low == "and" and 0 < i < len(words) - 1 and classes[i - 1] == _CAP and classes[i + 1] == _CAP:
            lo, hi = i - 1, i + 1
            while lo > 0 and classes[lo - 1] in (_CAP, _PARTICLE):
                lo -= 1
            while hi + 1 < len(words) and classes[hi + 1] in (_CAP, _PARTICLE) and not ends[hi]:
                hi += 1
            if hi - lo < MAX_ENTITY_WORDS and not any(ends[lo:i]):
                _add(normalize_words(lowers[lo:hi + 1]), out)
    start = 0
    n = len(words)
    for i in range(n + 1):
        boundary = i == n or classes[i] in (_VERB, _STOPW, _BREAK)
        if not boundary and not ends[i]:
            continue
        stop = i if boundary else i + 1
        if stop > start:
            _phrase_keys(words[start:stop], lowers[start:stop], classes[start:stop], start == 0, out)
        start = i + 1 if boundary or ends[i] else i


def _phrase_keys(words: list[str], lowers: list[str], classes: list[int], at_start: bool,
                 out: dict[str, None]) -> None:
    """The keys one phrase names: itself, its proper-name runs and its identifiers."""
    # A phrase never starts with a bare number ("3 hosts" → hosts) nor a particle.
    while classes and classes[0] in (_NUM, _PARTICLE):
        words, lowers, classes = words[1:], lowers[1:], classes[1:]
        at_start = False
    if not words:
        return
    if len(words) <= MAX_ENTITY_WORDS:
        _add(normalize_words(lowers), out)
    if len(words) == 1:
        return
    # A long phrase also names its leading and trailing parts: "the Tundra team retro" is about
    # "the Tundra team", "a flaky integration test" about "integration test(s)".
    if len(words) <= MAX_ENTITY_WORDS:
        for size in range(2, len(words)):
            _add(normalize_words(lowers[:size]), out)
            _add(normalize_words(lowers[-size:]), out)
    # Capitalised runs inside a longer phrase: "the Willow team" names Willow too.
    run: list[str] = []
    for k, (low, kind) in enumerate(zip([*lowers, ""], [*classes, _BREAK], strict=True)):
        # A sentence's first word counts as a name only when a capitalised word follows it.
        # A first word in lower case ("ask Ioana about…", "booked Dobby in") is no part of a name.
        first_alone = k == 0 and at_start and not (len(classes) > 1 and classes[1] in (_CAP, _PARTICLE))
        if kind in (_CAP, _PARTICLE) or (k == 0 and at_start and not first_alone and words[0][:1].isupper()):
            run.append(low)
            continue
        while run and run[-1] in _NAME_PARTICLES:
            run.pop()
        while run and run[0] in _NAME_PARTICLES:
            run.pop(0)
        if run and len(run) < len(words) and len(run) <= MAX_ENTITY_WORDS:
            _add(normalize_words(run), out)
        run = []
    for k, (low, kind) in enumerate(zip(lowers, classes, strict=True)):
        # Identifiers stand alone, and so does a hyphenated name that qualifies a head noun: the
        # "billing-meter service" is the "billing-meter" another note names.
        if kind == _IDENT or (k < len(lowers) - 1 and "-" in low.strip("-") and kind in (_WORD, _CAP)):
            _add(low, out)


def _add(key: str, out: dict[str, None]) -> None:
    if key and len(key) <= 200 and key not in STOPWORDS:
        out.setdefault(key, None)


#: A plural noun before a list of numbers: "routes 46 and 28", "rooms 4, 5 & 6".
_NUMBERED_LIST_RE = re.compile(r"\b([A-Za-z]{3,}s)\s+(\d{1,6}(?:\s*(?:,|and|&|or)\s*\d{1,6})+)\b")
_NUMBER_RE = re.compile(r"\d+")


_NUMBERED_LIST_CHARS = 4000  # of a memory read for numbered lists: a pasted table must not flood its mentions


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    return word[:-1]


def _numbered_items(text: str, out: dict[str, None]) -> None:
    """Each item of a numbered list under its own name: "routes 46 and 28" names route 46 and
    route 28, which a question asks about one at a time ("the route 28 fleet")."""
    for m in _NUMBERED_LIST_RE.finditer(text):
        noun = _singular(m.group(1).lower())
        for number in _NUMBER_RE.findall(m.group(2)):
            _add(f"{noun} {number}", out)


def analyse(text: str) -> tuple[list[str], list[str]]:
    """(:func:`extract_entities`, :func:`relation_cues`) of ``text`` in one pass over its words."""
    if not isinstance(text, str) or not text:
        return [], []
    text = clean(text[:MAX_TEXT_CHARS])
    out: dict[str, None] = {}
    cues: dict[str, None] = {}
    for m in _QUOTED_RE.finditer(text):
        quoted = next(g for g in m.groups() if g is not None)
        if len(quoted.split()) <= _MAX_QUOTED_WORDS:
            _, lowers, _ = _tokens(quoted)
            _add(normalize_words([w for w in lowers if w]), out)
    _numbered_items(text[:_NUMBERED_LIST_CHARS], out)
    for sentence in sentences(text):
        if len(out) >= MAX_MENTIONS:
            _cues_of(_tokens(sentence)[1], cues)
        else:
            _sentence_keys(sentence, out, cues)
    return list(out)[:MAX_MENTIONS], list(cues)[:MAX_CUES]


def extract_entities(text: str) -> list[str]:
    """The entity keys ``text`` names, in order of first mention, at most :data:`MAX_MENTIONS`.

    Never raises. Quoted terms come first (the writer marked them as names), then each sentence's
    phrases, proper-name runs and identifiers.
    """
    return analyse(text)[0]


def _cue_surfaces() -> dict[tuple[str, ...], str]:
    """Relation surfaces that name their relation on their own, with its canonical name.

    Base forms ("use", "lead", "call") are as often nouns, and bare auxiliaries ("is", "has")
    name no relation, so neither counts; a passive ("led by") counts as its participle does.
    """
    return {key: rel.canonical for key, rel in SURFACES.items()
            if not rel.forms <= {"base", "be", "have"} and key[-1] != "by"}


_CUES = _cue_surfaces()


def relation_cues(text: str) -> list[str]:
    """The relations ``text`` speaks of, by their surface words alone, in order, at most :data:`MAX_CUES`.

    Unlike :func:`colony.memory.graph.extract_triples` this needs no sentence shape: "Escalations:
    the Lynx squad (led by Ana Ruiz)" speaks of ``leads`` though no triple parses out of it. Recall
    uses it to tell which memory on a path answers the relation a question asks about. Negation
    is not read: a cue says what a memory is *about*, not what it asserts.
    """
    return analyse(text)[1]


def _cues_of(lowers: Sequence[str], found: dict[str, None]) -> None:
    n = len(lowers)
    for i, word in enumerate(lowers):
        longest = RELATION_FIRST_WORDS.get(word)
        if longest is None or len(found) >= MAX_CUES:
            continue
        for length in range(min(longest, n - i), 0, -1):
            canonical = _CUES.get(tuple(lowers[i:i + length]))
            if canonical is not None:
                found.setdefault(canonical, None)
                break
