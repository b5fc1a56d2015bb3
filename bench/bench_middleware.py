"""Middleware overhead per tool call: a no-op tool through the whole governance stack.

Run: .venv/bin/python bench/bench_middleware.py [--calls N]
Measures the full `ToolExecutor.call` (validation, breaker, concurrency cap, rate limit,
approval tier, timeout, postcondition, audit row in a real SQLite WAL file) against calling the
tool function directly. Target: median and p99 under 0.3 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).parent))
from _stats import table
from colony.config import Settings
from colony.llm.messages import ToolCall
from colony.store import open_database
from colony.store.sqlite_records import SqliteRecordStore
from colony.tools.middleware import ToolExecutor
from colony.tools.registry import ToolContext, ToolRegistry, tool
from colony.tools.workspace import Workspace


class NoArgs(BaseModel):
    value: int = 0


@tool()
async def noop(ctx: ToolContext, args: NoArgs) -> str:
    """Does nothing."""
    return "ok"


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            home=Path(tmp), workspace=Path(tmp), tool_policy={"noop": "allow"},
            tool_rate_limit=10 * calls, _env_file=None,  # type: ignore[call-arg]
        )
        db = open_database(Path(tmp) / "bench.db")
        ex = ToolExecutor(ToolRegistry([noop]), settings, SqliteRecordStore(db))
        ctx = ToolContext(workspace=Workspace(tmp), settings=settings, session_id="s", turn_id="t")
        direct: list[float] = []
        stack: list[float] = []
        for i in range(200):  # warm up
            await ex.call(ToolCall(id=f"w{i}", name="noop", arguments={"value": i}), ctx)
        for i in range(calls):
            t0 = time.perf_counter()
            await noop.fn(ctx, NoArgs(value=i))
            direct.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            result = await ex.call(ToolCall(id=f"c{i}", name="noop", arguments={"value": i}), ctx)
            stack.append((time.perf_counter() - t0) * 1000)
            assert result.outcome == "ok"
        db.close()
    table(
        "Tool middleware overhead per call",
        [("no-op tool called directly", direct), ("no-op tool through the full stack + audit", stack)],
        target="median and p99 under 0.3 ms (full stack)",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    asyncio.run(main(parser.parse_args().calls))
