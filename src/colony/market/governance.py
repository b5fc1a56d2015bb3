"""Governance's decision logic: what may be proposed, how votes count, and when a proposal runs.

Pure: no database, no clock, no model. Everything a decision needs comes in as arguments — the
proposal's terms, the snapshot total, the votes with their weights, a veto, an execution, *now* —
so equal inputs give the equal outcome, and anyone holding the signed events can recompute it.
The stateful flow (recording events, snapshots, executions) is `colony.market.gov_service`.

Actions are a closed, typed set (a pydantic union discriminated by ``type``): set one agent's
approval tier for one tool, set an x402 route's price, admit (reactivate) or expel (deactivate) a
hosted agent, set a market or governance parameter within its bounds. Nothing else can be
proposed; in particular nothing that would run a prompt.

Lifecycle (the states `status` returns)::

    voting ──(window closes)──► rejected            quorum not met, or yes ≤ no
       │                    └─► queued ──(timelock)──► executable ──► executed | failed
       │                           │                       └──(grace passes)──► expired
       └────────── vetoed ◄────────┴───────────────────────┘   (the node owner, before execution)

Counting. A vote weighs the voter's stake at the proposal's snapshot (taken when the proposal was
recorded); stake added later counts for nothing and a key with no stake then weighs 0. Quorum is a
share (basis points) of the snapshot's total stake, counting yes, no and abstain; a proposal
passes when the quorum is met and yes outweighs no. The terms (window, timelock, grace, quorum)
are fixed in the signed proposal from the node's parameters at that moment, so changing a
parameter later never moves a running vote.

Events (kinds 7210–7213, `colony.market.events.MARKET_KINDS`): a proposal signed by its proposer
(a staked agent or the node), votes signed by their voters, the node owner's veto and the node's
execution record, both signed by the node key.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, TypeAdapter

from colony.identity.events import Event
from colony.identity.keys import SchnorrKey
from colony.identity.store import NAME_PATTERN
from colony.ledger.amounts import MAX_AMOUNT, MICRO
from colony.market.events import (
    Hex64,
    MarketError,
    MarketEventError,
    Time,
    _Body,
    _canonical,
    open_market,
    sign_market,
)
from colony.market.stake import BP, MarketParams

__all__ = [
    "ACTION_ADAPTER",
    "MARKET_PARAM_NAMES",
    "PARAM_BOUNDS",
    "Action",
    "AdmitAgent",
    "Choice",
    "ExecutionBody",
    "ExpelAgent",
    "GovernanceError",
    "GovernanceParams",
    "ParamName",
    "ProposalBody",
    "Reason",
    "SetMarketParam",
    "SetPrice",
    "SetToolTier",
    "Status",
    "Tally",
    "Terms",
    "VetoBody",
    "VoteBody",
    "check_action",
    "describe",
    "execution_event",
    "governance_params",
    "json_integer",
    "market_params",
    "proposal_event",
    "read_proposal",
    "read_vote",
    "status",
    "tally",
    "terms_for",
    "veto_event",
    "vote_event",
]

Choice = Literal["yes", "no", "abstain"]
Tier = Literal["allow", "ask", "auto"]
Status = Literal["voting", "queued", "executable", "executed", "failed", "rejected", "vetoed", "expired"]
Reason = Literal["not_found", "not_allowed", "closed", "duplicate", "invalid"]

DAY = 86_400


def json_integer(value: Any) -> Any:
    """JSON's integers: ``5`` and ``5.0`` (one number in JSON), never ``true``, ``"5"`` nor ``5.5``.

    Strict fields alone would refuse ``5.0``, which a JSON schema calls an integer; lax ones would
    take ``true`` and ``"5"``, which it does not. (A signed event is held to its canonical form
    anyway: ``5.0`` there is refused by `read_proposal`'s canonical check.)
    """
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true or false")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def _tag_required(schema: dict[str, Any]) -> None:
    """The ``type`` tag has a default for Python callers, but a client must always send it."""
    schema["required"] = ["type", *(name for name in schema.get("required", []) if name != "type")]


_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, json_schema_extra=_tag_required)
Micro = Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT), BeforeValidator(json_integer)]
_ROUTE = r"^((GET|POST|PUT|PATCH|DELETE) )?/[A-Za-z0-9._~/*:-]*$"  # `colony.payments.prices.ROUTE`

AgentName = Annotated[str, Field(pattern=NAME_PATTERN, description="A hosted agent's name.")]
ToolName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
                                description="A tool's name as the registry knows it, e.g. write_file.")]


class GovernanceError(MarketError):
    """A governance step refused; ``reason`` is a stable code, the message says what to do."""

    code = "governance_error"

    def __init__(self, reason: Reason, message: str) -> None:
        self.reason: Reason = reason
        super().__init__(message)


# -- parameters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GovernanceParams:
    """How proposals are decided. Defaults: a day to vote, a day's timelock, a week to execute."""

    #: How long a proposal takes votes.
    voting_period_s: int = DAY
    #: Between the end of the vote and the earliest execution: time for the owner to veto.
    timelock_s: int = DAY
    #: A passed proposal not executed this long after its timelock ends expires.
    grace_s: int = 7 * DAY
    #: Share of the snapshot's total stake that must vote (yes, no or abstain): 20 %.
    quorum_bp: int = 2_000
    #: Stake an agent needs to propose (the node owner needs none): 1 credit, so proposing costs
    #: something to hold and a fresh identity cannot flood the queue.
    proposal_stake: int = MICRO

    def __post_init__(self) -> None:
        for name in GOVERNANCE_PARAM_NAMES:
            lo, hi = PARAM_BOUNDS[name]
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must be within {lo}..{hi}")


MARKET_PARAM_NAMES = ("stake_free_bid", "stake_bp", "slash_failed_bp", "slash_equivocation_bp", "min_reputation",
                      "contribution_max", "contribution_decay", "backlog_bp")
GOVERNANCE_PARAM_NAMES = ("voting_period_s", "timelock_s", "grace_s", "quorum_bp", "proposal_stake")
ParamName = Literal["stake_free_bid", "stake_bp", "slash_failed_bp", "slash_equivocation_bp", "min_reputation",
                    "contribution_max", "contribution_decay", "backlog_bp", "voting_period_s", "timelock_s", "grace_s",
                    "quorum_bp", "proposal_stake"]

#: What a proposal may set each parameter to, inclusive. Integers only: ``min_reputation`` is set
#: in basis points of reputation (2500 = 0.25), so no float ever crosses the wire.
PARAM_BOUNDS: dict[str, tuple[int, int]] = {
    "stake_free_bid": (0, MAX_AMOUNT),
    "stake_bp": (0, BP),
    "slash_failed_bp": (0, BP),
    "slash_equivocation_bp": (0, BP),
    "min_reputation": (0, BP),
    "contribution_max": (1, 1_000),
    "contribution_decay": (1, 10**15),
    "backlog_bp": (0, 10 * BP),
    "voting_period_s": (60, 30 * DAY),
    "timelock_s": (0, 30 * DAY),
    "grace_s": (60, 90 * DAY),
    "quorum_bp": (1, BP),
    "proposal_stake": (0, MAX_AMOUNT),
}


def market_params(overrides: Mapping[str, int], base: MarketParams | None = None) -> MarketParams:
    """``base`` (the defaults) with the governed overrides applied; other names are ignored."""
    changes: dict[str, Any] = {n: v for n, v in overrides.items() if n in MARKET_PARAM_NAMES}
    if "min_reputation" in changes:
        changes["min_reputation"] = changes["min_reputation"] / BP
    return dataclasses.replace(base or MarketParams(), **changes)


def governance_params(overrides: Mapping[str, int], base: GovernanceParams | None = None) -> GovernanceParams:
    changes = {n: v for n, v in overrides.items() if n in GOVERNANCE_PARAM_NAMES}
    return dataclasses.replace(base or GovernanceParams(), **changes)


# -- actions ----------------------------------------------------------------------------------


class SetToolTier(BaseModel):
    """Give one agent its own approval tier for one tool (e.g. promote write_file from ask to allow).

    ``account`` (the agent's public key) is what the tier is kept under: a name is only its
    node's, and nodes sharing one database may each have an agent of that name. `propose` fills it
    in from the proposing node's keyring. A proposal signed without it (before it existed) is
    resolved by name on the proposer's node when it executes (`colony.market.gov_service`). An
    unset account is left out of a signed proposal's content (`ProposalBody.content`), so those
    proposals keep their signed bytes.
    """

    model_config = _STRICT
    type: Literal["set_tool_tier"] = "set_tool_tier"
    agent: AgentName
    account: Hex64 | None = Field(default=None, description="The agent's public key (64 hex); filled in when "
                                  "omitted.")
    tool: ToolName
    tier: Tier


class SetPrice(BaseModel):
    """Price an x402 route (`colony.payments.prices.set_price`): credits and/or the EVM rail's units."""

    model_config = _STRICT
    type: Literal["set_price"] = "set_price"
    route: str = Field(min_length=1, max_length=200, pattern=_ROUTE,
                       description="'[METHOD ]/path', e.g. 'POST /x402/agents/scout/prompt'.")
    credits: Micro | None = Field(default=None, description="Micro-credits.")
    evm_amount: Micro | None = Field(default=None, description="Token units of the EVM rail.")
    pay_to: AgentName


class AdmitAgent(BaseModel):
    """Put a hosted agent (back) in service: reactivate its profile."""

    model_config = _STRICT
    type: Literal["admit_agent"] = "admit_agent"
    agent: AgentName


class ExpelAgent(BaseModel):
    """Take a hosted agent out of service: deactivate its profile (identity, wallet and history stay)."""

    model_config = _STRICT
    type: Literal["expel_agent"] = "expel_agent"
    agent: AgentName


class SetMarketParam(BaseModel):
    """Set a market or governance parameter within `PARAM_BOUNDS` (checked by `check_action`)."""

    model_config = _STRICT
    type: Literal["set_market_param"] = "set_market_param"
    name: ParamName
    value: Annotated[StrictInt, Field(ge=0, le=10**15), BeforeValidator(json_integer)]


Action = Annotated[SetToolTier | SetPrice | AdmitAgent | ExpelAgent | SetMarketParam, Field(discriminator="type")]
ACTION_ADAPTER: TypeAdapter[Action] = TypeAdapter(Action)


def check_action(action: Action) -> str | None:
    """What is wrong with ``action`` beyond its field types, or None.

    Kept out of the models' validators on purpose: the API's schema is derived from the models,
    and a request its schema allows is answered with a refusal (403), not a malformed-request
    error; signed proposals are checked with it too (`read_proposal`).
    """
    if isinstance(action, SetPrice) and action.credits is None and action.evm_amount is None:
        return "a price needs credits and/or evm_amount"
    if isinstance(action, SetMarketParam):
        lo, hi = PARAM_BOUNDS[action.name]
        if not lo <= action.value <= hi:
            return f"{action.name} must be within {lo}..{hi}"
    return None


def describe(action: Action) -> str:
    """One line for people (logs, the approval that offers a veto)."""
    if isinstance(action, SetToolTier):
        return f"set {action.agent}'s approval tier for {action.tool} to {action.tier}"
    if isinstance(action, SetPrice):
        amounts = " and ".join(x for x in (f"{action.credits} micro-credits" if action.credits else "",
                                           f"{action.evm_amount} EVM units" if action.evm_amount else "") if x)
        return f"price {action.route} at {amounts}, paid to {action.pay_to}"
    if isinstance(action, AdmitAgent):
        return f"admit agent {action.agent}"
    if isinstance(action, ExpelAgent):
        return f"expel agent {action.agent}"
    return f"set market parameter {action.name} to {action.value}"


# -- events -----------------------------------------------------------------------------------


class ProposalBody(_Body):
    """A proposal and its terms. The times are absolute (seconds), derived from ``created_at``."""

    KIND: ClassVar[str] = "proposal"

    proposer: Hex64
    action: Action
    voting_ends: Time
    executable_at: Time
    expires_at: Time
    quorum_bp: int = Field(ge=1, le=BP)
    nonce: Hex64

    def content(self) -> str:
        """The canonical content, without a `SetToolTier` ``account`` that is unset: proposals signed
        before the field existed stay byte for byte what was signed (and so still verify)."""
        data = self.model_dump(mode="json")
        if data["action"].get("type") == "set_tool_tier" and data["action"].get("account") is None:
            del data["action"]["account"]
        return _canonical(data)


class VoteBody(_Body):
    KIND: ClassVar[str] = "vote"

    proposal: Hex64
    choice: Choice


class VetoBody(_Body):
    KIND: ClassVar[str] = "veto"

    proposal: Hex64
    reason: str = Field(min_length=1, max_length=500)


class ExecutionBody(_Body):
    """The node's record of a proposal's execution: the tally it ran on and what happened."""

    KIND: ClassVar[str] = "execution"

    proposal: Hex64
    outcome: Literal["applied", "failed"]
    yes: int = Field(ge=0, le=MAX_AMOUNT)
    no: int = Field(ge=0, le=MAX_AMOUNT)
    abstain: int = Field(ge=0, le=MAX_AMOUNT)
    detail: str = Field(max_length=500)


@dataclass(frozen=True)
class Terms:
    """When a proposal's phases end and what quorum it needs (from the signed body)."""

    created_at: int
    voting_ends: int
    executable_at: int
    expires_at: int
    quorum_bp: int


def terms_for(created_at: int, params: GovernanceParams) -> Terms:
    voting_ends = created_at + params.voting_period_s
    executable_at = voting_ends + params.timelock_s
    return Terms(created_at, voting_ends, executable_at, executable_at + params.grace_s, params.quorum_bp)


def proposal_event(key: SchnorrKey, action: Action, *, created_at: int, params: GovernanceParams,
                   nonce: str | None = None) -> Event:
    t = terms_for(created_at, params)
    body = ProposalBody(proposer=key.public_hex, action=action, voting_ends=t.voting_ends,
                        executable_at=t.executable_at, expires_at=t.expires_at, quorum_bp=t.quorum_bp,
                        nonce=nonce or secrets.token_hex(32))
    return sign_market(key, body, created_at=created_at)


def read_proposal(event: Event, params: GovernanceParams) -> ProposalBody:
    """The verified proposal; refused unless signed by its proposer with the node's terms for its time."""
    body = open_market(event, ProposalBody)
    problem = check_action(body.action)
    if problem is not None:
        raise MarketEventError("malformed", f"not a valid proposal: {problem}")
    if body.proposer != event.pubkey:
        raise MarketEventError("wrong_signer", "a proposal is signed by its proposer")
    t = terms_for(event.created_at, params)
    if (body.voting_ends, body.executable_at, body.expires_at, body.quorum_bp) != (
            t.voting_ends, t.executable_at, t.expires_at, t.quorum_bp):
        raise MarketEventError("wrong_terms", "the proposal's window, timelock, grace or quorum is not this node's")
    return body


def vote_event(key: SchnorrKey, proposal: str, choice: Choice, *, created_at: int) -> Event:
    return sign_market(key, VoteBody(proposal=proposal, choice=choice), created_at=created_at)


def read_vote(event: Event) -> VoteBody:
    return open_market(event, VoteBody)


def veto_event(key: SchnorrKey, proposal: str, reason: str, *, created_at: int) -> Event:
    return sign_market(key, VetoBody(proposal=proposal, reason=reason), created_at=created_at)


def execution_event(key: SchnorrKey, body: ExecutionBody, *, created_at: int) -> Event:
    return sign_market(key, body, created_at=created_at)


# -- counting and state -----------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """The weighted votes of one proposal against its snapshot's total stake."""

    yes: int
    no: int
    abstain: int
    total: int
    quorum_bp: int

    @property
    def turnout(self) -> int:
        return self.yes + self.no + self.abstain

    @property
    def quorum_met(self) -> bool:
        """Turnout ≥ quorum share of the total (integers: no rounding); nothing staked, no quorum."""
        return self.total > 0 and self.turnout * BP >= self.quorum_bp * self.total

    @property
    def passed(self) -> bool:
        return self.quorum_met and self.yes > self.no


def tally(votes: Iterable[tuple[Choice, int]], *, total: int, quorum_bp: int) -> Tally:
    """Sum the weights per choice; the order of the votes never matters."""
    sums = {"yes": 0, "no": 0, "abstain": 0}
    for choice, weight in votes:
        if weight < 0:
            raise ValueError("a vote's weight is never negative")
        sums[choice] += weight
    return Tally(sums["yes"], sums["no"], sums["abstain"], total, quorum_bp)


def status(terms: Terms, counted: Tally, *, now: int, vetoed: bool,
           executed: Literal["applied", "failed"] | None) -> Status:
    """Where a proposal stands at ``now`` (see the module docstring's diagram)."""
    if executed is not None:
        return "executed" if executed == "applied" else "failed"
    if vetoed:
        return "vetoed"
    if now < terms.voting_ends:
        return "voting"
    if not counted.passed:
        return "rejected"
    if now < terms.executable_at:
        return "queued"
    if now >= terms.expires_at:
        return "expired"
    return "executable"
