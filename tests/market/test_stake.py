"""Stake requirements, slashing, bonds and the RuVector contribution curve, against hand-worked values."""

from __future__ import annotations

from pathlib import Path

import pytest

from colony.identity import SchnorrKey
from colony.ledger import (
    MICRO,
    EquivocationProof,
    Ledger,
    SqliteLedgerStore,
    export_lines,
    find_equivocations,
    read_lines,
)
from colony.market import (
    InvalidProofError,
    MarketEventError,
    MarketParams,
    apply_contribution,
    contribution_multiplier,
    forfeited_bonds,
    may_bid,
    read_verification,
    required_stake,
    settle_verification,
    slash_equivocation,
    slash_failed,
    verification_event,
)
from colony.market.auction import Forfeit
from colony.market.stake import contribution_ppm
from colony.store import open_database

# 1 + 9·e^(−x/10⁶), with e^-0.1 = 0.9048374180, e^-0.5 = 0.6065306597, e^-1 = 0.3678794412,
# e^-5 = 0.0067379470, e^-10 = 0.0000453999 (printed tables).
CURVE = {0: 10.0, 100_000: 9.1435367620, 500_000: 6.4587759373, 1_000_000: 4.3109149708,
         5_000_000: 1.0606415230, 10_000_000: 1.0004085991}


@pytest.mark.parametrize(("cpu_hours", "expected"), CURVE.items())
def test_contribution_curve_follows_the_seed_formula(cpu_hours: int, expected: float) -> None:
    assert contribution_multiplier(cpu_hours) == pytest.approx(expected, abs=1e-9)


def test_contribution_curve_against_the_seeds_stated_progression() -> None:
    # The seed's own progression: genesis 10x, 100K 9.1x and 10M+ 1.0x match its formula (to its
    # one decimal); 500K "6.1x", 1M "4.0x" and 5M "1.4x" do not (the formula gives 6.46, 4.31, 1.06).
    assert round(contribution_multiplier(0), 1) == 10.0
    assert round(contribution_multiplier(100_000), 1) == 9.1
    assert round(contribution_multiplier(10_000_000), 1) == 1.0
    assert round(contribution_multiplier(1_000_000), 1) == 4.3  # stated 4.0
    assert round(contribution_multiplier(500_000), 1) == 6.5  # stated 6.1
    assert round(contribution_multiplier(5_000_000), 1) == 1.1  # stated 1.4
    with pytest.raises(ValueError, match="non-negative"):
        contribution_multiplier(-1)


def test_contribution_is_applied_in_integers() -> None:
    assert contribution_ppm(0) == 10_000_000
    assert contribution_ppm(1_000_000) == 4_310_915
    assert apply_contribution(MICRO, 0) == 10 * MICRO
    assert apply_contribution(MICRO, 1_000_000) == 4_310_915
    assert apply_contribution(3, 1_000_000) == 12  # 3 · 4.310915 = 12.93 -> rounded down
    assert isinstance(apply_contribution(7, 123_456.5), int)


def test_stake_requirement() -> None:
    params = MarketParams()  # free up to 5 credits, then 25 %
    assert required_stake(1, params) == 0
    assert required_stake(5 * MICRO, params) == 0
    assert required_stake(5 * MICRO + 1, params) == 1  # 0.25 micro-credits, rounded up
    assert required_stake(25 * MICRO, params) == 5 * MICRO
    assert required_stake(13 * MICRO + 3, params) == 2_000_001  # 2,000,000.75 rounded up
    strict = MarketParams(stake_free_bid=0, stake_bp=10_000)
    assert required_stake(7, strict) == 7


def test_may_bid_needs_stake_and_reputation() -> None:
    # An earned record (above the 0.5 prior): 25 % of the 20 credits above the free 5.
    assert may_bid(25 * MICRO, 5 * MICRO, 0.6)
    assert not may_bid(25 * MICRO, 5 * MICRO - 1, 0.6)
    # A newcomer: 25 % of all 25 credits, 6.25.
    assert not may_bid(25 * MICRO, 5 * MICRO, 0.5) and may_bid(25 * MICRO, 6_250_000, 0.5)
    assert not may_bid(MICRO, MICRO, 0.249)  # below the minimum: stake does not help
    assert may_bid(MICRO, MICRO // 4, 0.25) and not may_bid(MICRO, MICRO // 4 - 1, 0.25)


def test_slash_on_failed_verification() -> None:
    assert slash_failed(5 * MICRO) == 2_500_000
    assert slash_failed(3) == 1  # half of 3, rounded down
    assert slash_failed(0) == 0
    failed = settle_verification(25 * MICRO, passed=False)
    # Refund the escrowed 25 credits; the stake behind a 25-credit task is 5 credits; half is slashed.
    assert (failed.to_worker, failed.refund_to_poster, failed.slashed) == (0, 25 * MICRO, 2_500_000)
    passed = settle_verification(25 * MICRO, passed=True)
    assert (passed.to_worker, passed.refund_to_poster, passed.slashed) == (25 * MICRO, 0, 0)
    small = settle_verification(4 * MICRO, passed=False)
    assert small.slashed == 0  # below the free size nothing was staked
    with pytest.raises(ValueError, match="positive"):
        settle_verification(0, passed=True)


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="basis points"):
        MarketParams(slash_failed_bp=10_001)


def _equivocation(tmp_path: Path) -> tuple[EquivocationProof, SchnorrKey]:
    """One node key sequencing two databases, each with a different first entry for one account."""
    node = SchnorrKey.generate()
    payee = SchnorrKey.generate().public_hex
    feeds = []
    for name, amount in (("one", 10 * MICRO), ("two", 20 * MICRO)):
        db = open_database(tmp_path / f"{name}.db")
        store = SqliteLedgerStore(db)
        Ledger(store, node).mint(payee, amount, f"history {name}")
        feeds.append(read_lines(export_lines(store)).entries)
        db.close()
    [proof] = find_equivocations(feeds[0], feeds[1])
    return proof, node


def test_equivocation_slashes_all_with_a_verified_proof(tmp_path: Path) -> None:
    proof, node = _equivocation(tmp_path)
    assert slash_equivocation(40 * MICRO, node.public_hex, proof) == 40 * MICRO
    assert slash_equivocation(40 * MICRO, node.public_hex, proof, MarketParams(slash_equivocation_bp=2_500)) == 10 * MICRO
    with pytest.raises(InvalidProofError, match="not the staker"):
        slash_equivocation(40 * MICRO, SchnorrKey.generate().public_hex, proof)
    # The same entry twice, or an altered one, convicts no one.
    with pytest.raises(InvalidProofError, match="does not verify"):
        slash_equivocation(40 * MICRO, node.public_hex, EquivocationProof(first=proof.first, second=proof.first))
    altered = proof.second.model_copy(update={"content": proof.second.content.replace("20000000", "30000000")})
    with pytest.raises(InvalidProofError, match="does not verify"):
        slash_equivocation(40 * MICRO, node.public_hex, EquivocationProof(first=proof.first, second=altered))


def test_bond_forfeits_add_up_per_bidder() -> None:
    forfeits = [Forfeit("a" * 64, "c1", 7, ""), Forfeit("b" * 64, "c2", 7, ""), Forfeit("a" * 64, "c3", 5, "")]
    assert forfeited_bonds(forfeits) == {"a" * 64: 12, "b" * 64: 7}


def test_verification_results_are_signed_by_the_verifier() -> None:
    verifier, other = SchnorrKey(bytes.fromhex("66" * 32)), SchnorrKey(bytes.fromhex("77" * 32))
    ev = verification_event(verifier, "ab" * 32, "cd" * 32, False, "tests", created_at=500, detail="2 of 9 failed")
    body = read_verification(ev, verifier=verifier.public_hex)
    assert (body.passed, body.worker, body.method) == (False, "cd" * 32, "tests")
    with pytest.raises(InvalidProofError):
        read_verification(ev, verifier=other.public_hex)
    flipped = ev.model_copy(update={"content": ev.content.replace('"passed":false', '"passed":true')})
    with pytest.raises(MarketEventError):
        read_verification(flipped, verifier=verifier.public_hex)


def test_a_fresh_key_stakes_from_the_first_credit_like_a_poor_record() -> None:
    """Whitewashing buys nothing: the stake-free amount is for an earned reputation only."""
    params = MarketParams()
    bid = 4 * MICRO  # under the 5-credit stake-free size
    assert required_stake(bid, params, reputation=0.7) == 0  # earned: free
    assert required_stake(bid, params, reputation=0.5) == MICRO  # newcomer (the prior): 25 % of all 4 credits
    assert required_stake(bid, params, reputation=0.3) == MICRO  # a poor record: the same
    assert required_stake(bid, params) == 0  # no reputation given: the plain size rule
    assert not may_bid(bid, 0, 0.5, params) and may_bid(bid, MICRO, 0.5, params)
    assert may_bid(bid, 0, 0.7, params)
