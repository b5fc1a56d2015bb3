"""The partitioned benchmark's background work on a serving node: solving its share, coordinating runs.

Two tasks run while the node serves (`start_in_process`, started by `colony.server.api.bench_colony`):

- **the worker** takes the oldest pending problem of this node's share (`partition_store.next_work`),
  solves it with the node's own model — the benchmark's agent turn (`colony.bench.runner.solve`), or
  the known-good solution in a ``canonical`` run — runs the hidden tests in the sandbox
  (`colony.bench.harness.verify`) and reports the verdict to the run's coordinator — the one its copy
  of the run names now, which is not the node that gave the problem once another adopted the run —
  in the transaction that marks the problem done and keeps the verdict whole (a crash in between
  solves it again; the coordinator keeps the first verdict). One problem at a time: turns share the model's rate limits, as in a local run.
  A model that fails, or a sandbox that cannot start, is reported as the verdict ``error``.
- **the coordinator** applies `colony.federation.partition.coordinate` every heartbeat: plan the
  requested runs, adopt the runs of an older queen term, move the problems of dead or silent nodes,
  merge the complete runs — those involving other nodes only once this process has been up for the
  restart grace (`colony.federation.partition_copy`: a restarted queen must hear the colony first).

A node with no colony run open reads two tables per heartbeat and touches no key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from colony.bench.harness import verify
from colony.bench.runner import solve
from colony.federation import _store, partition
from colony.federation import partition_store as ps
from colony.federation.outbox import send
from colony.federation.partition_wire import REPORT_KIND, ProblemReport, Report
from colony.store import Row

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["deliver", "start_in_process", "work_once"]

log = logging.getLogger("colony.federation")


async def _verdict(node: Node, row: Row) -> ProblemReport:
    problem = partition.problem_map(row["suite"]).get(row["problem_id"])
    if problem is None:
        return ProblemReport(problem_id=row["problem_id"], outcome="error",
                             detail="this node does not know the problem (another version of Colony?)")
    tokens = 0
    if row["mode"] == "canonical":
        code = problem.solution
    else:
        try:
            model = await node.model()
            workdir = node.settings.home / "bench" / f"colony-{row['run'][:12]}"
            workdir.mkdir(parents=True, exist_ok=True)
            code, tokens = await solve(problem, model, node.settings, workdir)
        except Exception as exc:  # the node's model failed this problem: that is its verdict, not a crash
            return ProblemReport(problem_id=problem.id, outcome="error", detail=f"the model failed: {exc}"[:1000])
    try:
        verdict = await asyncio.to_thread(verify, problem, code, colony_home=node.settings.home)
    except Exception as exc:  # no sandbox here: say so in the verdict, the coordinator decides nothing else
        return ProblemReport(problem_id=problem.id, outcome="error", tokens=tokens,
                             detail=f"the sandbox could not run the tests: {exc}"[:1000])
    return ProblemReport(problem_id=problem.id, outcome=verdict.outcome, detail=verdict.detail[:1000], tokens=tokens,
                         wall_ms=verdict.wall_ms, solution_sha256=hashlib.sha256(code.encode()).hexdigest())


def deliver(node: Node, row: Row, report: ProblemReport) -> bool:
    """Mark the problem done and report its verdict, together; False when the run was closed meanwhile
    (or its coordinator is no longer a member: its share is dropped)."""
    me = node.keyring.node().public_hex
    local = ps.get_run(node.db, row["run"])
    coordinator = str(local["queen"]) if local is not None else row["queen"]
    remote = coordinator != me
    member = _store.get_member(node.db, coordinator) if remote else None
    if remote and (member is None or member["status"] != "trusted"):
        ps.cancel_work(node.db, row["run"], row["queen"], time.time())  # its coordinator left the colony
        return False
    if remote or (local is not None and local["term"]):
        _ = node.keyring.node().schnorr_key  # unlocked before the transaction (a coordinator passes verdicts on)
    with node.db.tx():
        if not ps.finish_work(node.db, row["run"], row["problem_id"], report.outcome, time.time(),
                              report.model_dump_json()):
            return False
        message = Report(run=row["run"], results=[report])
        if remote:
            send(node, coordinator, REPORT_KIND, message.model_dump_json())
        else:
            partition.take_report(node, me, message)
    return True


async def work_once(node: Node) -> bool:
    """Solve and report the oldest pending problem of this node's share; False when there is none."""
    row = await asyncio.to_thread(ps.next_work, node.db)
    if row is None:
        return False
    report = await _verdict(node, row)
    await asyncio.to_thread(deliver, node, row, report)
    return True


def start_in_process(node: Node) -> Callable[[], Awaitable[None]]:
    """Run the worker and the coordinator as tasks of the running event loop; return their stopper."""
    stop = asyncio.Event()
    every = node.settings.federation_heartbeat_s
    started = time.time()  # the restart grace counts from here: the loop may not have recorded this start yet

    async def pause() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)

    async def worker() -> None:
        while not stop.is_set():
            try:
                if await work_once(node):
                    continue
            except Exception:  # a background loop must outlive one bad problem
                log.exception("partition: solving a problem of this node's share failed")
            await pause()

    async def coordinator() -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(partial(partition.coordinate, node, started_at=started))
            except Exception:
                log.exception("partition: coordinating the colony runs failed")
            await pause()

    tasks = [asyncio.create_task(worker(), name="colony-partition-worker"),
             asyncio.create_task(coordinator(), name="colony-partition-coordinator")]

    async def shutdown() -> None:
        stop.set()  # a problem being solved is dropped: it stays pending and is solved again after a restart
        _, running = await asyncio.wait(tasks, timeout=1.0)
        for task in running:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return shutdown
