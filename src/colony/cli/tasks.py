"""`colony tasks` and `colony autonomy`: the durable task queue from the command line.

Reads take ``--json``; people get Rich tables and a timeline. Errors name the fix and exit with
`ExitCode` values: 1 for a missing task or a refused transition, 3 when no model is reachable
(autonomy), 4 when the database cannot be opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from colony.cli._common import ExitCode, err, fail, load, out, print_json, reporting
from colony.cli.memory import parse_duration
from colony.errors import ColonyError
from colony.identity import Keyring
from colony.ledger.amounts import parse_amount
from colony.market.queries import agent_label, agent_names
from colony.node import Node
from colony.store import open_database
from colony.tasks import SqliteTaskStore, Task, TaskSpec, TaskStore
from colony.tasks.autonomy import open_store, run_daemon, run_once
from colony.tasks.hitl import decide
from colony.tasks.models import Budget, PlanStep
from colony.tasks.replay import replay_task

__all__ = ["autonomy", "tasks_app"]

tasks_app = typer.Typer(
    name="tasks",
    help=(
        "Durable tasks: post work for the autonomy loop, follow it through its states, approve "
        "paused tasks and replay finished ones against their recording.\n\n"
        "States: posted → assigned → executing → completed | failed | cancelled, with "
        "awaiting_approval (a person decides) and retry_wait (backing off before another attempt)."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


class StateOpt(StrEnum):
    posted = "posted"
    bidding = "bidding"
    assigned = "assigned"
    executing = "executing"
    awaiting_approval = "awaiting_approval"
    retry_wait = "retry_wait"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class DefaultOpt(StrEnum):
    deny = "deny"
    fail = "fail"


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@contextlib.contextmanager
def _store() -> Iterator[TaskStore]:
    """The node's task queue: PostgreSQL when COLONY_DATABASE_URL is set, else the SQLite file."""
    settings = load()
    base_s, max_s = settings.task_backoff_base_s, settings.task_backoff_max_s
    with reporting():
        if settings.database_url is not None:
            from colony.store.pg import open_pg  # psycopg is an optional extra
            from colony.tasks.pg_store import PgTaskStore

            pg = open_pg(settings.database_url.get_secret_value(), max_size=2)
            try:
                yield PgTaskStore(pg, backoff_base_s=base_s, backoff_max_s=max_s)
            finally:
                pg.close()
            return
        db = open_database(settings.db_path)
        try:
            yield SqliteTaskStore(db, backoff_base_s=base_s, backoff_max_s=max_s)
        finally:
            db.close()


def _assignee(account: str) -> str:
    """A task's assignee (an agent's account) as a person reads it: this node's name for the agent,
    else a short npub (`colony.market.queries.agent_label`); keys that cannot be opened leave the npub."""
    settings = load()
    db = open_database(settings.db_path)
    try:
        names = agent_names(Keyring(db, settings))
    except ColonyError:
        names = {}
    finally:
        db.close()
    return agent_label(account, names)


def _task_json(store: TaskStore, task: Task, *, events: bool = False) -> dict[str, object]:
    data: dict[str, object] = task.model_dump(mode="json")
    if events:
        data["events"] = [e.model_dump(mode="json") for e in store.events(task.id)]
    return data


@tasks_app.command()
def add(
    goal: Annotated[str, typer.Argument(metavar="GOAL", help="What the agent should do, in a full sentence.")],
    priority: Annotated[int, typer.Option("--priority", "-p", min=-1000, max=1000, help="Higher runs first.")] = 0,
    deadline_in: Annotated[str | None, typer.Option("--deadline-in", help="Due in 90s, 30m, 12h, 7d, 2w (sooner runs first).")] = None,
    skill: Annotated[list[str] | None, typer.Option("--skill", help="A skill a worker needs (repeat).")] = None,
    after: Annotated[list[str] | None, typer.Option("--after", metavar="ID", help="Wait for this task (repeat).")] = None,
    parent: Annotated[str | None, typer.Option("--parent", metavar="ID", help="The task this one is part of.")] = None,
    step: Annotated[list[str] | None, typer.Option("--step", help="A plan step, in order (repeat).")] = None,
    tokens: Annotated[int | None, typer.Option("--tokens", min=1, help="Token budget.")] = None,
    tool_calls: Annotated[int | None, typer.Option("--tool-calls", min=0, help="Tool-call budget.")] = None,
    credits_: Annotated[str | None, typer.Option("--credits", help="Credit budget: credits (5, 0.25) or micro-credits (250000u); a market auction's default reserve.")] = None,
    attempts: Annotated[int, typer.Option("--attempts", min=1, max=1000, help="Attempts before failing.")] = 3,
    approve_first: Annotated[bool, typer.Option("--approve-first", help="A person approves before work starts.")] = False,
    pause_on: Annotated[list[str] | None, typer.Option("--pause-on", metavar="TOOL", help="Ask a person before this tool (repeat).")] = None,
    on_timeout: Annotated[DefaultOpt, typer.Option("--on-timeout", help="An unanswered pause: deny or fail.")] = DefaultOpt.deny,
    approval_timeout: Annotated[float | None, typer.Option("--approval-timeout", min=0.01, help="Seconds a person has.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the task as JSON.")] = False,
) -> None:
    """Post a task to the queue and print its id.

    Examples:

        colony tasks add "Summarize notes.txt into summary.md" --priority 5

        colony tasks add "Deploy the report" --after task_1a2b --pause-on write_file --on-timeout fail

        colony tasks add "Release notes" --step "Collect merged changes" --step "Write notes.md"
    """
    budget_credits = None
    if credits_ is not None:
        try:  # micro-credits, as the ledger and the market count them; "0" is a budget of nothing
            budget_credits = 0 if credits_.strip() in ("0", "0u") else parse_amount(credits_)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--credits") from None
    deadline = None
    if deadline_in is not None:
        try:
            deadline = time.time() + parse_duration(deadline_in).total_seconds()
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--deadline-in") from None
    try:
        spec = TaskSpec(goal=goal, priority=priority, deadline=deadline, skills=skill or [], depends_on=after or [], parent_id=parent,
                        plan=[PlanStep(title=s) for s in step or []], max_attempts=attempts,
                        budget=Budget(tokens=tokens, tool_calls=tool_calls, credits=budget_credits),
                        approval="task" if approve_first else "none", pause_tools=pause_on or [],
                        approval_default=on_timeout.value, approval_timeout_s=approval_timeout)
    except ValueError as exc:
        fail(f"invalid task: {exc}", ExitCode.FAILED)
    with _store() as store:
        task = store.post(spec, actor="cli")
        if as_json:
            print_json(_task_json(store, task))
            return
    print(task.id)


@tasks_app.command("list")
def list_(
    state: Annotated[list[StateOpt] | None, typer.Option("--state", "-s", help="Only these states (repeat).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="Rows to show.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tasks, most important first, with a count per state.

    Examples:

        colony tasks list

        colony tasks list --state awaiting_approval --state failed --json
    """
    with _store() as store:
        tasks = store.list_tasks(states=[s.value for s in state] if state else None, limit=limit)
        counts = store.counts()
    if as_json:
        print_json({"counts": counts, "tasks": [t.model_dump(mode="json") for t in tasks]})
        return
    out.print(" · ".join(f"{k} {v}" for k, v in counts.items() if v) or "no tasks yet", highlight=False)
    if not tasks:
        return
    table = Table(title_justify="left")
    for name in ("id", "state", "prio", "tries", "updated (UTC)", "goal"):
        # On a narrow terminal the fixed columns give way (ellipsis) before the goal becomes unreadable.
        if name == "goal":
            table.add_column(name, overflow="fold", min_width=24, ratio=1)
        else:
            table.add_column(name, no_wrap=True, overflow="ellipsis")
    for t in tasks:
        table.add_row(t.id, t.state, str(t.priority), f"{t.attempts}/{t.max_attempts}", _when(t.updated_at),
                      escape(t.goal[:120]))
    out.print(table)


@tasks_app.command()
def show(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the task and its events as JSON.")] = False,
) -> None:
    """Show a task and its timeline: every transition, who made it, when and why.

    Examples:

        colony tasks show task_1a2b3c4d

        colony tasks show task_1a2b3c4d --json
    """
    with _store() as store:
        task = store.get(task_id)
        events = store.events(task_id)
        if as_json:
            print_json(_task_json(store, task, events=True))
            return
    out.print(f"[bold]{task.id}[/] · {task.state} · priority {task.priority} · attempt {task.attempts}/"
              f"{task.max_attempts}", highlight=False)
    out.print(escape(task.goal), highlight=False)
    if task.assignee is not None:
        out.print(f"assigned to: {escape(_assignee(task.assignee))}", highlight=False)
    if task.deadline is not None:
        out.print(f"due: {_when(task.deadline)} UTC", highlight=False)
    if task.depends_on:
        out.print(f"waits for: {', '.join(task.depends_on)} ({task.waiting_on} not done)", highlight=False)
    if task.awaiting:
        out.print(f"[yellow]awaiting approval:[/] {escape(str(task.awaiting))} — colony tasks approve {task.id}",
                  highlight=False)
    if task.result:
        out.print(f"result: {escape(task.result)}", highlight=False)
    if task.error:
        out.print(f"[red]error:[/] {escape(task.error)}", highlight=False)
    table = Table(title="timeline", title_justify="left")
    for name in ("when (UTC)", "from", "to", "by", "why"):
        if name == "why":
            table.add_column(name, overflow="fold", min_width=24, ratio=1)
        else:
            table.add_column(name, no_wrap=True, overflow="ellipsis")
    for e in events:
        table.add_row(_when(e.at), e.from_state or "", e.to_state, escape(e.actor), escape(e.reason))
    out.print(table)


async def _announce_pauses(store: TaskStore, every_s: float = 1.0) -> None:
    """Say on stderr, once per pause, that a task is waiting for a person and how to answer it.

    Without this, `colony autonomy` sits silent until the approval times out.
    """
    seen: set[tuple[str, str]] = set()
    while True:
        for task in store.list_tasks(states=["awaiting_approval"], limit=50):
            key = (task.id, json.dumps(task.awaiting, sort_keys=True, default=str))
            if key in seen:
                continue
            seen.add(key)
            what = (task.awaiting or {}).get("tool") or "the task to start"
            left = "" if task.awaiting_expires is None else f", {max(0, int(task.awaiting_expires - time.time()))} s left"
            err.print(f"[yellow]{task.id} is waiting for approval[/] ({escape(str(what))}{left}): "
                      f"colony tasks approve {task.id}  (or --deny)", highlight=False)
        await asyncio.sleep(every_s)


@tasks_app.command()
def cancel(task_id: Annotated[str, typer.Argument(metavar="ID")],
           reason: Annotated[str, typer.Option(help="Why, for the timeline.")] = "cancelled from the CLI") -> None:
    """Cancel a task that has not finished (a worker running it stops at its next heartbeat).

    Examples:

        colony tasks cancel task_1a2b3c4d --reason "superseded"
    """
    with _store() as store:
        store.cancel(task_id, actor="cli", reason=reason)
    out.print(f"cancelled {task_id}", highlight=False)


@tasks_app.command()
def retry(task_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Put a failed or cancelled task back in the queue with fresh attempts.

    Examples:

        colony tasks retry task_1a2b3c4d
    """
    with _store() as store:
        store.retry(task_id, actor="cli")
    out.print(f"{task_id} is queued again", highlight=False)


@tasks_app.command()
def approve(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    deny: Annotated[bool, typer.Option("--deny", help="Refuse instead of approving.")] = False,
    reason: Annotated[str, typer.Option(help="Why, for the timeline.")] = "",
) -> None:
    """Answer a task waiting in awaiting_approval: approve it (default) or --deny it.

    Examples:

        colony tasks approve task_1a2b3c4d

        colony tasks approve task_1a2b3c4d --deny --reason "not on production"
    """
    with _store() as store:
        task = decide(store, task_id, not deny, actor="cli", reason=reason)
    out.print(f"{task_id} {'denied' if deny else 'approved'}; now {task.state}", highlight=False)


@tasks_app.command()
def replay(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-run a task's decisions against its recording: no model, no tool runs.

    Exits 0 when the replay follows the recording exactly, 1 when today's prompt, tools or
    policy would send the task another way (each divergence is listed).

    Examples:

        colony tasks replay task_1a2b3c4d

        COLONY_PERSONA="You are terse." colony tasks replay task_1a2b3c4d --json
    """
    settings = load()

    async def go() -> None:
        node = Node(settings)
        try:
            report = await replay_task(node, open_store(node), task_id)
        finally:
            await node.aclose()
        if as_json:
            print_json({**report.model_dump(mode="json"), "identical": report.identical})
        else:
            out.print(f"replayed {report.turns} turn(s): {report.model_steps} model and {report.tool_steps} tool "
                      "step(s) from the recording", highlight=False)
            for d in report.divergences:
                out.print(f"[yellow]diverges at {d.step} ({d.kind}):[/] {escape(d.detail)}", highlight=False)
            if report.identical:
                out.print("[green]identical:[/] same requests, same decisions", highlight=False)
        if not report.identical:
            raise SystemExit(int(ExitCode.FAILED))

    with reporting():
        asyncio.run(go())


def autonomy(
    once: Annotated[bool, typer.Option("--once", help="One pass: reap, run the best ready task, exit.")] = False,
    max_tasks: Annotated[int | None, typer.Option("--max-tasks", min=1, help="Stop after this many tasks.")] = None,
) -> None:
    """Work the task queue with the agent: reap expired leases, run the best ready task, repeat.

    Without --once it runs until Ctrl-C or SIGTERM, finishing the task in hand before it stops
    (a second signal stops at once; the lease then expires and another worker resumes the task).

    Examples:

        colony autonomy --once

        COLONY_AUTONOMY_INTERVAL_S=2 colony autonomy
    """
    settings = load()

    async def go() -> None:
        node = Node(settings)
        watcher = asyncio.create_task(_announce_pauses(open_store(node)))
        try:
            if once:
                run = await run_once(node)
                if run is None:
                    err.print("no task is ready", highlight=False)
                else:
                    out.print(f"{run.task_id}: {run.outcome} {escape(run.detail)}", highlight=False)
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            current = asyncio.current_task()

            def on_signal() -> None:
                if stop.is_set() and current is not None:
                    current.cancel()
                stop.set()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
            err.print("autonomy loop running; Ctrl-C finishes the current task and stops", highlight=False)
            done = await run_daemon(node, stop, max_tasks=max_tasks)
            err.print(f"stopped after {done} task(s)", highlight=False)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await node.aclose()

    with reporting():
        try:
            asyncio.run(go())
        except asyncio.CancelledError:
            fail("stopped while a task ran; it resumes from its checkpoints", ExitCode.CANCELLED)
