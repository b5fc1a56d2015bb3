"""Embedding speed: load time, throughput at batch 64 and single-query latency, per embedder.

Run: .venv/bin/python bench/bench_embed.py [--sentences N] [--queries N] [--kinds minilm,static]

Load time is measured in fresh subprocesses (imports included, files in the page cache), the
median of three. Throughput embeds memory-like sentences of 8-30 words in calls of 64;
latency embeds one short query per call, the way `Memory.recall` does.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _stats import machine, percentile
from colony.memory.embed import EmbedderKind, load_embedder

SUBJECTS = ["Alice", "Bob", "the user", "the build server", "our team", "the customer", "Dr. Okafor", "the cat"]
VERBS = ["prefers", "moved to", "is allergic to", "deployed", "forgot", "reviewed", "asked about", "bought"]
OBJECTS = [
    "green tea in the morning", "Lyon in 2021", "peanuts and shellfish", "PostgreSQL 15 on the new host",
    "the password for the staging database", "the quarterly report due in April", "a golden retriever called Rex",
    "the invoice from the hardware supplier", "a trip to Kyoto next spring", "the flaky integration tests",
]
TAILS = ["", "according to the meeting notes", "after a long discussion with the on-call engineer",
         "which surprised everyone at the weekly planning session", "and wants to be reminded next Tuesday"]


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}".strip() + "."
        for _ in range(n)
    ]


def load_seconds(kind: EmbedderKind, runs: int = 3) -> float:
    code = (
        "import time; t = time.perf_counter(); from colony.memory.embed import load_embedder; "
        f"e = load_embedder({kind!r}); e.embed(['warm up']); print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def throughput(kind: EmbedderKind, texts: list[str], batch: int) -> float:
    embedder = load_embedder(kind)
    embedder.embed(texts[:batch])  # warm up
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        embedder.embed(texts[i:i + batch])
    return len(texts) / (time.perf_counter() - started)


def latency_ms(kind: EmbedderKind, queries: list[str]) -> list[float]:
    embedder = load_embedder(kind)
    for q in queries[:10]:
        embedder.embed([q])
    samples = []
    for q in queries:
        started = time.perf_counter()
        embedder.embed([q])
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=0, help="sentences for throughput (default: 2,000 MiniLM, 50,000 static)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--kinds", default="minilm,static")
    args = parser.parse_args()
    kinds: list[EmbedderKind] = [k for k in ("minilm", "static") if k in args.kinds.split(",")]
    queries = [f"What does {s.split(' ', 2)[1]} {s.split(' ', 2)[2][:30]}?" for s in sentences(args.queries, seed=1)]

    rows = []
    for kind in kinds:
        n = args.sentences or (2_000 if kind == "minilm" else 50_000)
        texts = sentences(n)
        embedder = load_embedder(kind)
        lat = latency_ms(kind, queries)
        rows.append({
            "embedder": embedder.name, "dim": embedder.dim,
            "load_s": load_seconds(kind),
            "batch64_per_s": throughput(kind, texts, 64),
            "single_median_ms": statistics.median(lat), "single_p99_ms": percentile(lat, 99),
        })

    print(f"\nEmbedding speed  ({machine()})")
    print(f"{'embedder':<18} {'dim':>4} {'load s':>8} {'sent/s @64':>12} {'1 query median ms':>18} {'p99 ms':>8}")
    for r in rows:
        print(f"{r['embedder']:<18} {r['dim']:>4} {r['load_s']:>8.2f} {r['batch64_per_s']:>12,.0f} "
              f"{r['single_median_ms']:>18.3f} {r['single_p99_ms']:>8.3f}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
