"""The graph channel's costs: triple extraction per sentence, Personalized PageRank per neighbourhood.

Run: .venv/bin/python bench/bench_graph.py [--rounds N]
Extraction runs over a mix of fact-like sentences (lists, passives, negations, identifiers, long
clauses); PageRank over random scale-free neighbourhoods of 1K, 5K and 20K edges with 3 seeds, as
recall would hand it after `bounded_neighbourhood`. Targets: extraction in tens of microseconds
per sentence; PageRank on 5K edges (the recall cap) in a few milliseconds.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _stats import table
from colony.memory.graph import Edge, extract_triples, personalized_pagerank, query_entities

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


def main(rounds: int) -> None:
    per_sentence: list[float] = []
    per_query: list[float] = []
    for _ in range(rounds):
        for sentence in SENTENCES:
            t0 = time.perf_counter()
            extract_triples(sentence)
            per_sentence.append((time.perf_counter() - t0) * 1e6)
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
        "Triple extraction",
        [("extract_triples, one sentence", per_sentence), ("extract_triples, per sentence of a 7 KB text", per_paragraph),
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    main(parser.parse_args().rounds)
