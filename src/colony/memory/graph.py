"""The associative channel of memory: what memories name, the paths between them, and typed triples.

Recall (:func:`graph_recall`) walks the *mention graph*: every memory is linked to the entities it
names (:mod:`colony.memory._entities` finds them from generic signals — capitalised names,
identifiers, quoted terms, noun phrases — whatever the sentence shape), so two memories that name
the same thing are linked even when no parser understands either. A question's entities lead to
the memories that name them, those memories' other entities to further memories, up to three
memories deep (:mod:`colony.memory._paths` scores the paths), which is how "who do I escalate to
about the pricing API?" reaches "Kofi MacLeod leads the Willow team" through "the Willow team
maintains the pricing API". The walk is conditioned on the question beyond its entities: the
kind of answer it asks for, the kinds of things it passes through on the way
(:mod:`colony.memory._kinds`), and, between paths that score alike, its remaining words
(:mod:`colony.memory._question`).

Typed relations are an extra where a pattern matches. Writing a memory also parses it into
subject–relation–object triples ("Jeff uses Rust" → ``(jeff, uses, rust)``): they flag
contradicting facts at ingest and, at recall, tell a sibling fact from a step along a path.
Extraction is a small hand-written parser, not a model: it must run at write time on every memory,
in tens of microseconds, and never fail. Per sentence it finds *verb groups* (auxiliaries,
negations and adverbs followed by a relation phrase from :mod:`colony.memory._relations`), checks
that the relation's form fits its auxiliary (``is used by`` is a passive, ``is like`` is not the
verb *like*), then takes the subject from the words before the group and the objects from the words
after it, stopping at clause words and prepositions. It prefers dropping a fact to inventing one:
negated groups, agentless passives (``Rust is used in production``) and questions yield nothing.

Entities are normalised once, for both writing and querying: lower case, determiners and
adverbs dropped from the ends, at most six words, and identifiers (``INC-48213``, ``api.v2``,
``src/app.py``) kept whole.

:func:`personalized_pagerank` and :func:`bounded_neighbourhood` spread activation over a bounded
triple neighbourhood; recall ranked with them before the mention graph, which found only the
first hop of chains whose sentences the parser did not know. They remain for spreading activation
over typed facts (and their benchmark in ``bench/bench_graph.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING

from colony.memory._entities import extract_entities
from colony.memory._intent import relation_intent
from colony.memory._kinds import answer_kind, mentioned_kinds
from colony.memory._paths import Path, entity_weight, find_paths
from colony.memory._question import remainder
from colony.memory._relations import (
    AUX_KIND,
    CLAUSE_WORDS,
    CONJUNCTIONS,
    EDGE_STOP,
    FUNCTIONAL_RELATIONS,
    GROUP_WORDS,
    INVERSE_FUNCTIONAL_RELATIONS,
    MAX_ENTITY_WORDS,
    NEGATIONS,
    NEGATIVE_DETERMINERS,
    NOUN_MARKERS,
    OBJECT_STOPS,
    OBJECT_TAIL_STOPS,
    PUNCT,
    RELATION_FIRST_WORDS,
    RELATIONS,
    STOPWORDS,
    SURFACES,
    Rel,
    clean,
    normalize_words,
    sentences,
    tokens,
)
from colony.memory.store import MemoryStore, as_store

if TYPE_CHECKING:
    from colony.store import Database

__all__ = [
    "FUNCTIONAL_RELATIONS",
    "INVERSE_FUNCTIONAL_RELATIONS",
    "MAX_ENTITY_WORDS",
    "RELATIONS",
    "Edge",
    "GraphRecall",
    "Triple",
    "bounded_neighbourhood",
    "extract_entities",
    "extract_triples",
    "graph_recall",
    "normalize_entity",
    "personalized_pagerank",
    "query_entities",
]

Edge = tuple[str, str, float]

MAX_TEXT_CHARS = 64_000  # a memory's maximum; longer input is truncated, not parsed in full
MAX_TRIPLES = 1000
MAX_QUERY_CHARS = 2000
MAX_QUERY_ENTITIES = 64
_PAIRS_PER_MATCH = 16


@dataclass(frozen=True, slots=True)
class Triple:
    """One fact: entity keys as :func:`normalize_entity` makes them, a relation from :data:`RELATIONS`."""

    subject: str
    relation: str
    object: str


def normalize_entity(text: str) -> str:
    """Normalise free text to an entity key (idempotent); "" when it names nothing."""
    return normalize_words(tokens(clean(text[:MAX_QUERY_CHARS]), limit=64))


# ---------------------------------------------------------------------------------------------------
# Triple extraction

_ALLOWED_FORMS: dict[str | None, frozenset[str]] = {
    None: frozenset({"base", "third", "past", "ger", "passive", "phrase"}),
    "be": frozenset({"part", "ger", "passive", "phrase"}),
    "have": frozenset({"part"}),
    "do": frozenset({"base"}),
    "modal": frozenset({"base"}),
}
_BE_OR_HAVE = frozenset(w for w, kind in AUX_KIND.items() if kind in ("be", "have"))
_RELATIVE = frozenset({"which", "who", "whom", "that"})
_LIST_SEPARATORS = CONJUNCTIONS | {","}
_COORDINATORS = _LIST_SEPARATORS | {"but", "then"}


@dataclass(slots=True)
class _Match:
    start: int  # first token of the verb group: the subject ends before it
    obj: int  # first token of the object
    rel: Rel
    emit: bool  # False for negated groups and agentless passives: they only delimit clauses


def _rel_at(words: list[str], i: int) -> tuple[Rel, int] | None:
    longest = RELATION_FIRST_WORDS.get(words[i])
    if longest is None:
        return None
    for length in range(min(longest, len(words) - i), 0, -1):
        rel = SURFACES.get(tuple(words[i:i + length]))
        if rel is not None:
            return rel, length
    return None


def _find_matches(words: list[str]) -> list[_Match]:
    """The verb groups of a sentence, left to right, longest relation phrase first."""
    matches: list[_Match] = []
    n, i = len(words), 0
    while i < n:
        if words[i] in GROUP_WORDS:
            k = i
            while k < n and words[k] in GROUP_WORDS and k - i < 6:
                k += 1
            kind = next((AUX_KIND[w] for w in reversed(words[i:k]) if w in AUX_KIND), None)
            negated = any(w in NEGATIONS for w in words[i:k])
            hit = _rel_at(words, k) if k < n else None
            if hit is not None and hit[0].forms & _ALLOWED_FORMS[kind]:
                rel, length = hit
                agentless = kind == "be" and not (rel.forms & {"ger", "passive", "phrase"})
                matches.append(_Match(i, k + length, rel, not (negated or agentless)))
                i = k + length
                continue
            # Otherwise the group's own "is"/"has" is the relation ("is not fast", "has a dog").
            own = next((w for w in reversed(words[i:k]) if w in _BE_OR_HAVE), None)
            if own is not None:
                matches.append(_Match(i, k, SURFACES[(own,)], not negated))
            i = k + (1 if own is not None and hit is not None else 0)
            continue
        hit = _rel_at(words, i)
        if (
            hit is not None
            and hit[0].forms & _ALLOWED_FORMS[None]
            and (i == 0 or (words[i - 1] not in NOUN_MARKERS and not words[i - 1].endswith("'s")))
            and not (hit[1] == 1 and i + 1 < n and words[i + 1] == "of")  # "a bad deploy of api.v2"
        ):
            matches.append(_Match(i, i + hit[1], hit[0], True))
            i += hit[1]
            continue
        i += 1
    return matches


def _object_span(words: list[str], matches: list[_Match], idx: int) -> tuple[int, int]:
    """Token range of a match's object: from the verb group to the first clause break or preposition."""
    m = matches[idx]
    has_next = idx + 1 < len(matches)
    hi = matches[idx + 1].start if has_next else len(words)
    j = m.obj
    named = False  # has the object named something yet? ("the last version" vs "Emacs last week")
    while j < hi:
        w = words[j]
        if (w in PUNCT and w != ",") or w in OBJECT_STOPS or w in AUX_KIND:
            break
        if named and w in OBJECT_TAIL_STOPS:
            break
        named = named or w not in EDGE_STOP
        # "that" opening an object is a determiner unless a clause with its own verb follows.
        if w in CLAUSE_WORDS and not (w == "that" and j == m.obj and not (has_next and hi - j <= 4)):
            break
        j += 1
    if j == hi and has_next:
        # The words up to the next verb group end with its subject: "uses Rust and Ann likes Go".
        for cut in range(j - 1, m.obj - 1, -1):
            if words[cut] in _LIST_SEPARATORS:
                return m.obj, cut
    return m.obj, j


def _subject_span(words: list[str], matches: list[_Match], idx: int) -> tuple[int, int]:
    """Token range of a match's subject: back from the verb group to a clause break."""
    lo = matches[idx - 1].obj if idx > 0 else 0
    end = matches[idx].start
    for _ in range(2):  # a second pass steps over a relative pronoun: "Rust, which has Tokio"
        j = end - 1
        while j >= lo:
            w = words[j]
            if w in PUNCT or w in CLAUSE_WORDS or w in AUX_KIND or w == "to":
                break
            j -= 1
        begin = j + 1
        if begin < end or j < lo or words[j] not in _RELATIVE:
            break
        end = j - 1 if j - 1 >= lo and words[j - 1] == "," else j
    if j < lo and idx > 0:
        # The span runs back into the previous object: keep what follows its last list word.
        for cut in range(end - 1, begin - 1, -1):
            if words[cut] in _LIST_SEPARATORS or words[cut] in OBJECT_STOPS:
                return cut + 1, end
    return begin, end


def _entities(words: list[str], *, separators: frozenset[str], tail: bool) -> list[str]:
    """Split a span into list items ("Rust, Go and Python") and normalise each; denied items drop."""
    out: list[str] = []
    chunk: list[str] = []
    for w in [*words, ","]:
        if w in separators or w == ",":
            if chunk and chunk[0] not in NEGATIVE_DETERMINERS:
                key = normalize_words(chunk, tail=tail)
                if key and key not in out:
                    out.append(key)
            chunk = []
        else:
            chunk.append(w)
    return out


def _sentence_triples(words: list[str]) -> Iterator[Triple]:
    matches = _find_matches(words)
    for _ in range(4):  # a verb form with no object was a noun ("unit tests need mocks"): drop, redo
        empty = {k for k in range(len(matches)) if _object_span(words, matches, k)[1] == matches[k].obj}
        if not empty:
            break
        matches = [m for k, m in enumerate(matches) if k not in empty]
    previous: list[str] = []
    for idx, m in enumerate(matches):
        s_begin, s_end = _subject_span(words, matches, idx)
        subjects = _entities(words[s_begin:s_end], separators=CONJUNCTIONS - {"or"}, tail=True)
        if not subjects and s_begin == s_end and s_end > 0 and words[s_end - 1] in _COORDINATORS:
            subjects = previous  # "Jeff dislikes meetings and prefers async updates"
        previous = subjects
        if not m.emit:
            continue
        o_begin, o_end = _object_span(words, matches, idx)
        objects = _entities(words[o_begin:o_end], separators=_LIST_SEPARATORS, tail=False)
        relation = m.rel.canonical
        if relation in ("is", "was") and o_begin < o_end:
            first = words[o_begin]
            if first in ("a", "an"):
                relation += "_a"
            elif (first.endswith("ed") and len(first) > 4) or (first.endswith("ing") and len(first) > 5):
                continue  # "was delayed", "is failing": a passive or progressive of a verb we don't know
        pairs = 0
        for s in subjects:
            for o in objects:
                if s != o and pairs < _PAIRS_PER_MATCH:
                    pairs += 1
                    yield Triple(o, relation, s) if m.rel.swap else Triple(s, relation, o)


def extract_triples(text: str) -> list[Triple]:
    """Subject–relation–object facts stated in ``text``, in order, without duplicates.

    Never raises; input beyond :data:`MAX_TEXT_CHARS` is ignored. Questions, negated statements
    and agentless passives yield nothing.
    """
    if not isinstance(text, str) or not text:
        return []
    seen: dict[Triple, None] = {}
    for sentence in sentences(clean(text[:MAX_TEXT_CHARS])):
        if sentence.rstrip().rstrip("\"'”’)]").endswith("?"):
            continue
        words = tokens(sentence)
        while words and words[-1] in PUNCT:
            words.pop()
        for triple in _sentence_triples(words):
            seen.setdefault(triple, None)
            if len(seen) >= MAX_TRIPLES:
                return list(seen)
    return list(seen)


# ---------------------------------------------------------------------------------------------------
# Query entities

_QUOTED_RE = re.compile(r"[\"“”«»]([^\"“”«»\n]{1,200})[\"“”«»]|`([^`\n]{1,200})`|(?<!\w)'([^'\n]{1,200})'(?!\w)")
_CONNECTORS = frozenset({"of", "&", "the", "de", "von", "van", "du", "la", "le"})
#: Single-word relation forms: an entity on their own ("test", "store") but never the edge of a longer one.
_VERB_WORDS = frozenset(key[0] for key in SURFACES if len(key) == 1)


def query_entities(text: str) -> list[str]:
    """Candidate entity keys in a query, longest first; the caller keeps those the graph knows.

    Candidates are quoted strings and n-grams of up to four words that neither start nor end with
    a stop word (inner words may be connectors: "bank of america"), normalised like extracted
    entities. Identifiers are single tokens, so they come out whole.
    """
    if not isinstance(text, str) or not text:
        return []
    text = clean(text[:MAX_QUERY_CHARS])
    found: dict[str, tuple[int, int]] = {}

    def add(key: str, position: int) -> None:
        if key and key not in found:
            found[key] = (-len(key.split()), position)

    for m in _QUOTED_RE.finditer(text):
        add(normalize_entity(next(g for g in m.groups() if g is not None)), -1)
    words = tokens(text, limit=400)
    run_start = 0
    for end in [*[k for k, w in enumerate(words) if w in PUNCT], len(words)]:
        run = words[run_start:end]
        for p, first in enumerate(run):
            if first in STOPWORDS:
                continue
            if first.endswith("'s") and len(first) > 2:
                add(normalize_entity(first[:-2]), run_start + p)
            for size in range(1, 5):
                window = run[p:p + size]
                if len(window) < size or any(w in STOPWORDS and w not in _CONNECTORS for w in window[1:-1]):
                    break
                if window[-1] not in STOPWORDS and (size == 1 or not _VERB_WORDS & {first, window[-1]}):
                    add(normalize_words(window), run_start + p)
        run_start = end + 1
    return sorted(found, key=found.__getitem__)[:MAX_QUERY_ENTITIES]


# ---------------------------------------------------------------------------------------------------
# Personalized PageRank


def personalized_pagerank(
    edges: Sequence[Edge], seeds: Sequence[str], *, alpha: float = 0.85, tol: float = 1e-6, max_iter: int = 100
) -> dict[str, float]:
    """Spreading activation from ``seeds``: the stationary distribution of a walk that restarts there.

    Edges are undirected (activation flows both ways along a fact) and parallel edges add up.
    Each step is one sparse matrix–vector product; a node with no usable edge sends its mass back to
    the seeds. Returns the nodes reached, with scores summing to 1; ``{}`` if no seed is in the graph.
    """
    import numpy as np
    import scipy.sparse as sp  # type: ignore[import-untyped,unused-ignore]

    if not edges:
        return {}
    subjects = list(map(itemgetter(0), edges))  # 10x faster than zip(*edges) on 20K edges
    objects = list(map(itemgetter(1), edges))
    raw_weights = list(map(itemgetter(2), edges))
    names = list(dict.fromkeys(subjects + objects))
    index = {name: i for i, name in enumerate(names)}
    present = sorted({index[s] for s in seeds if s in index})
    if not present:
        return {}
    rows = np.fromiter(map(index.__getitem__, subjects), dtype=np.int64, count=len(subjects))
    cols = np.fromiter(map(index.__getitem__, objects), dtype=np.int64, count=len(objects))
    weights = np.asarray(raw_weights, dtype=np.float64)
    usable = (rows != cols) & np.isfinite(weights) & (weights > 0)  # self-loops and bad weights spread nothing
    rows, cols, weights = rows[usable], cols[usable], weights[usable]
    n = len(index)
    adjacency = sp.csr_array(
        (np.concatenate([weights, weights]), (np.concatenate([rows, cols]), np.concatenate([cols, rows]))),
        shape=(n, n),
    )
    degree = np.asarray(adjacency.sum(axis=0), dtype=np.float64).ravel()
    dangling = degree == 0
    inverse = np.divide(1.0, degree, out=np.zeros(n), where=~dangling)
    transition = (adjacency @ sp.diags_array(inverse)).tocsr()  # column j scaled by 1/degree(j)
    restart = np.zeros(n)
    restart[present] = 1.0 / len(present)
    scores = restart.copy()
    for _ in range(max_iter):
        step = alpha * (transition @ scores) + (alpha * scores[dangling].sum() + 1.0 - alpha) * restart
        step /= step.sum()
        delta = float(np.abs(step - scores).sum())
        scores = step
        if delta < tol:
            break
    reached = np.flatnonzero(scores > 0).tolist()
    return dict(zip(map(names.__getitem__, reached), scores[reached].tolist(), strict=True))


def bounded_neighbourhood(
    seeds: Sequence[str],
    neighbours: Callable[[list[str]], list[Edge]],
    max_hops: int = 2,
    max_edges: int = 5000,
    *,
    batch: int = 500,
) -> list[Edge]:
    """The edges within ``max_hops`` of ``seeds``, at most ``max_edges``, fetched a frontier at a time.

    ``neighbours`` answers "the edges touching these entities" (one SQL query in the store); the
    frontier is passed in batches so each query stays small and the walk can stop early. An edge
    reappears when the next hop asks about its far end: it is kept only the first time.
    """
    if max_edges <= 0:
        return []
    frontier = list(dict.fromkeys(seeds))
    visited = set(frontier)
    expanded: set[str] = set()
    edges: list[Edge] = []
    for _ in range(max_hops):
        following: list[str] = []
        for start in range(0, len(frontier), batch):
            chunk = frontier[start:start + batch]
            for subject, obj, weight in neighbours(chunk):
                if subject in expanded or obj in expanded:
                    continue
                edges.append((subject, obj, weight))
                if len(edges) >= max_edges:
                    return edges
                for node in (subject, obj):
                    if node not in visited:
                        visited.add(node)
                        following.append(node)
            expanded.update(chunk)
        if not following:
            break
        frontier = following
    return edges


# ---------------------------------------------------------------------------------------------------
# The graph channel of recall

#: Entities of the best paths handed to the keyword channel (their memories, by BM25).
EXPANDED_ENTITIES = 8
#: A seed that is one lower-case word ("part", "time") names a topic more often than a thing.
COMMON_SEED_FACTOR = 0.5


@dataclass(slots=True)
class GraphRecall:
    """What the graph channel found: ranked memories, the entities one hop out, and confidence."""

    ranked: list[tuple[int, float]] = field(default_factory=list)
    #: Entities that link the question's entities to further memories (for keyword expansion).
    expanded: list[str] = field(default_factory=list)
    #: The best path ends in a memory that speaks of the relation the question asks about.
    confident: bool = False
    paths: list[Path] = field(default_factory=list)


def _seeds(store: MemoryStore, query: str) -> dict[str, tuple[int, int]]:
    """The question's entities the store knows: name → (entity id, df), sub-phrases of a longer
    known one dropped ("pricing api" makes "api" no seed of its own)."""
    candidates = list(dict.fromkeys([*query_entities(query), *extract_entities(query)]))[:MAX_QUERY_ENTITIES * 2]
    if not candidates:
        return {}
    known = {str(name): (int(eid), int(df)) for eid, name, df in store.entities_named(candidates)}
    kept: dict[str, tuple[int, int]] = {}
    for name in sorted(known, key=lambda n: (-len(n.split()), n)):
        padded = f" {name} "
        if not any(padded in f" {longer} " for longer in kept):
            kept[name] = known[name]
    return kept


def _common_word(name: str, query: str) -> bool:
    """A lower-case word or phrase of the question, neither a name nor an identifier."""
    return (name.replace(" ", "").isalpha()
            and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", query) is not None)


def graph_recall(db: MemoryStore | Database, query: str, *, depth: int = 50, max_hops: int = 3,
                 on_expanded: Callable[[list[str]], None] | None = None, history: bool = False) -> GraphRecall:
    """Rank memories by the paths that lead to them from the question's entities.

    The paths run through what memories *name* (:func:`extract_entities`, stored as mentions),
    so they link memories whatever their phrasing. The relation the question asks about
    (:func:`relation_intent`) favours paths whose memories speak of it (their relation cues),
    the kind of answer it asks for (:func:`colony.memory._kinds.answer_kind`) paths whose last
    memory names something new of that kind, and typed triples, where the parser found any, tell a sibling fact from a step along the
    path (see :mod:`colony.memory._paths`). Each path's memories are listed together, the last
    reached first: a 2- or 3-hop answer arrives with the memories that lead to it.
    ``on_expanded`` hears the entities linking the first hop onwards as soon as they are known.
    ``history``: walk superseded memories too (a question about the past). ``db`` is a memory
    store, or a node's SQLite database.
    """
    store = as_store(db)
    seeds = _seeds(store, query)
    if not seeds:
        return GraphRecall()
    total = max(store.memory_count(), 1)
    seed_weights = {
        eid: entity_weight(df, total) * (COMMON_SEED_FACTOR if _common_word(name, query) else 1.0)
        for name, (eid, df) in seeds.items()
    }
    intent = relation_intent(query)
    expanded: list[str] = []

    def links(names: list[str]) -> None:
        expanded.extend(names[:EXPANDED_ENTITIES])
        if on_expanded is not None:
            on_expanded(list(expanded))

    kind = answer_kind(query)
    paths = find_paths(store, seed_weights, total, intent, max_hops=max_hops, on_links=links, history=history,
                       kind=kind, through=mentioned_kinds(query) & {"place", "time"} - {kind},
                       question=remainder(store, query, [n for n in seeds if not _common_word(n, query)], total))
    ranked: list[tuple[int, float]] = []
    placed: set[int] = set()
    for path in paths:
        for mid in reversed(path.memories):  # the answer first, then the memories leading to it
            if mid not in placed:
                placed.add(mid)
                ranked.append((mid, round(path.score, 6)))
        if len(ranked) >= depth:
            break
    # Confidence is the relation cues' alone: the kinds of the answer and of the way there order
    # the candidates, but a guess from capitalised words must not make the channel sure of itself.
    unboosted = min(paths, key=lambda p: (-p.score / p.boost, len(p.memories), p.memories)) if paths else None
    confident = unboosted is not None and unboosted.on_intent and bool(intent)
    return GraphRecall(ranked[:depth], expanded, confident, paths)
