"""The market worker: bids, awards, runs the winners' tasks, verifies and pays — on a schedule.

A pass (`market_pass`, ``colony market run``) does, in order: the node's agents commit to open
auctions in their commit phase and reveal in their reveal phase (`bidders.bid_round`); every
auction past its reveal deadline is awarded (`Market.award`); every awarded auction whose task
has finished is verified and settled (`Market.verify`); then one awarded task is claimed and run
as its winner (`work_once`). Nothing is kept in memory between passes: deadlines, sealed bids
(their salts come from the agents' keys), awards and escrow are all in the database, so a
restarted worker picks up where the last one stopped, and two workers never do a step twice
(each step is one guarded transaction, `colony.market.service`).

Winners' tasks run through the durable task machinery unchanged (`colony.tasks.runner.run_task`:
a lease renewed by heartbeats, checkpoints, approval pauses, retries with backoff), as their
assignee: the agent's persona, and the cascade narrowed to its model tier. The lease is
heartbeated from the claim on, the model's build included (`hold_lease`), so a slow first build in
a freshly (re)started node cannot let it lapse before the run begins. The autonomy loop's
generic claim leaves these tasks alone (`colony.market.task_queue.AssignedTasks.claim_assigned`,
on SQLite or PostgreSQL, is theirs). A task's assignee is the winner's account, and a worker
claims only those of its own node's active agents, then runs the task as its local name: on a
database several nodes share, each with a ``colony`` (or any same-named agents), a name would
let one node run another's winner's task as the wrong agent. Awards and settlements are likewise
only for the auctions the node's own agents posted (`colony.market.service`).

Other capabilities add steps to every pass with `register_pass_step` (federation's auctions across
nodes: `colony.federation.remote_market`), so the market never imports them; a step that fails is
reported in the pass and tried again on the next one.

`run_daemon` (``colony up`` with ``COLONY_MARKET_ENABLED``) runs two loops side by side: the
auction loop (bids, awards, verification — quick) and the work loop (a winner's task may take
minutes), so a long task never holds up a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from colony.errors import ColonyError, LeaseLostError
from colony.llm.cascade import ProviderCascade
from colony.llm.model import Model
from colony.market.bidders import bid_round
from colony.market.profiles import DEFAULT_TIER, list_agents, profile_for_turn
from colony.market.service import Market
from colony.market.views import PassReport
from colony.node import Node
from colony.observability.logs import get_logger
from colony.tasks import hitl
from colony.tasks.autonomy import dead_workers
from colony.tasks.runner import TaskRun, hold_lease, run_task

__all__ = ["PassStep", "market_pass", "register_pass_step", "run_daemon", "start_in_process", "work_once",
           "worker_name"]

_log = get_logger("colony.market")

#: A step another capability runs in every pass of the auction loop; it returns what it did, for the report.
PassStep: TypeAlias = Callable[[Market], Awaitable[list[str]]]
_steps: dict[str, PassStep] = {}


def register_pass_step(name: str, step: PassStep) -> None:
    """Run ``step`` in every pass, after the awards and verifications (one step per name; the last wins)."""
    _steps[name] = step


def worker_name() -> str:
    return f"market@{socket.gethostname()}:{os.getpid()}"


async def _model_for(node: Node, agent: str, model: Model | None) -> Model:
    """The model a winner's task runs on: as given (tests), else the cascade narrowed to its tier."""
    if model is not None:
        return model
    cascade: ProviderCascade = await node.model()
    tier = profile_for_turn(node.keyring, agent).tier
    return cascade if tier == DEFAULT_TIER else cascade.only(tier)


async def work_once(market: Market, *, model: Model | None = None, worker: str | None = None) -> TaskRun | None:
    """Claim one ready awarded task of an active agent and run it as that agent; None when there is none."""
    node = market.node
    store = market.tasks
    store.reap(dead_workers(node.settings))
    hitl.expire_task_pauses(store)
    active = {a.public_hex: a.name for a in list_agents(node.keyring) if a.active}  # account → local name
    lease = store.claim_assigned(worker or worker_name(), node.settings.task_lease_ttl_s, assignees=active)
    if lease is None:
        return None
    task = store.get(lease.task_id)
    assert task.assignee in active  # the claim took only tasks of these accounts
    agent, ttl = active[task.assignee], node.settings.task_lease_ttl_s
    try:  # the first build may probe endpoints for longer than the lease: it is heartbeated like the run
        live, lease = await hold_lease(store, lease, ttl, _model_for(node, agent, model))
    except LeaseLostError as exc:  # lost while building (the database out of reach): the reaper requeues it
        return TaskRun(task_id=task.id, outcome="lost", detail=str(exc))
    except ColonyError as exc:  # no model reachable now: hand the task back untouched, try again later
        store.release(lease, f"no model for {agent}: {exc}")
        raise
    return await run_task(node, store, lease, live, ttl_s=ttl, agent=agent)


async def _auctions(market: Market, report: PassReport) -> None:
    commits, reveals = await asyncio.to_thread(bid_round, market)
    report.commits += commits
    report.reveals += reveals
    for auction in market.due():
        try:
            state = await asyncio.to_thread(market.award, auction)
        except ColonyError as exc:
            report.errors.append(f"award {auction[:12]}: {exc}")
            _log.warning("market_award_failed", auction=auction, error=str(exc))
            continue
        report.awarded.append(f"{auction[:12]} {state}")
    for auction in market.awarded():
        try:
            settled = await market.verify(auction)
        except ColonyError as exc:  # a verifier unavailable now (sandbox, model): the next pass tries again
            report.errors.append(f"verify {auction[:12]}: {exc}")
            _log.warning("market_verification_failed", auction=auction, error=str(exc))
            continue
        if settled is not None:
            report.verified.append(f"{auction[:12]} {settled}")
    for name, step in list(_steps.items()):
        try:
            report.steps += await step(market)
        except ColonyError as exc:  # a peer down, a key locked: the next pass tries again
            report.errors.append(f"{name}: {exc}")
            _log.warning("market_step_failed", step=name, error=str(exc))


async def market_pass(node: Node, *, market: Market | None = None, model: Model | None = None,
                      worker: str | None = None, work: bool = True) -> PassReport:
    """One pass of the worker (module docstring). ``work=False`` leaves the winners' tasks alone."""
    market = market or Market(node)
    report = PassReport()
    await _auctions(market, report)
    if work:
        run = await work_once(market, model=model, worker=worker)
        if run is not None:
            report.ran, report.run_outcome = run.task_id, run.outcome
            await _auctions(market, report)  # a task that just finished is verified in the same pass
    return report


async def run_daemon(node: Node, stop: asyncio.Event, *, market: Market | None = None, model: Model | None = None,
                     worker: str | None = None) -> None:
    """Run the auction loop and the work loop until ``stop`` is set."""
    market = market or Market(node)
    name = worker or worker_name()
    interval = node.settings.market_interval_s

    async def wait() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)

    async def auctions() -> None:
        while not stop.is_set():
            report = PassReport()
            try:
                await _auctions(market, report)
            except ColonyError as exc:  # the database busy, keys locked: note it, try again
                _log.warning("market_pass_failed", worker=name, error=str(exc))
            if report.commits or report.reveals or report.awarded or report.verified or report.steps:
                _log.info("market_pass", worker=name, **report.model_dump(exclude={"errors", "ran", "run_outcome"}))
            await wait()

    async def work() -> None:
        while not stop.is_set():
            run: TaskRun | None = None
            try:
                run = await work_once(market, model=model, worker=name)
            except ColonyError as exc:
                _log.warning("market_work_failed", worker=name, error=str(exc))
            if run is not None:
                _log.info("market_task_run", worker=name, task_id=run.task_id, outcome=run.outcome)
            else:
                await wait()

    await asyncio.gather(auctions(), work())


def start_in_process(node: Node, *, grace_s: float = 10.0) -> Callable[[], Awaitable[None]]:
    """Run the worker as a task of the running event loop (``colony up``); return its stopper.

    The stopper lets the task in hand finish for up to ``grace_s``, then cancels it: its lease
    expires and the next worker resumes it from its checkpoints; an award or a settlement is one
    transaction, so a cancel never leaves half of one.
    """
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(node, stop), name="colony-market")

    async def shutdown() -> None:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(daemon), grace_s)
        except TimeoutError:
            daemon.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await daemon

    return shutdown
