"""What every generator of the eval shares: the corpus value, its files and the row helpers.

A corpus is two lists of JSON rows. A memory row holds the fields of `colony.memory.MemoryIn`
plus ``key`` and, for a correction, ``supersedes`` (the key of the memory it corrects: the runner
stores the old one first and then records the correction with `Memory.correct`, so the store's
own history links them). A question row holds ``id``, ``type``, ``question`` and ``relevant`` (the
keys that answer it; empty for an abstention question), plus optional detail that tests and the
report read: ``hops`` (multi-hop path length), ``superseded`` (the stale versions of a knowledge
update), ``absent`` (the terms an abstention question names that no memory contains) and ``source``
(which generator wrote it, in the mixed corpus).

Both generators write their files through `write`, so the MANIFEST has one shape and records the
parameters that regenerate the data byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "HISTORY_TYPES",
    "Corpus",
    "absent_everywhere",
    "insert_randomly",
    "jsonl",
    "memory_row",
    "split_evenly",
    "write",
]

#: The LongMemEval-style categories both generators add on top of their own retrieval types.
HISTORY_TYPES = ("knowledge_update", "temporal", "abstention")


@dataclass
class Corpus:
    memories: list[dict[str, Any]]
    questions: list[dict[str, Any]]
    seed: int
    #: The module that wrote it and its version, recorded in the MANIFEST.
    generator: str = "evals.memory.generate"
    version: str = "1"
    #: The arguments that regenerate exactly this corpus (see `evals.memory.corpora.regenerate`).
    parameters: dict[str, Any] = field(default_factory=dict)


def memory_row(rng: random.Random, key: str, text: str, memory_type: str, *,
               verified_weights: tuple[int, int, int] = (4, 5, 1),
               confidence: tuple[float, float] = (0.55, 0.98)) -> dict[str, Any]:
    """A memory row with random metadata that is independent of relevance.

    The fields are those of colony.memory.MemoryIn (a test validates every row against it),
    built by hand so generating needs nothing beyond the standard library.
    """
    return {
        "key": key,
        "content": text,
        "memory_type": memory_type,
        "confidence": round(rng.uniform(*confidence), 2),
        "verified": rng.choices(["inferred", "user_stated", "system_verified"], list(verified_weights))[0],
        "sensitivity": rng.choices(["public", "internal", "confidential"], [2, 7, 1])[0],
        "source_kind": rng.choice(["session", "user", "import", "agent"]),
    }


def split_evenly(total: int, types: tuple[str, ...]) -> dict[str, int]:
    """`total` spread over `types`, the first ones taking the remainder."""
    base, extra = divmod(total, len(types))
    return {t: base + (i < extra) for i, t in enumerate(types)}


def insert_randomly(rng: random.Random, rows: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    """Put each new row at a random place, so file order gives nothing away."""
    for row in new:
        rows.insert(rng.randrange(len(rows) + 1), row)


def absent_everywhere(term: str, texts: list[str]) -> bool:
    """True when `term` occurs in none of `texts` as a whole word or phrase (case-insensitive)."""
    pattern = re.compile(r"(?<![\w-])" + re.escape(term.lower()) + r"(?![\w-])")
    return not any(pattern.search(text.lower()) for text in texts)


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write(corpus: Corpus, out: Path) -> dict[str, Any]:
    """Write memories.jsonl, questions.jsonl and MANIFEST.json; return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"memories.jsonl": jsonl(corpus.memories), "questions.jsonl": jsonl(corpus.questions)}
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
    manifest: dict[str, Any] = {
        "generator": corpus.generator,
        "generator_version": corpus.version,
        "seed": corpus.seed,
        "parameters": corpus.parameters,
        "memories": len(corpus.memories),
        "questions": len(corpus.questions),
        "question_types": dict(sorted(Counter(q["type"] for q in corpus.questions).items())),
        "memory_types": dict(sorted(Counter(m["memory_type"] for m in corpus.memories).items())),
        "corrections": sum(1 for m in corpus.memories if m.get("supersedes")),
    }
    multi = [q for q in corpus.questions if q["type"] == "multi_hop"]
    manifest["multi_hop_relevant_counts"] = {
        str(n): c for n, c in sorted(Counter(len(q["relevant"]) for q in multi).items())}
    hops = Counter(int(q["hops"]) for q in multi if "hops" in q)
    if hops:
        manifest["multi_hop_hops"] = {str(n): c for n, c in sorted(hops.items())}
    sources = Counter(str(q["source"]) for q in corpus.questions if "source" in q)
    if sources:
        manifest["question_sources"] = dict(sorted(sources.items()))
    manifest["sha256"] = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
