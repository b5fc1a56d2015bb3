"""The web UI's tasks pages: a board of tasks by state, and one task's timeline with its actions.

Same conventions as the other pages (`pages`): server-rendered, login cookie required, every
form carries the CSRF token. A task is posted from the board's form (validated by the same
`TaskSpec` as the API and the CLI); the actions (approve, deny, cancel, retry) are on the board's
rows and on a task's page, call the same task functions as the CLI and the API, and a refused
transition is shown, not swallowed.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from colony.errors import TaskError, TaskNotFoundError
from colony.market.queries import agent_label, agent_names
from colony.server.api._deps import node as node_of
from colony.server.auth import csrf_token, page_auth
from colony.server.errors import describe_error
from colony.server.web.pages import _not_found, _render, _to_login, templates
from colony.tasks import Task, TaskSpec, TaskState
from colony.tasks.autonomy import open_store, workers
from colony.tasks.hitl import decide
from colony.tasks.machine import STATES

__all__ = ["BOARD_LIMIT", "COLUMNS", "tasks_router", "unixtime"]

tasks_router = APIRouter(include_in_schema=False)


def unixtime(stamp: float | None) -> str:
    """Unix seconds as ``YYYY-MM-DD HH:MM:SS`` UTC (task times are floats, not ISO strings)."""
    return "" if stamp is None else datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


templates.env.filters["unixtime"] = unixtime

#: Tasks shown per column of the board.
BOARD_LIMIT = 200
#: The board's columns: what a person looks for, in the order work flows.
COLUMNS: list[tuple[str, tuple[TaskState, ...]]] = [
    ("Queued", ("posted", "bidding", "retry_wait")),
    ("Needs you", ("awaiting_approval",)),
    ("Running", ("assigned", "executing")),
    ("Done", ("completed",)),
    ("Stopped", ("failed", "cancelled")),
]
TaskId = Annotated[str, PathParam(max_length=64, pattern=r"^task_[0-9a-f]{1,32}$")]


def _board(request: Request, *, error: str | None = None, form: dict[str, str] | None = None,
           status: int = 200) -> Response:
    n = node_of(request)
    store = open_store(n)
    counts = store.counts()
    columns = [(title, sum(counts[s] for s in states), [(t, _actions(t)) for t in
                                                         store.list_tasks(states=states, limit=BOARD_LIMIT)])
               for title, states in COLUMNS]
    return _render(request, "tasks.html", {"active": "tasks", "title": "Tasks", "columns": columns,
                                            "counts": counts, "states": STATES, "workers": workers(n)[:10],
                                            "error": error, "form": form or {}}, status=status)


@tasks_router.get("/tasks")
def board(request: Request) -> Response:
    if not page_auth(request):
        return _to_login(request)
    return _board(request)


def _stale(request: Request) -> Response:
    return _render(request, "error.html", {"title": "Not done", "message": "The form was stale; reload the "
                                           "page and try again."}, status=403)


@tasks_router.post("/tasks")
def post_task(
    request: Request,
    goal: Annotated[str, Form(max_length=64_000)] = "",
    priority: Annotated[str, Form(max_length=10)] = "0",
    approve_first: Annotated[str, Form(max_length=10)] = "",
    csrf: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Post a task from the board's form; a bad one is shown on the board with what was typed."""
    if not page_auth(request):
        return _to_login(request)
    if not hmac.compare_digest(csrf.encode(), csrf_token(request).encode()):
        return _stale(request)
    form = {"goal": goal, "priority": priority, "approve_first": approve_first}
    try:
        spec = TaskSpec(goal=goal, priority=int(priority.strip() or "0"), approval="task" if approve_first else "none")
    except ValueError as exc:  # int() or the spec (pydantic's ValidationError is a ValueError)
        problem = (", ".join(f"{'.'.join(map(str, e['loc']))}: {describe_error(e)}" for e in exc.errors())
                   if isinstance(exc, ValidationError) else "priority must be a whole number from -1000 to 1000")
        return _board(request, error=f"Not posted — {problem}.", form=form, status=422)
    task = open_store(node_of(request)).post(spec, actor="web")
    return RedirectResponse(f"/tasks/{task.id}", status_code=303)


@tasks_router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: TaskId, error: str | None = None) -> Response:
    if not page_auth(request):
        return _to_login(request)
    n = node_of(request)
    store = open_store(n)
    try:
        task = store.get(task_id)
    except TaskNotFoundError:
        return _not_found(request, f"No task {task_id}.")
    # The assignee is an account (names are local to a node): shown as this node's name for it.
    assignee = None if task.assignee is None else agent_label(task.assignee, agent_names(n.keyring))
    return _render(request, "task.html", {"active": "tasks", "title": f"Task {task.id}", "task": task,
                                           "events": store.events(task_id), "error": error,
                                           "actions": _actions(task), "assignee": assignee})


def _actions(task: Task) -> list[str]:
    if task.state == "awaiting_approval":
        return ["approve", "deny", "cancel"]
    if task.state in ("failed", "cancelled"):
        return ["retry"]
    return [] if task.terminal else ["cancel"]


@tasks_router.post("/tasks/{task_id}/{action}")
def task_action(request: Request, task_id: TaskId, action: Literal["approve", "deny", "cancel", "retry"],
                csrf: Annotated[str, Form(max_length=256)] = "",
                back: Annotated[Literal["board", "task"], Form()] = "task") -> Response:
    if not page_auth(request):
        return _to_login(request)
    if not hmac.compare_digest(csrf.encode(), csrf_token(request).encode()):
        return _stale(request)
    store = open_store(node_of(request))
    try:
        if action in ("approve", "deny"):
            decide(store, task_id, action == "approve", actor="web")
        elif action == "cancel":
            store.cancel(task_id, actor="web", reason="cancelled in the web UI")
        else:
            store.retry(task_id, actor="web")
    except TaskNotFoundError:
        return _not_found(request, f"No task {task_id}.")
    except TaskError as exc:
        return task_page(request, task_id, error=str(exc))
    return RedirectResponse("/tasks" if back == "board" else f"/tasks/{task_id}", status_code=303)
