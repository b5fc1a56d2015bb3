"""The reliability tests of the task engine, with real processes on one SQLite file.

- contention: 8 worker processes and 16 threads claim 5,000 no-op tasks; each is completed once;
- crash: a worker running real agent tasks is SIGKILLed at random moments 50 times; every task
  still completes exactly once, resumed from its last checkpoint (re-executed steps are counted);
- lease expiry: a worker that stops heartbeating loses its task to another, and its late
  completion is refused.

Workers are forked from a forkserver so that 50 restarts stay fast; each child opens its own
database connections.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from colony.config import Settings
from colony.errors import LeaseLostError
from colony.node import Node
from colony.store import Database, open_database
from colony.tasks import SqliteTaskStore, TaskSpec, state_from_events
from colony.tasks.autonomy import run_once
from colony.testing import Reply, ScriptedModelServer
from colony.tools.builtin import builtin_registry
from colony.tools.registry import ToolContext, tool

#: Workers are forked from a forkserver: a clean, single-threaded process. Forking the test
#: process itself would copy locks held by its other threads (the scripted server, thread pools)
#: and a child could deadlock on one of them.
CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["colony.tasks.autonomy", "colony.tools.builtin", "colony.llm.detect",
                            "openai.resources.chat.completions", __name__])


def _start(target: Callable[..., None], *args: Any) -> BaseProcess:
    proc = CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def _wait(proc: BaseProcess, timeout: float = 90.0) -> int | None:
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise AssertionError(f"worker {proc.pid} did not finish in {timeout}s")
    return proc.exitcode


def _drain(path: str, worker: str) -> None:
    db = Database(path)
    store = SqliteTaskStore(db)
    try:
        while (lease := store.claim(worker, 30)) is not None:
            store.complete(lease, worker)
    finally:
        db.close()


def test_contention_every_task_is_completed_exactly_once(tmp_path: Path) -> None:
    path = str(tmp_path / "contention.db")
    db = open_database(path)
    store = SqliteTaskStore(db)
    store.post_many([TaskSpec(goal=f"no-op {i}") for i in range(5000)])
    started = time.perf_counter()
    procs = [_start(_drain, path, f"proc{i}") for i in range(8)]
    errors: list[BaseException] = []

    def thread_worker(i: int) -> None:
        try:
            _drain(path, f"thread{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread_worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [_wait(p) for p in procs] == [0] * 8
    assert errors == []
    elapsed = time.perf_counter() - started

    events = db.query("SELECT task_id, to_state, actor FROM task_events ORDER BY id")
    completed = Counter(e["task_id"] for e in events if e["to_state"] == "completed")
    claimed = Counter(e["task_id"] for e in events if e["to_state"] == "assigned")
    assert len(completed) == 5000 and set(completed.values()) == {1}
    assert len(claimed) == 5000 and set(claimed.values()) == {1}
    claimer = {e["task_id"]: e["actor"] for e in events if e["to_state"] == "assigned"}
    finisher = {e["task_id"]: e["actor"] for e in events if e["to_state"] == "completed"}
    assert claimer == finisher  # whoever claimed a task is whoever completed it
    assert db.scalar("SELECT count(*) FROM tasks WHERE state != 'completed'") == 0
    workers = set(claimer.values())
    assert any(w.startswith("proc") for w in workers) and any(w.startswith("thread") for w in workers)
    print(f"contention: 5000 tasks by {len(workers)} workers in {elapsed:.2f}s")
    db.close()


# -- crash -----------------------------------------------------------------------------------------

STEPS_PER_TASK = 3


class StepArgs(BaseModel):
    task: str
    step: int


@tool(effect="write")
async def record_step(ctx: ToolContext, args: StepArgs) -> str:
    """Do one step of work and log it (the log counts how often each step really ran)."""
    await asyncio.sleep(0.03)
    with (ctx.workspace.root / "steps.log").open("a") as log:
        log.write(f"{args.task} {args.step}\n")
    return f"step {args.step} of {args.task} done"


def _steps_script(body: dict[str, Any]) -> Reply:
    msgs = body["messages"]
    goal = next(m["content"] for m in reversed(msgs) if m["role"] == "user")
    done = sum(m["role"] == "tool" for m in msgs)
    if done < STEPS_PER_TASK:
        return Reply.tool_calls([("record_step", {"task": goal, "step": done})])
    return Reply.text(f"finished {goal}")


def _crash_worker(env: dict[str, str]) -> None:
    os.environ.update(env)  # the forkserver started before the test set its environment
    registry = builtin_registry()
    registry.register(record_step)
    node = Node(Settings(), registry=registry)

    async def work() -> None:
        try:
            while True:
                run = await run_once(node, worker=f"crash-{os.getpid()}")
                if run is None:
                    if node.db.scalar("SELECT count(*) FROM tasks WHERE state NOT IN ('completed','failed')") == 0:
                        return
                    await asyncio.sleep(0.05)
        finally:
            await node.aclose()

    asyncio.run(work())


@pytest.fixture
def crash_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    with ScriptedModelServer(_steps_script) as server:
        monkeypatch.setenv("COLONY_MODEL_BASE_URL", server.base_url)
        monkeypatch.setenv("COLONY_MODEL_NAME", "scripted")
        monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
        monkeypatch.setenv("COLONY_MEMORY_RECORD_EPISODES", "false")
        monkeypatch.setenv("COLONY_TASK_LEASE_TTL_S", "0.6")
        monkeypatch.setenv("COLONY_TASK_BACKOFF_BASE_S", "0.01")
        monkeypatch.setenv("COLONY_TOOL_POLICY", json.dumps({"record_step": "allow"}))
        yield server


def test_crash_sigkill_50_times_every_task_finishes_once_from_its_checkpoints(crash_env: Any) -> None:
    settings = Settings()
    db = open_database(settings.db_path)
    store = SqliteTaskStore(db)
    tasks = store.post_many([TaskSpec(goal=f"job{i:02d}", max_attempts=1000) for i in range(40)])
    env = {k: v for k, v in os.environ.items() if k.startswith("COLONY_")}
    rng = random.Random(6)
    mid_task = 0
    for kill in range(50):
        proc = _start(_crash_worker, env)
        owner = f"crash-{proc.pid}"
        for _ in range(500):  # until it holds a task: then kill it at a random point of the work
            if db.scalar("SELECT 1 FROM tasks WHERE lease_owner = ?", (owner,)) or not proc.is_alive():
                break
            time.sleep(0.01)
        if kill % 2:
            # Every other kill lands just after a tool step was checkpointed, however slow the
            # machine: those are the kills whose resumed attempt must serve the step, not redo it.
            for _ in range(500):
                if db.scalar(
                    "SELECT 1 FROM task_checkpoints c JOIN tasks t ON t.id = c.task_id WHERE t.lease_owner = ?"
                    " AND c.kind = 'tool' AND c.attempt = t.attempts", (owner,)) or not proc.is_alive():
                    break
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.02))
        else:
            time.sleep(rng.uniform(0.0, 0.25))
        proc.kill()
        proc.join()
        mid_task += db.scalar("SELECT count(*) FROM tasks WHERE lease_owner = ? AND state = 'executing'",
                              (owner,)) > 0
    assert _wait(_start(_crash_worker, env)) == 0

    log = (settings.workspace / "steps.log").read_text().split("\n")
    runs = Counter(line for line in log if line)
    assert set(runs) == {f"{t.goal} {s}" for t in tasks for s in range(STEPS_PER_TASK)}
    re_executed = sum(n - 1 for n in runs.values())
    claims = 0
    for t in tasks:
        events = store.events(t.id)
        assert state_from_events(events) == "completed"
        assert sum(e.to_state == "completed" for e in events) == 1
        assert sum(e.to_state in ("completed", "failed", "cancelled") for e in events) == 1
        claims += sum(e.to_state == "assigned" for e in events)
        final = store.get(t.id)
        assert final.result == f"finished {t.goal}"
    # Each kill loses at most the one step in flight (a tool call or a model request); everything
    # checkpointed before it is served on resume, not redone.
    model_steps = db.scalar("SELECT count(*) FROM task_checkpoints WHERE kind = 'model'")
    assert model_steps == len(tasks) * (STEPS_PER_TASK + 1)
    model_redone = len(crash_env.requests) - model_steps
    assert re_executed + model_redone <= mid_task
    served = db.scalar(
        "SELECT count(*) FROM task_checkpoints c JOIN tasks t ON t.id = c.task_id "
        "WHERE c.kind = 'tool' AND c.attempt < t.attempts")
    assert mid_task >= 40 and claims > len(tasks) and served >= 10
    print(f"crash: 50 kills, {mid_task} mid-task, {claims - len(tasks)} resumptions, {served} tool steps "
          f"served from checkpoints, re-executed: {re_executed} tool steps, {model_redone} model requests")
    db.close()


# -- lease expiry ----------------------------------------------------------------------------------


def _slow_worker(path: str, marker: str) -> None:
    mine = SqliteTaskStore(Database(path))
    lease = mine.claim("slow", 0.3)
    assert lease is not None
    Path(marker).write_text(lease.task_id)
    time.sleep(0.2)
    try:
        mine.complete(lease, "late")
    except LeaseLostError:
        sys.exit(7)


def test_a_worker_that_stops_heartbeating_loses_its_task_and_cannot_complete_it(tmp_path: Path) -> None:
    path = str(tmp_path / "lease.db")
    db = open_database(path)
    store = SqliteTaskStore(db, backoff_base_s=0.0)
    task = store.post(TaskSpec(goal="g"))
    claimed = tmp_path / "claimed"

    proc = _start(_slow_worker, path, str(claimed))
    while not claimed.exists():
        time.sleep(0.01)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGSTOP)  # stops heartbeating, as a hung worker would
    time.sleep(0.4)
    assert store.reap() == [(task.id, "retry_wait")]
    lease = store.claim("fast", 10)
    assert lease is not None and lease.task_id == task.id and lease.attempt == 2
    store.complete(lease, "on time")
    os.kill(proc.pid, signal.SIGCONT)
    assert _wait(proc) == 7  # its completion was refused
    final = store.get(task.id)
    assert final.state == "completed" and final.result == "on time"
    events = store.events(task.id)
    assert [(e.to_state, e.actor) for e in events] == [
        ("posted", "user"), ("assigned", "slow"), ("executing", "slow"), ("retry_wait", "reaper"),
        ("assigned", "fast"), ("executing", "fast"), ("completed", "fast")]
    db.close()
