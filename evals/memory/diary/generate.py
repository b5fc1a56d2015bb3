"""Generate the third, held-out memory eval corpus: a personal assistant's memory of one user's life.

Run: ``python -m evals.memory.generate --generator diary --seed 17 --memories 2000 --questions 210 --out evals/memory/data_diary``

Written while recall's fusion was being re-tuned on the first two generators (Kestrel Labs and
Brackenford), so that no tuning ever sees it: validate on it, never tune on it. Nothing is shared
with them but the question types' definitions and the generic machinery (`_corpus`, `_updates`,
`_text`). The memories look like what LongMemEval- or Mem0-style assistants keep about a user:
third-person notes distilled from chats ("User's sister is Ngozi."), terse fragments
("Ngozi's employer: Tessera Labs"), lower-case casual notes, quoted speech, long summaries of a
conversation, lists, dates written many ways. The world is a private life: family, friends,
pets, clinicians, clubs, employers and cities; plus subscriptions, purchases, recipes, trips and
everyday chatter. Names come from many cultures; pets and brands are often lower-case.
Identifiers are order numbers, flight codes, booking references, licence plates, parcel tracking
numbers and Wi-Fi network names, each with near-duplicates one edit away. Questions are what a
user asks their assistant ("remind me, …", "hey, …", "did I ever tell you …"), some typed all
lower-case.

Question types, `n_questions` split evenly over all seven:

- ``multi_hop``: 2 and 3 hops (half each). The question names an entity (a role such as "my
  sister", a person, a pet, a club or a clinician); the first memory links it to a second entity,
  the next to a third, and so on. Every memory on the path is relevant; every memory after the
  first shares no content word with the question, nor any token a keyword index would match.
- ``paraphrase``: hand-written facts about the user asked in other words (no shared content word,
  no shared searchable token: `_words.keyword_free`).
- ``identifier``: exact lookups of an identifier, with near-duplicates stored.
- ``plain``: questions that share keywords with their memory.
- ``knowledge_update``, ``temporal``, ``abstention``: see `evals.memory._updates`.

Everything derives from one ``random.Random(seed)``, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from evals.memory._corpus import HISTORY_TYPES, Corpus, memory_row, split_evenly
from evals.memory._text import shared_content_words
from evals.memory._updates import make_abstentions, make_updates
from evals.memory.diary._families import (
    EDGE_QUESTION_RELATIONS,
    IDENT_KINDS,
    PLAIN_FAMILIES,
    UPDATE_BRANDS,
    Fact,
    chatter,
    edge_question,
    ident_memory,
    ident_question,
    near_duplicate,
    new_ident,
)
from evals.memory.diary._history import ABSTAINERS, UPDATE_FAMILIES
from evals.memory.diary._paraphrases import PARAPHRASES
from evals.memory.diary._vocab import CLASSES, VISITS
from evals.memory.diary._words import keyword_free
from evals.memory.diary._world import (
    CHAINS,
    Edge,
    World,
    build_world,
    chain_question,
    chain_starts,
    render_edges,
)

__all__ = ["DEFAULT_DATA", "GENERATOR", "GENERATOR_VERSION", "QUESTION_TYPES", "generate"]

GENERATOR = "evals.memory.diary"
GENERATOR_VERSION = "1"
QUESTION_TYPES = ("multi_hop", "paraphrase", "identifier", "plain", *HISTORY_TYPES)
DEFAULT_DATA = Path(__file__).resolve().parent.parent / "data_diary"

#: How the user opens a question; the empty lead is the most common.
_LEADS = ("", "", "", "", "", "", "hey, ", "hey — ", "remind me, ", "quick q: ", "sorry, forgot: ", "ok so ", "um, ")
_LOWER_AFTER_LEAD = frozenset({"What", "What's", "Which", "Where", "Where's", "When", "When's", "Who", "Who's", "Whose",
                               "How", "Did", "Do", "Does", "Is", "Am", "Can", "Any", "If", "In", "Remind", "Whoever",
                               "Should", "Would", "Could", "Have", "Why", "Are", "Was", "Will"})
#: Share of questions typed all lower-case without the question mark (never identifier lookups).
_CASUAL = 0.12
_FILL_WEIGHTS = {"birthday": 3, "dislike": 2, "allergy": 1, "gift": 2, "subscription": 1, "purchase": 2, "recipe": 2,
                 "appointment": 1, "trip": 2, "pet_food": 1, "loan": 1, "preference": 1, "order": 2, "flight": 2,
                 "booking": 2, "plate": 1, "tracking": 2, "wifi": 1, "chat": 18}


def _dress(rng: random.Random, question: str, *, casual: bool = True) -> str:
    """The question as the user types it: maybe a lead ("hey, which ..."), maybe all lower-case."""
    lead = rng.choice(_LEADS)
    if lead and not (lead.startswith("remind") and question.startswith("Remind")):
        first = question.split(" ", 1)[0]
        question = lead + (question[0].lower() + question[1:] if first in _LOWER_AFTER_LEAD else question)
    if casual and rng.random() < _CASUAL:
        question = question.lower().rstrip("?")
    return question


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.memories: list[dict[str, Any]] = []
        self.questions: list[dict[str, Any]] = []
        self.texts: set[str] = set()
        self.facts: set[tuple[str, ...]] = set()
        self.identifiers: set[str] = set()
        self.asked: set[str] = set()

    def ident(self, kind: str, like: str | None = None) -> str:
        for _ in range(1000):
            value = new_ident(self.rng, kind) if like is None else near_duplicate(self.rng, kind, like)
            if value not in self.identifiers:
                self.identifiers.add(value)
                return value
        raise RuntimeError(f"ran out of {kind} identifiers")

    def add(self, text: str, memory_type: str, unique: tuple[str, ...] | None = None,
            supersedes: str | None = None) -> str | None:
        """Store a memory unless its text or uniqueness key is taken; return its key."""
        if text in self.texts or (unique is not None and unique in self.facts):
            return None
        self.texts.add(text)
        if unique is not None:
            self.facts.add(unique)
        key = f"d{len(self.memories) + 1:05d}"
        row = memory_row(self.rng, key, text, memory_type, verified_weights=(5, 4, 1), confidence=(0.45, 0.97))
        if supersedes is not None:
            row["supersedes"] = supersedes
        self.memories.append(row)
        return key

    def ask(self, qtype: str, question: str, relevant: list[str], **detail: Any) -> bool:
        if question in self.asked:
            return False
        self.asked.add(question)
        self.questions.append({"type": qtype, "question": question, "relevant": relevant, **detail})
        return True

    def text_of(self, key: str) -> str:
        return str(self.memories[int(key[1:]) - 1]["content"])


def _multi_hop(b: _Builder, w: World, edge_keys: dict[Edge, str], n: int) -> None:
    by_hops = {h: [f for f, c in CHAINS.items() if c.hops == h] for h in (2, 3)}
    want = {2: n - n // 2, 3: n // 2}
    for hops, families in by_hops.items():
        pools = {f: chain_starts(w, f) for f in families}
        for pool in pools.values():
            b.rng.shuffle(pool)
        used: Counter[tuple[str, ...]] = Counter()
        made = 0
        while made < want[hops] and any(pools.values()):
            for family in families:
                if made >= want[hops] or not pools[family]:
                    continue
                entity, path = pools[family].pop()
                keys = list(dict.fromkeys(edge_keys[e] for e in path))
                if len(keys) != hops or used[tuple(keys[1:])] >= 2:  # one answer serves at most two questions
                    continue
                question = chain_question(b.rng, family, entity, [b.text_of(k) for k in keys[1:]],
                                          lambda q: _dress(b.rng, q))
                if question and b.ask("multi_hop", question, keys, hops=hops):
                    used[tuple(keys[1:])] += 1
                    made += 1
        if made < want[hops]:
            raise ValueError(f"only {made} {hops}-hop questions fit this world; use more memories or fewer questions")


def _identifier(b: _Builder, w: World, n: int) -> None:
    for i in range(n):
        kind = IDENT_KINDS[i % len(IDENT_KINDS)]
        target = b.ident(kind)
        key = None
        while key is None:
            fact = ident_memory(b.rng, w, kind, target)
            key = b.add(fact.text, fact.memory_type, fact.unique)
        for _ in range(b.rng.randint(3, 5)):
            dup = b.ident(kind, like=target)
            fact = ident_memory(b.rng, w, kind, dup)
            b.add(fact.text, fact.memory_type, fact.unique)
        while not b.ask("identifier", _dress(b.rng, ident_question(b.rng, kind, target), casual=False), [key]):
            pass


def _plain(b: _Builder, w: World, edge_keys: dict[Edge, str], n: int) -> None:
    families = [*PLAIN_FAMILIES, "edge", "edge"]
    edges = sorted(e for e in edge_keys if e[0] in EDGE_QUESTION_RELATIONS)
    made = attempts = 0
    while made < n:
        attempts += 1
        if attempts > 200 * n:
            raise ValueError("could not find enough distinct plain questions; use more memories")
        family = families[attempts % len(families)]
        question: str | None
        if family == "edge":
            edge = b.rng.choice(edges)
            question = edge_question(b.rng, edge[0], edge[1])
            key: str | None = edge_keys[edge]
            if ("asked", *edge) in b.facts:
                continue
            b.facts.add(("asked", *edge))
        else:
            fact = PLAIN_FAMILIES[family](b.rng, w)
            question = fact.question
            key = b.add(fact.text, fact.memory_type, fact.unique)
        if key is None or question is None or len(shared_content_words(question, b.text_of(key))) < 2:
            continue
        if b.ask("plain", _dress(b.rng, question), [key]):
            made += 1


def _paraphrase(b: _Builder, n: int, room: int) -> None:
    if n > len(PARAPHRASES):
        raise ValueError(f"at most {len(PARAPHRASES)} paraphrase questions (one per hand-written pair)")
    pairs = PARAPHRASES[:]
    b.rng.shuffle(pairs)
    for i, (name, memories, questions, memory_type) in enumerate(pairs):
        if i >= n and room <= 0:
            break
        text = b.rng.choice(memories)
        key = b.add(text, memory_type, ("paraphrase", name))
        assert key is not None
        if i < n:
            plain = b.rng.choice(questions)
            dressed = next((q for q in (_dress(b.rng, plain) for _ in range(5)) if keyword_free(q, text)), plain)
            b.ask("paraphrase", dressed, [key])
        else:
            room -= 1  # an unasked pair stays as a distractor


def _history(b: _Builder, w: World, n_update: int, n_temporal: int) -> None:
    def add(text: str, memory_type: str, supersedes: str | None) -> str:
        key = b.add(text, memory_type, None, supersedes)
        if key is None:
            raise RuntimeError(f"a fact history repeats an existing memory: {text!r}")
        return key

    fillers = {"acquaintance": list(w.acquaintances), "brand": list(UPDATE_BRANDS), "visit": list(VISITS),
               "class": list(CLASSES)}
    for q in make_updates(b.rng, UPDATE_FAMILIES, fillers, add, n_update=n_update, n_temporal=n_temporal,
                          n_unasked=(n_update + n_temporal) // 4):
        detail = {"superseded": q["superseded"]} if "superseded" in q else {}
        b.ask(q["type"], _dress(b.rng, q["question"]), q["relevant"], **detail)


def _fill(b: _Builder, w: World, n_memories: int) -> None:
    kinds = list(_FILL_WEIGHTS)
    weights = [_FILL_WEIGHTS[k] for k in kinds]
    misses = 0
    while len(b.memories) < n_memories:
        kind = b.rng.choices(kinds, weights)[0]
        fact: Fact
        if kind in IDENT_KINDS:
            fact = ident_memory(b.rng, w, kind, b.ident(kind))
        elif kind == "chat":
            fact = chatter(b.rng, w)
        else:
            fact = PLAIN_FAMILIES[kind](b.rng, w)
        if b.add(fact.text, fact.memory_type, fact.unique) is None:
            misses += 1
            if misses > 50 * n_memories:
                raise RuntimeError("the distractor families ran dry")


def generate(seed: int = 17, n_memories: int = 2000, n_questions: int = 210) -> Corpus:
    """Build the corpus: exactly `n_memories` memories and `n_questions` questions.

    Raises ValueError when the memories cannot hold that many questions.
    """
    if n_questions < len(QUESTION_TYPES) + 1:
        raise ValueError(f"ask at least {len(QUESTION_TYPES) + 1} questions (one per type, two for multi-hop)")
    b = _Builder(seed)
    w = build_world(b.rng, n_memories)
    edge_keys: dict[Edge, str] = {}
    for text, members in render_edges(b.rng, w):
        key = b.add(text, "fact", ("edge", *members[0]))
        assert key is not None, text
        edge_keys.update(dict.fromkeys(members, key))
    quota = split_evenly(n_questions, QUESTION_TYPES)
    _multi_hop(b, w, edge_keys, quota["multi_hop"])
    _identifier(b, w, quota["identifier"])
    _plain(b, w, edge_keys, quota["plain"])
    _history(b, w, quota["knowledge_update"], quota["temporal"])
    _paraphrase(b, quota["paraphrase"], room=max(0, (n_memories - len(b.memories) - quota["paraphrase"]) // 60))
    if len(b.memories) > n_memories:
        raise ValueError(f"{n_questions} questions need at least {len(b.memories)} memories; got {n_memories}")
    _fill(b, w, n_memories)
    b.questions += make_abstentions(b.rng, ABSTAINERS, [str(m["content"]) for m in b.memories], quota["abstention"],
                                    b.asked)
    # Shuffle so neither storage order nor key order gives the answers away, then renumber.
    b.rng.shuffle(b.memories)
    renumber = {m["key"]: f"d{i:05d}" for i, m in enumerate(b.memories, start=1)}
    memories = [{**m, "key": renumber[m["key"]],
                 **({"supersedes": renumber[m["supersedes"]]} if "supersedes" in m else {})} for m in b.memories]
    b.rng.shuffle(b.questions)
    questions = []
    for i, q in enumerate(b.questions, start=1):
        row = {"id": f"dq{i:03d}", "type": q["type"], "question": q["question"],
               "relevant": [renumber[k] for k in q["relevant"]]}
        if "hops" in q:
            row["hops"] = q["hops"]
        if "superseded" in q:
            row["superseded"] = [renumber[k] for k in q["superseded"]]
        if "absent" in q:
            row["absent"] = q["absent"]
        questions.append(row)
    return Corpus(memories=memories, questions=questions, seed=seed, generator=GENERATOR, version=GENERATOR_VERSION,
                  parameters={"n_memories": n_memories, "n_questions": n_questions})
