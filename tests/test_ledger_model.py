"""Property-based: transfers, holds, captures and releases against a model of dictionaries.

Hypothesis drives a real ledger (SQLite file, real signatures) and a plain model side by side;
after every step the balances, held amounts and supply agree, and an illegal hold move raises
`IllegalHoldTransitionError` and changes nothing (same state root). The whole ledger verifies
at the end of every run.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from colony.ledger import MICRO, IllegalHoldTransitionError, TransferRefusedError
from ledger_helpers import open_book

ACCOUNTS = 4


class LedgerModel(RuleBasedStateMachine):
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-model-"))
        self.book = open_book(self.dir / "ledger.db", accounts=ACCOUNTS)
        self.balance = [0] * ACCOUNTS
        self.held = [0] * ACCOUNTS
        self.state: dict[str, tuple[int, int, str]] = {}  # hold id -> (payer, amount, state)
        self.supply = 0

    def teardown(self) -> None:
        try:
            report = self.book.ledger.verify()
            assert report.ok, report.problems[:3]
        finally:
            self.book.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _key(self, i: int) -> str:
        return self.book.keys[i].public_hex

    @rule(who=st.integers(0, ACCOUNTS - 1), amount=st.integers(1, 50 * MICRO))
    def mint(self, who: int, amount: int) -> None:
        self.book.ledger.mint(self._key(who), amount, "model")
        self.balance[who] += amount
        self.supply += amount

    @rule(payer=st.integers(0, ACCOUNTS - 1), payee=st.integers(0, ACCOUNTS - 1), amount=st.integers(1, 30 * MICRO))
    def transfer(self, payer: int, payee: int, amount: int) -> None:
        if payer == payee:
            return
        try:
            self.book.ledger.pay(self.book.keys[payer], self._key(payee), amount)
        except TransferRefusedError:
            assert amount > self.balance[payer]
            return
        assert amount <= self.balance[payer]
        self.balance[payer] -= amount
        self.balance[payee] += amount

    @rule(target=holds, payer=st.integers(0, ACCOUNTS - 1), amount=st.integers(1, 30 * MICRO))
    def hold(self, payer: int, amount: int) -> str:
        try:
            result = self.book.ledger.pay(self.book.keys[payer], None, amount, op="hold")
        except TransferRefusedError:
            assert amount > self.balance[payer]
            return "00" * 32  # a hold id that does not exist: later moves on it must fail
        self.balance[payer] -= amount
        self.held[payer] += amount
        self.state[result.transfer_id] = (payer, amount, "held")
        return result.transfer_id

    @rule(hold=holds, payee=st.integers(0, ACCOUNTS - 1), release=st.booleans())
    def close(self, hold: str, payee: int, release: bool) -> None:
        known = self.state.get(hold)
        before = self.book.ledger.root()
        if known is None:
            with pytest.raises(Exception, match="No hold"):
                self.book.ledger.release(hold)
            return
        payer, amount, state = known
        if payee == payer and not release:
            payee = (payer + 1) % ACCOUNTS
        if state != "held":
            move = (lambda: self.book.ledger.release(hold)) if release else (
                lambda: self.book.ledger.capture(hold, self._key(payee)))
            with pytest.raises(IllegalHoldTransitionError):
                move()
            assert self.book.ledger.root() == before  # nothing changed
            return
        if release:
            assert self.book.ledger.release(hold).state == "released"
            self.balance[payer] += amount
        else:
            assert self.book.ledger.capture(hold, self._key(payee)).state == "captured"
            self.balance[payee] += amount
        self.held[payer] -= amount
        self.state[hold] = (payer, amount, "released" if release else "captured")

    @precondition(lambda self: self.supply > 0)
    @invariant()
    def matches_the_model(self) -> None:
        views = [self.book.ledger.balance(self._key(i)) for i in range(ACCOUNTS)]
        assert [v.balance for v in views] == self.balance
        assert [v.held for v in views] == self.held
        assert self.book.store.supply() == self.supply == sum(self.balance) + sum(self.held)
        for hold_id, (_, _, state) in self.state.items():
            assert self.book.store.hold(hold_id).state == state


LedgerModel.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
test_ledger_against_a_model = LedgerModel.TestCase
