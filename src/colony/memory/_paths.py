"""Multi-hop recall: paths from a question's entities through the memories that name them.

A multi-hop question names one thing and asks about another that no memory states together
with it: "who should I escalate to about the pricing API?" needs *the Willow team maintains the
pricing API* and then *Kofi MacLeod leads the Willow team*. The memories are linked only by what
they both name (the Willow team), so recall walks the mention graph: question entity → memories
that mention it → the other entities those memories name → the memories that mention *those*,
up to :data:`MAX_HOPS` memories deep. A path's score is the product of what it goes through:

- its seed: how specific the question's entity is (:func:`entity_weight`);
- each link: an entity few memories name says more than one many name — :func:`link_weight`,
  df^-1/4 — and an entity named by more than :func:`max_bridge_df` memories is a hub that links
  nothing; a memory naming several things spreads the walk over them (:func:`_distinct`);
- each memory it passes: one whose words state a relation (its *relation cues*, stored at
  ingest) is a firmer step than one that only names things (:data:`MENTION_FACTOR`), and events
  and procedures are weaker steps than facts (:data:`TYPE_FACTOR`); every step weighs at most 1,
  so a path only loses weight as it grows;
- its last memory: speaking of the relation the question asks about multiplies it by
  :data:`INTENT_BOOST`, and naming something new of the kind of answer asked for (a person for
  "who…", a place for "where…", a time for "when…": :mod:`colony.memory._kinds`) by
  :data:`KIND_BOOST` — one link reaches a site's hours, prices and owners as well as where it
  is, and only the kind tells them apart. A first hop alone is no path: keyword and semantic
  recall find the memories that name the question's entity, the graph finds where they lead;
- the way there: a question that speaks of a place or a time on its way to the answer ("who is
  the councillor for the *area around* X's workplace?") multiplies a path that passes through a
  new place or time by :data:`THROUGH_BOOST` (:func:`colony.memory._kinds.mentioned_kinds`) — the
  second hop conditioned on the question, not only the last; people are left out, since a person
  is guessed from capitalised words and the guess is too loose to steer a walk;
- siblings by shape: two memories naming one series' items besides the link ("route 47" and
  "route 37", each "based at" the same depot) say the same kind of thing about it;
- siblings: a memory that says the *same kind* of thing about the link as the memory before it
  ("Noor works on Willow" → "Kwame is a member of Willow"; one template filled in twice) is no
  step along the path (:data:`SIBLING_FACTOR`), and memories one link reaches that share a frame
  ("vehicle N moved to the depot") are a list whose items share one step's weight.

A memory's score is its best path's; paths of equal score are ordered by how much of the
question's remaining words (:mod:`colony.memory._question`) their memories hold. Every hop reads a bounded number of rows
(:data:`HOP1_PER_SEED`, :data:`HOP_ROWS`, :data:`CHECKED_PER_HOP`), so a recall costs about
the same at 1K and 100K memories.

Also here: what a memory's mentions are (:func:`mention_keys`; the store writes them), and
:func:`sibling_facts`, the sibling rule over typed triples alone. Every read goes through the
`MemoryStore` seam, so the walk is the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from colony.memory._entities import analyse
from colony.memory._intent import relation_family
from colony.memory._kinds import Kind, named_kinds
from colony.memory._question import Remainder, words_of
from colony.memory._relations import STOPWORDS
from colony.memory.store import MemoryStore
from colony.redaction import redact_text

__all__ = [
    "HOP1_PER_SEED",
    "HOP_ROWS",
    "INTENT_BOOST",
    "MAX_HOPS",
    "Mentions",
    "Path",
    "entity_weight",
    "find_paths",
    "link_weight",
    "max_bridge_df",
    "mention_keys",
    "sibling_facts",
    "skeleton",
]

MAX_HOPS = 3
HOP1_PER_SEED = 40  # memories read per question entity (the newest: a hub seed reads no more)
HOP_ROWS = 200  # mention rows read per further hop
EXPAND_PER_HOP = 16  # the best paths of one hop (after the first) that are followed to the next
CHECKED_PER_HOP = 48  # memories of one hop whose paths are finished (siblings checked, links read)
MAX_LINKS_PER_MEMORY = 24  # entities of one memory tried as links
INTENT_BOOST = 3.0  # the asked relation at a path's end outweighs a rarer link or a shorter path
#: A path's last memory names something new of the kind the question asks for (a person for
#: "who…", a place for "where…"): among the many memories one link reaches, the likely answer.
KIND_BOOST = 3.0
#: A path that passes through something of a kind the question speaks of besides the asked one
#: ("the elected member for the *place* where…"): :func:`colony.memory._kinds.mentioned_kinds`.
THROUGH_BOOST = 3.0
MENTION_FACTOR = 0.67  # a memory that names things without stating a relation between them
#: Events and procedures record what happened and how to do things; what things *are* (facts,
#: preferences, summaries) is what a chain of "X is Y's Z" runs through.
TYPE_FACTOR: dict[str, float] = {"event": 0.5, "procedure": 0.5}
SIBLING_FACTOR = 0.25  # a sibling still counts a little: the parse or the frame may be wrong
LINK_EXPONENT = 0.25  # link weight df^-1/4: 1 → 1, 2 → 0.84, 16 → 0.5, 256 → 0.25
SPREAD_EXPONENT = 0.5  # a memory naming n things passes n^-1/2 of its weight through each
SIBLING_SHARED = 2  # other entities two memories share when one template was filled in twice
SKELETON_CHARS = 400  # of a memory's text read for its frame
#: Punctuation that separates words; a full stop only ends one ("depot." but "db-07.eu-west").
_BLANKS = str.maketrans({c: " " for c in ",;:!?()[]{}<>\"`*“”‘«»|—–"})
LINKS_REPORTED = 8  # linking entities handed to ``on_links``
_DIGITS = re.compile(r"\d+")

Fact = tuple[int, str, str, str, float]  # (memory_id, subject, relation, object, weight)
Triple = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Mentions:
    """What a memory names (entity keys) and which relations its words speak of."""

    entities: list[str]
    relations: list[str]


@dataclass(frozen=True, slots=True)
class Path:
    """Memories from the one that names the question's entity to the last one reached."""

    memories: tuple[int, ...]
    via: tuple[str, ...]  # the entity linking each memory to the next: len(memories) - 1
    score: float
    on_intent: bool  # the last memory speaks of a relation the question asks about
    #: The score before the last memory's own factor: what a longer path builds on.
    base: float = 0.0
    #: What the kinds of things the question speaks of multiplied the path by: the last memory's
    #: :data:`KIND_BOOST` and the way's :data:`THROUGH_BOOST` (1 when neither applies).
    boost: float = 1.0


# ---------------------------------------------------------------------------------------------------
# Writing


def mention_keys(text: str) -> Mentions:
    """What to store for a memory, from its redacted text (no secret becomes an entity name)."""
    entities, relations = analyse(redact_text(text))
    return Mentions(entities, relations)


# ---------------------------------------------------------------------------------------------------
# Reading


def entity_weight(df: int, total: int) -> float:
    """How specific an entity is, in (0, 1]: 1 for a name one memory holds, falling with log df."""
    total = max(total, 2)
    return max(0.0, math.log1p(total / max(df, 1)) / math.log1p(total))


def link_weight(df: int) -> float:
    """How much a link through an entity that ``df`` memories name is worth: df^-1/4.

    Scale-free (the same at 1K and 100K memories) and gentle: a name three memories share links
    more than a phrase thirty share, but not so much more (as 1/df would) that a chance rare
    link — a ticket number two notes mention — beats the relation the question asks about.
    """
    return float(max(df, 1) ** -LINK_EXPONENT)


def max_bridge_df(total: int) -> int:
    """An entity named by more memories than this is a hub: following it leads everywhere."""
    return max(24, int(math.sqrt(max(total, 1)) * 1.5))


@dataclass(slots=True)
class _Memory:
    """What the walk reads of a memory it reaches, once."""

    entities: list[tuple[int, str, int]] = field(default_factory=list)  # (entity id, name, df)
    names: frozenset[str] = frozenset()
    triples: list[Triple] = field(default_factory=list)
    kind: float = 1.0  # TYPE_FACTOR of its memory type
    skeleton: frozenset[str] = frozenset()  # its words outside every name: the template it fills
    states_relation: bool = False  # its words speak of some relation (a fact, not just a mention)
    on_intent: bool = False  # ... of one the question asks about
    text: str = ""  # the start of its content, for what kinds of things it names (read when asked)
    kinds: dict[Kind, frozenset[str]] | None = None
    words: list[str] | None = None  # its words in order, for the question's remaining words (read when asked)

    def word_list(self) -> list[str]:
        if self.words is None:
            self.words = words_of(self.text)
        return self.words


class _Reader:
    """Batched reads of the memories a hop reaches, in two steps: relation cues for all of them
    (a row or two each), entities and triples only for the few whose paths are worth finishing."""

    def __init__(self, store: MemoryStore, intent: Collection[str], *, history: bool = False) -> None:
        self.store = store
        self.intent = frozenset(intent)
        self.history = history
        self.seen: dict[int, _Memory] = {}
        self.full: set[int] = set()

    def cues(self, memory_ids: Sequence[int]) -> list[int]:
        """Read what the memories speak of and their type; return those that may be recalled."""
        ids = [mid for mid in dict.fromkeys(memory_ids) if mid not in self.seen]
        if ids:
            for mid, memory_type, relation in self.store.relation_cues(ids, history=self.history):
                memory = self.seen.setdefault(mid, _Memory(kind=TYPE_FACTOR.get(str(memory_type), 1.0)))
                if relation is not None:
                    memory.states_relation = True
                    memory.on_intent = memory.on_intent or relation in self.intent
        return [mid for mid in memory_ids if mid in self.seen]

    def details(self, memory_ids: Sequence[int]) -> list[int]:
        """Read entities, triples and frames too; return the memories that may be recalled."""
        ids = [mid for mid in self.cues(memory_ids) if mid not in self.full]
        if not ids:
            return [mid for mid in memory_ids if mid in self.seen]
        self.full.update(ids)
        for mid, entity_id, name, df in self.store.entities_of(ids):
            self.seen[mid].entities.append((entity_id, name, df))
        for mid, content in self.store.contents(ids):
            memory = self.seen[mid]
            memory.names = frozenset(name for _, name, _ in memory.entities)
            memory.skeleton = skeleton(str(content), memory.names)
            memory.text = str(content)[:SKELETON_CHARS]
        for mid, subject, relation, obj in self.store.triples_of(ids):
            self.seen[mid].triples.append((subject, relation, obj))
        return [mid for mid in memory_ids if mid in self.seen]

    def factor(self, memory_id: int) -> float:
        """The weight of a path's last memory: the asked relation counts where the path ends."""
        memory = self.seen[memory_id]
        return memory.kind * INTENT_BOOST if memory.on_intent else self.step(memory_id)

    def answers(self, path: Path, memory_id: int, kind: Kind | None) -> float:
        """:data:`KIND_BOOST` when the memory names something of the asked ``kind`` that no memory
        of ``path`` (the first one names the question's entity) already names; else 1."""
        if kind is None:
            return 1.0
        memory = self.seen[memory_id]
        if memory.kinds is None:
            memory.kinds = named_kinds(memory.text)
        words = memory.kinds.get(kind)
        if not words:
            return 1.0
        before = {word for mid in path.memories for name in self.seen[mid].names for word in name.split()}
        return KIND_BOOST if words - before else 1.0

    def kinds_of(self, memory_id: int) -> dict[Kind, frozenset[str]]:
        memory = self.seen[memory_id]
        if memory.kinds is None:
            memory.kinds = named_kinds(memory.text)
        return memory.kinds

    def passes(self, path: Path, kinds: Collection[Kind], asked: Collection[str]) -> bool:
        """Whether a memory of ``path`` names something of one of ``kinds`` that the question
        (its words: ``asked``) does not name itself."""
        return any(self.kinds_of(mid).get(kind, frozenset()).difference(asked)
                   for mid in path.memories for kind in kinds)

    def covers(self, path: Path, question: Remainder) -> float:
        """The share of the question's remaining words that the memories of ``path`` hold."""
        if not question.weights:
            return 0.0
        return question.covers(word for mid in path.memories for word in self.seen[mid].word_list())

    def step(self, memory_id: int) -> float:
        """The weight of a memory a path goes *through*: a stated fact is a firmer step than a
        passing mention, whichever relation it states (the asked one is the destination's).
        Never above 1, so a path only loses weight as it grows: a long chain of facts must not
        outrank a short one that ends in the asked relation."""
        memory = self.seen[memory_id]
        return memory.kind * (1.0 if memory.states_relation else MENTION_FACTOR)


def _roles(triples: Sequence[Triple], entity: str) -> frozenset[tuple[str, str]]:
    """How a memory's facts touch ``entity`` (or a longer name holding it: "willow" is in "willow
    team"): (role, relation family) pairs."""
    own = frozenset(entity.split())
    out: set[tuple[str, str]] = set()
    for subject, relation, obj in triples:
        if subject == entity or own.issubset(subject.split()):
            out.add(("subject", relation_family(relation)))
        if obj == entity or own.issubset(obj.split()):
            out.add(("object", relation_family(relation)))
    return frozenset(out)


def skeleton(text: str, names: Collection[str]) -> frozenset[str]:
    """The content words of ``text`` that belong to none of its entity ``names``.

    What is left when the names are taken out is the sentence's frame: "Vehicle 6706 moved to
    the Millbrook depot to cover for breakdowns" and the same note about vehicle 3926 share it
    exactly. Two memories with one frame say the same kind of thing about different things.
    """
    inside = {word for name in names for word in name.split()}
    # str methods only: this runs for every memory a walk finishes.
    words = {w.rstrip(".'") for w in text[:SKELETON_CHARS].lower().translate(_BLANKS).split()}
    return frozenset(w for w in words - inside - STOPWORDS if len(w) > 1 and not w.isdigit())


def _siblings(before: _Memory, after: _Memory, link: str) -> bool:
    """Whether ``after`` says the same kind of thing about ``link`` as ``before`` does.

    Where the parser found typed facts touching the link in both, they decide: the same role
    with the same kind of relation is a sibling ("Noor works on Willow", "Kwame is a member of
    Willow"), another role is a step along the path ("A imports B", "B imports C"). Otherwise two
    memories that share :data:`SIBLING_SHARED` other entities besides the link, or half of what
    the shorter one names, are one template filled in twice ("Decision (May): freeze new
    features in X for reliability work"; "Ann uses Neovim with the shared LSP setup").
    """
    if before.triples and after.triples:
        first, second = _roles(before.triples, link), _roles(after.triples, link)
        if first and second:
            return bool(first & second)
    if before.skeleton and before.skeleton == after.skeleton:
        return True
    if _parallel_names(before.names, after.names, link):
        return True
    shared = before.names & after.names
    if len(shared) < 2:
        return False  # the link itself is one of them
    own = frozenset(link.split())

    def others(names: frozenset[str]) -> int:
        return sum(1 for name in names if own.isdisjoint(name.split()))

    common = others(shared)
    return common >= SIBLING_SHARED or (common > 0 and 2 * common >= min(others(before.names), others(after.names)))


def _shape(name: str) -> str:
    return _DIGITS.sub("#", name)


def _parallel_names(first: frozenset[str], second: frozenset[str], link: str) -> bool:
    """Whether two memories name different things of one series besides ``link``: the same name
    but for its number ("route 47", "route 37"), or but for its first word ("Lamplighter
    Recycling Centre", "Thornbury Recycling Centre") — one list's items, each said of the link."""
    own = frozenset(link.split())

    def series(names: frozenset[str]) -> set[str]:
        out = set()
        for name in names:
            words = name.split()
            if own.isdisjoint(words) and len(words) >= 2:
                shape = _shape(name)
                if shape != name:
                    out.add(shape)
                if len(words) >= 3:
                    out.add("* " + " ".join(words[1:]))
        return out

    return bool(series(first - second) & series(second - first))


def _distinct(names: Iterable[str]) -> int:
    """How many different things ``names`` name: names that share a word count once."""
    groups: list[set[str]] = []
    for name in names:
        words = set(name.split())
        for group in groups:
            if group & words:
                group |= words
                break
        else:
            groups.append(words)
    return max(len(groups), 1)


def find_paths(store: MemoryStore, seeds: Mapping[int, float], total: int, intent: Collection[str] = (), *,
               max_hops: int = MAX_HOPS, on_links: Callable[[list[str]], None] | None = None,
               history: bool = False, kind: Kind | None = None, question: Remainder | None = None,
               through: Collection[Kind] = ()) -> list[Path]:
    """The best path to each memory reachable from the ``seeds`` (entity id → weight), best first.

    ``intent``: the relations the question asks about; ``kind``: the kind of thing it asks for
    (:func:`colony.memory._kinds.answer_kind`). ``on_links`` hears the best entities
    linking the first hop onwards as soon as they are chosen (recall starts a keyword query for
    them while the walk goes on). Only active memories (not superseded, not expired) are walked,
    unless ``history``: a question about the past may need a superseded one.
    """
    if not seeds:
        return []
    question = question if question is not None else Remainder()
    asked = frozenset(question.asked)
    reader = _Reader(store, intent, history=history)
    hop1: dict[int, float] = {}
    for entity_id, weight in seeds.items():
        for mid in store.mentioning(entity_id, HOP1_PER_SEED):
            hop1[mid] = hop1.get(mid, 0.0) + weight
    best = {mid: Path((mid,), (), hop1[mid] * reader.factor(mid), reader.seen[mid].on_intent, hop1[mid])
            for mid in reader.details(list(hop1))}
    frontier = list(best.values())  # every first hop is followed: they tie until their links are known
    visited: set[int] = set(seeds)
    bridge_cap = max_bridge_df(total)
    for _ in range(max_hops - 1):
        # The most promising way out through each entity: the best path reaching it, times its link.
        links: dict[int, tuple[float, Path, str, int]] = {}
        for path in frontier:
            ways = [(entity_id, name, df) for entity_id, name, df in reader.seen[path.memories[-1]].entities
                    if entity_id not in visited and 2 <= df <= bridge_cap][:MAX_LINKS_PER_MEMORY]
            # A walk leaves a memory by one of the things it names: one of three says less than one
            # of one ("members: Ana, Lars, Chen" versus "lead — Marguerite"). Names sharing a word
            # ("kingfisher", "kingfisher squad") are one thing.
            spread = _distinct(name for _, name, _ in ways) ** -SPREAD_EXPONENT if ways else 1.0
            for entity_id, name, df in ways:
                weight = path.base * reader.step(path.memories[-1]) * link_weight(df) * spread
                if entity_id not in links or weight > links[entity_id][0]:
                    links[entity_id] = (weight, path, name, df)
        chosen: list[int] = []
        budget = HOP_ROWS
        for entity_id in sorted(links, key=lambda e: -links[e][0]):
            if links[entity_id][3] <= budget:
                chosen.append(entity_id)
                budget -= links[entity_id][3]
        if not chosen:
            break
        visited.update(chosen)
        if on_links is not None:
            on_links([links[e][2] for e in chosen[:LINKS_REPORTED]])
            on_links = None
        reached: dict[int, list[int]] = {}
        for entity_id, mid in store.mentions_of(chosen):
            if mid not in best:
                reached.setdefault(mid, []).append(entity_id)
        # Score every memory reached by its cues, then finish (siblings, onward links) the best few.
        rough = {mid: max(links[e][0] for e in reached[mid]) * reader.factor(mid) for mid in reader.cues(list(reached))}
        finished = reader.details(sorted(rough, key=lambda m: -rough[m])[:CHECKED_PER_HOP])
        # Memories one link reaches that share a frame are a list ("vehicle N moved to the depot"):
        # the list as a whole counts as one step, each of its items as a share of it.
        # Where the parser found facts, the link's role in them is part of the frame: "X belongs to
        # Quartz" (a list of members) is not "Quartz belongs to Data" (the one fact about Quartz).
        crowd: dict[tuple[int, frozenset[str], frozenset[tuple[str, str]]], int] = {}
        frames: dict[tuple[int, int], tuple[int, frozenset[str], frozenset[tuple[str, str]]]] = {}
        for mid in finished:
            memory = reader.seen[mid]
            if memory.skeleton:
                for entity_id in reached[mid]:
                    roles = _roles(memory.triples, links[entity_id][2]) if memory.triples else frozenset()
                    key = (entity_id, memory.skeleton, roles)
                    frames[mid, entity_id] = key
                    crowd[key] = crowd.get(key, 0) + 1
        new: dict[int, Path] = {}
        for mid in finished:
            for entity_id in reached[mid]:
                weight, path, name, _ = links[entity_id]
                boost = reader.answers(path, mid, kind)
                if through and reader.passes(path, through, asked):
                    boost *= THROUGH_BOOST
                factor = reader.factor(mid) * boost
                if (mid, entity_id) in frames:
                    weight /= crowd[frames[mid, entity_id]]
                if mid in new and weight * factor <= new[mid].score:
                    continue
                if _siblings(reader.seen[path.memories[-1]], reader.seen[mid], name):
                    weight *= SIBLING_FACTOR
                if mid not in new or weight * factor > new[mid].score:
                    new[mid] = Path((*path.memories, mid), (*path.via, name), weight * factor,
                                    reader.seen[mid].on_intent, weight, boost)
        best.update(new)
        frontier = sorted(new.values(), key=lambda p: -p.score)[:EXPAND_PER_HOP]
    # A lone first hop is no path: the keyword and semantic channels find what names the
    # question's entity; the graph's evidence is where that leads.
    # Paths of one score (one link reaching several memories alike) are told apart by how much of
    # the question's remaining words they hold, not by the order the store returned them in.
    return sorted((p for p in best.values() if len(p.memories) > 1),
                  key=lambda p: (-round(p.score, 9), -reader.covers(p, question), len(p.memories), p.memories))


def sibling_facts(facts: Sequence[Fact], seeds: Collection[str]) -> set[int]:
    """Indexes into ``facts`` of the facts that only name siblings of a path from ``seeds``.

    A fact meeting a path entity in the same role (subject or object) and with the same kind of
    relation (`relation_family`) as the fact that reached it is a sibling, and whatever it leads
    to is a sibling entity; any other fact continues the path. Facts that only touch sibling
    entities are siblings too.
    """
    path: set[str] = set(seeds)
    frontier: set[str] = set(seeds)
    roles: set[tuple[str, str, str]] = set()  # (entity, role it was reached in, relation family)
    siblings: set[str] = set()
    sibling_idx: set[int] = set()
    done: set[int] = set()
    for _ in range(MAX_HOPS):
        reached: set[str] = set()
        new_roles: set[tuple[str, str, str]] = set()
        for i, (_, subject, relation, obj, _w) in enumerate(facts):
            if i in done or (subject not in frontier and obj not in frontier):
                continue
            done.add(i)
            if subject in path and obj in path:
                continue  # between two steps already on the path
            family = relation_family(relation)
            near, near_role, far, far_role = (
                (subject, "subject", obj, "object") if subject in frontier else (obj, "object", subject, "subject")
            )
            if near not in seeds and (near, near_role, family) in roles:
                sibling_idx.add(i)
                siblings.add(far)
            else:
                reached.add(far)
                new_roles.add((far, far_role, family))
        roles |= new_roles
        frontier = reached - path
        path |= reached
        if not frontier:
            break
    siblings -= path
    for i, (_, subject, _r, obj, _w) in enumerate(facts):
        if i not in done and (subject in siblings or obj in siblings):
            sibling_idx.add(i)
    return sibling_idx
