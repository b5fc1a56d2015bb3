"""The partitioned coding benchmark: one run split across the colony's live nodes, merged on the queen.

A *colony run* measures the colony as a whole: every live node solves a share of the problems with
its own model, through the benchmark's own harness, and one node — the coordinator — merges the
verdicts into one stored run. The steps, and the rules each follows:

1. **Request** (`request_run`): any node asks the queen it follows (kind 7350); a node that is the
   queen, or that has no members, coordinates the run itself. The node a request reaches plans it
   only if it is the queen of the term it arrived in (or alone); otherwise the request waits there,
   never planned. A requester whose run nobody has planned yet asks again when the queen it
   follows changes (`ask_again`, every coordinator step), so a queen that died before planning it,
   or a request that reached a node which had just lost the role, does not leave it stuck.
2. **Plan** (`plan`): under the queen's term, the coordinator takes the suite's problems sorted by id (the first ``limit`` of
   them) and the live nodes of its view (itself and its trusted members, `colony.federation.queen`)
   sorted by public key, and gives problem *k* to node *k mod n*: node *i* of *n* (1-based) gets
   exactly shard ``i/n`` of `colony.bench.problems.shard`. Its own share goes straight into its work
   queue; every other node gets an assignment (7351), and every participant (the requester too) a
   copy of the whole plan (7354, `colony.federation.partition_copy`), in the transaction that records it.
3. **Solve** (`colony.federation.partition_worker`): each node solves its share one problem at a time
   (an agent turn with its own model, then the hidden tests in its own sandbox) and reports each
   verdict (7352) as soon as it has it, to the coordinator its copy of the run names, so a node lost
   halfway loses only what it had not reported.
4. **Take reports** (`take_report`): a verdict counts only for a problem the sender was given in that
   run; the first verdict for a problem wins and later ones (a slow node reporting a problem that has
   moved on, a message handled twice, a verdict sent to a coordinator the run has moved away from)
   are ignored. A verdict for a problem the sender was never given, or for a run this node does not
   know, is refused: kept in ``partition_refusals`` and recorded as an incident against the sender
   (unless it is a verdict sent again to a coordinator that adopted the run, which may not know
   every problem the old one gave: that one is dropped). The database holds the rule too (a trigger
   refuses a result from a node the problem was not given to; the primary key keeps one result per
   problem). Each verdict taken is passed on to the run's participants (7354).
5. **Degrade** (`reassign`): a node that holds unreported problems and is no longer live in the
   coordinator's view (three heartbeats of silence), or that has reported nothing for
   ``problem_timeout_s`` since it was last given problems or last reported, loses them: they go round
   robin, in problem-id order, to the live nodes that never held them, sorted by key (the coordinator
   included). A problem every live node has held already stays where it is. The move is passed on
   to the participants (7354) before the new holders' assignments.
6. **Merge** (`merge`): once every problem has a verdict the coordinator stores the run as a normal
   benchmark run with shard ``colony`` (pass@1 per tier, the weighted score with its interval,
   per-problem results) and a summary (per node: problems given, verdicts taken, passes; who solved
   what; how many problems moved; how many reports were refused), then sends the merged run (7353) to the requester
   and every node that took part, with its term. They drop the problems of that run they have not
   started and keep a copy of the run, its score recomputed from their own copy of each problem's
   tier — the first merged run from the coordinator of the highest term they know, and no other.
7. **Adopt** (`adopt`): a run outlives its coordinator. Only the queen of the run's term acts on a
   run involving other nodes (and only once she has been up for the restart grace); the queen of a
   later term adopts every open run she holds a copy of: she coordinates it under her term, takes
   her own verdicts, sends the whole state to the participants (who move their copies to her and
   send her their verdicts again), and goes on from step 5 — the old coordinator, not live, loses
   its unreported problems. An old coordinator that comes back learns the higher term and stands
   down. The rules of copies, terms and adoption are in `colony.federation.partition_copy`.

What is trusted: a member's verdict on its own share, as it reports it (it ran the hidden tests in its
own sandbox; the report carries the solution's SHA-256 for an audit); a coordinator's term, as its
own signed queen claim proves it.

Handlers are registered when this module is imported (`colony.server.api.bench_colony` imports it);
the coordinator's steps run in `colony.federation.partition_worker`'s loop.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from colony.bench.harness import Verdict
from colony.bench.problems import Problem, shard
from colony.bench.runs import save_run
from colony.bench.scoring import score
from colony.federation import _store, membership
from colony.federation import partition_store as ps
from colony.federation.errors import FederationError
from colony.federation.messages import RoleView, register_handler
from colony.federation.outbox import send
from colony.federation.partition_copy import authority, follow, on_state, opened, problem_map, relay
from colony.federation.partition_wire import (
    ASSIGN_KIND,
    MERGED_KIND,
    REPORT_KIND,
    REQUEST_KIND,
    STATE_KIND,
    Assignment,
    Merged,
    MergedProblem,
    Mode,
    ProblemReport,
    Report,
    RunRequest,
    Suite,
)
from colony.federation.queen import live_nodes
from colony.federation.roles import current_role, role_view, view
from colony.identity.events import Event
from colony.store import Database, Row

if TYPE_CHECKING:
    from colony.node import Node

__all__ = [
    "DEFAULT_PROBLEM_TIMEOUT_S",
    "SHARD",
    "adopt",
    "coordinate",
    "coordinator",
    "live_workers",
    "merge",
    "on_assign",
    "on_merged",
    "on_report",
    "on_request",
    "plan",
    "problem_map",
    "reassign",
    "request_run",
    "run_detail",
    "serving",
    "status",
    "take_report",
]

log = logging.getLogger("colony.federation")

#: The ``shard`` of a merged colony run in ``bench_runs``.
SHARD = "colony"
#: A node that reports nothing for this long after it was given problems loses them (an agent turn
#: with a slow local model can take minutes).
DEFAULT_PROBLEM_TIMEOUT_S = 900.0


def _me(node: Node) -> str:
    return node.keyring.node().public_hex


def _unlock(node: Node) -> None:
    """Read the node key before a transaction that sends: scrypt must not hold the write lock."""
    _ = node.keyring.node().schnorr_key


def _trusted(db: Database) -> set[str]:
    return {m["pubkey"] for m in _store.list_members(db, "trusted")}


# -- 1. request -----------------------------------------------------------------------------------
def coordinator(node: Node) -> str:
    """Who a new run is asked of: the queen this node follows; itself when it has no members."""
    me = _me(node)
    if not _trusted(node.db):
        return me
    queen = current_role(node.db).queen
    if queen is None:
        raise FederationError("This node's colony has no queen yet: wait a few heartbeats for one to be chosen "
                              "(colony peers status shows her).", reason="no_queen")
    return queen


def request_run(node: Node, *, suite: Suite = "colony", mode: Mode = "agent", limit: int | None = None,
                problem_timeout_s: float = DEFAULT_PROBLEM_TIMEOUT_S) -> Row:
    """Start a colony run: kept here, and asked of the queen unless this node coordinates it."""
    me, queen = _me(node), coordinator(node)
    role = role_view(node.db)
    request = RunRequest(run=uuid.uuid4().hex, suite=suite, mode=mode, limit=limit,
                         problem_timeout_s=problem_timeout_s)
    values = {"id": request.run, "queen": queen, "term": role.term if role.queen == queen else 0, "requester": me,
              "suite": suite, "mode": mode, "problem_limit": limit, "problem_timeout_s": problem_timeout_s,
              "created_at": time.time()}
    if queen != me:
        _unlock(node)
    with node.db.tx():
        ps.insert_run(node.db, values)
        if queen != me:
            send(node, queen, REQUEST_KIND, request.model_dump_json())
    row = ps.get_run(node.db, request.run)
    assert row is not None, "the run was just stored"
    return row


def on_request(node: Node, event: Event) -> None:
    """Kind 7350: a member asks this node to coordinate a run."""
    request = opened(node.db, event, REQUEST_KIND, RunRequest, "request")
    if request is None:
        return
    me, role = _me(node), role_view(node.db)
    term = role.term if role.queen == me else 0  # asked while not the queen: kept, never planned (term 0)
    if not ps.insert_run(node.db, {"id": request.run, "queen": me, "term": term, "requester": event.pubkey,
                                  "suite": request.suite, "mode": request.mode, "problem_limit": request.limit,
                                  "problem_timeout_s": request.problem_timeout_s, "created_at": time.time()}):
        kept = ps.get_run(node.db, request.run)  # asked again, now that this node is the queen
        if kept is not None and kept["state"] == "requested" and term > kept["term"]:
            ps.set_coordinator(node.db, request.run, me, term)


def ask_again(node: Node, me: str, role: RoleView) -> int:
    """The requester's side of a run nobody has planned yet: when the queen it asked is no longer the
    queen it follows, ask the new one (or, being the queen now, plan it itself). Returns how many."""
    asked = 0
    for run in ps.open_runs(node.db):
        if (run["state"] != "requested" or run["requester"] != me or role.queen is None
                or role.queen == run["queen"] or role.term <= run["term"]):
            continue
        request = RunRequest(run=run["id"], suite=run["suite"], mode=run["mode"], limit=run["problem_limit"],
                             problem_timeout_s=run["problem_timeout_s"])
        if role.queen != me:
            _unlock(node)
        with node.db.tx():
            if not ps.set_coordinator(node.db, run["id"], role.queen, role.term):
                continue
            if role.queen != me:
                send(node, role.queen, REQUEST_KIND, request.model_dump_json())
        log.info("partition: run %s… asked again of the queen of term %d, %s…", run["id"][:8], role.term,
                 role.queen[:8])
        asked += 1
    return asked


# -- 2. plan ----------------------------------------------------------------------------------------
def live_workers(node: Node, me: str, now: float) -> list[str]:
    """The nodes live in this node's view that it can give work to (itself and trusted members), by key."""
    v = view(node.db, me, heartbeat_s=node.settings.federation_heartbeat_s, now=now)
    trusted = _trusted(node.db)
    return sorted(n for n in live_nodes(v) if n == me or n in trusted)


def _planned(run: Row) -> list[Problem]:
    problems = sorted(problem_map(run["suite"]).values(), key=lambda p: p.id)
    return problems[:run["problem_limit"]] if run["problem_limit"] else problems


def _give(node: Node, me: str, run: Row, to: str, problem_ids: list[str], now: float) -> None:
    if to == me:
        ps.add_work(node.db, run["id"], me, run["suite"], run["mode"], problem_ids, now)
    else:
        send(node, to, ASSIGN_KIND, Assignment(run=run["id"], suite=run["suite"], mode=run["mode"],
                                               problems=problem_ids, term=run["term"]).model_dump_json())


def plan(node: Node, run: Row, workers: list[str], now: float, role: RoleView | None = None
         ) -> dict[str, list[str]]:
    """Split a requested run over ``workers`` (rule in the module docstring); returns node → problem ids.

    The run is planned under ``role``'s term when this node is that role's queen (else term 0: alone).
    """
    db, me = node.db, _me(node)
    term = role.term if role is not None and role.queen == me else 0
    problems = _planned(run)
    nodes = sorted(workers)
    shares = {n: [p.id for p in shard(problems, i + 1, len(nodes))] for i, n in enumerate(nodes)}
    shares = {n: ids for n, ids in shares.items() if ids}
    if any(n != me for n in shares) or run["requester"] != me:
        _unlock(node)
    with db.tx():
        if not ps.set_running(db, run["id"], len(problems), now, term):
            return {}  # planned already (a step ran twice)
        for n, ids in shares.items():
            for pid in ids:
                ps.add_assignment(db, run["id"], pid, n, now)
        fresh = ps.get_run(db, run["id"])
        assert fresh is not None, "the run was just planned"
        relay(node, fresh, given=ps.assignments(db, run["id"]))  # every participant's copy, before its share
        for n, ids in shares.items():
            _give(node, me, fresh, n, ids, now)
    log.info("partition: run %s… planned: %d problems over %d nodes", run["id"][:8], len(problems), len(shares))
    return shares


def on_assign(node: Node, event: Event) -> None:
    """Kind 7351: problems to solve for the member that coordinates a run."""
    assignment = opened(node.db, event, ASSIGN_KIND, Assignment, "assignment")
    if assignment is None:
        return
    local = ps.get_run(node.db, assignment.run)
    if local is not None and follow(local, event.pubkey, assignment.term, None) == "stale":
        log.info("partition: run %s…: ignored %s…'s assignment of term %d (this copy is at term %d)",
                 assignment.run[:8], event.pubkey[:8], assignment.term, local["term"])
        return
    ps.add_work(node.db, assignment.run, event.pubkey, assignment.suite, assignment.mode, assignment.problems,
                time.time())


# -- 4. reports -----------------------------------------------------------------------------------
def take_report(node: Node, sender: str, report: Report, now: float | None = None) -> dict[str, int]:
    """Take a node's verdicts on a run this node coordinates (rules in the module docstring), and pass
    the ones taken on to the run's participants."""
    db, me, at = node.db, _me(node), time.time() if now is None else now
    counts = {"taken": 0, "ignored": 0, "refused": 0}
    run = ps.get_run(db, report.run)
    if run is None:
        for r in report.results:
            ps.add_refusal(db, report.run, sender, r.problem_id, "not a run this node coordinates", at)
        membership.record(db, sender, "bad_signature",
                          f"partition report refused: run {report.run[:12]}… is not coordinated here")
        counts["refused"] = len(report.results)
        return counts
    problems = problem_map(run["suite"])
    # Only the run's coordinator takes verdicts; a copy here ignores them (the run was adopted by
    # another node: the sender sends them again there once it learns of it).
    open_here = run["queen"] == me and run["state"] == "running"
    if open_here and run["term"]:
        _unlock(node)
    with db.tx():
        taken: list[str] = []
        for r in report.results:
            problem = problems.get(r.problem_id)
            if problem is None or not ps.ever_assigned(db, report.run, r.problem_id, sender):
                if report.again:  # given by an earlier coordinator after the last copy reached this node
                    counts["ignored"] += 1
                    continue
                ps.add_refusal(db, report.run, sender, r.problem_id, "not assigned to this node", at)
                membership.record(db, sender, "bad_signature", f"partition report refused: problem "
                                  f"{r.problem_id[:80]} of run {report.run[:12]}… was never given to the sender")
                counts["refused"] += 1
                continue
            if open_here and ps.add_result(db, report.run, sender, {**r.model_dump(), "tier": problem.tier}, at):
                taken.append(r.problem_id)
                counts["taken"] += 1
            else:
                counts["ignored"] += 1
        if taken:
            relay(node, run, taken=[x for x in ps.results(db, report.run) if x["problem_id"] in taken])
    return counts


def on_report(node: Node, event: Event) -> None:
    """Kind 7352: a node's verdicts on problems of a run this node coordinates."""
    report = opened(node.db, event, REPORT_KIND, Report, "report")
    if report is None:
        return
    take_report(node, event.pubkey, report)


# -- 5. degrade -----------------------------------------------------------------------------------
def reassign(node: Node, run: Row, workers: list[str], now: float) -> dict[str, list[str]]:
    """Move the unreported problems of dead or silent nodes to live ones; returns node → problems given."""
    db, me, rid = node.db, _me(node), run["id"]
    done = {r["problem_id"]: r for r in ps.results(db, rid)}
    holder: dict[str, str] = {}
    held: dict[str, set[str]] = defaultdict(set)
    progress: dict[str, float] = defaultdict(float)
    for a in ps.assignments(db, rid):  # in attempt order: the last row of a problem is its holder
        holder[a["problem_id"]] = a["node"]
        held[a["problem_id"]].add(a["node"])
        progress[a["node"]] = max(progress[a["node"]], float(a["assigned_at"]))
    for r in done.values():
        progress[r["node"]] = max(progress[r["node"]], float(r["received_at"]))
    live = set(workers)
    late = {n for n in set(holder.values())
            if n not in live or now - progress[n] > float(run["problem_timeout_s"])}
    moving = sorted(pid for pid, n in holder.items() if n in late and pid not in done)
    given: dict[str, list[str]] = defaultdict(list)
    for k, pid in enumerate(moving):
        candidates = [n for n in sorted(live) if n not in held[pid]]
        if candidates:
            given[candidates[k % len(candidates)]].append(pid)
    if not given:
        return {}
    if any(n != me for n in given) or run["term"]:
        _unlock(node)
    with db.tx():
        rows = []
        for n, ids in given.items():
            for pid in ids:
                rows.append({"problem_id": pid, "node": n, "attempt": ps.add_assignment(db, rid, pid, n, now)})
        relay(node, run, given=rows)  # every participant's copy (the new holders' too), before their share
        for n, ids in given.items():
            _give(node, me, run, n, ids, now)
    log.info("partition: run %s…: %d problems moved from %s", rid[:8], sum(map(len, given.values())),
             ", ".join(n[:8] for n in sorted(late)))
    return dict(given)


# -- 6. merge ---------------------------------------------------------------------------------------
def _node_counts(assigned: Iterable[str], verdicts: Iterable[tuple[str, bool]], names: dict[str, str]
                 ) -> dict[str, dict[str, Any]]:
    nodes: dict[str, dict[str, Any]] = {}

    def entry(n: str) -> dict[str, Any]:
        return nodes.setdefault(n, {"name": names.get(n, ""), "assigned": 0, "solved": 0, "passed": 0})

    for n in assigned:
        entry(n)["assigned"] += 1
    for n, passed in verdicts:
        entry(n)["solved"] += 1
        entry(n)["passed"] += int(passed)
    return nodes


def _names(db: Database, me: str) -> dict[str, str]:
    return {**{m["pubkey"]: m["name"] for m in _store.list_members(db)}, me: "self"}


def merge(node: Node, run: Row, now: float) -> str | None:
    """Store the merged run once every problem has a verdict; returns its ``bench_runs`` id (None: not yet)."""
    db, me, rid = node.db, _me(node), run["id"]
    found = ps.results(db, rid)
    if run["state"] != "running" or len(found) < int(run["problems"] or 0):
        return None
    assigned = ps.assignments(db, rid)
    refused = len(ps.refusals(db, rid))
    moved = sum(1 for a in assigned if a["attempt"] > 1)
    verdicts = [Verdict(problem_id=r["problem_id"], tier=r["tier"], outcome=r["outcome"], detail=r["detail"],
                        wall_ms=r["wall_ms"]) for r in found]
    result = score([(v.tier, v.passed) for v in verdicts])
    nodes = _node_counts((a["node"] for a in assigned), ((r["node"], r["outcome"] == "pass") for r in found),
                         _names(db, me))
    wall_s = max(0.0, now - float(run["started_at"] or run["created_at"]))
    summary = {"nodes": nodes, "reassigned": moved, "refused": refused, "problems": result.problems,
               "passed": result.passed, "score": result.score, "wall_s": round(wall_s, 3),
               "results": {r["problem_id"]: [r["node"], r["outcome"]] for r in found}}
    if run["term"]:
        summary["term"] = run["term"]
    role = role_view(db)
    claim = role.claim if role.queen == me and role.term == run["term"] else None
    merged = Merged(run=rid, suite=run["suite"], mode=run["mode"], requester=run["requester"], reassigned=moved,
                    refused=refused, wall_s=round(wall_s, 3), term=run["term"], claim=claim,
                    problems=[MergedProblem(problem_id=r["problem_id"], node=r["node"], outcome=r["outcome"])
                              for r in found])
    trusted = _trusted(db)
    recipients = sorted(({a["node"] for a in assigned} | {run["requester"]}) & trusted - {me})
    if recipients:
        _unlock(node)
    with db.tx():
        current = ps.get_run(db, rid)
        if current is None or current["state"] != "running" or (current["queen"], current["term"]) != (me, run["term"]):
            return None  # merged already, or adopted by another node meanwhile
        bench_run = save_run(db, suite=run["suite"], model=f"colony ({len(nodes)} nodes)", shard=SHARD,
                             result=result, verdicts=verdicts, tokens={r["problem_id"]: r["tokens"] for r in found},
                             wall_s=wall_s)
        if not ps.set_merged(db, rid, bench_run, summary, result.problems, now, by=(me, run["term"])):
            raise FederationError(f"Run {rid} changed while it was being merged.", reason="invalid")
        for peer in recipients:
            send(node, peer, MERGED_KIND, merged.model_dump_json())
    log.info("partition: run %s… merged: %d/%d passed over %d nodes", rid[:8], result.passed, result.problems,
             len(nodes))
    return bench_run


def on_merged(node: Node, event: Event) -> None:
    """Kind 7353: a coordinator's merged run — drop what is left of this node's share, keep a copy.

    Taken only from the coordinator of the highest term this node knows for the run (rules in
    `colony.federation.partition_copy`): one merged run per run id, the first such.
    """
    db, sender, now = node.db, event.pubkey, time.time()
    merged = opened(db, event, MERGED_KIND, Merged, "merge")
    if merged is None:
        return
    local = ps.get_run(db, merged.run)
    if local is None:
        if not any(w["queen"] == sender for w in ps.work_rows(db, merged.run)):
            membership.record(db, sender, "bad_signature", f"partition merge refused: run {merged.run[:12]}… was "
                              "neither asked of nor worked for the sender")
            return
        standing = "current"
    elif local["state"] == "merged":
        ps.cancel_run_work(db, merged.run, now)
        return  # handled before, or another coordinator's merge was taken first
    else:
        standing = follow(local, sender, merged.term, merged.claim)
    if standing == "invalid":
        membership.record(db, sender, "bad_signature", f"partition merge refused: run {merged.run[:12]}… under term "
                          f"{merged.term} without the sender's claim of that term")
        return
    if standing == "stale":
        assert local is not None
        ps.add_refusal(db, merged.run, sender, "", f"a merged run of term {merged.term}: this copy is coordinated by "
                       f"{local['queen'][:12]}… under term {local['term']}", now)
        log.info("partition: run %s…: refused %s…'s merged run of term %d (this copy is at term %d)", merged.run[:8],
                 sender[:8], merged.term, local["term"])
        return
    ps.cancel_run_work(db, merged.run, now)
    problems = problem_map(merged.suite)
    kept = [p for p in merged.problems if p.problem_id in problems]
    verdicts = [Verdict(problem_id=p.problem_id, tier=problems[p.problem_id].tier, outcome=p.outcome) for p in kept]
    result = score([(v.tier, v.passed) for v in verdicts])
    nodes = _node_counts((), ((p.node, p.outcome == "pass") for p in kept), _names(db, _me(node)))
    summary = {"nodes": nodes, "reassigned": merged.reassigned, "refused": merged.refused, "problems": result.problems,
               "passed": result.passed, "score": result.score, "wall_s": merged.wall_s, "copy_of": sender,
               "results": {p.problem_id: [p.node, p.outcome] for p in kept}}
    with db.tx():
        ps.insert_run(db, {"id": merged.run, "queen": sender, "term": merged.term, "requester": merged.requester,
                           "suite": merged.suite, "mode": merged.mode, "problem_limit": None,
                           "problem_timeout_s": DEFAULT_PROBLEM_TIMEOUT_S, "created_at": now})
        if standing == "moved":
            ps.set_coordinator(db, merged.run, sender, merged.term)
        bench_run = save_run(db, suite=merged.suite, model=f"colony ({len(nodes)} nodes)", shard=SHARD, result=result,
                             verdicts=verdicts, tokens={}, wall_s=merged.wall_s)
        if not ps.set_merged(db, merged.run, bench_run, summary, result.problems, now, by=(sender, merged.term)):
            raise FederationError(f"Run {merged.run} changed while its merged copy was being stored.", reason="invalid")


# -- 7. adopt ------------------------------------------------------------------------------------------
def adopt(node: Node, run: Row, role: RoleView, workers: list[str], now: float) -> dict[str, list[str]]:
    """Coordinate a run planned under an older term, as the queen of ``role``'s (rules in
    `colony.federation.partition_copy`); returns the problems moved, as `reassign` does."""
    db, me, rid = node.db, _me(node), run["id"]
    problems = problem_map(run["suite"])
    _unlock(node)
    with db.tx():
        if not ps.set_coordinator(db, rid, me, role.term):
            return {}
        for raw in ps.done_reports(db, rid):  # this node's own verdicts, which the old coordinator may not have passed on
            r = ProblemReport.model_validate_json(raw)
            problem = problems.get(r.problem_id)
            if problem is not None and ps.ever_assigned(db, rid, r.problem_id, me):
                ps.add_result(db, rid, me, {**r.model_dump(), "tier": problem.tier}, now)
        fresh = ps.get_run(db, rid)
        assert fresh is not None, "the run was just adopted"
        relay(node, fresh, given=ps.assignments(db, rid), taken=ps.results(db, rid))
    log.info("partition: run %s… adopted from %s… under term %d", rid[:8], run["queen"][:8], role.term)
    return reassign(node, fresh, workers, now)


# -- the coordinator's step -----------------------------------------------------------------------
def coordinate(node: Node, now: float | None = None, *, started_at: float | None = None) -> int:
    """Plan, adopt, reassign and merge every open run this node may coordinate; returns how many it touched.

    ``started_at``: when the calling process started (the restart grace counts from it). Reads only
    the runs table until one is open, so an idle node touches no key.
    """
    db = node.db
    pending = ps.open_runs(db)
    if not pending:
        return 0
    me, at = _me(node), time.time() if now is None else now
    role = role_view(db)
    if ask_again(node, me, role):
        pending = ps.open_runs(db)
    workers: list[str] | None = None
    touched = 0
    for run in pending:
        step = authority(node, run, me, role, at, started_at)
        if step is None:
            continue
        workers = live_workers(node, me, at) if workers is None else workers
        if step == "plan":
            plan(node, run, workers, at, role)
        elif step == "adopt":
            adopt(node, run, role, workers, at)
        else:
            reassign(node, run, workers, at)
        fresh = ps.get_run(db, run["id"])
        if fresh is not None:
            merge(node, fresh, at)
        touched += 1
    return touched


# -- views ----------------------------------------------------------------------------------------
def serving(db: Database) -> bool:
    """Whether this node's ``colony up`` is running: a colony run needs it (`_store.serving`)."""
    return _store.serving(db)


def run_detail(db: Database, run: str) -> dict[str, Any] | None:
    """A run with who was given what, the verdicts taken (who solved what), and the refused reports."""
    row = ps.get_run(db, run)
    if row is None:
        return None
    return {**row, "assignments": ps.assignments(db, run), "results": ps.results(db, run),
            "refusals": ps.refusals(db, run), "work": ps.work_rows(db, run)}


def status(db: Database, limit: int = 5) -> list[dict[str, Any]]:
    """The latest colony runs, for a node's status: state, progress and the merged summary."""
    out = []
    for row in ps.list_runs(db, limit):
        got = ps.results(db, row["id"])
        out.append({"id": row["id"], "state": row["state"], "queen": row["queen"], "requester": row["requester"],
                    "suite": row["suite"], "problems": row["problems"], "reported": len(got),
                    "passed": sum(1 for r in got if r["outcome"] == "pass"), "bench_run": row["bench_run"],
                    "summary": row["summary"], "created_at": row["created_at"]})
    return out


register_handler(REQUEST_KIND, on_request)
register_handler(ASSIGN_KIND, on_assign)
register_handler(REPORT_KIND, on_report)
register_handler(MERGED_KIND, on_merged)
register_handler(STATE_KIND, on_state)
