"""Running the benchmark: through the agent loop, or with the canonical solutions (a harness check).

Agent mode gives each problem to a fresh turn of the node's agent in a scratch workspace under
``$COLONY_HOME/bench/<run>``. The agent must write its solution file with its tools (writes
inside that workspace are approved automatically; everything else that asks is denied); the
harness then runs the hidden tests in the sandbox. If the agent wrote no file, the last Python
code block of its answer is used, so a model that answers in text is still scored, not errored.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from colony.agent.loop import run_turn_collect
from colony.bench.harness import Verdict, verify, verify_many
from colony.bench.problems import Problem, Suite, load_problems, shard
from colony.bench.runs import deprioritized, save_run, stagnating
from colony.bench.scoring import Score, score
from colony.config import Settings
from colony.llm.model import Model
from colony.store import Database
from colony.tools.approval import ApprovalRequest, Decision

__all__ = ["Mode", "RunReport", "run_benchmark", "select_problems", "solution_path", "solve", "task_prompt"]

Mode = Literal["agent", "canonical"]
_CODE_BLOCK = re.compile(r"```(?:python|py)?\n(.*?)```", re.DOTALL)


class RunReport(BaseModel):
    run_id: str
    suite: str
    mode: Mode
    model: str
    shard: str
    result: Score
    verdicts: list[Verdict]
    skipped: list[str]
    tokens: int
    wall_s: float
    stagnating: bool


def solution_path(problem: Problem) -> str:
    """Where the agent is asked to write its solution, relative to the run's workspace."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", problem.id) + "/solution.py"


def task_prompt(problem: Problem) -> str:
    return (
        "Solve this Python programming problem. Write the complete code — imports and the full "
        f"definition of `{problem.entry_point}` — to the file `{solution_path(problem)}` with the write_file "
        "tool. Hidden tests will call it; do not print anything.\n\n"
        f"```python\n{problem.prompt}```"
    )


def select_problems(db: Database, suite: Suite, shard_spec: tuple[int, int], limit: int | None,
            include_deprioritized: bool) -> tuple[list[Problem], list[str]]:
    problems = shard(load_problems(suite), *shard_spec)
    skipped: list[str] = []
    if not include_deprioritized:
        stuck = deprioritized(db)
        skipped = [p.id for p in problems if p.id in stuck]
        problems = [p for p in problems if p.id not in stuck]
    return (problems[:limit] if limit else problems), skipped


async def solve(problem: Problem, model: Model, settings: Settings, workdir: Path) -> tuple[str, int]:
    """One fresh agent turn on ``problem`` in ``workdir``: the solution it wrote (or its last code block) and its tokens."""
    from colony.node import Node  # deferred: the node pulls in memory and tools

    async def approve_writes(request: ApprovalRequest) -> Decision:
        return "approved" if request.tool in ("write_file", "patch_file") else "denied"

    node = Node(settings.model_copy(update={"workspace": workdir, "memory_embedder": "none",
                                            "memory_record_episodes": False}), approver=approve_writes)
    try:
        final, _ = await run_turn_collect(await node.agent(model), node.deps, task_prompt(problem), surface="bench")
    finally:
        await node.aclose()
    written = workdir / solution_path(problem)
    if written.is_file():
        return written.read_text(encoding="utf-8"), final.usage.total_tokens
    blocks = _CODE_BLOCK.findall(final.text)
    return (blocks[-1] if blocks else ""), final.usage.total_tokens


async def run_benchmark(
    settings: Settings, db: Database, *, suite: Suite = "colony", mode: Mode = "agent", model: Model | None = None,
    model_name: str = "", shard_spec: tuple[int, int] = (1, 1), limit: int | None = None,
    include_deprioritized: bool = False, workers: int = 2, on_verdict: Callable[[Verdict], None] | None = None,
    selection: tuple[list[Problem], list[str]] | None = None,
) -> RunReport:
    """Run (a shard of) the benchmark, store the run, and report scores and rules.

    ``selection`` is `select_problems`' answer when the caller already has it (to size a
    progress bar); otherwise the problems are selected here.
    """
    started = time.perf_counter()
    problems, skipped = selection or select_problems(db, suite, shard_spec, limit, include_deprioritized)
    tokens: dict[str, int] = {}
    if mode == "canonical":
        verdicts = verify_many([(p, p.solution) for p in problems], workers=workers, colony_home=settings.home,
                               on_verdict=on_verdict)
        model_name = "canonical"
    else:
        if model is None:
            raise ValueError("agent mode needs a model")
        run_dir = settings.home / "bench" / uuid.uuid4().hex[:12]
        run_dir.mkdir(parents=True, exist_ok=True)
        verdicts = []
        for problem in problems:  # one at a time: turns share the model's rate limits
            code, tokens[problem.id] = await solve(problem, model, settings, run_dir)
            verdict = verify(problem, code, colony_home=settings.home)
            verdicts.append(verdict)
            if on_verdict is not None:
                on_verdict(verdict)
    result = score([(v.tier, v.passed) for v in verdicts])
    shard_text = f"{shard_spec[0]}/{shard_spec[1]}"
    if limit:
        shard_text = f"{shard_text}:first{limit}"  # a partial run never measures the commit gate
    wall_s = time.perf_counter() - started
    run_id = save_run(db, suite=suite, model=model_name or "unknown", shard=shard_text, result=result,
                      verdicts=verdicts, tokens=tokens, wall_s=wall_s)
    return RunReport(run_id=run_id, suite=suite, mode=mode, model=model_name or "unknown", shard=shard_text,
                     result=result, verdicts=verdicts, skipped=skipped, tokens=sum(tokens.values()),
                     wall_s=round(wall_s, 2), stagnating=stagnating(db, suite))
