"""Durable tasks over HTTP: post, list, show with the timeline, cancel, retry, approve, replay.

Store calls are short synchronous SQLite transactions, so those routes are plain ``def`` (run
in the thread pool); replay runs the agent loop and is ``async``. Errors keep the API's shape:
404 ``task_not_found``, 409 for a transition the state machine refuses, 422 for a bad body.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field, StrictBool

from colony.errors import DependencyCycleError, IllegalTransitionError, TaskError, TaskNotFoundError
from colony.market.queries import agent_label, agent_names
from colony.node import Node
from colony.server.api._deps import node
from colony.server.auth import require_auth
from colony.server.errors import APIError, errors
from colony.tasks import Task, TaskEvent, TaskSpec, TaskState
from colony.tasks.autonomy import open_store
from colony.tasks.hitl import decide
from colony.tasks.recording import Divergence
from colony.tasks.replay import replay_task

__all__ = ["Approval", "ReplayOut", "TaskDetail", "TaskList", "router"]

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"], dependencies=[Depends(require_auth)])

TaskId = Annotated[str, Path(min_length=1, max_length=64, description="A task id, e.g. task_1a2b3c4d5e6f7a8b.")]


class TaskList(BaseModel):
    counts: dict[str, int]
    tasks: list[Task]


class TaskDetail(BaseModel):
    task: Task
    events: list[TaskEvent]
    assignee_name: str | None = Field(
        default=None, description="The assignee (an agent's account) as a person reads it: this node's name for "
                                  "the agent, or a short npub for an agent of another node sharing the database.")


class Reason(BaseModel):
    reason: str = Field(default="", max_length=2000)


class Approval(BaseModel):
    approve: StrictBool = True
    reason: str = Field(default="", max_length=2000)


class ReplayOut(BaseModel):
    task_id: str
    identical: bool
    turns: int
    model_steps: int
    tool_steps: int
    divergences: list[Divergence]


@contextmanager
def _errors() -> Iterator[None]:
    """Task errors as API errors with the right status."""
    try:
        yield
    except TaskNotFoundError as exc:
        raise APIError(404, exc.code, str(exc)) from None
    except IllegalTransitionError as exc:
        raise APIError(409, exc.code, str(exc), state=exc.from_state) from None
    except DependencyCycleError as exc:
        raise APIError(409, exc.code, str(exc), cycle=exc.cycle) from None
    except TaskError as exc:
        raise APIError(409, exc.code, str(exc)) from None


@router.get("", response_model=TaskList)
def list_tasks(
    n: Annotated[Node, Depends(node)],
    state: Annotated[list[TaskState] | None, Query(description="Only these states (repeat).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TaskList:
    store = open_store(n)
    return TaskList(counts=store.counts(), tasks=store.list_tasks(states=state, limit=limit))


@router.post("", response_model=Task, status_code=201, responses=errors(404, 409))
def post_task(spec: TaskSpec, n: Annotated[Node, Depends(node)]) -> Task:
    with _errors():
        return open_store(n).post(spec, actor="api")


@router.get("/{task_id}", response_model=TaskDetail, responses=errors(404))
def get_task(task_id: TaskId, n: Annotated[Node, Depends(node)]) -> TaskDetail:
    store = open_store(n)
    with _errors():
        task = store.get(task_id)
        events = store.events(task_id)
    name = None if task.assignee is None else agent_label(task.assignee, agent_names(n.keyring))
    return TaskDetail(task=task, events=events, assignee_name=name)


@router.post("/{task_id}/cancel", response_model=Task, responses=errors(404, 409))
def cancel_task(task_id: TaskId, n: Annotated[Node, Depends(node)], body: Reason | None = None) -> Task:
    with _errors():
        return open_store(n).cancel(task_id, actor="api", reason=(body.reason if body else "") or "cancelled via API")


@router.post("/{task_id}/retry", response_model=Task, responses=errors(404, 409))
def retry_task(task_id: TaskId, n: Annotated[Node, Depends(node)]) -> Task:
    with _errors():
        return open_store(n).retry(task_id, actor="api")


@router.post("/{task_id}/approve", response_model=Task, responses=errors(404, 409))
def approve_task(task_id: TaskId, body: Approval, n: Annotated[Node, Depends(node)]) -> Task:
    with _errors():
        return decide(open_store(n), task_id, body.approve, actor="api", reason=body.reason)


@router.post("/{task_id}/replay", response_model=ReplayOut, responses=errors(404, 409, 503))
async def replay(task_id: TaskId, n: Annotated[Node, Depends(node)]) -> Any:
    with _errors():
        report = await replay_task(n, open_store(n), task_id)
    return ReplayOut(task_id=task_id, identical=report.identical, turns=report.turns, model_steps=report.model_steps,
                     tool_steps=report.tool_steps, divergences=report.divergences)
