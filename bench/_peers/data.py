"""Corpora for the peer benchmark, with one vector per text shared by every engine.

The comparison is only fair if every engine ranks the same vectors, so each memory is embedded
once here with Colony's own static embedder (`colony.memory.embed`, no download, no torch) and
the matrix is handed to LanceDB and Chroma. Colony embeds inside ``add_many``; it gets the same
matrix through `FrozenEmbedder`, which answers from it and embeds only what it has not seen
(the questions, live at query time, as the peers' adapters do too). That also keeps embedding
out of every engine's ingest time.

The 100K corpus is an eval corpus padded with generated memories, the approach of
`bench/bench_memory.py`, by default from the eval's *other* generator (its names are disjoint,
so the padding cannot contradict or answer the corpus; see `_padding_source`). Padding that
would still make a question ambiguous is left out: exact copies of a corpus memory (the
hand-written paraphrase pairs recur in every seed of a generator), memories holding an
identifier that a question asks about, and memories naming a term that an abstention question
relies on being absent. So the questions keep exactly the answers their corpus says.
Corrections (``supersedes``) among the distractors are kept with their originals.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from evals.memory._text import IDENTIFIER_RE
from evals.memory.generate import DEFAULT_DATA
from evals.memory.run import Question, load_corpus

from colony.memory.embed import Embedder

__all__ = ["Corpus", "FrozenEmbedder", "PadStyle", "discover", "exact_threshold", "load", "padded"]

Matrix = npt.NDArray[np.float32]
_EMBED_BATCH = 1024
#: Seeds of the padding, far from the ones the eval corpora use.
_PAD_SEED = 1000


@dataclass
class Corpus:
    """Memories (rows of the eval's memories.jsonl) and questions, with row ``i``'s vector."""

    name: str
    path: Path | None
    memories: list[dict[str, Any]]
    questions: list[Question]
    vectors: Matrix
    key_to_row: dict[str, int] = field(default_factory=dict)
    #: Where the 100K padding came from, for the report.
    note: str = ""

    def __post_init__(self) -> None:
        if not self.key_to_row:
            self.key_to_row = {str(m["key"]): i for i, m in enumerate(self.memories)}

    @property
    def texts(self) -> list[str]:
        return [str(m["content"]) for m in self.memories]

    def relevant_rows(self, question: Question) -> list[int]:
        return [self.key_to_row[key] for key in question.relevant]

    def stale_rows(self, question: Question) -> list[int]:
        """The superseded versions of a knowledge update's answer (none for other questions)."""
        return [self.key_to_row[key] for key in question.superseded]


def embed_all(embedder: Embedder, texts: Sequence[str]) -> Matrix:
    """All texts through the embedder in batches: an ``(n, dim)`` float32 matrix of unit rows."""
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    parts = [embedder.embed(texts[i:i + _EMBED_BATCH]) for i in range(0, len(texts), _EMBED_BATCH)]
    return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)


def discover(root: Path) -> list[Path]:
    """Every eval data directory under ``root`` (both jsonl files), the committed default first."""
    found = sorted({p.parent for p in root.rglob("questions.jsonl") if (p.parent / "memories.jsonl").is_file()})
    return sorted(found, key=lambda p: (p.resolve() != DEFAULT_DATA.resolve(), str(p)))


def _name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load(path: Path, embedder: Embedder) -> Corpus:
    """A data directory as written by an eval generator, embedded once."""
    memories, questions = load_corpus(path)
    corpus = Corpus(_name(path), path, memories, questions, np.zeros((0, embedder.dim), dtype=np.float32))
    missing = sorted({key for q in questions for key in [*q.relevant, *q.superseded] if key not in corpus.key_to_row})
    if missing:
        raise ValueError(f"{path}: questions name memories that are not in memories.jsonl: {missing[:5]}")
    corpus.vectors = embed_all(embedder, corpus.texts)
    return corpus


#: The eval's generators by the name their MANIFEST.json records (see `evals.memory.corpora`).
_GENERATORS = {"evals.memory.generate": "kestrel", "evals.memory.civic": "civic",
               "evals.memory.corpora.mixed": "mixed"}
#: The generator whose vocabulary is disjoint from each one's (the eval's tests check the names).
_OTHER = {"kestrel": "civic", "civic": "kestrel"}
PadStyle = Literal["other", "same"]
Rows = list[dict[str, Any]]


def _padding_source(base: Corpus, style: PadStyle) -> tuple[str, Callable[[int], Rows]]:
    """The generator that pads ``base``: the one with disjoint names ("other") or its own ("same").

    "other" is the default because the same generator run with another seed reuses the same
    names in a different world ("the Willow team maintains the pricing API" in one seed, "the
    Oak team" in the next): such padding contradicts the corpus's own facts, and multi-hop and
    plain questions stop having one answer. A corpus that mixes both generators, or an unknown
    one, is padded in its own style (the filters of `_distractors` still apply).
    """
    own = "kestrel"
    manifest = base.path / "MANIFEST.json" if base.path else None
    if manifest is not None and manifest.is_file():
        with contextlib.suppress(ValueError, AttributeError):
            own = _GENERATORS.get(str(json.loads(manifest.read_text("utf-8")).get("generator")), "kestrel")
    name = _OTHER.get(own, own) if style == "other" else own
    try:
        from evals.memory.corpora import DEFAULTS, corpus
    except ImportError:  # an eval without the corpora API: its first generator's own defaults
        from evals.memory.generate import generate

        return "evals.memory.generate", lambda seed: list(generate(seed=seed).memories)
    _, memories, questions = DEFAULTS[name]  # type: ignore[index]
    return f"the {name} generator", lambda seed: list(corpus(name, seed, memories, questions).memories)  # type: ignore[arg-type]


def _distractors(base: Corpus, generate: Callable[[int], Rows], seed: int) -> Rows:
    """One seed's memories minus those that would answer a question of ``base``, keys renamed."""
    seen = {m["content"] for m in base.memories}
    asked = {ident for q in base.questions for ident in IDENTIFIER_RE.findall(q.question)}
    absent = {term.lower() for q in base.questions for term in q.absent}
    kept: list[dict[str, Any]] = []
    for m in generate(seed):
        content = str(m["content"])
        lowered = content.lower()
        if (content in seen or asked.intersection(IDENTIFIER_RE.findall(content))
                or any(term in lowered for term in absent)):
            continue
        seen.add(content)
        row = {**m, "key": f"pad{seed}-{m['key']}"}
        if m.get("supersedes"):
            row["supersedes"] = f"pad{seed}-{m['supersedes']}"
        kept.append(row)
    return kept


def _originals_first(rows: Rows) -> Rows:
    """``rows`` with each correction moved to just after the memory it supersedes.

    A generator may place a correction before its original; any prefix of the result is then
    self-contained, so the padding can be cut at any length. Corrections whose original was
    filtered out are dropped (and corrections of those, transitively).
    """
    placed: set[str] = set()
    out: Rows = []
    waiting: dict[str, Rows] = {}
    for row in rows:
        target = row.get("supersedes")
        if target and target not in placed:
            waiting.setdefault(str(target), []).append(row)
            continue
        ready = [row]
        while ready:
            r = ready.pop(0)
            out.append(r)
            placed.add(str(r["key"]))
            ready += waiting.pop(str(r["key"]), [])
    return out


def padded(base: Corpus, size: int, embedder: Embedder, style: PadStyle = "other") -> Corpus:
    """``base`` plus generated distractors up to about ``size`` memories (``base`` alone if larger).

    Corrections among the distractors keep their originals, so Colony records them with
    ``correct`` as in the eval (`_originals_first`); one whose original was filtered out is
    dropped and the next distractor taken instead.
    """
    source, generate = _padding_source(base, style)
    extra: Rows = []
    seed = _PAD_SEED
    while len(base.memories) + len(_originals_first(extra)) < size:
        extra += _distractors(base, generate, seed)
        seed += 1
        if seed > _PAD_SEED + 10_000:
            raise RuntimeError(f"{source} does not yield enough distinct distractors")
    extra = _originals_first(extra)[:max(0, size - len(base.memories))]
    vectors = np.vstack([base.vectors, embed_all(embedder, [str(m["content"]) for m in extra])]) if extra else base.vectors
    note = (f"{base.name} + {len(extra):,} distractors from {source} (seeds {_PAD_SEED}–{seed - 1})"
            if extra else base.name)
    return Corpus(f"{base.name} padded to {len(base.memories) + len(extra):,}", base.path,
                  base.memories + extra, base.questions, np.ascontiguousarray(vectors, dtype=np.float32), note=note)


class FrozenEmbedder:
    """Colony's embedder, answering from precomputed vectors where it has them.

    ``misses`` counts texts it had to embed itself; the Colony adapter requires zero after
    ingest, so a memory whose vector could differ from the peers' copy fails the run instead of
    skewing it.
    """

    def __init__(self, inner: Embedder, texts: Sequence[str], vectors: Matrix) -> None:
        self.name = inner.name
        self.dim = inner.dim
        self._inner = inner
        self._vectors = vectors
        self._rows = {text: i for i, text in enumerate(texts)}
        self.misses = 0

    def embed(self, texts: Sequence[str]) -> Matrix:
        rows = [self._rows.get(t) for t in texts]
        known = [r for r in rows if r is not None]
        if len(known) == len(rows):
            return self._vectors[np.asarray(known, dtype=np.int64)] if known else np.zeros((0, self.dim), np.float32)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo = [i for i, r in enumerate(rows) if r is None]
        self.misses += len(todo)
        out[todo] = self._inner.embed([texts[i] for i in todo])
        for i, r in enumerate(rows):
            if r is not None:
                out[i] = self._vectors[r]
        return out


def exact_threshold(vectors: Matrix, query: npt.NDArray[np.float32], k: int) -> tuple[Matrix, float]:
    """Cosine of every row with ``query`` and the ``k``-th best of them (exact, float32)."""
    sims: Matrix = vectors @ query
    kth = float(np.partition(sims, len(sims) - k)[len(sims) - k]) if len(sims) >= k else float(sims.min())
    return sims, kth
