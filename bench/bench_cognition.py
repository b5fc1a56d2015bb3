"""Cognitive substrate costs: overhead per tool call, HRR on a full workspace, predictor accuracy.

Run: .venv/bin/python bench/bench_cognition.py [--calls N]

1. Substrate overhead per tool call with every module on: `before_call` (prediction, predictor
   forward pass) + `after_call` (surprisal, beliefs, one SGD step, regime, prediction-log row in
   a real SQLite WAL file, blackboard post + HRR encode when surprising). Also the full
   middleware stack with and without the substrate observing. Target: median under 0.5 ms.
2. HRR encode + similarity query on a 30-entry workspace (dimensions 512 and 1024, the default).
3. The step-success predictor's prequential accuracy on a generated audit log vs the constant
   (majority) baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).parent))
from _stats import table
from colony.cognition import build_substrate
from colony.cognition.holographic import Holographic
from colony.cognition.predictor import prequential
from colony.config import Settings
from colony.errors import ToolError
from colony.llm.messages import ToolCall
from colony.store import open_database
from colony.store.sqlite_records import SqliteRecordStore
from colony.tools.middleware import ToolExecutor, ToolResult
from colony.tools.registry import ToolContext, ToolRegistry, tool
from colony.tools.workspace import Workspace


class Args(BaseModel):
    value: int = 0


@tool()
async def noop(ctx: ToolContext, args: Args) -> str:
    """Does nothing."""
    return "ok"


@tool()
async def sometimes(ctx: ToolContext, args: Args) -> str:
    """Fails on every fifth value."""
    if args.value % 5 == 0:
        raise ToolError("sometimes", "failed")
    return "ok"


async def overhead(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp), workspace=Path(tmp), tool_rate_limit=100 * calls, cognition_enabled=True,
                            tool_policy={"noop": "allow", "sometimes": "allow"}, _env_file=None)  # type: ignore[call-arg]
        db = open_database(Path(tmp) / "bench.db")
        sub = build_substrate(db, settings)
        ctx = ToolContext(workspace=Workspace(tmp), settings=settings, session_id="s", turn_id="t")
        plain = ToolExecutor(ToolRegistry([noop, sometimes]), settings, SqliteRecordStore(db))
        watched = ToolExecutor(ToolRegistry([noop, sometimes]), settings, SqliteRecordStore(db))
        watched.observers.append(sub)
        hooks: list[float] = []
        bare: list[float] = []
        with_sub: list[float] = []
        for i in range(300):  # warm up (and fill the board with a few surprises)
            await watched.call(ToolCall(id=f"w{i}", name="sometimes", arguments={"value": i}), ctx)
        for i in range(calls):
            name = "sometimes" if i % 2 else "noop"
            call = ToolCall(id=f"c{i}", name=name, arguments={"value": i})
            result = ToolResult(call_id=call.id, name=name, content="ok", outcome="ok" if i % 5 else "error",
                                approval="allow", latency_ms=0.05)
            t0 = time.perf_counter()
            token = sub.before_call(call, ctx, [])
            sub.after_call(token, result)
            hooks.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            await plain.call(call, ctx)
            bare.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            await watched.call(call, ctx)
            with_sub.append((time.perf_counter() - t0) * 1000)
        db.close()
    table("Substrate overhead per tool call (all modules on)", [
        ("substrate hooks alone (before + after)", hooks),
        ("middleware stack + audit, no substrate", bare),
        ("middleware stack + audit + substrate", with_sub),
    ], target="substrate hooks: median under 0.5 ms")


def hrr(rounds: int, dim: int) -> None:
    rng = random.Random(1)
    words = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(words) for _ in range(20)) for _ in range(30)]
    encode: list[float] = []
    query: list[float] = []
    hits = 0
    for r in range(rounds):
        h = Holographic(dim)
        t0 = time.perf_counter()
        for i, text in enumerate(texts):
            h.add(i, "bench", text)
        encode.append((time.perf_counter() - t0) * 1000)
        target = r % 30
        probe = " ".join(texts[target].split()[:8])
        t0 = time.perf_counter()
        best = h.query(probe, k=1)
        query.append((time.perf_counter() - t0) * 1000)
        hits += best[0][0] == target
    table(f"HRR workspace, 30 entries, dimension {dim}", [
        ("encode 30 entries (bind + superpose)", encode), ("similarity query (unbind all, cosine)", query),
    ])
    print(f"top-1 recall of an entry from 8 of its 20 words: {hits}/{rounds}")


def predictor(n: int) -> None:
    rng = random.Random(3)
    fail_rate = {"read_file": 0.05, "list_dir": 0.02, "run_command": 0.55, "http_get": 0.7, "patch_file": 0.35}
    samples = []
    for i in range(n):
        tool_name = rng.choice(list(fail_rate))
        big = rng.random() < 0.3
        ok = rng.random() >= min(0.95, fail_rate[tool_name] + (0.3 if big else 0.0))
        samples.append((tool_name, f"s{i // 10}", 4000 if big else 20, False, ok))
    acc = prequential(samples)
    print(f"\nStep-success predictor on a generated audit log of {n} calls (prequential): "
          f"accuracy {acc['accuracy']:.3f} vs constant baseline {acc['baseline_accuracy']:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    opts = parser.parse_args()
    asyncio.run(overhead(opts.calls))
    hrr(300, 512)
    hrr(300, 1024)
    predictor(2000)
