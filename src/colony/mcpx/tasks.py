"""Task tools for the MCP server: another agent can post work to this node and follow it.

``task_create`` posts a durable task (a write: it asks under the default policy) and
``task_status`` reads one back with its recent events. They are ordinary Colony tools, so the
MCP server runs them through the executor like everything else. They need the node's task
store, so they are built per node rather than registered globally.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from colony.errors import TaskError, ToolError
from colony.node import Node
from colony.tasks.autonomy import open_store
from colony.tasks.models import TaskSpec
from colony.tools.registry import Tool, ToolContext, tool

__all__ = ["TaskCreateArgs", "TaskStatusArgs", "task_tools"]


class TaskCreateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: str = Field(min_length=1, max_length=64_000, description="What the task should achieve.")
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first.")
    skills: list[str] = Field(default_factory=list, description="Skills a worker needs to claim it.")


class TaskStatusArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, max_length=100, description="The id task_create returned.")


def task_tools(node: Node) -> list[Tool]:
    @tool("task_create", effect="write")
    async def task_create(ctx: ToolContext, args: TaskCreateArgs) -> str:
        """Post a durable task to this Colony node; returns its id and state.

        The node's workers run it through the agent loop; poll task_status for the result.
        """
        try:
            task = open_store(node).post(
                TaskSpec(goal=args.goal, priority=args.priority, skills=args.skills), actor="mcp"
            )
        except TaskError as exc:
            raise ToolError("task_create", str(exc)) from exc
        return json.dumps({"task_id": task.id, "state": task.state})

    @tool("task_status")
    async def task_status(ctx: ToolContext, args: TaskStatusArgs) -> str:
        """Read a task's state, result or error, and its last events."""
        store = open_store(node)
        try:
            task = store.get(args.task_id)
            events = store.events(args.task_id)[-10:]
        except TaskError as exc:
            raise ToolError("task_status", str(exc)) from exc
        return json.dumps({
            "task_id": task.id, "goal": task.goal, "state": task.state, "attempts": task.attempts,
            "result": task.result, "error": task.error,
            "events": [e.model_dump(mode="json", include={"to_state", "actor", "reason"}) for e in events],
        })

    return [task_create, task_status]
