"""Governance as it is read: proposal views, the current parameters, and the per-agent tool tiers.

A `ProposalView` is assembled from the recorded events at a given *now*: the tally is recomputed
from the votes' snapshot weights and the status from `colony.market.governance.status` — nothing
stored says "passed" or "rejected", so no stored summary can disagree with the events.
`agent_tool_tier` is what the tool middleware consults (`colony.node.Node` wires it in).
"""

from __future__ import annotations

import time
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from colony.config import ApprovalTier
from colony.identity import Keyring
from colony.identity._store import get_identity
from colony.identity.events import Event
from colony.market import _gov_store
from colony.market.governance import (
    ACTION_ADAPTER,
    Action,
    Choice,
    GovernanceError,
    GovernanceParams,
    Status,
    Terms,
    describe,
    governance_params,
    market_params,
    status,
    tally,
)
from colony.market.stake import MarketParams
from colony.market.stakes import NodeLike, keyring_of, market_db
from colony.store import Database
from colony.store.engine import Sql

__all__ = [
    "ExecutionView",
    "ProposalView",
    "VetoView",
    "VoteView",
    "agent_tool_tier",
    "current_market_params",
    "current_params",
    "get_proposal",
    "list_proposals",
    "load_view",
    "names_of",
    "now_or",
    "resolve_id",
]


class VoteView(BaseModel):
    model_config = ConfigDict(frozen=True)

    voter: str = Field(description="The voter's public key.")
    voter_name: str | None = Field(description="The hosted agent (or 'node') it belongs to, if local.")
    choice: Choice
    weight: int = Field(description="Micro-credits of stake at the proposal's snapshot.")
    created_at: int
    event_id: str


class VetoView(BaseModel):
    model_config = ConfigDict(frozen=True)

    actor: str = Field(description="Where the owner vetoed: cli, api or approvals.")
    reason: str
    created_at: int
    event_id: str


class ExecutionView(BaseModel):
    model_config = ConfigDict(frozen=True)

    proposal_id: str
    outcome: Literal["applied", "failed"]
    detail: str
    yes: int
    no: int
    abstain: int
    created_at: int
    event_id: str


class ProposalView(BaseModel):
    """A proposal as it stands: terms, tally against the snapshot, status, and its events."""

    model_config = ConfigDict(frozen=True)

    id: str
    proposer: str
    proposer_name: str
    action: Action
    summary: str
    status: Status
    created_at: int
    voting_ends: int
    executable_at: int
    expires_at: int
    quorum_bp: int = Field(description="Share of the snapshot's stake that must vote, in basis points.")
    total_weight: int = Field(description="All stake at the snapshot, micro-credits.")
    yes: int
    no: int
    abstain: int
    quorum_met: bool
    passed: bool
    votes: list[VoteView]
    veto: VetoView | None
    execution: ExecutionView | None
    event: Event


# -- parameters and the seam the tool middleware reads --------------------------------------------


def current_params(db: Sql) -> GovernanceParams:
    """Governance's parameters now: the defaults with every executed ``set_market_param`` applied."""
    return governance_params(_gov_store.param_overrides(db))


def current_market_params(db: Sql) -> MarketParams:
    """The market's parameters now (stake thresholds, slash fractions…), as governance left them."""
    return market_params(_gov_store.param_overrides(db))


def agent_tool_tier(db: Sql, identities: Database, agent: str, tool: str) -> ApprovalTier | None:
    """The approval tier an executed proposal gave this node's ``agent`` for ``tool``; None: the node's policy.

    Read on every call, so an execution shows in the agent's next tool call (`Node` wires this
    into its `ToolExecutor`, over the market's database, `colony.market.stakes.market_db`, and the
    node's own file). Tiers are kept by account: ``agent`` is a name on this node, looked up in
    the node's identities (``identities``, its file; public columns only, so no key is unlocked)
    — another node sharing the market's database may have an agent of the same name.
    """
    found = get_identity(identities, agent)
    if found is None or found["role"] != "agent":
        return None
    return cast("ApprovalTier | None", _gov_store.tool_tier(db, str(found["public_hex"]), tool))


# -- reading --------------------------------------------------------------------------------------


def now_or(now: int | None) -> int:
    """``now`` when a caller fixes the time (tests, replays), else the clock's whole seconds."""
    return int(time.time()) if now is None else now


def names_of(keyring: Keyring) -> dict[str, str]:
    return {i.public_hex: i.name for i in keyring.all()}


def load_view(keyring: Keyring, proposal_id: str, now: int, names: dict[str, str] | None = None) -> ProposalView:
    db = market_db(keyring)
    row = _gov_store.get_proposal(db, proposal_id)
    if row is None:
        raise GovernanceError("not_found", f"No proposal {proposal_id}; list them with: colony market proposals")
    names = names_of(keyring) if names is None else names
    votes = [VoteView(voter=v["voter"], voter_name=names.get(v["voter"]), choice=v["choice"], weight=v["weight"],
                      created_at=v["created_at"], event_id=v["event_id"])
             for v in _gov_store.votes_of(db, proposal_id)]
    vetoed = _gov_store.veto_of(db, proposal_id)
    done = _gov_store.execution_of(db, proposal_id)
    counted = tally(((v.choice, v.weight) for v in votes), total=row["total_weight"], quorum_bp=row["quorum_bp"])
    terms = Terms(row["created_at"], row["voting_ends"], row["executable_at"], row["expires_at"], row["quorum_bp"])
    action = ACTION_ADAPTER.validate_python(row["action"], strict=False)
    return ProposalView(
        id=row["id"], proposer=row["proposer"], proposer_name=row["proposer_name"], action=action,
        summary=describe(action), created_at=row["created_at"], voting_ends=row["voting_ends"],
        status=status(terms, counted, now=now, vetoed=vetoed is not None,
                      executed=None if done is None else done["outcome"]),
        executable_at=row["executable_at"], expires_at=row["expires_at"], quorum_bp=row["quorum_bp"],
        total_weight=row["total_weight"], yes=counted.yes, no=counted.no, abstain=counted.abstain,
        quorum_met=counted.quorum_met, passed=counted.passed, votes=votes,
        veto=None if vetoed is None else VetoView(actor=vetoed["actor"], reason=vetoed["reason"],
                                                  created_at=vetoed["created_at"], event_id=vetoed["event_id"]),
        execution=None if done is None else ExecutionView(
            proposal_id=proposal_id, outcome=done["outcome"], detail=done["detail"], yes=done["yes"], no=done["no"],
            abstain=done["abstain"], created_at=done["created_at"], event_id=done["event_id"]),
        event=Event.model_validate(row["event"]),
    )


def get_proposal(node: NodeLike, proposal_id: str, *, now: int | None = None) -> ProposalView:
    return load_view(keyring_of(node), proposal_id, now_or(now))


def list_proposals(node: NodeLike, *, status_is: Status | None = None, limit: int = 50,
                   now: int | None = None) -> list[ProposalView]:
    """Up to ``limit``, newest first; with ``status_is``, the newest ``limit`` in that state now.

    A state is computed, not stored (it moves with the clock), so filtering reads the proposals
    one by one from the newest until enough match: governance proposals are few.
    """
    keyring, at = keyring_of(node), now_or(now)
    names = names_of(keyring)
    found: list[ProposalView] = []
    for pid in _gov_store.proposal_ids(market_db(keyring), limit=limit if status_is is None else None):
        view = load_view(keyring, pid, at, names)
        if status_is is None or view.status == status_is:
            found.append(view)
            if len(found) == limit:
                break
    return found


def resolve_id(node: NodeLike, text: str) -> str:
    """A proposal id from the full id or a unique prefix of at least 6 hex characters."""
    key = text.strip().lower()
    if len(key) < 6 or any(c not in "0123456789abcdef" for c in key):
        raise GovernanceError("invalid", f"{text!r} is not a proposal id: give its hex id or at least 6 of its "
                              "first characters.")
    found = _gov_store.proposal_ids_by_prefix(market_db(node), key)
    if not found:
        raise GovernanceError("not_found", f"No proposal starts with {key}; list them with: colony market proposals")
    if len(found) > 1:
        raise GovernanceError("invalid", f"More than one proposal starts with {key}; give more characters.")
    return found[0]
