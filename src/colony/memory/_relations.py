"""The words of triple extraction: relation phrases, the word classes around them, and the
tokenizer and entity keys built on them.

Kept apart from the parser (:mod:`colony.memory.graph`) so that growing the vocabulary never
touches the parsing logic.
Every relation surface form maps to a :class:`Rel`: the canonical snake_case name stored in the
graph, the grammatical *forms* the surface can take (so ``used`` is past tense after a subject but
a participle after ``is``), and whether subject and object swap (``Y is used by X`` → ``X uses Y``).

Canonical names are present tense, third person (``uses``, ``depends_on``), so the active and the
passive voice of one fact land on one edge.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import NamedTuple

__all__ = [
    "AUX_KIND",
    "CLAUSE_WORDS",
    "CONJUNCTIONS",
    "EDGE_STOP",
    "FUNCTIONAL_RELATIONS",
    "GROUP_WORDS",
    "INVERSE_FUNCTIONAL_RELATIONS",
    "MAX_ENTITY_WORDS",
    "NEGATIONS",
    "NEGATIVE_DETERMINERS",
    "NOUN_MARKERS",
    "OBJECT_STOPS",
    "OBJECT_TAIL_STOPS",
    "PRONOUNS",
    "PUNCT",
    "RELATIONS",
    "RELATION_FIRST_WORDS",
    "STOPWORDS",
    "SURFACES",
    "Rel",
    "clean",
    "normalize_words",
    "sentences",
    "tokens",
    "word_set",
]

MAX_ENTITY_WORDS = 6
MAX_SENTENCE_TOKENS = 120
MAX_WORD_CHARS = 100  # longer "words" are blobs (base64, minified code), never entities


def word_set(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``: long word lists stay readable."""
    return frozenset(text.split())


class Rel(NamedTuple):
    canonical: str
    #: Any of: base, third, past, part (participle), ger, passive, phrase, be, have.
    forms: frozenset[str]
    swap: bool = False


# Transitive verbs: base, third person, past, participle, gerund. The canonical name is the third
# person; "<participle> by" is the passive and swaps subject and object.
_VERBS = """
use uses used used using | own owns owned owned owning | call calls called called calling
import imports imported imported importing | contain contains contained contained containing
include includes included included including | manage manages managed managed managing
create creates created created creating | cause causes caused caused causing
replace replaces replaced replaced replacing | prefer prefers preferred preferred preferring
like likes liked liked liking | dislike dislikes disliked disliked disliking
love loves loved loved loving | hate hates hated hated hating | know knows knew known knowing
store stores stored stored storing | read reads read read reading | write writes wrote written writing
maintain maintains maintained maintained maintaining | test tests tested tested testing
block blocks blocked blocked blocking | supersede supersedes superseded superseded superseding
require requires required required requiring | need needs needed needed needing
run runs ran run running | build builds built built building | develop develops developed developed developing
design designs designed designed designing | lead leads led led leading | fund funds funded funded funding
support supports supported supported supporting | host hosts hosted hosted hosting
deploy deploys deployed deployed deploying | implement implements implemented implemented implementing
extend extends extended extended extending | wrap wraps wrapped wrapped wrapping
trigger triggers triggered triggered triggering | fix fixes fixed fixed fixing
break breaks broke broken breaking | review reviews reviewed reviewed reviewing
approve approves approved approved approving | employ employs employed employed employing
hire hires hired hired hiring | teach teaches taught taught teaching | study studies studied studied studying
learn learns learned learned learning | speak speaks spoke spoken speaking | visit visits visited visited visiting
acquire acquires acquired acquired acquiring | found founds founded founded founding
produce produces produced produced producing | generate generates generated generated generating
consume consumes consumed consumed consuming | monitor monitors monitored monitored monitoring
configure configures configured configured configuring | invoke invokes invoked invoked invoking
affect affects affected affected affecting | prevent prevents prevented prevented preventing
enable enables enabled enabled enabling | recommend recommends recommended recommended recommending
mention mentions mentioned mentioned mentioning | trust trusts trusted trusted trusting
play plays played played playing | watch watches watched watched watching | eat eats ate eaten eating
drive drives drove driven driving | follow follows followed followed following
join joins joined joined joining | attend attends attended attended attending
sell sells sold sold selling | buy buys bought bought buying | install installs installed installed installing
mentor mentors mentored mentored mentoring | author authors authored authored authoring
serve serves served served serving | process processes processed processed processing
parse parses parsed parsed parsing | validate validates validated validated validating
handle handles handled handled handling | emit emits emitted emitted emitting
publish publishes published published publishing | expose exposes exposed exposed exposing
send sends sent sent sending | receive receives received received receiving
replicate replicates replicated replicated replicating | schedule schedules scheduled scheduled scheduling
"""

# Verbs with a particle: the canonical name joins third person and particle (depends_on).
_PARTICLE_VERBS = """
depend depends depended depended depending on | rely relies relied relied relying on
run runs ran run running on | work works worked worked working at | work works worked worked working on
work works worked worked working with | work works worked worked working for | live lives lived lived living in
belong belongs belonged belonged belonging to | report reports reported reported reporting to
connect connects connected connected connecting to | talk talks talked talked talking to
send sends sent sent sending to | receive receives received received receiving from
point points pointed pointed pointing to | refer refers referred referred referring to
listen listens listened listened listening to | subscribe subscribes subscribed subscribed subscribing to
migrate migrates migrated migrated migrating to | move moves moved moved moving to
switch switches switched switched switching to | upgrade upgrades upgraded upgraded upgrading to
lead leads led led leading to | result results resulted resulted resulting in
consist consists consisted consisted consisting of | derive derives derived derived deriving from
inherit inherits inherited inherited inheriting from | communicate communicates communicated communicated communicating with
integrate integrates integrated integrated integrating with | interact interacts interacted interacted interacting with
collaborate collaborates collaborated collaborated collaborating with | conflict conflicts conflicted conflicted conflicting with
write writes wrote written writing to | read reads read read reading from | come comes came come coming from
specialize specializes specialized specialized specializing in | participate participates participated participated participating in
believe believes believed believed believing in | invest invests invested invested investing in
graduate graduates graduated graduated graduating from | care cares cared cared caring about
focus focuses focused focused focusing on | listen listens listened listened listening on
"""

# Intransitive verbs and verbs without a useful passive.
_PLAIN_VERBS = "become becomes became become becoming"

# Phrases that follow a form of "be" (or stand alone): surface -> canonical, optionally swapped.
_PHRASES: dict[str, tuple[str, bool]] = {
    "part of": ("part_of", False), "a part of": ("part_of", False), "member of": ("member_of", False),
    "a member of": ("member_of", False), "located in": ("located_in", False), "located at": ("located_in", False),
    "based in": ("based_in", False), "based on": ("based_on", False), "hosted on": ("hosted_on", False),
    "hosted in": ("hosted_on", False), "hosted at": ("hosted_on", False), "deployed to": ("deployed_to", False),
    "deployed on": ("deployed_to", False), "written in": ("written_in", False), "built with": ("built_with", False),
    "built on": ("built_on", False), "built in": ("written_in", False), "born in": ("born_in", False),
    "born on": ("born_on", False), "married to": ("married_to", False), "assigned to": ("assigned_to", False),
    "connected to": ("connects_to", False), "related to": ("related_to", False), "similar to": ("similar_to", False),
    "compatible with": ("compatible_with", False), "responsible for": ("responsible_for", False),
    "used for": ("used_for", False), "made of": ("made_of", False), "known as": ("known_as", False),
    "also known as": ("known_as", False), "aka": ("known_as", False), "short for": ("short_for", False),
    "in charge of": ("in_charge_of", False), "allergic to": ("allergic_to", False),
    "interested in": ("interested_in", False), "afraid of": ("afraid_of", False), "friends with": ("friends_with", False),
    "a friend of": ("friends_with", False), "engaged to": ("engaged_to", False), "a type of": ("is_a", False),
    "a kind of": ("is_a", False), "an instance of": ("is_a", False), "a subclass of": ("subclass_of", False),
    "a fork of": ("fork_of", False), "an alias for": ("alias_for", False), "alias for": ("alias_for", False),
    "the owner of": ("owns", False), "the author of": ("authors", False), "the creator of": ("creates", False),
    "the manager of": ("manages", False), "the maintainer of": ("maintains", False), "the ceo of": ("ceo_of", False),
    "the founder of": ("founds", False), "a subsidiary of": ("subsidiary_of", False),
    "the parent of": ("parent_of", False), "the child of": ("child_of", False), "scheduled for": ("scheduled_for", False),
    "a dependency of": ("depends_on", True), "dependency of": ("depends_on", True),
    "stored in": ("stores", True), "stored on": ("stores", True), "contained in": ("contains", True),
    "included in": ("includes", True), "replaced with": ("replaces", True), "superseded with": ("supersedes", True),
    "due to": ("causes", True),
}

_BE = {"is": "is", "are": "is", "am": "is", "was": "was", "were": "was", "be": "is", "been": "is", "being": "is"}
_HAVE = {"has": "has", "have": "has", "had": "has", "having": "has"}


def _build() -> dict[tuple[str, ...], Rel]:
    table: dict[tuple[str, ...], Rel] = {}

    def add(surface: str, rel: Rel) -> None:
        key = tuple(surface.split())
        old = table.get(key)
        if old is None:
            table[key] = rel
        elif old.canonical == rel.canonical and old.swap == rel.swap:
            table[key] = Rel(old.canonical, old.forms | rel.forms, old.swap)

    def verb_forms(spec: str) -> list[tuple[str, str]]:
        base, third, past, part, ger = spec.split()
        return [(base, "base"), (third, "third"), (past, "past"), (part, "part"), (ger, "ger")]

    for spec in _VERBS.replace("\n", "|").split("|"):
        if spec.strip():
            forms = verb_forms(spec)
            canonical = forms[1][0]
            for surface, form in forms:
                add(surface, Rel(canonical, frozenset({form})))
            add(f"{forms[3][0]} by", Rel(canonical, frozenset({"passive"}), swap=True))
    for spec in _PARTICLE_VERBS.replace("\n", "|").split("|"):
        if spec.strip():
            *words, particle = spec.split()
            forms = verb_forms(" ".join(words))
            for surface, form in forms:
                add(f"{surface} {particle}", Rel(f"{forms[1][0]}_{particle}", frozenset({form})))
    for surface, form in verb_forms(_PLAIN_VERBS):
        add(surface, Rel("becomes", frozenset({form})))
    for surface, (canonical, swap) in _PHRASES.items():
        add(surface, Rel(canonical, frozenset({"phrase"}), swap))
    for surface, canonical in _BE.items():
        add(surface, Rel(canonical, frozenset({"be"})))
    for surface, canonical in _HAVE.items():
        add(surface, Rel(canonical, frozenset({"have"})))
    return table


#: Every relation surface form (a tuple of lower-case words) and what it means.
SURFACES: dict[tuple[str, ...], Rel] = _build()
#: The first word of each surface with the longest surface starting with it: one set lookup per token.
RELATION_FIRST_WORDS: dict[str, int] = {}
for _key in SURFACES:
    RELATION_FIRST_WORDS[_key[0]] = max(RELATION_FIRST_WORDS.get(_key[0], 0), len(_key))
#: Every canonical relation name extraction can emit.
RELATIONS: frozenset[str] = frozenset({r.canonical for r in SURFACES.values()} | {"is_a", "was_a"})

#: Relations where a subject has one true object at a time (a second object contradicts the first).
FUNCTIONAL_RELATIONS: frozenset[str] = frozenset({
    "located_in", "based_in", "lives_in", "born_in", "born_on", "works_at", "reports_to", "married_to",
    "deployed_to", "hosted_on", "written_in", "runs_on", "ceo_of", "engaged_to",
})
#: Relations where an object has one true subject (emitted from passives: "X is owned by Y" → Y owns X).
INVERSE_FUNCTIONAL_RELATIONS: frozenset[str] = frozenset({"owns", "manages", "maintains", "creates", "founds"})

#: Auxiliary verbs by kind; the nearest one decides which verb forms may follow it.
AUX_KIND: dict[str, str] = {
    **{w: "be" for w in _BE}, **{w: "have" for w in _HAVE},
    **{w: "do" for w in ("do", "does", "did")},
    **{w: "modal" for w in ("will", "would", "can", "could", "should", "must", "may", "might", "shall")},
}
#: Negations: any of these in a verb group (or opening an entity) drops the triple.
NEGATIONS = frozenset({"not", "never", "neither", "nor", "hardly", "barely", "rarely", "seldom", "no"})
#: Adverbs that may sit inside a verb group without changing its meaning.
_ADVERBS = word_set("""also still now currently always usually often mostly mainly primarily really actually
    only just already sometimes typically generally definitely probably recently previously originally heavily
    frequently strongly even longer ever again today yesterday formerly exclusively mostly entirely""")
#: Words that can make up a verb group before the relation: "has not been", "is also", "will never".
GROUP_WORDS = frozenset(AUX_KIND) | NEGATIONS | _ADVERBS
#: Entities opening with one of these deny the fact ("has no car").
NEGATIVE_DETERMINERS = frozenset({"no", "none", "nothing", "nobody", "neither", "never", "not"})
#: Words that end a clause: the subject scan stops before them and the object scan at them.
CLAUSE_WORDS = word_set("""which who whom whose that because when whenever while whereas although though but so
    if unless since where until once whether then however therefore thus hence""")
#: Prepositions that end an object ("Jeff works at Acme in Berlin" → acme).
OBJECT_STOPS = word_set("""for in at on with from to during via by after before into onto through per as than
    about over under without within across against among between like except around near toward towards upon
    despite behind beyond""")
#: Words that end an object when they follow at least one word of it ("uses Emacs every day").
OBJECT_TAIL_STOPS = _ADVERBS | word_set("""every each daily weekly monthly yearly nightly tomorrow tonight ago
    last next this these lately anymore whenever""")
#: Words before a verb form that show it is really a noun ("the uses", "two calls", "of tests").
NOUN_MARKERS = word_set("""a an the this these those my our your his her their its some any many few several
    two three four five more most of no every each all""")
CONJUNCTIONS = frozenset({"and", "or", "&", "and/or", "plus", "nor"})
_DETERMINERS = word_set("""a an the this that these those my our your his her their its some any all every each
    several many few another other such both either""")
_PREPOSITIONS = OBJECT_STOPS | {"of"}
#: Words dropped from either end of an entity.
EDGE_STOP: frozenset[str] = (
    _DETERMINERS | _ADVERBS | CONJUNCTIONS | _PREPOSITIONS | NEGATIVE_DETERMINERS
    | {"etc", "e.g", "i.e", "too", "then", "but", "so", "very", "'s"}
)
#: A lone pronoun is no entity (first person becomes "user"; the rest are dropped).
PRONOUNS: dict[str, str] = {
    **{w: "" for w in word_set("""it he she they them him her we us you this that these those there here which who what
        something someone anything anyone everything everyone nothing nobody one ones itself himself herself
        themselves ourselves yourself yourselves its his hers theirs ours mine yours whom whose""")},
    "i": "user", "me": "user", "myself": "user",
}
#: Words that never make an entity on their own.
STOPWORDS: frozenset[str] = (
    EDGE_STOP | frozenset(PRONOUNS) | frozenset(AUX_KIND) | NEGATIONS | CLAUSE_WORDS
    | frozenset({"what", "why", "how", "where", "when", "s", "t", "please", "tell", "show", "find", "remember",
                 "recall", "about", "know", "does", "do", "did", "done"})
)


# ---------------------------------------------------------------------------------------------------
# Text → sentences → tokens → entity keys

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")
_PARAGRAPH_RE = re.compile(r"\n[ \t]*\n|\n(?=[ \t]*(?:[-*•>#]|\d{1,3}[.)])\s)")
_SENTENCE_END_RE = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
_ABBREVIATIONS = word_set("mr mrs ms dr prof inc ltd co corp jr sr st vs e.g i.e cf al approx dept fig no a.m p.m u.s u.k")
_TOKEN_RE = re.compile(r"[^\s,;()\[\]{}<>\"“”«»!?]+|[,;()\[\]{}<>!?]")
_ALNUM_RE = re.compile(r"[^\W_]")
PUNCT = frozenset(",;:()[]{}<>!?-")
_DASHES = frozenset({"-", "--", "—", "–", "/"})
_SUFFIXES = (("'re", "are"), ("'ve", "have"), ("'m", "am"), ("'ll", "will"), ("'d", "would"))
_NOT_STEMS = {"ca": "can", "wo": "will", "sha": "shall", "ai": "is"}


def clean(text: str) -> str:
    return _CONTROL_RE.sub(" ", text)


def sentences(text: str) -> Iterator[str]:
    """Split on paragraph breaks, list items and sentence ends, but not after abbreviations."""
    for paragraph in _PARAGRAPH_RE.split(text):
        start = 0
        for m in _SENTENCE_END_RE.finditer(paragraph):
            if m.group().startswith(".") and len(m.group()) == 1:
                j = m.start()
                while j > start and not paragraph[j - 1].isspace():
                    j -= 1
                word = paragraph[j:m.start()].lower()
                if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                    continue
            yield paragraph[start:m.end()]
            start = m.end()
        if start < len(paragraph):
            yield paragraph[start:]


def tokens(text: str, limit: int = MAX_SENTENCE_TOKENS) -> list[str]:
    """Lower-case words and clause punctuation; contractions expanded ("isn't" → is, not)."""
    out: list[str] = []
    for match in _TOKEN_RE.finditer(text):
        if len(out) >= limit:
            break
        raw = match.group()
        if raw in PUNCT:
            out.append(raw)
            continue
        word = raw.lower()
        if "’" in word or "‘" in word:
            word = word.replace("’", "'").replace("‘", "'")
        lead = len(word) - len(word.lstrip("'`*"))
        core = word[lead:].rstrip(".:'`*…")
        if not (core[:1].isalnum() or _ALNUM_RE.search(core)):
            if core in _DASHES or word in _DASHES:
                out.append("-")
            continue
        if len(core) > MAX_WORD_CHARS:
            out.append("-")  # a blob breaks the clause
            continue
        if "'" in core:
            out += _contraction(core)
        elif core == "cannot":
            out += ["can", "not"]
        else:
            out.append(core)
        if len(word) > lead + len(core) and ":" in word[lead + len(core):]:
            out.append(":")
    return out


def _contraction(word: str) -> list[str]:
    if word.endswith("n't") and len(word) > 3:
        stem = word[:-3]
        return [_NOT_STEMS.get(stem, stem), "not"]
    if word.endswith("'s") and word[:-2] in PRONOUNS:
        return [word[:-2], "is"]
    for suffix, full in _SUFFIXES:
        if word.endswith(suffix) and len(word) > len(suffix):
            return [word[: -len(suffix)], full]
    return [word]


def normalize_words(words: Sequence[str], *, tail: bool = False) -> str:
    """The entity key for a run of tokens; "" when nothing entity-like is left."""
    kept = [w for w in words if w not in PUNCT]
    lo, hi = 0, len(kept)
    while lo < hi and kept[lo] in EDGE_STOP:
        lo += 1
    while hi > lo and kept[hi - 1] in EDGE_STOP:
        hi -= 1
    if hi - lo > MAX_ENTITY_WORDS:
        # Subjects keep their last words (nearest the verb), objects their first.
        kept = kept[hi - MAX_ENTITY_WORDS:hi] if tail else kept[lo:lo + MAX_ENTITY_WORDS]
        lo, hi = 0, len(kept)
        while lo < hi and kept[lo] in EDGE_STOP:
            lo += 1
        while hi > lo and kept[hi - 1] in EDGE_STOP:
            hi -= 1
    kept = kept[lo:hi]
    if len(kept) == 1 and kept[0] in PRONOUNS:
        return PRONOUNS[kept[0]]
    if not kept or all(w in STOPWORDS for w in kept):
        return ""
    return " ".join(kept)
