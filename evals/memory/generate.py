"""Generate the memory retrieval eval: a seeded corpus of memories and questions.

Run: ``python -m evals.memory.generate --seed 7 --memories 2000 --questions 160 --out evals/memory/data``

The corpus describes Kestrel Labs, a small fictional software organisation: its people, teams,
services, libraries, hosts, incidents, error codes, version pins, procedures, decisions and
preferences, plus office chatter as distractors. Questions come in four types, each aimed at
the channel that should find it and built so that the others struggle:

- ``multi_hop``: the answer sits one or two relations away from the entity named in the question
  and shares no content word with it (only the graph channel can follow the chain);
- ``paraphrase``: a hand-written rewording of a single fact (only meaning links them);
- ``identifier``: an exact identifier plus a few words, with near-duplicate identifiers in
  similar memories (meaning alone cannot tell them apart);
- ``plain``: ordinary questions that share keywords with their memory.

Everything derives from one ``random.Random(seed)``; nothing depends on hash order or the clock,
so the same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from evals.memory._paraphrases import PARAPHRASES
from evals.memory._world import (
    CHAIN_FAMILIES,
    Edge,
    World,
    build_world,
    chain_question,
    chain_starts,
    render_edge,
)

__all__ = ["DEFAULT_DATA", "GENERATOR_VERSION", "QUESTION_TYPES", "Corpus", "generate", "main", "write"]

GENERATOR_VERSION = "1"
QUESTION_TYPES = ("multi_hop", "paraphrase", "identifier", "plain")
DEFAULT_DATA = Path(__file__).parent / "data"
_FILL_WEIGHTS = {"procedure": 3, "preference": 3, "decision": 2, "ticket": 3, "leave": 1, "standup": 1,
                 "incident": 3, "error": 2, "pin": 2, "host": 1, "chat": 3}


@dataclass
class Corpus:
    memories: list[dict[str, Any]]
    questions: list[dict[str, Any]]
    seed: int


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
        rng = self.rng
        key = f"m{len(self.memories) + 1:05d}"
        # The fields of colony.memory.MemoryIn (a test validates every row against it); built by
        # hand so generating needs nothing beyond the standard library.
        self.memories.append({
            "key": key,
            "content": text,
            "memory_type": memory_type,
            "confidence": round(rng.uniform(0.55, 0.98), 2),
            "verified": rng.choices(["inferred", "user_stated", "system_verified"], [4, 5, 1])[0],
            "sensitivity": rng.choices(["public", "internal", "confidential"], [2, 7, 1])[0],
            "source_kind": rng.choice(["session", "user", "import", "agent"]),
        })
        return key

    def ask(self, qtype: str, question: str, relevant: list[str]) -> bool:
        if question in self.asked:
            return False
        self.asked.add(question)
        self.questions.append({"type": qtype, "question": question, "relevant": relevant})
        return True


def _split(total: int) -> dict[str, int]:
    base, extra = divmod(total, len(QUESTION_TYPES))
    return {t: base + (i < extra) for i, t in enumerate(QUESTION_TYPES)}


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


def generate(seed: int = 7, n_memories: int = 2000, n_questions: int = 160) -> Corpus:
    """Build the corpus. Raises ValueError when the memories cannot hold that many questions."""
    if n_questions < len(QUESTION_TYPES):
        raise ValueError(f"ask at least {len(QUESTION_TYPES)} questions (one per type)")
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
    return Corpus(memories=memories, questions=questions, seed=seed)


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write(corpus: Corpus, out: Path) -> dict[str, Any]:
    """Write memories.jsonl, questions.jsonl and MANIFEST.json; return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"memories.jsonl": _jsonl(corpus.memories), "questions.jsonl": _jsonl(corpus.questions)}
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    relevant = Counter(len(q["relevant"]) for q in corpus.questions if q["type"] == "multi_hop")
    manifest = {
        "generator": "evals.memory.generate",
        "generator_version": GENERATOR_VERSION,
        "seed": corpus.seed,
        "memories": len(corpus.memories),
        "questions": len(corpus.questions),
        "question_types": dict(sorted(Counter(q["type"] for q in corpus.questions).items())),
        "memory_types": dict(sorted(Counter(m["memory_type"] for m in corpus.memories).items())),
        "multi_hop_relevant_counts": {str(k): v for k, v in sorted(relevant.items())},
        "sha256": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()},
    }
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.memory.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--memories", type=int, default=2000)
    parser.add_argument("--questions", type=int, default=160)
    parser.add_argument("--out", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    try:
        corpus = generate(args.seed, args.memories, args.questions)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    manifest = write(corpus, args.out)
    print(f"wrote {manifest['memories']} memories and {manifest['questions']} questions "
          f"({manifest['question_types']}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
