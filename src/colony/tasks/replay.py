"""`colony tasks replay`: re-run a finished task's decision path against its recording.

No live model and no tool runs: every model response and tool result comes from the task's
checkpoints. The agent loop itself runs for real, with today's persona, tools and policy, and
every request it builds is compared with the recorded one. A replay with no divergences rebuilt
each request byte for byte and took the same decisions; a divergence names the first step where
a changed prompt, tool or policy would have sent the task another way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel

from colony.agent.loop import RunDeps, run_turn_collect
from colony.errors import TaskError
from colony.node import Node
from colony.tasks import plans
from colony.tasks.checkpoints import load_checkpoints
from colony.tasks.context_tape import tape_agent
from colony.tasks.recording import Divergence, TapeExecutor, TapeModel
from colony.tasks.runner import task_settings
from colony.tasks.store import TaskStore
from colony.tools.approval import deny_all

__all__ = ["ReplayReport", "replay_task"]


class ReplayReport(BaseModel):
    task_id: str
    turns: int
    model_steps: int
    tool_steps: int
    divergences: list[Divergence]
    decisions: list[dict[str, Any]]
    recorded_decisions: list[dict[str, Any]]

    @property
    def identical(self) -> bool:
        return not self.divergences and self.decisions == self.recorded_decisions


async def replay_task(node: Node, store: TaskStore, task_id: str) -> ReplayReport:
    """Replay ``task_id`` from its checkpoints and report where today's setup would diverge."""
    task = store.get(task_id)
    tape = {c.step: c for c in load_checkpoints(store, task_id)}
    if "summary" in tape:
        raise TaskError(f"Task {task_id}'s checkpoints were compacted after the retention period; "
                        "only its summary and events remain, which is not enough to replay it.")
    if not tape:
        raise TaskError(f"Task {task_id} has no recorded steps yet; replay needs a task that has run.")
    steps = plans.load_plan(store, task_id)
    runs = [(plans.step_prompt(task.goal, steps, i), f"p{i}/") for i in range(len(steps))] if steps else [(task.goal, "")]
    runs = [(p, pre) for p, pre in runs if any(k.startswith(pre) for k in tape)]
    settings = task_settings(node.settings, task)
    divergences: list[Divergence] = []
    decisions: list[dict[str, Any]] = []
    used: set[str] = set()
    model_steps = tool_steps = 0
    for prompt, prefix in runs:
        model = TapeModel(tape, prefix=prefix)
        executor = TapeExecutor(node.registry, settings, node.records, tape=tape, prefix=prefix, approver=deny_all,
                                replay=True)
        agent = tape_agent(await node.agent(model), tape, prefix=prefix, save=None, replay=True)
        if task.budget.tool_calls is not None:
            agent = dataclasses.replace(agent, max_tool_calls=min(agent.max_tool_calls, task.budget.tool_calls))
        deps = RunDeps(records=node.records, executor=executor, workspace=node.workspace, settings=settings)
        await run_turn_collect(agent, deps, prompt, surface="replay")
        divergences += model.divergences + executor.divergences
        decisions += model.decisions
        model_steps += model.steps
        tool_steps += executor.steps
        used |= {f"{prefix}m{i}" for i in range(model.steps)} | {f"{prefix}t{i}" for i in range(executor.steps)}
    for key in sorted({k for k, c in tape.items() if c.kind in ('model', 'tool')} - used):
        divergences.append(Divergence(step=key, kind="unused", detail="recorded, but the replayed run never reached it"))
    recorded = [tape[k].body["response"] for k in _model_keys(tape, [pre for _, pre in runs])]
    return ReplayReport(task_id=task_id, turns=len(runs), model_steps=model_steps, tool_steps=tool_steps,
                        divergences=divergences, decisions=decisions, recorded_decisions=recorded)


def _model_keys(tape: dict[str, Any], prefixes: list[str]) -> list[str]:
    keys: list[str] = []
    for prefix in prefixes:
        i = 0
        while f"{prefix}m{i}" in tape:
            keys.append(f"{prefix}m{i}")
            i += 1
    return keys
