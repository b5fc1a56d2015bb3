"""Benchmark the task queue: claim → complete throughput by worker processes, claim latency, storage.

Run with ``.venv/bin/python bench/bench_tasks.py [--tasks N] [--agent-tasks N]``.

1. Throughput: N no-op tasks on one SQLite file drained by 1, 2, 4 and 8 forked worker
   processes, each looping claim (one ``UPDATE … RETURNING`` in ``BEGIN IMMEDIATE``) then
   complete. Prints tasks/s and the p50 / p99 latency of one claim as the workers saw it.
2. Storage per 1,000 tasks: bytes on disk (SQLite's dbstat) of the task tables and indexes,
   for no-op tasks (row + 4 events) and for real agent tasks run by the autonomy loop against
   the scripted model server (a 3-request, 2-tool-call task with its checkpoints), before and
   after checkpoint compaction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from colony.config import Settings
from colony.node import Node
from colony.store import Database, open_database
from colony.tasks import SqliteTaskStore, TaskSpec
from colony.tasks.autonomy import run_once
from colony.tasks.checkpoints import compact, storage_bytes
from colony.testing import Reply, ScriptedModelServer


def _drain(path: str, name: str, out: Path) -> None:
    db = Database(path)
    store = SqliteTaskStore(db)
    latencies: list[float] = []
    while True:
        start = time.perf_counter()
        lease = store.claim(name, 30)
        latencies.append(time.perf_counter() - start)
        if lease is None:
            break
        store.complete(lease)
    db.close()
    out.write_text(json.dumps(latencies))


def throughput(workers: int, tasks: int, tmp: Path) -> dict[str, float]:
    path = str(tmp / f"bench-{workers}.db")
    db = open_database(path)
    SqliteTaskStore(db).post_many([TaskSpec(goal=f"no-op {i}") for i in range(tasks)])
    started = time.perf_counter()
    pids = []
    for i in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                _drain(path, f"w{i}", tmp / f"lat-{workers}-{i}.json")
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    elapsed = time.perf_counter() - started
    done = db.scalar("SELECT count(*) FROM tasks WHERE state = 'completed'")
    assert done == tasks, f"only {done} of {tasks} completed"
    lat = sorted(x for i in range(workers) for x in json.loads((tmp / f"lat-{workers}-{i}.json").read_text()))
    db.close()
    return {"workers": workers, "tasks_per_s": tasks / elapsed, "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1000}


def noop_storage(tmp: Path, tasks: int = 1000) -> dict[str, int]:
    db = open_database(tmp / "storage-noop.db")
    store = SqliteTaskStore(db)
    store.post_many([TaskSpec(goal=f"no-op task number {i}") for i in range(tasks)])
    while (lease := store.claim("w", 30)) is not None:
        store.complete(lease, "ok")
    sizes = storage_bytes(db)
    db.close()
    return sizes


def _script(body: dict[str, Any]) -> Reply:
    tools = [m for m in body["messages"] if m["role"] == "tool"]
    goal = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if not tools:
        return Reply.tool_calls([("write_file", {"path": f"{abs(hash(goal)) % 10**8}.txt", "content": goal * 3})])
    if len(tools) == 1:
        return Reply.tool_calls([("list_dir", {"path": "."})])
    return Reply.text(f"Done: {goal}")


def agent_storage(tmp: Path, tasks: int) -> dict[str, Any]:
    home, ws = tmp / "agent-home", tmp / "agent-ws"
    ws.mkdir()
    with ScriptedModelServer(_script) as server:
        settings = Settings(home=home, workspace=ws, model_base_url=server.base_url, model_name="scripted",
                            autodetect_local_models=False, memory_embedder="none",
                            tool_policy={"write_file": "allow"})

        async def run() -> float:
            node = Node(settings)
            store = SqliteTaskStore(node.db)
            store.post_many([TaskSpec(goal=f"Write down agent task number {i} and list the folder")
                             for i in range(tasks)])
            started = time.perf_counter()
            while await run_once(node, worker="bench") is not None:
                pass
            elapsed = time.perf_counter() - started
            await node.aclose()
            return elapsed

        elapsed = asyncio.run(run())
    db = open_database(settings.db_path)
    before = storage_bytes(db)
    report = compact(db, older_than=time.time() + 1)
    after = storage_bytes(db)
    db.close()
    return {"tasks": tasks, "seconds_per_task": elapsed / tasks, "before": before, "after": after,
            "checkpoint_payload_before": report.bytes_before, "checkpoint_payload_after": report.bytes_after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8000)
    parser.add_argument("--agent-tasks", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("| worker processes | tasks/s | claim p50 | claim p99 |\n|---|---|---|---|")
        for workers in (1, 2, 4, 8):
            r = throughput(workers, args.tasks, tmp)
            print(f"| {workers} | {r['tasks_per_s']:,.0f} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms |")
        noop = noop_storage(tmp)
        print(f"\nno-op tasks, bytes per 1,000 (completed, 4 events each): {noop} "
              f"total {sum(noop.values()) / 1e6:.2f} MB")
        agent = agent_storage(tmp, args.agent_tasks)
        per_k = 1000 / agent["tasks"]
        print(f"agent tasks ({agent['tasks']}, {agent['seconds_per_task'] * 1000:.0f} ms each): per 1,000 tasks "
              f"checkpoints {agent['before']['task_checkpoints'] * per_k / 1e6:.2f} MB before compaction "
              f"(payload {agent['checkpoint_payload_before'] * per_k / 1e6:.2f} MB), payload after "
              f"{agent['checkpoint_payload_after'] * per_k / 1e6:.3f} MB; all task tables before "
              f"{sum(agent['before'].values()) * per_k / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
