"""Stake on the ledger: deposits signed by the agent, withdrawals around locks, slashes that are
idempotent by reference and never take more than is staked, and the equivocation slash from a
real proof — with the ledger's own verifier agreeing after every move. Amounts worked by hand. On
both engines (`engine`): the stake tables and the ledger in the node's file, or both on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gov_helpers import balance, hosted, ledger_of, node_keyring

from colony.errors import StoreError
from colony.identity import Keyring, SchnorrKey
from colony.ledger import (
    MICRO,
    EquivocationProof,
    Ledger,
    SqliteLedgerStore,
    export_lines,
    find_equivocations,
    read_lines,
)
from colony.market import stakes
from colony.market.events import InvalidProofError
from colony.market.stakes import StakeError, market_db
from colony.store import open_database


@pytest.fixture
def keyring(engine: str) -> Iterator[Keyring]:
    with node_keyring() as kr:
        hosted(kr, "ada", "bob", funds=100 * MICRO)
        yield kr


def _supply_holds(keyring: Keyring) -> None:
    """The ledger's verifier recomputes every chain and the supply: nothing leaked or appeared."""
    ledger = ledger_of(keyring)
    report = ledger.verify()
    assert report.ok, report
    accounts = ledger.store.accounts()
    assert sum(a.balance + a.held for a in accounts) == ledger.store.supply()


def test_a_deposit_is_a_hold_signed_by_the_agent(keyring: Keyring) -> None:
    view = stakes.deposit(keyring, "ada", 30 * MICRO)
    assert (view.staked, view.locked, view.free, view.balance) == (30 * MICRO, 0, 30 * MICRO, 70 * MICRO)
    assert balance(keyring, "ada") == (70 * MICRO, 30 * MICRO)
    [hold] = market_db(keyring).query("SELECT hold_id, origin FROM market_stake_holds")
    assert hold["origin"] == "deposit"
    # The ledger applied it only after checking ada's own signature over it.
    row = market_db(keyring).one("SELECT payer, op, payee, memo FROM ledger_transfers WHERE id = ?", (hold["hold_id"],))
    assert row == {"payer": keyring.agent("ada").public_hex, "op": "hold", "payee": None, "memo": "stake"}

    with pytest.raises(StakeError) as poor:
        stakes.deposit(keyring, "ada", 71 * MICRO)
    assert poor.value.reason == "insufficient_funds"
    for bad in (0, -1, True, 2**53):
        with pytest.raises(StakeError) as invalid:
            stakes.deposit(keyring, "ada", bad)
        assert invalid.value.reason == "invalid"
    with pytest.raises(StakeError) as unknown:
        stakes.deposit(keyring, "ghost", MICRO)
    assert unknown.value.reason == "unknown"
    assert stakes.staked(keyring, "ada") == 30 * MICRO and balance(keyring, "ada") == (70 * MICRO, 30 * MICRO)

    # A keyed deposit retried moves the credits once; the key cannot be reused for another amount.
    stakes.deposit(keyring, "ada", 5 * MICRO, key="top-up-1")
    stakes.deposit(keyring, "ada", 5 * MICRO, key="top-up-1")
    assert stakes.staked(keyring, "ada") == 35 * MICRO
    with pytest.raises(StakeError) as reused:
        stakes.deposit(keyring, "ada", 6 * MICRO, key="top-up-1")
    assert reused.value.reason == "ref_reused"
    _supply_holds(keyring)


def test_withdrawals_take_the_newest_holds_and_respect_locks(keyring: Keyring) -> None:
    stakes.deposit(keyring, "ada", 30 * MICRO)  # hold A
    stakes.deposit(keyring, "ada", 20 * MICRO)  # hold B
    assert stakes.locked(keyring, "ada") == 0  # nothing recorded a lock yet
    view = stakes.lock(keyring, "ada", 40 * MICRO, ref="bid:1")
    assert (view.staked, view.locked, view.free) == (50 * MICRO, 40 * MICRO, 10 * MICRO)
    stakes.lock(keyring, "ada", 40 * MICRO, ref="bid:1")  # the same lock again: no change
    assert stakes.locked(keyring, "ada") == 40 * MICRO

    with pytest.raises(StakeError) as held:
        stakes.withdraw(keyring, "ada", 15 * MICRO)
    assert held.value.reason == "locked"
    # 10 of B (the newest) comes back: B is released and its other 10 held again as stake.
    view = stakes.withdraw(keyring, "ada", 10 * MICRO)
    assert (view.staked, view.free, view.balance) == (40 * MICRO, 0, 60 * MICRO)
    assert sorted(h for _, h in stakes._stake_store.open_holds(market_db(keyring), keyring.agent("ada").public_hex)) == [10 * MICRO, 30 * MICRO]
    with pytest.raises(StakeError) as no_room:
        stakes.lock(keyring, "ada", 1, ref="bid:2")
    assert no_room.value.reason == "insufficient_stake"

    assert stakes.unlock(keyring, "bid:1") and not stakes.unlock(keyring, "bid:1")
    with pytest.raises(StakeError) as too_much:
        stakes.withdraw(keyring, "ada", 41 * MICRO)
    assert too_much.value.reason == "insufficient_stake"
    view = stakes.withdraw(keyring, "ada", 40 * MICRO)  # the 10 remainder, then A's 30, both whole
    assert (view.staked, view.balance) == (0, 100 * MICRO)
    assert balance(keyring, "ada") == (100 * MICRO, 0)
    ops = [r["op"] for r in reversed(stakes._stake_store.list_events(market_db(keyring), keyring.agent("ada").public_hex))]
    assert ops == ["deposit", "deposit", "withdraw", "withdraw"]
    _supply_holds(keyring)


def test_a_slash_takes_what_is_staked_once_per_reference(keyring: Keyring) -> None:
    treasury = stakes.treasury(keyring)
    assert treasury.name == "treasury"
    assert keyring.db.scalar("SELECT active FROM agent_profiles WHERE name = 'treasury'") == 0  # takes no work
    stakes.deposit(keyring, "ada", 30 * MICRO)  # hold A
    stakes.deposit(keyring, "ada", 20 * MICRO)  # hold B
    stakes.lock(keyring, "ada", 50 * MICRO, ref="bid:1")  # locks do not shield stake from a slash

    # 40: A captured whole (30); B released, 10 paid to the treasury, its other 10 held again.
    assert stakes.slash(keyring, "ada", 40 * MICRO, reason="failed verification", ref="auction:1") == 40 * MICRO
    assert stakes.staked(keyring, "ada") == 10 * MICRO
    assert balance(keyring, "ada") == (50 * MICRO, 10 * MICRO)  # 100 − 50 staked + 20 released − 10 − 10 held
    assert ledger_of(keyring).balance(treasury.public_hex).balance == 40 * MICRO

    # The same offence again slashes nothing more and answers the first amount.
    assert stakes.slash(keyring, "ada", 5 * MICRO, reason="retry", ref="auction:1") == 40 * MICRO
    assert stakes.staked(keyring, "ada") == 10 * MICRO
    # More than is staked takes what there is; then there is nothing to take.
    assert stakes.slash(keyring, "ada", 1_000 * MICRO, reason="again", ref="auction:2") == 10 * MICRO
    assert stakes.slash(keyring, "ada", MICRO, reason="empty", ref="auction:3") == 0
    assert stakes.staked(keyring, "ada") == 0 and balance(keyring, "ada") == (50 * MICRO, 0)
    assert ledger_of(keyring).balance(treasury.public_hex).balance == 50 * MICRO
    with pytest.raises(StakeError) as other:
        stakes.slash(keyring, "bob", MICRO, reason="wrong agent", ref="auction:1")
    assert other.value.reason == "ref_reused"

    # A named beneficiary instead of the treasury; never the slashed agent itself.
    stakes.deposit(keyring, "ada", 10 * MICRO)
    assert stakes.slash(keyring, "ada", 4 * MICRO, reason="harmed bob", ref="case:7", beneficiary="bob") == 4 * MICRO
    assert balance(keyring, "bob") == (104 * MICRO, 0) and stakes.staked(keyring, "ada") == 6 * MICRO
    with pytest.raises(StakeError):
        stakes.slash(keyring, "ada", MICRO, reason="to itself", ref="case:8", beneficiary="ada")
    events = market_db(keyring).query("SELECT amount, ref, staked_after FROM market_stake_events WHERE op = 'slash' ORDER BY id")
    assert [(e["amount"], e["ref"], e["staked_after"]) for e in events] == [
        (40 * MICRO, "auction:1", 10 * MICRO), (10 * MICRO, "auction:2", 0), (0, "auction:3", 0),
        (4 * MICRO, "case:7", 6 * MICRO)]
    _supply_holds(keyring)


def test_the_database_keeps_the_stake_records_honest(keyring: Keyring) -> None:
    stakes.deposit(keyring, "ada", 10 * MICRO)
    bob = keyring.agent("bob").public_hex
    ledger = ledger_of(keyring)
    bobs_hold = ledger.pay(keyring.schnorr_key("bob"), None, MICRO, op="hold").transfer_id
    escrow = ledger.pay(keyring.schnorr_key("bob"), keyring.agent("ada").public_hex, MICRO, op="hold").transfer_id
    insert = "INSERT INTO market_stake_holds(hold_id, agent, account, origin, created_at) VALUES (?, ?, ?, 'deposit', 0)"
    with pytest.raises(StoreError, match="own account"):  # bob's hold recorded as ada's stake
        market_db(keyring).execute(insert, (bobs_hold, "ada", keyring.agent("ada").public_hex))
    with pytest.raises(StoreError, match="no fixed payee"):  # an escrow for a payee is not stake
        market_db(keyring).execute(insert, (escrow, "bob", bob))
    with pytest.raises(StoreError, match="audit record"):
        market_db(keyring).execute("UPDATE market_stake_events SET amount = 1")
    with pytest.raises(StoreError, match="audit record"):
        market_db(keyring).execute("DELETE FROM market_stake_holds")
    stakes.lock(keyring, "ada", MICRO, ref="bid:1")
    stakes.unlock(keyring, "bid:1")
    with pytest.raises(StoreError, match="released once"):
        market_db(keyring).execute("UPDATE market_stake_locks SET released_at = NULL")


def _equivocation(tmp_path: Path, key: SchnorrKey) -> EquivocationProof:
    """``key`` sequencing two ledgers, each with a different first entry for one account."""
    payee = SchnorrKey.generate().public_hex
    feeds = []
    for name, amount in (("one", 10 * MICRO), ("two", 20 * MICRO)):
        db = open_database(tmp_path / f"{name}.db")
        store = SqliteLedgerStore(db)
        Ledger(store, key).mint(payee, amount, f"history {name}")
        feeds.append(read_lines(export_lines(store)).entries)
        db.close()
    [proof] = find_equivocations(feeds[0], feeds[1])
    return proof


def test_an_equivocation_proof_slashes_the_hosted_agent_that_signed_it(keyring: Keyring, tmp_path: Path) -> None:
    stakes.deposit(keyring, "ada", 40 * MICRO)
    proof = _equivocation(tmp_path, keyring.schnorr_key("ada"))
    assert proof.signer == keyring.agent("ada").public_hex
    assert stakes.slash_for_equivocation(keyring, proof) == 40 * MICRO  # slash_equivocation_bp: all of it
    assert stakes.staked(keyring, "ada") == 0
    # The same proof, either way round, convicts once.
    swapped = EquivocationProof(first=proof.second, second=proof.first)
    assert stakes.slash_for_equivocation(keyring, swapped) == 40 * MICRO
    assert ledger_of(keyring).balance(stakes.treasury(keyring).public_hex).balance == 40 * MICRO

    (tmp_path / "stranger").mkdir()
    with pytest.raises(InvalidProofError, match="none of this node's agents"):
        stakes.slash_for_equivocation(keyring, _equivocation(tmp_path / "stranger", SchnorrKey.generate()))
    altered = proof.second.model_copy(update={"content": proof.second.content.replace("20000000", "30000000")})
    with pytest.raises(InvalidProofError, match="does not verify"):
        stakes.slash_for_equivocation(keyring, EquivocationProof(first=proof.first, second=altered))
    with pytest.raises(InvalidProofError, match="does not verify"):
        stakes.slash_for_equivocation(keyring, EquivocationProof(first=proof.first, second=proof.first))
    _supply_holds(keyring)
