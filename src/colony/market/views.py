"""What the market's surfaces send and receive: a request to auction a task, views of auctions.

`AuctionRequest` is the one body for posting (the CLI builds it from options, the API reads it
as JSON): strict, unknown fields refused, amounts whole micro-credits. The views are read-only
summaries; the signed events are the truth behind them (`AuctionDetail.events`).

Why bids are hidden until the reveal deadline: before it, a revealed amount would tell the
bidders still to reveal what they are up against (and a sealed amount is not known to anyone but
its bidder). The detail shows how many commitments there are; the amounts come after.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt

from colony.identity.store import NAME_PATTERN
from colony.ledger.amounts import MAX_AMOUNT
from colony.market.events import Rule, Verification
from colony.market.verify_result import VerifySpec

__all__ = [
    "AuctionDetail",
    "AuctionRequest",
    "AuctionState",
    "AuctionView",
    "BidView",
    "EventView",
    "PassReport",
    "Phase",
    "RecheckView",
    "ReputationRow",
    "VerdictRequest",
    "VerificationView",
]

AuctionState = Literal["open", "awarded", "paid", "refunded", "cancelled", "void"]
#: Where an auction is, for people: its state, with ``open`` split by the deadlines.
Phase = Literal["commit", "reveal", "awarding", "awarded", "paid", "refunded", "cancelled", "void"]
#: One day: longer phases are a mistake, not a plan (the task waits in bidding meanwhile).
MAX_PHASE_S = 86_400


def _whole_number(value: Any) -> Any:
    """JSON's integers: ``5`` and ``5.0`` (one number in JSON), never ``true``, ``"5"`` nor ``5.5``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_whole = BeforeValidator(_whole_number)
# (The bounds come before the validator: that order keeps them in the JSON schema.)
Micro = Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT), _whole]
Seconds = Annotated[StrictInt, Field(ge=1, le=MAX_PHASE_S), _whole]
Bond = Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT), _whole]
Skill = Annotated[str, Field(min_length=1, max_length=64, pattern=r"\S")]


class AuctionRequest(BaseModel):
    """Put a task up for auction: an existing posted task (``task_id``) or a new one (``goal``).

    Which fields go together (one of task_id and goal; the verification method's own fields) is
    checked by the market (`colony.market.service.Market.post`), not here: the schema states each
    field's shape, and a well-shaped request that asks for something impossible is refused as such.
    """

    model_config = ConfigDict(extra="forbid")

    task_id: str | None = Field(default=None, min_length=1, max_length=64, description="A posted task to auction.")
    goal: str | None = Field(default=None, min_length=1, max_length=4000, pattern=r"\S",
                             description="The goal of a new task (instead of task_id).")
    skills: list[Skill] = Field(default_factory=list, max_length=32,
                                description="Skills a bidder must have (a new task's; an existing task's own).")
    reserve: Micro | None = Field(default=None, description="The most the poster pays, in micro-credits (default: "
                                                            "the task's credit budget).")
    verification: Verification = Field(description="How the result is verified: tests, benchmark, review, approval.")
    tests: str | None = Field(default=None, min_length=1, max_length=64_000,
                              description="tests: Python source defining check(candidate).")
    entry_point: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$",
                                    description="tests: the function the tests call.")
    problem: str | None = Field(default=None, min_length=1, max_length=200,
                                description="benchmark: a coding benchmark problem id.")
    validator: str | None = Field(default=None, pattern=NAME_PATTERN, description="review: the reviewing agent.")
    poster: str = Field(default="colony", pattern=NAME_PATTERN, description="The agent that posts and pays.")
    bond: Bond | None = Field(
        default=None, description="Bond per commitment, forfeited if not revealed (default: the node's).")
    commit_s: Seconds | None = Field(default=None, description="Length of the commit phase (default: the node's).")
    reveal_s: Seconds | None = Field(default=None, description="Length of the reveal phase (default: the node's).")
    rule: Rule = Field(default="vickrey", description="vickrey (second price), first_price or random.")

    def verify_spec(self) -> VerifySpec:
        return VerifySpec(tests=self.tests, entry_point=self.entry_point, problem=self.problem,
                          validator=self.validator)


class VerdictRequest(BaseModel):
    """A person's decision on a result verified by ``approval``."""

    model_config = ConfigDict(extra="forbid")

    passed: StrictBool = Field(description="True: pay the winner; false: refund the poster and slash the winner.")
    reason: str = Field(default="", max_length=500, description="Why, for the audit trail.")


class BidView(BaseModel):
    bidder: str
    name: str | None = Field(description="The node's agent that bid (None for another node's key).")
    committed_at: int
    amount: int | None = Field(description="The revealed amount (micro-credits); None if never revealed.")
    revealed_at: int | None
    outcome: Literal["won", "lost", "forfeited", "refused"]
    refusal: str | None = None


class EventView(BaseModel):
    kind: str
    received_at: int
    event: dict[str, Any] = Field(description="The signed NIP-01 event, as stored.")


class VerificationView(BaseModel):
    method: Verification
    passed: bool
    detail: str
    slashed: int
    decided_by: str
    event: str


class AuctionView(BaseModel):
    """An auction as lists show it. Times are Unix seconds; ``*_in_s`` count down (None once past)."""

    id: str
    task_id: str
    task_state: str
    goal: str
    skills: list[str]
    state: AuctionState
    phase: Phase
    rule: Rule
    poster: str
    poster_name: str
    reserve: int
    bond: int
    commit_deadline: int
    reveal_deadline: int
    commit_in_s: int | None
    reveal_in_s: int | None
    verification: Verification
    commits: int
    winner: str | None
    winner_name: str | None
    price: int | None
    escrow_hold: str | None
    escrow_state: str | None
    reason: str | None


class AuctionDetail(AuctionView):
    """An auction with its bids (after the reveal deadline), its verification and its signed events."""

    verify_spec: dict[str, Any]
    verifier: str
    bids: list[BidView] | None = Field(description="None until the reveal deadline has passed.")
    verification_result: VerificationView | None
    events: list[EventView]


class RecheckView(BaseModel):
    auction: str
    ok: bool
    winner: str | None
    price: int | None
    problems: list[str]


class ReputationRow(BaseModel):
    name: str | None
    account: str
    reputation: float = Field(description="E of Beta(r+1, s+1): 0.5 for anyone never rated.")
    ratings: int
    r: float
    s: float
    staked: int
    wins: int
    paid: int = Field(description="Micro-credits earned from verified results.")


class PassReport(BaseModel):
    """What one pass of the market worker did."""

    commits: list[str] = Field(default_factory=list, description="'agent→auction' for each commitment made.")
    reveals: list[str] = Field(default_factory=list)
    awarded: list[str] = Field(default_factory=list, description="Auctions settled (awarded or void).")
    verified: list[str] = Field(default_factory=list, description="Auctions paid, refunded or cancelled.")
    steps: list[str] = Field(default_factory=list, description="What the registered pass steps did (federation's "
                             "bids in other nodes' auctions, notices, payments).")
    ran: str | None = Field(default=None, description="The awarded task run in this pass, if any.")
    run_outcome: str | None = None
    errors: list[str] = Field(default_factory=list)
