"""Memory at scale: ingest throughput, recall latency (all three channels fused, query
embedding included) and database size at 1K, 10K and 100K memories.

Run: .venv/bin/python bench/bench_memory.py [--sizes 1000 10000 100000] [--embedder static|minilm]
The corpus is the retrieval eval's generator (evals/memory) run with many seeds: realistic
facts, events, procedures and identifiers about fictional organisations. The queries are the
eval's 160 questions. Targets at 100K: recall p50 < 25 ms, p95 < 60 ms.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from evals.memory.generate import generate

from _stats import machine, percentile
from colony.config import Settings
from colony.memory import MemoryIn, open_memory
from colony.store import open_database

BATCH = 500


def corpus(n: int) -> list[MemoryIn]:
    out: list[MemoryIn] = []
    seed = 1000
    while len(out) < n:
        for m in generate(seed=seed).memories:
            out.append(MemoryIn(**{k: v for k, v in m.items() if k != "key"}))
        seed += 1
    return out[:n]


def main(sizes: list[int], embedder: str) -> None:
    questions = [q["question"] for q in generate(seed=7).questions]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp), workspace=Path(tmp), memory_embedder=embedder,  # type: ignore[arg-type]
                            _env_file=None)  # type: ignore[call-arg]
        db = open_database(Path(tmp) / "bench.db")
        mem = open_memory(db, settings)
        assert mem.embedder is not None, mem.embedder_error
        data = corpus(max(sizes))
        have = 0
        with Progress() as progress:
            for size in sorted(sizes):
                task = progress.add_task(f"ingest to {size:,}", total=size - have)
                t0 = time.perf_counter()
                while have < size:
                    chunk = data[have:min(size, have + BATCH)]
                    mem.add_many(chunk)
                    have += len(chunk)
                    progress.update(task, advance=len(chunk))
                ingest_s = time.perf_counter() - t0
                added = size - (rows[-1][0] if rows else 0)
                for q in questions[:20]:  # warm caches
                    mem.recall(q, touch=False)
                lat: list[float] = []
                for q in questions:
                    t = time.perf_counter()
                    mem.recall(q, k=5, touch=False)
                    lat.append((time.perf_counter() - t) * 1000)
                db.query("PRAGMA wal_checkpoint(TRUNCATE)")
                size_mb = (Path(tmp) / "bench.db").stat().st_size / 1e6
                rows.append((size, added / ingest_s, percentile(lat, 50), percentile(lat, 95), size_mb))
        db.close()
    print(f"\nMemory at scale  ({machine()}; embedder {embedder})")
    print(f"{'memories':>10} {'ingest/s':>10} {'recall p50 ms':>14} {'recall p95 ms':>14} {'db MB':>8}")
    for size, rate, p50, p95, mb in rows:
        print(f"{size:>10,} {rate:>10.0f} {p50:>14.1f} {p95:>14.1f} {mb:>8.1f}")
    print("target at 100K: p50 < 25 ms, p95 < 60 ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--embedder", choices=["static", "minilm"], default="static")
    a = parser.parse_args()
    main(a.sizes, a.embedder)
