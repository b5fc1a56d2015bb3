"""Agent-loop overhead per turn, excluding model time.

Run: .venv/bin/python bench/bench_loop.py [--turns N]
A FunctionModel answers instantly: the first request asks for three tool calls, the second
answers. Everything else is real: perception, context assembly, SQLite writes of messages,
audit rows, llm calls, episode. The model's own time is measured and subtracted.
Target: under 3 ms median per turn.
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
from colony.agent.loop import Agent, RunDeps, run_turn_collect
from colony.config import Settings
from colony.llm.messages import AssistantMessage, Message, ToolCall, ToolResultMessage
from colony.store import open_database
from colony.store.sqlite_records import SqliteRecordStore
from colony.testing import AgentInfo, FunctionModel
from colony.tools.middleware import ToolExecutor
from colony.tools.registry import ToolContext, ToolRegistry, tool
from colony.tools.workspace import Workspace


class LookupArgs(BaseModel):
    key: str


@tool()
async def lookup(ctx: ToolContext, args: LookupArgs) -> str:
    """Look a key up."""
    return f"value of {args.key}"


model_time = [0.0]


def instant(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
    t0 = time.perf_counter()
    try:
        if isinstance(messages[-1], ToolResultMessage):
            return "All three looked up."
        return AssistantMessage(
            tool_calls=[ToolCall(id=f"c{i}", name="lookup", arguments={"key": f"k{i}"}) for i in range(3)]
        )
    finally:
        model_time[0] += time.perf_counter() - t0


async def main(turns: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            home=Path(tmp), workspace=Path(tmp), tool_policy={"lookup": "allow"},
            tool_rate_limit=100 * turns, _env_file=None,  # type: ignore[call-arg]
        )
        db = open_database(Path(tmp) / "bench.db")
        records = SqliteRecordStore(db)
        deps = RunDeps(
            records=records, executor=ToolExecutor(ToolRegistry([lookup]), settings, records),
            workspace=Workspace(tmp), settings=settings,
        )
        agent = Agent(model=FunctionModel(instant))
        samples: list[float] = []
        session = None
        for i in range(turns + 20):
            model_time[0] = 0.0
            t0 = time.perf_counter()
            fin, _ = await run_turn_collect(agent, deps, f"Look up k0, k1 and k2 please ({i})", session_id=session)
            elapsed = time.perf_counter() - t0 - model_time[0]
            assert fin.status == "completed" and fin.tool_calls == 3
            session = None if i % 10 == 9 else fin.session_id  # sessions with some history
            if i >= 20:
                samples.append(elapsed * 1000)
        db.close()
    table(
        "Agent-loop overhead per turn (3 tool calls, model time excluded)",
        [("turn: perceive + context + 2 requests + 3 tools", samples)],
        target="median under 3 ms",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=500)
    asyncio.run(main(parser.parse_args().turns))
