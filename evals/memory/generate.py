"""Generate the memory retrieval eval: a seeded corpus of memories and questions.

Run: ``python -m evals.memory.generate --seed 7 --memories 2000 --questions 160 --out evals/memory/data``
(``--generator civic``, ``--generator mixed`` or ``--generator diary`` writes the other corpora; see
`evals.memory.corpora`).

The corpus describes Kestrel Labs, a small fictional software organisation: its people, teams,
services, libraries, hosts, incidents, error codes, version pins, procedures, decisions and
preferences, plus office chatter as distractors. Four retrieval question types, each aimed at
the channel that should find it and built so that the others struggle:

- ``multi_hop``: the answer sits one or two relations away from the entity named in the question
  and shares no content word with it (only the graph channel can follow the chain);
- ``paraphrase``: a hand-written rewording of a single fact (only meaning links them);
- ``identifier``: an exact identifier plus a few words, with near-duplicate identifiers in
  similar memories (meaning alone cannot tell them apart);
- ``plain``: ordinary questions that share keywords with their memory.

Version 2 adds three types about memory over time (`_updates`): ``knowledge_update`` (a fact
corrected through the store's supersession; asked for its current value), ``temporal`` ("what
was it before the change?"; the relevant memory is the superseded one) and ``abstention``
(nothing relevant is stored). They are generated *after* the version-1 corpus from the same
random stream and inserted into it, so every version-1 memory and question keeps its key, text
and position relative to the others: scores on the old types stay comparable.

Everything derives from one ``random.Random(seed)``; nothing depends on hash order or the clock,
so the same seed gives byte-identical files.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from evals.memory._corpus import HISTORY_TYPES, Corpus, insert_randomly, memory_row, write
from evals.memory._families import (
    IDENT_KINDS,
    PLAIN_FAMILIES,
    Registry,
    chitchat,
    ident_memory,
    ident_question,
    near_duplicate,
    new_ident,
)
from evals.memory._history import ABSTAINERS, UPDATE_FAMILIES
from evals.memory._paraphrases import PARAPHRASES
from evals.memory._updates import history_memory_count, make_abstentions, make_updates
from evals.memory._world import (
    CHAIN_FAMILIES,
    Edge,
    World,
    build_world,
    chain_question,
    chain_starts,
    render_edge,
)

__all__ = ["DEFAULT_DATA", "GENERATOR_VERSION", "QUESTION_TYPES", "RETRIEVAL_TYPES", "Corpus", "generate",
           "history_memories", "main", "write"]

GENERATOR_VERSION = "2"
#: The version-1 types: `n_questions` is split evenly over these.
RETRIEVAL_TYPES = ("multi_hop", "paraphrase", "identifier", "plain")
QUESTION_TYPES = RETRIEVAL_TYPES + HISTORY_TYPES
DEFAULT_DATA = Path(__file__).parent / "data"
_FILL_WEIGHTS = {"procedure": 3, "preference": 3, "decision": 2, "ticket": 3, "leave": 1, "standup": 1,
                 "incident": 3, "error": 2, "pin": 2, "host": 1, "chat": 3}


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.reg = Registry()
        self.memories: list[dict[str, Any]] = []
        self.questions: list[dict[str, Any]] = []
        self.asked: set[str] = set()

    def ident(self, kind: str, like: str | None = None) -> str:
        for _ in range(1000):
            value = new_ident(self.rng, kind) if like is None else near_duplicate(self.rng, kind, like)
            if value not in self.reg.identifiers:
                self.reg.identifiers.add(value)
                return value
        raise RuntimeError(f"ran out of {kind} identifiers")

    def add(self, text: str, memory_type: str, unique: tuple[str, ...] | None = None) -> str | None:
        """Store a memory unless its text or uniqueness key is taken; return its key."""
        if text in self.reg.texts or (unique is not None and unique in self.reg.facts):
            return None
        self.reg.texts.add(text)
        if unique is not None:
            self.reg.facts.add(unique)
        key = f"m{len(self.memories) + 1:05d}"
        self.memories.append(memory_row(self.rng, key, text, memory_type))
        return key

    def ask(self, qtype: str, question: str, relevant: list[str]) -> bool:
        if question in self.asked:
            return False
        self.asked.add(question)
        self.questions.append({"type": qtype, "question": question, "relevant": relevant})
        return True


def _split(total: int) -> dict[str, int]:
    base, extra = divmod(total, len(RETRIEVAL_TYPES))
    return {t: base + (i < extra) for i, t in enumerate(RETRIEVAL_TYPES)}


def _multi_hop(b: _Builder, w: World, edge_keys: dict[Edge, str], n: int) -> None:
    pools = {f: chain_starts(w, f) for f in CHAIN_FAMILIES}
    for pool in pools.values():
        b.rng.shuffle(pool)
    families = list(CHAIN_FAMILIES)
    used: Counter[tuple[str, ...]] = Counter()  # answers shared by several questions, e.g. a busy team's lead
    made = 0
    while made < n and any(pools.values()):
        for family in families:
            if made >= n or not pools[family]:
                continue
            start, edges = pools[family].pop()
            keys = [edge_keys[e] for e in edges]
            if used[tuple(keys)] >= 2:
                continue
            texts = [m["content"] for m in b.memories if m["key"] in keys]
            question = chain_question(b.rng, family, start, texts)
            if question and b.ask("multi_hop", question, keys):
                used[tuple(keys)] += 1
                made += 1
    if made < n:
        raise ValueError(f"only {made} multi-hop questions fit this world; use more memories or fewer questions")


def _paraphrase(b: _Builder, n: int, room: int) -> None:
    if n > len(PARAPHRASES):
        raise ValueError(f"at most {len(PARAPHRASES)} paraphrase questions (one per hand-written pair)")
    pairs = PARAPHRASES[:]
    b.rng.shuffle(pairs)
    for i, (name, memories, questions, memory_type) in enumerate(pairs):
        if i >= n and room <= 0:
            break
        key = b.add(b.rng.choice(memories), memory_type, ("paraphrase", name))
        assert key is not None
        if i < n:
            b.ask("paraphrase", b.rng.choice(questions), [key])
        else:
            room -= 1  # an unasked pair stays as a distractor


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
        while not b.ask("identifier", ident_question(b.rng, target), [key]):
            pass


def _plain(b: _Builder, w: World, edge_keys: dict[Edge, str], n: int) -> None:
    families = list(PLAIN_FAMILIES)
    made = attempts = 0
    while made < n:
        attempts += 1
        if attempts > 200 * n:
            raise ValueError("could not find enough distinct plain questions; use more memories")
        fact = PLAIN_FAMILIES[families[attempts % len(families)]](b.rng, w)
        assert fact.question is not None
        if fact.unique[0] == "edge":  # a world edge, already stored: ask about it once
            marker = ("asked", *fact.unique)
            if marker in b.reg.facts:
                continue
            b.reg.facts.add(marker)
            key: str | None = edge_keys[fact.unique[1:]]
        else:
            key = b.add(fact.text, fact.memory_type, fact.unique)
        if key is not None and b.ask("plain", fact.question, [key]):
            made += 1


def _fill(b: _Builder, w: World, n_memories: int) -> None:
    kinds = list(_FILL_WEIGHTS)
    weights = [_FILL_WEIGHTS[k] for k in kinds]
    misses = 0
    while len(b.memories) < n_memories:
        kind = b.rng.choices(kinds, weights)[0]
        if kind in IDENT_KINDS:
            fact = ident_memory(b.rng, w, kind, b.ident(kind))
        elif kind == "chat":
            fact = chitchat(b.rng, w)
        else:
            fact = PLAIN_FAMILIES[kind](b.rng, w)
        if b.add(fact.text, fact.memory_type, fact.unique) is None:
            misses += 1
            if misses > 50 * n_memories:
                raise RuntimeError("the distractor families ran dry")


def history_memories(n_history: int) -> int:
    """How many memories the version-2 categories add for `n_history` questions of each."""
    return history_memory_count(n_history, n_history, n_history // 2)


def generate(seed: int = 7, n_memories: int = 2000, n_questions: int = 160, n_history: int | None = None) -> Corpus:
    """Build the corpus. Raises ValueError when the memories cannot hold that many questions.

    `n_memories` and `n_questions` size the version-1 corpus (split evenly over the four
    retrieval types); `n_history` questions of each of knowledge_update, temporal and abstention
    come on top (default ``n_questions // 8``), with `history_memories(n_history)` more memories.
    ``n_history=0`` gives exactly the version-1 corpus.
    """
    if n_questions < len(RETRIEVAL_TYPES):
        raise ValueError(f"ask at least {len(RETRIEVAL_TYPES)} questions (one per type)")
    n_history = n_questions // 8 if n_history is None else n_history
    if n_history < 0:
        raise ValueError("n_history cannot be negative")
    b = _Builder(seed)
    w = build_world(b.rng, n_memories, lambda: b.ident("host"))
    edge_keys: dict[Edge, str] = {}
    for edge in w.edges():
        key = b.add(render_edge(b.rng, w, edge), "fact", ("edge", *edge))
        assert key is not None
        edge_keys[edge] = key
    quota = _split(n_questions)
    _multi_hop(b, w, edge_keys, quota["multi_hop"])
    _identifier(b, w, quota["identifier"])
    _plain(b, w, edge_keys, quota["plain"])
    _paraphrase(b, quota["paraphrase"], room=max(0, (n_memories - len(b.memories) - quota["paraphrase"]) // 20))
    if len(b.memories) > n_memories:
        raise ValueError(f"{n_questions} questions need at least {len(b.memories)} memories; got {n_memories}")
    _fill(b, w, n_memories)
    # Shuffle so neither storage order nor key order gives the answers away, then renumber.
    b.rng.shuffle(b.memories)
    renumber = {m["key"]: f"m{i:05d}" for i, m in enumerate(b.memories, start=1)}
    memories = [{**m, "key": renumber[m["key"]]} for m in b.memories]
    b.rng.shuffle(b.questions)
    questions = [{"id": f"q{i:03d}", "type": q["type"], "question": q["question"],
                  "relevant": [renumber[k] for k in q["relevant"]]} for i, q in enumerate(b.questions, start=1)]
    if n_history:
        _extend(b.rng, w, memories, questions, n_history)
    return Corpus(memories=memories, questions=questions, seed=seed, generator="evals.memory.generate",
                  version=GENERATOR_VERSION,
                  parameters={"n_memories": n_memories, "n_questions": n_questions, "n_history": n_history})


def _extend(rng: random.Random, w: World, memories: list[dict[str, Any]], questions: list[dict[str, Any]],
            n_history: int) -> None:
    """Add the version-2 categories to a finished version-1 corpus, in place.

    New memories continue the key numbering and go to random places in the file; new questions
    likewise. Nothing of the version-1 rows changes.
    """
    texts = {m["content"] for m in memories}
    added: list[dict[str, Any]] = []

    def add(text: str, memory_type: str, supersedes: str | None) -> str:
        if text in texts:
            raise RuntimeError(f"a fact history repeats an existing memory: {text!r}")
        texts.add(text)
        key = f"m{len(memories) + len(added) + 1:05d}"
        row = memory_row(rng, key, text, memory_type)
        if supersedes is not None:
            row["supersedes"] = supersedes
        added.append(row)
        return key

    fillers = {"team": list(w.teams), "service": list(w.services)}
    new = make_updates(rng, UPDATE_FAMILIES, fillers, add, n_update=n_history, n_temporal=n_history,
                       n_unasked=n_history // 2)
    insert_randomly(rng, memories, added)
    asked = {q["question"] for q in questions} | {q["question"] for q in new}
    new += make_abstentions(rng, ABSTAINERS, [m["content"] for m in memories], n_history, asked)
    first = len(questions) + 1
    insert_randomly(rng, questions, [{"id": f"q{first + i:03d}", **q} for i, q in enumerate(new)])


def main(argv: list[str] | None = None) -> int:
    """The generators' command line (shared with `evals.memory.corpora`); Kestrel Labs by default."""
    from evals.memory.corpora import main as corpora_main

    return corpora_main(argv)


if __name__ == "__main__":
    sys.exit(main())
