"""The web UI's tasks pages: a board of tasks by state, and one task's timeline with its actions.

Same conventions as the other pages (`pages`): server-rendered, login cookie required, every
form carries the CSRF token. The actions (approve, deny, cancel, retry) call the same task
functions as the CLI and the API, and a refused transition is shown, not swallowed.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response

from colony.errors import TaskError, TaskNotFoundError
from colony.server.api._deps import node as node_of
from colony.server.auth import csrf_token, page_auth
from colony.server.web.pages import _not_found, _render, _to_login, templates
from colony.tasks import Task, TaskState
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


@tasks_router.get("/tasks")
def board(request: Request) -> Response:
    if not page_auth(request):
        return _to_login(request)
    n = node_of(request)
    store = open_store(n)
    counts = store.counts()
    columns = [(title, sum(counts[s] for s in states), store.list_tasks(states=states, limit=BOARD_LIMIT))
               for title, states in COLUMNS]
    return _render(request, "tasks.html", {"active": "tasks", "title": "Tasks", "columns": columns,
                                            "counts": counts, "states": STATES, "workers": workers(n)[:10]})


@tasks_router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: TaskId, error: str | None = None) -> Response:
    if not page_auth(request):
        return _to_login(request)
    store = open_store(node_of(request))
    try:
        task = store.get(task_id)
    except TaskNotFoundError:
        return _not_found(request, f"No task {task_id}.")
    return _render(request, "task.html", {"active": "tasks", "title": f"Task {task.id}", "task": task,
                                           "events": store.events(task_id), "error": error,
                                           "actions": _actions(task)})


def _actions(task: Task) -> list[str]:
    if task.state == "awaiting_approval":
        return ["approve", "deny", "cancel"]
    if task.state in ("failed", "cancelled"):
        return ["retry"]
    return [] if task.terminal else ["cancel"]


@tasks_router.post("/tasks/{task_id}/{action}")
def task_action(request: Request, task_id: TaskId, action: Literal["approve", "deny", "cancel", "retry"],
                csrf: Annotated[str, Form(max_length=256)] = "") -> Response:
    if not page_auth(request):
        return _to_login(request)
    if not hmac.compare_digest(csrf.encode(), csrf_token(request).encode()):
        return _render(request, "error.html", {"title": "Not done", "message": "The form was stale; reload the "
                                                "page and try again."}, status=403)
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
    return RedirectResponse(f"/tasks/{task_id}", status_code=303)
