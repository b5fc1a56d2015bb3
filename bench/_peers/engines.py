"""The engines compared, behind one interface: build a store from a corpus, then search by text.

Each adapter uses its engine the way its documentation's quick start does, with stock settings,
so the comparison is with what a user gets rather than with a tuned peer:

- **Colony**: `colony.memory.Memory` on a fresh node database, filled with ``add_many`` (through
  the eval's own `evals.memory.run.ingest`, batches of 500 as in `bench/bench_memory.py`);
  searched with ``recall`` — all channels fused, and the semantic channel alone for reference.
- **LanceDB** (embedded, local directory): one table (row, text, vector) written in one call,
  a native full-text index on the text, then searched by exact vector (flat scan, cosine), by
  full text (BM25), and hybrid — full text plus exact vector, ``limit`` rows from each side,
  fused by the stock `RRFReranker` (K = 60). Then an IVF-PQ index on the vectors with stock
  parameters, and vector and hybrid search again through it.
- **Chroma** (embedded, ``PersistentClient``): one collection, cosine space, stock HNSW
  parameters, added in batches of the client's maximum batch size; vector search only (Chroma
  has no ranked full-text search).

Every adapter gets the question text and embeds it live with the same static embedder inside
the timed call, as Colony's ``recall`` does, so latencies include the query embedding for all.

Corrections: Colony records a corpus row with ``supersedes`` through ``Memory.correct`` (the old
version becomes history); the peers have no such notion, so, as a user appending memories to
them would, they keep every version as a row of its own. The report's "stale first" column
shows what that costs on knowledge-update questions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from evals.memory.run import Question

from _peers.data import Corpus, FrozenEmbedder, Matrix
from colony.memory.embed import Embedder

if TYPE_CHECKING:
    from colony.store import Database

__all__ = ["ENGINES", "PEER_MODULES", "Answer", "Build", "ChromaEngine", "ColonyEngine", "Config", "Engine",
           "HistoryMode", "LanceEngine", "dir_size", "make_engine"]

COLONY_BATCH = 500
#: How Colony is asked a temporal question: "auto" leaves it to ``recall`` to notice a question
#: about the past (what an agent gets); "temporal" passes ``include_history=True`` for questions
#: of type temporal, as `evals.memory.run` does by default. The peers always search every row.
HistoryMode = Literal["auto", "temporal"]


@dataclass(frozen=True)
class Answer:
    """Corpus rows, best first, and whether the engine said it found nothing relevant."""

    rows: list[int]
    abstained: bool = False


@dataclass
class Config:
    """One way of searching a built store, e.g. "lancedb hybrid"."""

    name: str
    search: Callable[[Question], Answer]
    #: A pure nearest-neighbour search: its top k is also scored against the exact top k.
    vector_only: bool = False


@dataclass
class Build:
    """A store as built: what it took and what it offers."""

    engine: str
    #: Wall time from the corpus in memory to a searchable store, index builds included.
    seconds: float
    size_bytes: int
    configs: list[Config] = field(default_factory=list)
    note: str = ""


class Engine(Protocol):
    name: str

    def build(self, corpus: Corpus, workdir: Path) -> list[Build]: ...

    def close(self) -> None: ...


def dir_size(path: Path) -> int:
    """Bytes of every file under ``path`` (apparent sizes, as ``ls`` shows them)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _embed_one(embedder: Embedder, text: str) -> Matrix:
    return np.asarray(embedder.embed([text])[0], dtype=np.float32)


class ColonyEngine:
    """Colony's memory, fused and semantic-only."""

    name = "colony"

    def __init__(self, embedder: Embedder, k: int, history: HistoryMode = "auto") -> None:
        self._embedder = embedder
        self._k = k
        self._history = history
        self._db: Database | None = None

    def build(self, corpus: Corpus, workdir: Path) -> list[Build]:
        from evals.memory.run import ingest

        from colony.config import Settings
        from colony.memory import Memory
        from colony.store import open_database

        home, store = workdir / "colony-home", workdir / "colony"
        home.mkdir(parents=True, exist_ok=True)
        store.mkdir(parents=True, exist_ok=True)
        settings = Settings(home=home, workspace=home, _env_file=None)  # type: ignore[call-arg]
        db = self._db = open_database(store / "memory.db")
        frozen = FrozenEmbedder(self._embedder, corpus.texts, corpus.vectors)
        memory = Memory(db, settings, frozen)
        started = time.perf_counter()
        key_to_id = ingest(memory, corpus.memories, batch=COLONY_BATCH)
        seconds = time.perf_counter() - started
        if frozen.misses:
            raise RuntimeError(f"Colony embedded {frozen.misses} memories itself: its vectors would differ from the peers'")
        db.query("PRAGMA wal_checkpoint(TRUNCATE)")
        id_to_row = {mid: corpus.key_to_row[key] for key, mid in key_to_id.items()}
        k, history = self._k, self._history

        def recall(channels: frozenset[str] | None) -> Callable[[Question], Answer]:
            def search(question: Question) -> Answer:
                extra: dict[str, Any] = {} if channels is None else {"channels": set(channels)}
                if history == "temporal" and question.type == "temporal":
                    extra["include_history"] = True
                result = memory.recall(question.question, k=k, explain=False, touch=False, **extra)
                rows = [id_to_row[h.memory.id] for h in result.hits if h.memory.id in id_to_row]
                return Answer(rows, bool(getattr(result, "abstained", False)) or not rows)

            return search

        configs = [Config("colony fused", recall(None)),
                   Config("colony semantic", recall(frozenset({"semantic"})), vector_only=True)]
        return [Build("colony", seconds, dir_size(store), configs,
                      note=f"add_many, batches of {COLONY_BATCH}; FTS5 + graph + binary codes + float16 vectors")]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class LanceEngine:
    """LanceDB: exact vector, full text, hybrid; then the same through an IVF-PQ index."""

    name = "lancedb"

    def __init__(self, embedder: Embedder, k: int) -> None:
        self._embedder = embedder
        self._k = k
        self._db: Any = None

    def build(self, corpus: Corpus, workdir: Path) -> list[Build]:
        import lancedb
        import pyarrow as pa  # type: ignore[import-untyped]
        from lancedb.index import FTS, IvfPq

        path = workdir / "lancedb"
        n, dim = corpus.vectors.shape
        started = time.perf_counter()
        data = pa.table({
            "row": pa.array(np.arange(n, dtype=np.int64)),
            "text": pa.array(corpus.texts, type=pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(corpus.vectors.reshape(-1)), dim),
        })
        self._db = lancedb.connect(str(path))
        table = self._db.create_table("memories", data=data)
        table.create_index("text", config=FTS())
        base_seconds = time.perf_counter() - started
        base_size = dir_size(path)
        builds = [Build("lancedb", base_seconds, base_size, note="create_table (one write) + native FTS index")]
        k, embedder = self._k, self._embedder

        def rows(result: Any) -> list[int]:
            return [int(r) for r in result.to_arrow()["row"].to_pylist()]

        def vector(exact: bool) -> Callable[[Question], Answer]:
            def search(question: Question) -> Answer:
                vec = _embed_one(embedder, question.question)
                query = table.search(vec, query_type="vector").distance_type("cosine")
                got = rows((query.bypass_vector_index() if exact else query).limit(k).select(["row"]))
                return Answer(got, not got)

            return search

        def hybrid(exact: bool) -> Callable[[Question], Answer]:
            def search(question: Question) -> Answer:
                text = question.question
                query = (table.search(query_type="hybrid").vector(_embed_one(embedder, text)).text(text)
                         .distance_type("cosine"))
                got = rows((query.bypass_vector_index() if exact else query).limit(k).select(["row"]))
                return Answer(got, not got)

            return search

        def fts(question: Question) -> Answer:
            got = rows(table.search(question.question, query_type="fts").limit(k).select(["row"]))
            return Answer(got, not got)

        builds[0].configs = [Config("lancedb vector", vector(True), vector_only=True), Config("lancedb fts", fts),
                             Config("lancedb hybrid", hybrid(True))]
        started = time.perf_counter()
        try:
            table.create_index("vector", config=IvfPq(distance_type="cosine"))
        except Exception as exc:  # IVF-PQ needs enough rows to train; a quick run may not have them
            builds[0].note += f"; IVF-PQ not built: {exc}"
            return builds
        ivf_seconds = time.perf_counter() - started
        builds.append(Build("lancedb ivf-pq", base_seconds + ivf_seconds, dir_size(path),
                            [Config("lancedb ivf-pq vector", vector(False), vector_only=True),
                             Config("lancedb ivf-pq hybrid", hybrid(False))],
                            note=f"+ IVF-PQ index, stock parameters ({ivf_seconds:.1f} s to build)"))
        return builds

    def close(self) -> None:
        self._db = None


class ChromaEngine:
    """Chroma: HNSW vector search (cosine space, stock HNSW parameters)."""

    name = "chroma"

    def __init__(self, embedder: Embedder, k: int) -> None:
        self._embedder = embedder
        self._k = k
        self._client: Any = None

    def build(self, corpus: Corpus, workdir: Path) -> list[Build]:
        import chromadb
        from chromadb.config import Settings

        path = workdir / "chroma"
        started = time.perf_counter()
        self._client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        collection = self._client.create_collection("memories", embedding_function=None,
                                                    configuration={"hnsw": {"space": "cosine"}})
        batch = int(self._client.get_max_batch_size())
        texts = corpus.texts
        for start in range(0, len(texts), batch):
            end = min(len(texts), start + batch)
            collection.add(ids=[str(i) for i in range(start, end)], embeddings=corpus.vectors[start:end],
                           documents=texts[start:end])
        seconds = time.perf_counter() - started
        k, embedder = self._k, self._embedder

        def search(question: Question) -> Answer:
            result = collection.query(query_embeddings=[_embed_one(embedder, question.question)], n_results=k,
                                      include=["distances"])
            got = [int(i) for i in result["ids"][0]]
            return Answer(got, not got)

        return [Build("chroma", seconds, dir_size(path), [Config("chroma vector", search, vector_only=True)],
                      note=f"PersistentClient, add in batches of {batch}, documents stored")]

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):  # closing is best effort: the directory is removed next
                self._client.clear_system_cache()
            self._client = None


def make_engine(name: str, embedder: Embedder, k: int, history: HistoryMode) -> Engine:
    if name == "colony":
        return ColonyEngine(embedder, k, history)
    return ENGINES[name](embedder, k)


ENGINES: dict[str, Callable[[Embedder, int], Engine]] = {
    "colony": ColonyEngine,
    "lancedb": LanceEngine,
    "chroma": ChromaEngine,
}

# Engines that need the bench-peers extra, with the module that proves it is installed.
PEER_MODULES = {"lancedb": "lancedb", "chroma": "chromadb"}
