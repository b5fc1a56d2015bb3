"""Governance, stateful: proposals, stake-weighted votes, the owner's veto, deterministic execution.

`colony.market.governance` decides (pure); this module records and acts. Every step is a signed
event kept as sent (migration 14) plus a row in the governance log, and every step that reads and
writes runs in one transaction (`colony.store.engine.Engine.atomic`: ``BEGIN IMMEDIATE`` on the
node's file, or on PostgreSQL with ``COLONY_DATABASE_URL`` a transaction that first takes the
proposal's named lock, `proposal_lock`), so two processes never both vote, veto or execute on the
same state:

- `propose` signs (as the node owner or a hosted agent) and `submit_proposal` records a proposal
  with the snapshot of every account's stake at that moment — the only weights its votes carry.
  An agent needs ``proposal_stake`` staked to propose; the owner needs none.
- `vote` / `submit_vote`: one vote per key, before the window closes by the node's clock; a key
  without stake in the snapshot votes with weight 0.
- `veto`: the node owner, any time before execution (CLI, API, or denying the approval that a
  passed proposal puts in the approvals queue while its timelock runs — the same queue a person
  already watches for tool calls; letting it expire lets the proposal run).
- `execute_due`: every proposal whose timelock has ended and that was not vetoed is executed
  once: the execution record (signed by the node, with the tally) and the effect commit together
  (but see below for the effects on the node's own configuration), and the record's primary key
  makes a second execution impossible. An effect that cannot apply
  (its agent is gone) is recorded as ``failed`` — the proposal is still settled, once. The effect
  is plain code over the node's tables; no model is ever called.

Many nodes, one database. With ``COLONY_DATABASE_URL`` several nodes share these tables and each
node's sweep sees every proposal. An agent's name is only its node's (every node has a
``colony``), so an action that names an agent — a tool tier, a price, admitting or expelling —
is settled only by the node that recorded it (the one whose keyring holds the proposer: a
proposal is accepted only from the node owner or one of its agents), where the name means what
it meant when it was proposed; other nodes leave it alone. A market parameter is everyone's
and is settled by whichever node comes first. A tool tier is kept under the agent's account:
`propose` writes the account into the action, and a proposal signed before actions carried it
is resolved by name on that same node.

Where an effect writes: tool tiers and market parameters are governance's own tables, in the
step's transaction. Admitting or expelling an agent (its profile) and setting a price are the
node's own configuration, kept in its SQLite file on either engine (`colony.market.profiles`,
`colony.payments.prices`); with the market on PostgreSQL such an effect commits in the file
during the step, before the step's execution record commits. A crash between the two leaves
the effect applied and the proposal still due: the next sweep applies it again — each of these
effects sets a value, so applying it twice leaves what applying it once does — and records the
execution once. The approvals queue (the veto offer) lives with the node's records, on the
same engine as the market, so its writes join the step on both.

The node runs `execute_due` every `TICK_S` seconds while it serves (`start_ticker`, started by the
governance API router's lifespan); `colony market execute` runs it by hand. Reading — proposal
views, the current parameters, the per-agent tiers — is `colony.market.gov_views`, re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from colony.errors import ColonyError, IdentityError, StoreError
from colony.identity import Keyring
from colony.identity.events import Event
from colony.identity.keys import SchnorrKey
from colony.identity.store import NODE_NAME
from colony.market import _gov_store, _stake_store
from colony.market.gov_views import (
    ExecutionView,
    ProposalView,
    VetoView,
    VoteView,
    agent_tool_tier,
    current_market_params,
    current_params,
    get_proposal,
    list_proposals,
    load_view,
    names_of,
    now_or,
    resolve_id,
)
from colony.market.governance import (
    Action,
    AdmitAgent,
    Choice,
    ExecutionBody,
    ExpelAgent,
    GovernanceError,
    Reason,
    SetMarketParam,
    SetPrice,
    SetToolTier,
    check_action,
    describe,
    execution_event,
    governance_params,
    market_params,
    proposal_event,
    read_proposal,
    read_vote,
    veto_event,
    vote_event,
)
from colony.market.profiles import activate_agent, deactivate_agent
from colony.market.stakes import NodeLike, keyring_of, market_db
from colony.payments.prices import set_price
from colony.store.audit import ApprovalRecord
from colony.store.engine import Engine
from colony.store.records import RecordStore, open_records

__all__ = [
    "TICK_S",
    "ExecutionView",
    "ProposalView",
    "VetoView",
    "VoteView",
    "agent_tool_tier",
    "current_market_params",
    "current_params",
    "execute_due",
    "get_proposal",
    "list_proposals",
    "proposal_lock",
    "propose",
    "resolve_id",
    "start_ticker",
    "submit_proposal",
    "submit_vote",
    "veto",
    "veto_approval_id",
    "vote",
]

log = logging.getLogger("colony.market")

#: How often a serving node looks for proposals to execute (and passed ones to offer for a veto).
TICK_S = 30.0
#: How far a signed proposal's or vote's time may be from the node's clock (the ledger's window).
MAX_SKEW_S = 300
#: The approvals queue's "tool" for a passed proposal's veto offer.
VETO_TOOL = "governance.execute"


# -- proposing ------------------------------------------------------------------------------------


def proposal_lock(proposal_id: str) -> str:
    """The name a step locks to record on a proposal (`colony.store.engine.Engine.lock`)."""
    return f"governance:proposal:{proposal_id}"


def _signer(keyring: Keyring, name: str) -> SchnorrKey:
    """The key that signs as ``name``: the node owner's for ``node``, else the hosted agent's."""
    if name == NODE_NAME:
        return keyring.node().schnorr_key
    try:
        keyring.agent(name)
    except IdentityError as exc:
        raise GovernanceError("not_found", f"No agent named {name!r} on this node; list them with: "
                              "colony agents list") from exc
    return keyring.schnorr_key(name)


def propose(node: NodeLike, action: Action, *, by: str = NODE_NAME, now: int | None = None,
            actor: str = "cli") -> ProposalView:
    """Sign ``action`` as ``by`` (``node`` for the owner, or a staked agent's name) and record it."""
    problem = check_action(action)
    if problem is not None:
        raise GovernanceError("invalid", f"Cannot propose to {describe(action)}: {problem}.")
    keyring = keyring_of(node)
    action = _with_account(keyring, action)
    at = now_or(now)
    event = proposal_event(_signer(keyring, by), action, created_at=at, params=current_params(market_db(keyring)))
    return submit_proposal(keyring, event, now=at, actor=actor)


def _with_account(keyring: Keyring, action: Action) -> Action:
    """``action`` naming its agent's account too, when it is a tool tier for an agent of this node."""
    if not isinstance(action, SetToolTier) or action.account is not None:
        return action
    try:
        account = keyring.agent(action.agent).public_hex
    except IdentityError:
        return action  # `_effect_problem` says there is no such agent
    return action.model_copy(update={"account": account})


def _fresh(event: Event, now: int, what: str) -> None:
    if abs(event.created_at - now) > MAX_SKEW_S:
        raise GovernanceError("invalid", f"The {what} was signed at {event.created_at}, more than {MAX_SKEW_S} s "
                              f"from the node's clock ({now}); sign it again.")


def submit_proposal(node: NodeLike, event: Event, *, now: int | None = None, actor: str = "api") -> ProposalView:
    """Record a signed proposal (idempotent by event id) with the stake snapshot of this moment.

    Raises `MarketEventError` for an event that does not verify or has other terms than this
    node's, and `GovernanceError`: ``not_allowed`` (not the owner nor an agent with enough
    stake), ``not_found`` (its action names no agent of this node), ``invalid``.
    """
    keyring, at = keyring_of(node), now_or(now)
    db = market_db(keyring)
    params = current_params(db)
    body = read_proposal(event, params)
    _fresh(event, at, "proposal")
    owner = keyring.node().public_hex
    found = keyring.by_public_key(event.pubkey)
    if found is None:
        raise GovernanceError("not_allowed", "Proposals come from the node owner or one of its staked agents.")
    problem = _effect_problem(keyring, body.action)
    if problem is not None:
        raise GovernanceError(problem[0], f"Cannot propose to {describe(body.action)}: {problem[1]}.")

    def step() -> None:
        db.lock(proposal_lock(event.id))
        if _gov_store.get_proposal(db, event.id) is not None:
            return
        snapshot = _stake_store.stakes_by_account(db)
        need = max(1, params.proposal_stake)
        if event.pubkey != owner and snapshot.get(event.pubkey, 0) < need:
            raise GovernanceError("not_allowed", f"{found.name} has {snapshot.get(event.pubkey, 0)} micro-credits "
                                  f"staked; proposing needs {need}. Stake first: colony market stake deposit "
                                  f"{found.name} AMOUNT")
        _gov_store.insert_proposal(db, {
            "id": event.id, "proposer": event.pubkey, "proposer_name": found.name,
            "action_type": body.action.type, "action": body.action.model_dump_json(),
            "created_at": event.created_at, "voting_ends": body.voting_ends,
            "executable_at": body.executable_at, "expires_at": body.expires_at, "quorum_bp": body.quorum_bp,
            "total_weight": sum(snapshot.values()), "event": event.model_dump_json(), "recorded_at": at,
        }, snapshot)
        _gov_store.append_log(db, at=at, actor=actor, action="proposed", proposal_id=event.id, agent=found.name,
                              detail={"action": body.action.model_dump(), "stakers": len(snapshot),
                                      "total_weight": sum(snapshot.values())})

    db.atomic(step)
    log.info("governance proposal recorded", extra={"proposal": event.id, "by": found.name})
    return load_view(keyring, event.id, at)


# -- voting and vetoing ---------------------------------------------------------------------------


def vote(node: NodeLike, proposal_id: str, voter: str, choice: Choice, *, now: int | None = None,
         actor: str = "cli") -> ProposalView:
    """Sign a vote as ``voter`` (a hosted agent, or ``node``) and record it."""
    keyring = keyring_of(node)
    at = now_or(now)
    event = vote_event(_signer(keyring, voter), proposal_id, choice, created_at=at)
    return submit_vote(keyring, event, now=at, actor=actor)


def submit_vote(node: NodeLike, event: Event, *, now: int | None = None, actor: str = "api") -> ProposalView:
    """Record a signed vote with its snapshot weight.

    Raises `MarketEventError` (a forged or malformed event) and `GovernanceError`: ``not_found``,
    ``closed`` (the window has closed, or the proposal was vetoed), ``duplicate`` (this key has
    voted on it; the same event again is not an error).
    """
    keyring, at = keyring_of(node), now_or(now)
    db = market_db(keyring)
    body = read_vote(event)
    _fresh(event, at, "vote")

    def step() -> None:
        db.lock(proposal_lock(body.proposal))
        row = _gov_store.get_proposal(db, body.proposal)
        if row is None:
            raise GovernanceError("not_found", f"No proposal {body.proposal}.")
        prior = _gov_store.vote_of(db, body.proposal, event.pubkey)
        if prior is not None and prior["event_id"] == event.id:
            return
        if _gov_store.veto_of(db, body.proposal) is not None:
            raise GovernanceError("closed", "The proposal was vetoed; it takes no more votes.")
        if at >= row["voting_ends"]:
            raise GovernanceError("closed", f"Voting on this proposal closed at {row['voting_ends']} (now {at}).")
        if event.created_at < row["created_at"]:
            raise GovernanceError("invalid", "The vote is dated before the proposal it votes on.")
        if prior is not None:
            raise GovernanceError("duplicate", "This key has already voted on this proposal; a vote is final.")
        weight = _gov_store.snapshot_weight(db, body.proposal, event.pubkey)
        _gov_store.insert_vote(db, {"proposal_id": body.proposal, "voter": event.pubkey, "choice": body.choice,
                                    "weight": weight, "created_at": event.created_at, "event_id": event.id,
                                    "event": event.model_dump_json(), "recorded_at": at})
        _gov_store.append_log(db, at=at, actor=actor, action="voted", proposal_id=body.proposal,
                              agent=names_of(keyring).get(event.pubkey),
                              detail={"voter": event.pubkey, "choice": body.choice, "weight": weight})

    db.atomic(step)
    return load_view(keyring, body.proposal, at)


def veto(node: NodeLike, proposal_id: str, *, reason: str, actor: str = "cli", now: int | None = None) -> ProposalView:
    """The node owner stops a proposal before it executes (signed by the node key).

    Vetoing a vetoed proposal changes nothing. Raises `GovernanceError` ``closed`` once it has
    executed, been rejected or expired — there is nothing left to stop.
    """
    keyring, at = keyring_of(node), now_or(now)
    key = keyring.node().schnorr_key
    why = reason.strip()[:500]
    if not why:
        raise GovernanceError("invalid", "A veto needs a reason (kept in the governance log).")
    db, approvals = market_db(keyring), _approvals(keyring)

    def step() -> None:
        db.lock(proposal_lock(proposal_id))
        view = load_view(keyring, proposal_id, at)
        if view.status != "vetoed":
            _record_veto(keyring, approvals, key, view, why, actor, at)

    db.atomic(step)
    return load_view(keyring, proposal_id, at)


def _approvals(keyring: Keyring) -> RecordStore:
    """The approvals queue a person watches: with the node's records, on the market's engine.

    Its writes join the governance step's transaction on both engines (the node's file, or the
    PostgreSQL pool whose `thread_tx` the step holds). They still come last in their step, so
    the step's own rules refuse anything before a person's queue changes. Opened before a step:
    the first opening of a process sweeps its orphaned turns, which belongs to no step.
    """
    return open_records(keyring.db, keyring.settings)


def _record_veto(keyring: Keyring, approvals: RecordStore, key: SchnorrKey, view: ProposalView, reason: str,
                 actor: str, now: int) -> None:
    db = market_db(keyring)
    if view.status not in ("voting", "queued", "executable"):
        raise GovernanceError("closed", f"The proposal is {view.status}; only one that may still run can be vetoed.")
    event = veto_event(key, view.id, reason, created_at=now)
    _gov_store.insert_veto(db, {"proposal_id": view.id, "actor": actor, "reason": reason, "created_at": now,
                                "event_id": event.id, "event": event.model_dump_json(), "recorded_at": now})
    _gov_store.append_log(db, at=now, actor=actor, action="vetoed", proposal_id=view.id, detail={"reason": reason})
    approvals.decide_approval(veto_approval_id(view.id), "denied", f"veto:{actor}")  # the offer is answered
    log.info("governance proposal vetoed", extra={"proposal": view.id, "actor": actor})


# -- executing ------------------------------------------------------------------------------------


def veto_approval_id(proposal_id: str) -> str:
    """The id of the approval that offers a passed proposal's veto to a person (one per proposal)."""
    return f"gov_{proposal_id[:32]}"


def execute_due(node: NodeLike, *, now: int | None = None, actor: str = "node") -> list[ExecutionView]:
    """Execute every proposal whose timelock has ended, once; offer passed ones for a veto meanwhile.

    Safe to run from several processes at once: each proposal is settled under the write lock and
    its execution record is unique. Returns the executions this call made.
    """
    keyring, at = keyring_of(node), now_or(now)
    pending = _gov_store.undecided_ids(market_db(keyring), at)
    if not pending:  # the common case: no key is unlocked, nothing is written
        return []
    key = keyring.node().schnorr_key
    done = []
    for proposal_id in pending:
        result = _settle(keyring, key, proposal_id, at, actor)
        if result is not None:
            done.append(result)
    return done


def _settle(keyring: Keyring, key: SchnorrKey, proposal_id: str, now: int, actor: str) -> ExecutionView | None:
    db, approvals = market_db(keyring), _approvals(keyring)

    def step() -> str | None:
        """Execute the proposal if it is due: its outcome's problem ("" when applied), or None."""
        db.lock(proposal_lock(proposal_id))
        view = load_view(keyring, proposal_id, now)
        if view.status not in ("queued", "executable") or not _settles_here(keyring, view):
            return None
        approval = approvals.get_approval(veto_approval_id(proposal_id))
        if approval is not None and approval["status"] == "denied":
            _record_veto(keyring, approvals, key, view, f"denied in the approvals queue by {approval['decided_by']}",
                         "approvals", now)
            return None
        if view.status == "queued":
            if approval is None:
                _offer_veto(keyring, approvals, view, now)
            return None
        found = _effect_problem(keyring, view.action)
        problem = None if found is None else found[1]
        if problem is None:
            problem = _apply_once(db, keyring, key, view, now)
        if problem is not None:
            _write_execution(db, key, view, "failed", problem, now)
        _gov_store.append_log(db, at=now, actor=actor, action="executed", proposal_id=proposal_id,
                              detail={"outcome": "failed" if problem else "applied", "detail": problem or view.summary,
                                      "yes": view.yes, "no": view.no, "abstain": view.abstain})
        approvals.decide_approval(veto_approval_id(proposal_id), "expired", "timelock")  # no veto in time
        return problem or ""

    problem = db.atomic(step)
    if problem is None:
        return None
    log.info("governance proposal executed", extra={"proposal": proposal_id, "failed": bool(problem)})
    executed = load_view(keyring, proposal_id, now).execution
    assert executed is not None
    return executed


def _apply_once(db: Engine, keyring: Keyring, key: SchnorrKey, view: ProposalView, now: int) -> str | None:
    """Record the execution as applied and apply the effect; None, or why the effect could not apply
    (its writes are then undone: the savepoint; the caller records the execution as failed).

    A store error that is no refusal (a deadlock, a lost connection) is not the effect's fault:
    it propagates, and the whole step is rolled back (and run again on a conflict).
    """
    db.execute("SAVEPOINT gov_effect")
    _write_execution(db, key, view, "applied", view.summary, now)
    problem = None
    try:
        _apply(keyring, view.action, view.id, now)
    except ColonyError as exc:
        if isinstance(exc, StoreError) and db.refusal(exc) is None:
            raise
        db.execute("ROLLBACK TO gov_effect")
        problem = str(exc)
    db.execute("RELEASE gov_effect")
    return problem


def _write_execution(db: Engine, key: SchnorrKey, view: ProposalView, outcome: Literal["applied", "failed"],
                     detail: str, now: int) -> None:
    body = ExecutionBody(proposal=view.id, outcome=outcome, yes=view.yes, no=view.no, abstain=view.abstain,
                         detail=detail[:500])
    event = execution_event(key, body, created_at=now)
    _gov_store.insert_execution(db, {"proposal_id": view.id, "outcome": outcome, "yes": view.yes, "no": view.no,
                                     "abstain": view.abstain, "detail": body.detail, "created_at": now,
                                     "event_id": event.id, "event": event.model_dump_json(), "recorded_at": now})


def _offer_veto(keyring: Keyring, approvals: RecordStore, view: ProposalView, now: int) -> None:
    """Put the passed proposal in the approvals queue until its timelock ends: deny = veto."""
    _gov_store.append_log(market_db(keyring), at=now, actor="node", action="offered_veto", proposal_id=view.id,
                          detail={"approval": veto_approval_id(view.id)})
    approvals.create_approval(ApprovalRecord(
        approval_id=veto_approval_id(view.id), session_id=None, turn_id=None, call_id=view.id, tool=VETO_TOOL,
        arguments={"proposal": view.id, "action": view.action.model_dump()},
        reason=(f"Governance proposal {view.id[:12]} passed ({view.yes} yes, {view.no} no): {view.summary}. It runs "
                f"when its timelock ends unless vetoed. Deny to veto it; allow, or let this expire, to let it run."),
        timeout_s=max(1, view.executable_at - now),
    ))


def _settles_here(keyring: Keyring, view: ProposalView) -> bool:
    """Whether this node may offer the proposal for a veto and execute it (module docstring: many
    nodes, one database): a market parameter anywhere, an action naming an agent on its own node."""
    return isinstance(view.action, SetMarketParam) or keyring.by_public_key(view.proposer) is not None


def _effect_problem(keyring: Keyring, action: Action) -> tuple[Reason, str] | None:
    """Why ``action`` cannot apply on this node now, or None. Checked at proposal and at execution."""
    agent = action.pay_to if isinstance(action, SetPrice) else getattr(action, "agent", None)
    if agent is not None:
        try:
            found = keyring.agent(agent)
        except IdentityError:
            return "not_found", f"no agent named {agent!r} on this node"
        if isinstance(action, SetToolTier) and action.account not in (None, found.public_hex):
            return "invalid", (f"the agent named {agent!r} on this node has the account {found.public_hex[:12]}…, "
                               f"not {str(action.account)[:12]}…")
    if isinstance(action, SetMarketParam):
        try:
            overrides = {**_gov_store.param_overrides(market_db(keyring)), action.name: action.value}
            market_params(overrides)
            governance_params(overrides)
        except ValueError as exc:
            return "invalid", str(exc)
    return None


def _apply(keyring: Keyring, action: Action, proposal_id: str, now: int) -> None:
    """The effect: plain writes to the node's tables, the same for the same action (module docstring:
    tiers and parameters with governance's tables, profiles and prices in the node's own file)."""
    db = market_db(keyring)
    if isinstance(action, SetToolTier):  # the account it names, or (signed before it could) its agent's here
        account = action.account or keyring.agent(action.agent).public_hex
        _gov_store.set_tool_tier(db, account, action.agent, action.tool, action.tier, proposal_id, now)
    elif isinstance(action, SetPrice):
        set_price(keyring.db, action.route, credits=action.credits, evm_amount=action.evm_amount, pay_to=action.pay_to,
                  description=f"set by governance proposal {proposal_id[:12]}")
    elif isinstance(action, AdmitAgent):
        activate_agent(keyring, action.agent)
    elif isinstance(action, ExpelAgent):
        deactivate_agent(keyring, action.agent)
    else:
        _gov_store.set_param(db, action.name, action.value, proposal_id, now)


# -- in the background ----------------------------------------------------------------------------


def start_ticker(node: NodeLike, *, every_s: float = TICK_S) -> Callable[[], Awaitable[None]]:
    """Run `execute_due` now and every ``every_s`` seconds on the running loop; return its stopper.

    The sweep runs in a worker thread (unlocking the node key is scrypt); a failing sweep is
    logged and retried at the next tick. The stopper lets a sweep in progress finish (up to 10 s).
    """
    stop = asyncio.Event()

    async def run() -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(execute_due, node)
            except Exception:  # a background loop must outlive one bad sweep; the next tick retries
                log.exception("governance sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    task = asyncio.create_task(run(), name="colony-governance")

    async def shutdown() -> None:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 10.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return shutdown
