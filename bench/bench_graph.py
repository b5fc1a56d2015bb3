"""The graph channel's costs: extraction per sentence, PageRank per neighbourhood, multi-hop recall.

Run: .venv/bin/python bench/bench_graph.py [--rounds N] [--memories N]
Extraction (typed triples, and the entities and relation cues every memory is linked by) runs
over a mix of fact-like sentences (lists, passives, negations, identifiers, long clauses, notes
fragments); PageRank over random scale-free neighbourhoods of 1K, 5K and 20K edges with 3 seeds;
`graph_recall` (the mention-graph walk, 2 and 3 hops) over the retrieval eval's corpora with
their questions. Targets: extraction in tens of microseconds per sentence; PageRank on 5K edges
in a few milliseconds; graph recall in a few milliseconds at any size.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from evals.memory.corpora import build

from _stats import table
from colony.config import Settings
from colony.memory import MemoryIn, open_memory
from colony.memory._entities import analyse
from colony.memory.graph import Edge, extract_triples, graph_recall, personalized_pagerank, query_entities
from colony.store import open_database

SENTENCES = [
    "Jeff uses Rust.",
    "The billing service depends on Redis and uses Postgres for storage.",
    "Python was created by Guido van Rossum in 1991.",
    "Our team does not use Kubernetes in production, but we use Nomad.",
    "INC-48213 was caused by a bad deploy of api.v2 to the eu-west cluster.",
    "Jeff uses Rust, Go and Python, and Ann prefers TypeScript for the frontend.",
    "The payment service calls the auth service and stores sessions in Redis.",
    "src/app.py imports the config loader which reads settings from the environment.",
    "Alice, who works at Acme in Berlin, reports to Bob and manages the platform team.",
    "The weather was lovely yesterday and we walked along the river for hours.",
    "Payments — owned by team Falcon (lead: Ingrid van der Berg), see INC-2231 and ERR_QUOTA_EXCEEDED.",
    "- owner: Priya Shah\n- on-call: the Lynx squad\n- host: web-12.eu-west, pinned to s3sync==2.5.5",
]


def scale_free_edges(n_edges: int, rng: random.Random) -> list[Edge]:
    """Preferential attachment: a few hubs, many leaves, like an entity graph."""
    nodes = ["e0", "e1"]
    targets = ["e0", "e1"]
    edges: list[Edge] = []
    while len(edges) < n_edges:
        if rng.random() < 0.4 or len(nodes) < 3:
            new = f"e{len(nodes)}"
            nodes.append(new)
            other = rng.choice(targets)
            edges.append((new, other, rng.choice((1.0, 1.0, 2.0, 0.5))))
            targets += [new, other]
        else:
            a, b = rng.choice(targets), rng.choice(nodes)
            edges.append((a, b, 1.0))
            targets += [a, b]
    return edges


def main(rounds: int, memories: int) -> None:
    per_sentence: list[float] = []
    per_query: list[float] = []
    per_entities: list[float] = []
    for _ in range(rounds):
        for sentence in SENTENCES:
            t0 = time.perf_counter()
            extract_triples(sentence)
            per_sentence.append((time.perf_counter() - t0) * 1e6)
            t0 = time.perf_counter()
            analyse(sentence)
            per_entities.append((time.perf_counter() - t0) * 1e6)
            t0 = time.perf_counter()
            query_entities(sentence)
            per_query.append((time.perf_counter() - t0) * 1e6)
    paragraph = " ".join(SENTENCES * 10)  # ~100 sentences, ~7 KB
    per_paragraph = []
    for _ in range(max(5, rounds // 20)):
        t0 = time.perf_counter()
        extract_triples(paragraph)
        per_paragraph.append((time.perf_counter() - t0) * 1e6 / (len(SENTENCES) * 10))
    table(
        "Extraction",
        [("extract_triples, one sentence", per_sentence), ("extract_triples, per sentence of a 7 KB text", per_paragraph),
         ("entities and relation cues (analyse), one sentence", per_entities),
         ("query_entities, one sentence", per_query)],
        unit="µs",
        target="tens of µs per sentence",
    )

    rng = random.Random(7)
    personalized_pagerank([("a", "b", 1.0)], ["a"])  # warm up: numpy and scipy are imported on first use
    rows: list[tuple[str, list[float]]] = []
    for size in (1_000, 5_000, 20_000):
        edges = scale_free_edges(size, rng)
        nodes = sorted({n for s, o, _ in edges for n in (s, o)})
        samples = []
        for _ in range(max(5, rounds // 10)):
            seeds = rng.sample(nodes, 3)
            t0 = time.perf_counter()
            ranks = personalized_pagerank(edges, seeds)
            samples.append((time.perf_counter() - t0) * 1000)
            assert abs(sum(ranks.values()) - 1.0) < 1e-6
        rows.append((f"personalized_pagerank, {size:,} edges ({len(nodes):,} nodes)", samples))
    table("Personalized PageRank (alpha 0.85, tol 1e-6)", rows, unit="ms", target="5K edges in a few ms")
    table("Multi-hop graph recall (graph_recall, 3 hops)", recall_rows(memories), unit="ms",
          target="a few ms at any size")


def recall_rows(memories: int) -> list[tuple[str, list[float]]]:
    """graph_recall over each eval generator's corpus (``memories`` of them) and its questions."""
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for generator in ("kestrel", "civic"):
            db = open_database(Path(tmp) / f"{generator}.db")
            settings = Settings(home=Path(tmp), workspace=Path(tmp), memory_embedder="none",  # type: ignore[arg-type]
                                _env_file=None)  # type: ignore[call-arg]
            mem = open_memory(db, settings)
            rows_in, asked = build(generator, seed=7, memories=memories, questions=max(40, memories // 12))
            items = [MemoryIn(**{k: v for k, v in m.items() if k in MemoryIn.model_fields}) for m in rows_in]
            for start in range(0, len(items), 500):
                mem.add_many(items[start:start + 500])
            questions = [q.question for q in asked]
            for q in questions[:10]:
                graph_recall(db, q)  # warm the page cache
            samples = []
            for q in questions:
                t0 = time.perf_counter()
                graph_recall(db, q)
                samples.append((time.perf_counter() - t0) * 1000)
            rows.append((f"graph_recall, {generator} corpus, {len(items):,} memories", samples))
            db.close()
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--memories", type=int, default=2000, help="memories per eval corpus for graph_recall")
    args = parser.parse_args()
    main(args.rounds, args.memories)
