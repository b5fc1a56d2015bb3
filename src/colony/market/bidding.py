"""How one of the node's agents decides what to bid: its cost, its chance of success, its price.

A bid is the least price at which winning is worth it to the agent. With cost ``c`` (its cost
model applied to the task's expected size, `colony.market.cost`), chance of success ``p`` and the
slash ``σ(b)`` that a failed verification of a task won at ``b`` costs (`stake.slash_failed` of
`stake.required_stake(b)`), the expected gain of winning at ``b`` is ``p·b − c − (1−p)·σ(b)``;
the bid is the least integer ``b`` where that is ≥ 0. In a reverse Vickrey auction that is the
truthful bid — the winner is paid the second-lowest bid, not its own, so shading it up only
loses auctions worth winning and shading it down wins ones that lose money. An agent whose
price is above the reserve does not bid (a refusal, in Contract Net terms).

The chance of success is the step-success predictor's (`colony.cognition.predictor`: the
probability that a step of work succeeds, learned from the node's tool-call audit) times the
agent's reputation (the beta expectation, `colony.market.reputation`): the predictor knows how
work goes on this node, the reputation how this agent's verified results went. An untrained
predictor (fewer than its warm-up of observed calls) says nothing and counts as 1; a newcomer's
reputation is the prior 0.5, so an unknown agent prices in the risk of being the bad kind.

Everything that touches money is an integer: the chance is carried in parts per million.

May import the market's own modules, `colony.cognition`, `colony.identity`, `colony.store`.
"""

from __future__ import annotations

import hashlib
import hmac
import math

from colony.cognition.predictor import StepPredictor
from colony.identity.keys import SchnorrKey
from colony.market.cost import CostEstimate, CostModel, estimate
from colony.market.stake import BP, MarketParams, required_stake, slash_failed
from colony.store.records import RecordStore

__all__ = [
    "PPM",
    "TaskSize",
    "bid_salt",
    "chance_ppm",
    "expected_gain",
    "reservation_price",
    "step_success",
    "task_cost",
    "task_size",
]

PPM = 1_000_000
SALT_DOMAIN = b"colony/market/salt/v1\x00"
#: Characters per token, the usual rough rule for English text and code.
CHARS_PER_TOKEN = 4
#: Tokens of every request beyond persona and goal: tool schemas, guidance, perception, memory.
PROMPT_OVERHEAD_TOKENS = 1500
#: A task's expected shape before anything is known about it: one tool round-trip, then the answer.
EXPECTED_REQUESTS = 2
EXPECTED_OUTPUT_TOKENS = 400
EXPECTED_TOOL_CALLS = 1


class TaskSize:
    """The expected size of a task for an agent: tokens in and out, tool calls."""

    __slots__ = ("input_tokens", "output_tokens", "tool_calls")

    def __init__(self, input_tokens: int, output_tokens: int, tool_calls: int) -> None:
        self.input_tokens, self.output_tokens, self.tool_calls = input_tokens, output_tokens, tool_calls


def task_size(goal: str, persona: str) -> TaskSize:
    """An a-priori estimate: every request carries persona, goal and the prompt's overhead.

    Deliberately simple and the same for every agent (only the prices differ), so agents compete
    on their cost models and track records, not on how they guess sizes.
    """
    per_request = math.ceil((len(persona) + len(goal)) / CHARS_PER_TOKEN) + PROMPT_OVERHEAD_TOKENS
    return TaskSize(EXPECTED_REQUESTS * per_request, EXPECTED_OUTPUT_TOKENS, EXPECTED_TOOL_CALLS)


def task_cost(cost: CostModel, goal: str, persona: str) -> CostEstimate:
    """What the task would cost an agent with ``cost`` and ``persona`` (micro-credits, with parts)."""
    size = task_size(goal, persona)
    return estimate(cost, input_tokens=size.input_tokens, output_tokens=size.output_tokens,
                    tool_calls=size.tool_calls)


def chance_ppm(step_success: float, reputation: float) -> int:
    """``step_success × reputation`` in parts per million, at least 1 (a zero chance never bids)."""
    p = min(1.0, max(0.0, step_success)) * min(1.0, max(0.0, reputation))
    return max(1, min(PPM, round(p * PPM)))


def expected_gain(bid: int, cost: int, chance: int, params: MarketParams) -> int:
    """``p·b − c − (1−p)·σ(b)``, scaled by `PPM` so it stays an integer."""
    return chance * bid - PPM * cost - (PPM - chance) * slash_failed(required_stake(bid, params), params)


def reservation_price(cost: int, chance: int, params: MarketParams, *, ceiling: int) -> int | None:
    """The least bid ``b`` in 1..``ceiling`` with a non-negative expected gain; None when there is none.

    Below the stake-free size no stake backs the task and nothing is slashed, so ``b = ⌈c/p⌉``.
    Above it the slash grows with ``b`` at the rate ``k = stake_bp·slash_bp/BP²``, so the gain
    grows at ``p − (1−p)·k`` per micro-credit: when that is not positive no price pays. The
    closed form is then corrected for the integer roundings of stake and slash by stepping.
    """
    if not 1 <= chance <= PPM or cost < 0 or ceiling < 1:
        raise ValueError("chance is 1..1,000,000 ppm, cost ≥ 0 and the ceiling ≥ 1")
    first = max(1, -(-PPM * cost // chance))
    if first <= params.stake_free_bid:
        return first if first <= ceiling else None
    k_num, k_den = params.stake_bp * params.slash_failed_bp, BP * BP
    slope = chance * k_den - (PPM - chance) * k_num  # × k_den: the gain's growth per micro-credit
    if slope <= 0:
        return None
    free = params.stake_free_bid
    guess = max(free + 1, -(-(PPM * cost * k_den - (PPM - chance) * k_num * free) // slope))
    while guess > free + 1 and expected_gain(guess - 1, cost, chance, params) >= 0:
        guess -= 1
    while expected_gain(guess, cost, chance, params) < 0:
        guess += 1
        if guess > ceiling:
            return None
    return guess if guess <= ceiling else None


def bid_salt(key: SchnorrKey, auction: str) -> str:
    """The commitment's 32-byte salt, derived from the bidder's own secret and the auction.

    Why derived and not stored: the reveal must survive a restart, yet a salt kept in the
    database would let anyone who reads it open the bid for the agent. HMAC under the agent's
    key gives the same salt again, to the key's holder only, and a different one per auction.
    """
    return hmac.new(key.secret, SALT_DOMAIN + bytes.fromhex(auction), hashlib.sha256).hexdigest()


def step_success(records: RecordStore, predictor: StepPredictor | None = None) -> float:
    """The predicted chance that a step of work on this node succeeds; 1.0 while nothing is known.

    ``predictor`` is the node's live one (the cognition substrate's) when cognition is on;
    otherwise a fresh predictor is trained on the tool-call audit, as the substrate warm-starts.
    """
    if predictor is None:
        predictor = StepPredictor()
        predictor.fit_audit(records)
    if not predictor.trained:
        return 1.0
    return predictor.predict(predictor.features("market_task"))
