"""Benchmark the task queue: claim → complete throughput by worker processes, claim latency, storage.

Run with ``.venv/bin/python bench/bench_tasks.py [--tasks N] [--agent-tasks N]``.

1. Throughput: N no-op tasks on one SQLite file drained by 1, 2, 4 and 8 forked worker
   processes, each looping claim (one ``UPDATE … RETURNING`` in ``BEGIN IMMEDIATE``) then
   complete. Prints tasks/s, the p50 / p99 latency of one claim and of one take + finish
   (claim then complete) as the workers saw them.
2. Pages written per task: the WAL frames one process appends per post (in a batch and one by
   one), per claim and per completion, with autocheckpoint off so every frame stays in the log,
   and which b-tree (table or index) each frame belongs to. Every frame is a whole page written
   and, at the next checkpoint, copied into the database file: it is what a transition costs in
   I/O, and how often checkpoints come.
3. Storage per 1,000 tasks: bytes on disk (SQLite's dbstat) of the task tables and indexes,
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
import struct
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import apsw

from colony.store import Database, open_database
from colony.tasks import SqliteTaskStore, TaskSpec
from colony.tasks.checkpoints import compact, storage_bytes

if TYPE_CHECKING:
    from colony.testing import Reply


def _drain(path: str, name: str, out: Path) -> None:
    db = Database(path)
    store = SqliteTaskStore(db)
    claims: list[float] = []
    cycles: list[float] = []
    while True:
        start = time.perf_counter()
        lease = store.claim(name, 30)
        claims.append(time.perf_counter() - start)
        if lease is None:
            break
        store.complete(lease)
        cycles.append(time.perf_counter() - start)
    db.close()
    out.write_text(json.dumps({"claims": claims, "cycles": cycles}))


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of latencies in seconds, as milliseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99)] * 1000


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
    runs = [json.loads((tmp / f"lat-{workers}-{i}.json").read_text()) for i in range(workers)]
    db.close()
    p50, p99 = percentiles([x for r in runs for x in r["claims"]])
    cycle_p50, cycle_p99 = percentiles([x for r in runs for x in r["cycles"]])
    return {"workers": workers, "tasks_per_s": tasks / elapsed, "p50_ms": p50, "p99_ms": p99,
            "cycle_p50_ms": cycle_p50, "cycle_p99_ms": cycle_p99}


def wal_frames(path: str) -> list[int]:
    """The page number of every frame in a database's WAL file, in the order they were appended."""
    raw = Path(path + "-wal").read_bytes()
    if len(raw) < 32:
        return []
    frame = 24 + struct.unpack(">I", raw[8:12])[0]
    return [struct.unpack(">I", raw[at:at + 4])[0] for at in range(32, len(raw) - frame + 1, frame)]


def pages_per_task(tmp: Path, tasks: int = 2000, singles: int = 200) -> dict[str, Any]:
    """WAL frames per post, claim and completion in one process, and the b-tree each frame belongs to.

    A WAL hook that never checkpoints stands in for the store's checkpointer (turned off here)
    and SQLite's autocheckpoint, so the log keeps every frame; the hook also reports the log's
    length after each commit. The
    b-tree owning each page is read from dbstat every 25 tasks (a page freed by one index can be
    reused by another, so one map taken at the end would misattribute).
    """
    path = str(tmp / "pages.db")
    db = open_database(path)
    store = SqliteTaskStore(db, background_checkpoints=False)  # the hook below is the only one
    conn = db.connection()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    length = [0]

    def hook(_conn: apsw.Connection, _name: str, pages: int) -> int:
        length[0] = pages
        return apsw.SQLITE_OK

    conn.set_wal_hook(hook)  # in place of SQLite's autocheckpoint: nothing is checkpointed while we count
    store.post_many([TaskSpec(goal=f"no-op task number {i}") for i in range(tasks)])
    batch = length[0]
    for i in range(singles):
        store.post(TaskSpec(goal=f"one task posted alone, number {i}"))
    single = length[0] - batch
    spans: list[tuple[str, int, int]] = []
    owners: list[tuple[int, dict[int, str]]] = []
    while True:
        before = length[0]
        lease = store.claim("w", 30)
        if lease is None:
            break
        claimed = length[0]
        store.complete(lease, "ok")
        spans += [("claim", before, claimed), ("complete", claimed, length[0])]
        if len(spans) % 50 == 0:
            owners.append((len(spans), {r["pageno"]: r["name"] for r in db.query("SELECT name, pageno FROM dbstat")}))
    owners.append((len(spans), {r["pageno"]: r["name"] for r in db.query("SELECT name, pageno FROM dbstat")}))
    frames = wal_frames(path)
    db.close()
    done = tasks + singles
    by_tree: dict[str, Counter[str]] = {"claim": Counter(), "complete": Counter()}
    totals: Counter[str] = Counter()
    for i, (op, start, end) in enumerate(spans):
        owner = next(m for upto, m in owners if upto > i)
        totals[op] += end - start
        by_tree[op].update(owner.get(page, "free pages") if page != 1 else "page 1 (file header)"
                           for page in frames[start:end])
    return {"post_batch": batch / tasks, "post_one": single / singles, "claim": totals["claim"] / done,
            "complete": totals["complete"] / done,
            "trees": {op: {name: n / done for name, n in c.most_common()} for op, c in by_tree.items()}}


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
    from colony.testing import Reply

    tools = [m for m in body["messages"] if m["role"] == "tool"]
    goal = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
    if not tools:
        return Reply.tool_calls([("write_file", {"path": f"{abs(hash(goal)) % 10**8}.txt", "content": goal * 3})])
    if len(tools) == 1:
        return Reply.tool_calls([("list_dir", {"path": "."})])
    return Reply.text(f"Done: {goal}")


def agent_storage(tmp: Path, tasks: int) -> dict[str, Any]:
    # The node, the autonomy loop and the scripted model server are imported here, not at the top:
    # the throughput and page counts (and bench_tasks_pg.py, which reuses them) need only the store.
    from colony.config import Settings
    from colony.node import Node
    from colony.tasks.autonomy import run_once
    from colony.testing import ScriptedModelServer

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
        print("| worker processes | tasks/s | claim p50 | claim p99 | take + finish p50 | take + finish p99 |\n"
              "|---|---|---|---|---|---|")
        for workers in (1, 2, 4, 8):
            r = throughput(workers, args.tasks, tmp)
            print(f"| {workers} | {r['tasks_per_s']:,.0f} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms "
                  f"| {r['cycle_p50_ms']:.2f} ms | {r['cycle_p99_ms']:.2f} ms |")
        pages = pages_per_task(tmp)
        print(f"\npages written per task (WAL frames): post {pages['post_batch']:.2f} in a batch, "
              f"{pages['post_one']:.2f} one by one; claim {pages['claim']:.2f}, complete {pages['complete']:.2f}, "
              f"claim + complete {pages['claim'] + pages['complete']:.2f}")
        for op, trees in pages["trees"].items():
            print(f"  {op}: " + ", ".join(f"{name} {n:.2f}" for name, n in trees.items() if n >= 0.01))
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
