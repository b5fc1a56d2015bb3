"""Stake, slashing, bonds and the contribution curve: what a bid puts at risk and what it earns.

Why stake: a reputation can be shed with a fresh key, money cannot. Bids above a small size need
stake in proportion to the bid; a failed verification slashes a stated fraction of the stake that
backed the task (its requirement at the price paid), a ledger equivocation proof all of it.
Slashed stake and forfeited bonds go to the treasury, never to the poster or the verifier: a
party that profited from a failure would have a reason to declare one.

The contribution curve is the RuVector seed's early-adopter multiplier (§5.2), with its
parameters: ``1 + (MAX − 1)·exp(−network_compute / DECAY)`` with MAX = 10 and DECAY = 1,000,000
CPU-hours. It scales earnings, so it is applied in integer parts per million (`apply_contribution`):
the exponential is a float, the amounts never are. The seed's stated progression agrees with its
formula at genesis (10×), 100K (9.1×) and 10M+ CPU-hours (1.0×), but not at 500K (says 6.1×, the
formula gives 6.46×), 1M (4.0× against 4.31×) or 5M (1.4× against 1.06×); the formula is followed.

Amounts are integer micro-credits (`colony.ledger.amounts`); rates are integer basis points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from colony.identity.events import Event
from colony.identity.keys import SchnorrKey
from colony.ledger.amounts import MICRO
from colony.ledger.proofs import EquivocationProof, verify_equivocation
from colony.market.auction import Forfeit
from colony.market.events import InvalidProofError, Verification, VerificationBody, open_market, sign_market

__all__ = [
    "BP",
    "NEWCOMER",
    "MarketParams",
    "Settlement",
    "apply_contribution",
    "contribution_multiplier",
    "contribution_ppm",
    "forfeited_bonds",
    "may_bid",
    "read_verification",
    "required_stake",
    "settle_verification",
    "slash_equivocation",
    "slash_failed",
    "verification_event",
]

#: Basis points in one.
BP = 10_000
PPM = 1_000_000


@dataclass(frozen=True)
class MarketParams:
    """The market's economic parameters; defaults are the ones the simulation benchmark runs."""

    #: Bids up to this need no stake from an agent whose reputation is above the newcomer's prior
    #: (5 credits); newcomers and poor records stake from the first credit (`required_stake`).
    stake_free_bid: int = 5 * MICRO
    #: Stake required per unit of bid above the free amount: 25 %.
    stake_bp: int = 2_500
    #: Share of the backing stake slashed when verification fails: 50 %.
    slash_failed_bp: int = 5_000
    #: Share slashed on a ledger equivocation proof: all of it (signing two histories is never an accident).
    slash_equivocation_bp: int = 10_000
    #: A key whose reputation is below this may not bid. The prior (0.5) is above it; with the
    #: default forgetting a newcomer falls below it after three failed verifications in a row, so
    #: one unlucky early failure does not exclude an honest agent but a cheater goes quickly.
    min_reputation: float = 0.25
    #: What each task already on an agent's plate adds to its cost when it prices one more, in basis
    #: points of that cost: 25 %. Its plate is the work it has won and not yet done
    #: (`colony.market.backlog`). A node runs its winners' tasks one at a time, so a queued task is
    #: paid for in delay; without this an agent cheapest by a hair wins every auction while busy,
    #: and the rest of the colony waits idle.
    backlog_bp: int = 2_500
    #: The seed's MAX_BONUS: the multiplier at genesis.
    contribution_max: int = 10
    #: The seed's DECAY_CONSTANT, in CPU-hours of network compute.
    contribution_decay: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("stake_bp", "slash_failed_bp", "slash_equivocation_bp"):
            if not 0 <= getattr(self, name) <= BP:
                raise ValueError(f"{name} is in basis points, 0..{BP}")
        if not 0 <= self.backlog_bp <= 10 * BP:
            raise ValueError(f"backlog_bp is in basis points, 0..{10 * BP}")
        if self.stake_free_bid < 0 or self.contribution_max < 1 or self.contribution_decay <= 0:
            raise ValueError("stake_free_bid ≥ 0, contribution_max ≥ 1 and contribution_decay > 0")


DEFAULT = MarketParams()


#: A newcomer's reputation (the beta prior, `colony.market.reputation`): anything at or below it is
#: not an earned record.
NEWCOMER = 0.5


def required_stake(bid: int, params: MarketParams = DEFAULT, *, reputation: float | None = None) -> int:
    """Stake needed to bid ``bid``: ``stake_bp`` of the part above the free amount, rounded up.

    The free amount is for an *earned* record: with ``reputation`` at or below the newcomer's
    prior, every credit of the bid needs stake. A fresh key costs nothing to make, so it must be
    no better placed than a key with a bad record — otherwise shedding a bad reputation
    (whitewashing) would buy stake-free bids. ``reputation`` None: the free amount applies (the
    rule without a reputation, for callers that check it elsewhere).
    """
    free = params.stake_free_bid if reputation is None or reputation > NEWCOMER else 0
    above = bid - free
    return 0 if above <= 0 else -(-above * params.stake_bp // BP)


def may_bid(bid: int, stake: int, reputation: float, params: MarketParams = DEFAULT) -> bool:
    """Eligibility of a key to bid ``bid``: a reputation at the minimum and enough free stake for
    it at that reputation (`required_stake`: newcomers and poor records stake from the first credit)."""
    return reputation >= params.min_reputation and stake >= required_stake(bid, params, reputation=reputation)


def slash_failed(backing: int, params: MarketParams = DEFAULT) -> int:
    """The slash for a failed verification of a task backed by ``backing`` stake (rounded down)."""
    return max(0, backing) * params.slash_failed_bp // BP


def slash_equivocation(stake: int, staker: str, proof: EquivocationProof, params: MarketParams = DEFAULT) -> int:
    """The slash of ``staker``'s ``stake`` for equivocating; InvalidProofError unless the proof convicts it.

    The proof is verified from its two events alone (ids recomputed, signatures checked, same
    account and sequence): a relayed accusation convicts no one by being sent.
    """
    if not verify_equivocation(proof):
        raise InvalidProofError("the equivocation proof does not verify")
    if proof.signer != staker:
        raise InvalidProofError(f"the proof convicts {proof.signer[:12]}…, not the staker {staker[:12]}…")
    return max(0, stake) * params.slash_equivocation_bp // BP


def forfeited_bonds(forfeits: Iterable[Forfeit]) -> dict[str, int]:
    """Total bond each bidder forfeits (one bond per unopened commitment)."""
    total: dict[str, int] = {}
    for f in forfeits:
        total[f.bidder] = total.get(f.bidder, 0) + f.bond
    return total


@dataclass(frozen=True)
class Settlement:
    """Where the escrowed price and the backing stake go after verification."""

    to_worker: int
    refund_to_poster: int
    slashed: int


def settle_verification(price: int, passed: bool, params: MarketParams = DEFAULT) -> Settlement:
    """Pass: the escrowed ``price`` is captured to the worker. Fail: refunded, and the stake backing
    the task (its requirement at ``price``) is slashed by ``slash_failed_bp``."""
    if price <= 0:
        raise ValueError("a price is a positive number of micro-credits")
    if passed:
        return Settlement(price, 0, 0)
    return Settlement(0, price, slash_failed(required_stake(price, params), params))


def verification_event(key: SchnorrKey, auction: str, worker: str, passed: bool, method: Verification, *,
                       created_at: int, detail: str = "") -> Event:
    body = VerificationBody(auction=auction, worker=worker, passed=passed, method=method, detail=detail)
    return sign_market(key, body, created_at=created_at)


def read_verification(event: Event, *, verifier: str) -> VerificationBody:
    """The verified judgement, refused unless signed by the expected ``verifier``."""
    body = open_market(event, VerificationBody)
    if event.pubkey != verifier:
        raise InvalidProofError("the verification result is not signed by the task's verifier")
    return body


def contribution_multiplier(network_compute: float, params: MarketParams = DEFAULT) -> float:
    """The early-contributor multiplier at ``network_compute`` CPU-hours (RuVector seed §5.2)."""
    if network_compute < 0:
        raise ValueError("network compute is a non-negative number of CPU-hours")
    return 1.0 + (params.contribution_max - 1) * math.exp(-network_compute / params.contribution_decay)


def contribution_ppm(network_compute: float, params: MarketParams = DEFAULT) -> int:
    """The multiplier in integer parts per million (rounded to nearest), the form amounts are scaled by."""
    return round(contribution_multiplier(network_compute, params) * PPM)


def apply_contribution(amount: int, network_compute: float, params: MarketParams = DEFAULT) -> int:
    """``amount`` scaled by the multiplier, rounded down to a micro-credit."""
    return amount * contribution_ppm(network_compute, params) // PPM
