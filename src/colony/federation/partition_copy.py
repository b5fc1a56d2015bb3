"""Every participant's copy of a partitioned run, and who coordinates it: terms, adoption, standing down.

A colony run must outlive the node that planned it (kill the queen: another node takes over and the
work goes on), so its coordinator does not keep the run to itself:

- **Copies** (`relay`, `on_state`). The coordinator sends its state of the run (kind 7354) to every
  participant — the requester and every node given a problem — in the transaction that changes it:
  the request's terms and every assignment when it plans, the new assignments when it moves
  problems, each verdict it takes. A participant keeps the copy in its own tables, numbered as the
  coordinator numbered it.
- **Terms** (`follow`). A run involving other nodes is coordinated under a queen term
  (`colony.federation.queen`); every state message carries the coordinator's own signed claim of
  that term, so a participant checks the term itself. A participant follows the highest term it has
  seen for a run: a state, assignment or merged run of an older term is stale and ignored, and at
  one term the first coordinator it heard from wins.
- **Who acts** (`authority`). A run involving other nodes is coordinated only by the queen, under her
  current term, once this node has been up for the restart grace: a queen killed and restarted
  still believes she is queen until she hears the colony, and must not act on that. A node alone,
  or a run only it takes part in, needs none of this (term 0).
- **Adoption** (`colony.federation.partition.adopt`). The queen of a later term adopts every open
  run she holds a copy of: she records herself as its coordinator under her term, takes her own
  verdicts, sends the whole state to every participant (whose copies then name her), moves the
  unreported problems of nodes that are not live or not reporting — the old coordinator's among
  them — and merges when every problem has a verdict. A node that is not the queen never adopts.
- **Standing down.** An old coordinator that comes back learns the higher term — from its first
  heartbeats, or from the adopter's state, whose claim it adopts — and no longer acts: it is not
  the queen, and its copy names the adopter. A participant whose copy moves to a new coordinator
  sends it all its verdicts again (``Report.again``); the new coordinator keeps the ones it lacks.

At most one merged run per run id is accepted on a node: a merged run is taken only from the
coordinator of the highest term the node knows for the run, and the database keeps a merged run
final (`colony.store.partition_adopt_schema`). Two queens at once (one cut off from the colony,
hearing nobody) could each merge their own copy; every node that has heard the higher term accepts
only that term's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel

from colony.bench.problems import Problem, load_problems
from colony.federation import _store, membership
from colony.federation import partition_store as ps
from colony.federation.errors import FederationError
from colony.federation.messages import RoleView, claim_term
from colony.federation.outbox import send
from colony.federation.partition_wire import (
    REPORT_KIND,
    STATE_CHUNK,
    STATE_KIND,
    Given,
    ProblemReport,
    Report,
    RunState,
    Suite,
    Taken,
    parse,
)
from colony.federation.queen import LIVE_FACTOR
from colony.federation.roles import adopt_claim, role_view
from colony.identity.events import Event
from colony.store import Database, Row

if TYPE_CHECKING:
    from colony.config import Settings
    from colony.node import Node

__all__ = [
    "Step",
    "authority",
    "follow",
    "on_state",
    "participants",
    "problem_map",
    "proves",
    "relay",
    "resend",
    "restart_grace_s",
]


M = TypeVar("M", bound=BaseModel)


def opened(db: Database, event: Event, kind: int, model: type[M], what: str) -> M | None:
    """A partition message's content, or None when it is not one — recorded as an incident against
    its sender (a member signed it, so a malformed one is its doing)."""
    try:
        return parse(event, kind, model)
    except FederationError as exc:
        membership.record(db, event.pubkey, "bad_signature", f"partition {what} refused: {exc}")
        return None

log = logging.getLogger("colony.federation")

#: What this node does with an open run now: plan it, run it (reassign, merge), or adopt it.
Step = Literal["plan", "run", "adopt"]
#: How a message about a run relates to this node's copy of it (see `follow`).
Standing = Literal["current", "moved", "stale", "invalid"]


@cache
def problem_map(suite: Suite) -> dict[str, Problem]:
    """The suite's problems by id (every node loads the same set: ids are all that travels)."""
    return {p.id: p for p in load_problems(suite)}


def _trusted(db: Database) -> set[str]:
    return {m["pubkey"] for m in _store.list_members(db, "trusted")}


def _involved(db: Database, run: Row) -> set[str]:
    return {a["node"] for a in ps.assignments(db, run["id"])} | {run["requester"], run["queen"]}


def participants(db: Database, run: Row, me: str) -> list[str]:
    """The trusted members a run's state goes to: its requester and every node given one of its problems."""
    nodes = {a["node"] for a in ps.assignments(db, run["id"])} | {run["requester"]}
    return sorted((nodes - {me}) & _trusted(db))


# -- who acts -------------------------------------------------------------------------------------
def restart_grace_s(settings: Settings) -> float:
    """How long a node that has just started waits before it coordinates (the federation loop's start grace)."""
    # Imported here: the loop imports this module (through colony_state and partition).
    from colony.federation.loop import MAX_BACKOFF_BEATS, MAX_BACKOFF_S

    beat = settings.federation_heartbeat_s
    return min(MAX_BACKOFF_S, MAX_BACKOFF_BEATS * beat) + LIVE_FACTOR * beat


def _settled(node: Node, now: float, started_at: float | None) -> bool:
    """True once this node has been up for its restart grace (always, when nothing recorded a start).

    ``started_at`` is the caller's own start: the loop's record may still be the previous process's.
    """
    recorded = _store.get_self(node.db)["started_at"]
    starts = [float(t) for t in (recorded, started_at) if t]
    return not starts or now - max(starts) >= restart_grace_s(node.settings)


def authority(node: Node, run: Row, me: str, role: RoleView, now: float, started_at: float | None = None
              ) -> Step | None:
    """What the rule lets this node do with an open run now (rules in the module docstring); None: nothing."""
    db = node.db
    if run["state"] == "requested":
        if run["queen"] != me:
            return None  # asked of another node: this is the requester's copy
        if not _trusted(db):
            return "plan"  # alone: it plans over itself
    elif not _involved(db, run) - {me}:
        return "run" if run["queen"] == me else None
    if role.queen != me or role.claim is None or not _settled(node, now, started_at):
        return None
    if run["state"] == "requested":  # asked of this node while it was the queen of this term
        return "plan" if run["term"] == role.term else None
    if run["queen"] == me and run["term"] == role.term:
        return "run"
    return "adopt" if run["term"] < role.term else None


# -- the coordinator's side -----------------------------------------------------------------------
def _given(rows: Iterable[Row]) -> list[Given]:
    return [Given(problem_id=r["problem_id"], node=r["node"], attempt=r["attempt"]) for r in rows]


def _taken(rows: Iterable[Row]) -> list[Taken]:
    return [Taken(problem_id=r["problem_id"], node=r["node"], outcome=r["outcome"], detail=r["detail"],
                  tokens=r["tokens"], wall_ms=r["wall_ms"], solution_sha256=r["solution_sha256"]) for r in rows]


def relay(node: Node, run: Row, *, given: Iterable[Row] = (), taken: Iterable[Row] = ()) -> int:
    """Send the run's participants this change of its state (in the caller's transaction); returns the
    messages queued. Nothing goes out unless this node is the queen of the run's term: an old
    coordinator that has not yet heard of the adoption keeps its copy to itself."""
    me = node.keyring.node().public_hex
    role = role_view(node.db)
    if role.queen != me or role.claim is None or role.term != run["term"] or run["queen"] != me:
        return 0
    peers = participants(node.db, run, me)
    if not peers:
        return 0
    assigned, results = _given(given), _taken(taken)
    chunks = [results[i:i + STATE_CHUNK] for i in range(0, len(results), STATE_CHUNK)] or [[]]
    sent = 0
    for k, chunk in enumerate(chunks):
        state = RunState(run=run["id"], requester=run["requester"], suite=run["suite"], mode=run["mode"],
                         limit=run["problem_limit"], problem_timeout_s=run["problem_timeout_s"],
                         problems=int(run["problems"] or 0), term=run["term"], claim=role.claim,
                         given=assigned if k == 0 else [], taken=chunk)
        content = state.model_dump_json()
        for peer in peers:
            send(node, peer, STATE_KIND, content)
            sent += 1
    return sent


# -- a participant's side -------------------------------------------------------------------------
def proves(sender: str, term: int, claim: Event | None) -> bool:
    """Whether ``claim`` is ``sender``'s own valid signed claim of ``term``."""
    if claim is None or claim.pubkey != sender:
        return False
    try:
        return claim_term(claim) == term
    except FederationError:
        return False


def follow(local: Row, sender: str, term: int, claim: Event | None) -> Standing:
    """How a message from ``sender`` under ``term`` relates to this node's copy of the run: from its
    coordinator (``current``), from the coordinator of a higher term that proves it (``moved``), of
    an older term or another coordinator of the same term (``stale``), or claiming a term it cannot
    prove (``invalid``)."""
    if local["state"] == "merged":
        return "stale"
    if sender == local["queen"] and term == local["term"]:
        return "current"
    if term <= local["term"]:
        return "stale"
    return "moved" if proves(sender, term, claim) else "invalid"


def resend(node: Node, run: str, to: str) -> int:
    """Send every verdict this node reached on its share of ``run`` again, to ``to``; returns how many."""
    reports = [ProblemReport.model_validate_json(r) for r in ps.done_reports(node.db, run)]
    if not reports or to not in _trusted(node.db):
        return 0
    send(node, to, REPORT_KIND, Report(run=run, results=reports, again=True).model_dump_json())
    return len(reports)


def on_state(node: Node, event: Event) -> None:
    """Kind 7354: a coordinator's state of a run this node takes part in — keep the copy (see the module docstring)."""
    db, sender = node.db, event.pubkey
    state = opened(db, event, STATE_KIND, RunState, "state")
    if state is None:
        return
    local = ps.get_run(db, state.run)
    standing: Standing = ("moved" if proves(sender, state.term, state.claim) else "invalid") if local is None \
        else follow(local, sender, state.term, state.claim)
    if standing == "invalid":
        membership.record(db, sender, "bad_signature", f"partition state refused: run {state.run[:12]}… under term "
                          f"{state.term} without the sender's claim of that term")
        return
    if standing == "stale":
        log.info("partition: run %s…: ignored %s…'s state of term %d (this copy is at term %s)", state.run[:8],
                 sender[:8], state.term, local["term"] if local else "-")
        return
    adopt_claim(db, state.claim)  # the coordinator's term is the colony's too: an old queen steps down here
    now = time.time()
    problems = problem_map(state.suite)
    _ = node.keyring.node().schnorr_key  # unlocked before the transaction: verdicts may be sent again
    with db.tx():
        if local is None:
            ps.insert_run(db, {"id": state.run, "queen": sender, "term": state.term, "requester": state.requester,
                               "suite": state.suite, "mode": state.mode, "problem_limit": state.limit,
                               "problem_timeout_s": state.problem_timeout_s, "created_at": now})
        elif standing == "moved":
            ps.set_coordinator(db, state.run, sender, state.term)
        ps.set_running(db, state.run, state.problems, now, state.term)
        for g in state.given:
            ps.copy_assignment(db, state.run, g.problem_id, g.node, g.attempt, now)
        for t in state.taken:
            problem = problems.get(t.problem_id)
            if problem is None or not ps.ever_assigned(db, state.run, t.problem_id, t.node):
                log.info("partition: run %s…: a copied verdict on %s has no assignment here", state.run[:8],
                         t.problem_id[:40])
                continue
            ps.add_result(db, state.run, t.node, {**t.model_dump(exclude={"node"}), "tier": problem.tier}, now)
        if local is None or local["queen"] != sender:
            sent = resend(node, state.run, sender)
            if local is not None:
                log.info("partition: run %s… is coordinated by %s… under term %d now; %d verdicts sent again",
                         state.run[:8], sender[:8], state.term, sent)
