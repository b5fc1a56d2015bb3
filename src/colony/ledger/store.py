"""Ledger storage: the `LedgerStore` protocol and its SQLite implementation (the only SQL here).

Why each write is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's single write lock
before anything is read, so the nonce check, the balance check and the chain heads an entry
links to cannot change underneath it (no time-of-check/time-of-use between two processes — the
"one lock per payer" of tempo-x402, here one lock for the node). Inside it the nonce is claimed
*first* (its row written), then the entries are signed and appended; everything commits
together or not at all, so a process killed mid-transfer leaves nothing partial. A refusal that
depends on the ledger's state (insufficient funds) is itself the nonce's recorded result: the
nonce is never released and a retry gets the same refusal back.

The entries are signed inside the transaction through the ``sign`` callback because only there
are the sequence, the previous hash and the balance known. The Merkle tree over account heads
is updated in the same transaction, so the state root always matches the journal.

Federation (later): a remote node's credit to one of our accounts arrives as its signed debit;
our node appends the matching credit to its own chain — the same `_append` path — and the
accounts' ``home`` column says which node may sign which chain. A PostgreSQL store implements
the same protocol with row locks on the two accounts' heads.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import apsw

from colony.errors import StoreError
from colony.ledger import machine, merkle
from colony.ledger._reads import (
    ENTRY_COLUMNS,
    RESULT_COLUMNS,
    TRANSFER_COLUMNS,
    LedgerReads,
    entry_of,
    get,
    one,
    result_of,
    tuples,
)
from colony.ledger.errors import HoldNotFoundError, InvalidAuthorisationError, LedgerError
from colony.ledger.records import (
    AccountView,
    Entry,
    HoldView,
    MintResult,
    SignedMint,
    SignedTransfer,
    TransferResult,
)
from colony.ledger.wire import DELTA, GENESIS, EntryBody
from colony.store._db import BUSY_TIMEOUT_MS, Database

__all__ = ["EntrySigner", "LedgerStore", "SqliteLedgerStore"]

#: Signs an entry body as the home node (called inside the write transaction).
EntrySigner = Callable[[EntryBody], Entry]



class LedgerStore(Protocol):
    """What the ledger needs from storage; every write is atomic and enforces the invariants."""

    def snapshot(self) -> AbstractContextManager[None]: ...
    def transfer_result(self, payer: str, nonce: str) -> TransferResult | None: ...
    def apply_transfer(self, signed: SignedTransfer, home: str, sign: EntrySigner) -> TransferResult: ...
    def apply_mint(self, signed: SignedMint, sign: EntrySigner, actor: str) -> MintResult: ...
    def close_hold(self, hold_id: str, to_state: machine.HoldState, payee: str | None,
                   sign: EntrySigner) -> HoldView: ...
    def account(self, account: str) -> AccountView | None: ...
    def accounts(self) -> list[AccountView]: ...
    def entries(self, account: str | None = None, *, limit: int | None = None,
                before_seq: int | None = None) -> list[Entry]: ...
    def scan_entries(self) -> Iterator[Entry]: ...
    def transfers(self) -> list[tuple[SignedTransfer, str | None, str | None]]: ...
    def mints(self) -> list[SignedMint]: ...
    def hold(self, hold_id: str) -> HoldView: ...
    def holds(self, account: str | None = None) -> list[HoldView]: ...
    def memos(self, entries: list[Entry]) -> dict[str, str]: ...
    def supply(self) -> int: ...
    def entry_count(self) -> int: ...
    def root(self) -> str: ...
    def tree_children(self, prefix: str) -> dict[str, str]: ...
    def tree_nodes(self) -> dict[str, tuple[str, dict[str, str]]]: ...


class _Waiter:
    """A busy handler: short randomised sleeps until the write lock frees, up to the store's timeout."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000

    def __call__(self, attempts: int) -> bool:
        if time.monotonic() >= self.deadline:
            return False
        time.sleep(random.uniform(0.0001, 0.0002 * min(attempts + 1, 10)))
        return True


class SqliteLedgerStore(LedgerReads):
    """`LedgerStore` over the node database (migration 9's tables): the writes here, the reads inherited."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes ---------------------------------------------------------------------------------
    def transfer_result(self, payer: str, nonce: str) -> TransferResult | None:
        rows = self.db.tuples(f"SELECT {RESULT_COLUMNS} FROM ledger_transfers WHERE payer = ? AND nonce = ?",
                              (payer, nonce))
        return result_of(rows[0]) if rows else None

    def apply_transfer(self, signed: SignedTransfer, home: str, sign: EntrySigner) -> TransferResult:
        auth = signed.auth
        with self._tx() as conn:
            seen = tuples(conn, f"SELECT {RESULT_COLUMNS} FROM ledger_transfers WHERE payer = ? AND nonce = ?",
                           (auth.payer, auth.nonce))
            if seen:
                return self._replay(result_of(seen[0]), signed)
            heads = self._heads(conn, auth.payer, auth.payee)
            payer = heads.get(auth.payer)
            refusal = None
            if payer is None or payer[3] < auth.amount:
                refusal = "insufficient_funds"
            elif any(h[0] != home for h in heads.values()):
                refusal = "remote_account"  # federation will route these to the account's home node
            if refusal is not None:
                result = TransferResult(transfer_id=signed.id, op=auth.op, payer=auth.payer, payee=auth.payee,
                                        nonce=auth.nonce, amount=auth.amount, memo=auth.memo, status="refused",
                                        reason=refusal,
                                        payer_balance=payer[3] if payer else 0)
                self._claim(conn, signed, result)
                return result
            assert payer is not None
            kind = "debit" if auth.op == "transfer" else "hold"
            debit = sign(self._next(payer, auth.payer, kind, auth.amount, auth.payee, signed.id, auth.nonce))
            written = [debit]
            if auth.op == "transfer":
                assert auth.payee is not None
                credit_head = heads.get(auth.payee) or (home, 0, GENESIS, 0)
                written.append(sign(self._next(credit_head, auth.payee, "credit", auth.amount, auth.payer,
                                               signed.id, auth.nonce)))
            result = TransferResult(transfer_id=signed.id, op=auth.op, payer=auth.payer, payee=auth.payee,
                                    nonce=auth.nonce, amount=auth.amount, memo=auth.memo, status="applied",
                                    entries=[e.id for e in written], payer_balance=debit.body.balance)
            self._claim(conn, signed, result)  # the nonce first, then the money
            for entry in written:
                self._append(conn, entry)
            if auth.op == "hold":
                now = time.time()
                conn.execute("INSERT INTO ledger_holds(id, payer, nonce, payee, amount, state, created_at, updated_at) "
                             "VALUES (?, ?, ?, ?, ?, 'held', ?, ?)",
                             (signed.id, auth.payer, auth.nonce, auth.payee, auth.amount, now, now))
            self._update_tree(conn, written)
            return result

    def apply_mint(self, signed: SignedMint, sign: EntrySigner, actor: str) -> MintResult:
        order = signed.order
        with self._tx() as conn:
            seen = one(conn, "SELECT id FROM ledger_treasury WHERE nonce = ?", (order.nonce,))
            if seen is not None:
                if seen["id"] != signed.id:
                    raise InvalidAuthorisationError("nonce_already_used", "This treasury nonce was already used "
                                                    "for a different mint; sign a new order.")
                return self._mint_result(conn, signed.id)
            head = self._head(conn, order.account) or (signed.signer, 0, GENESIS, 0)
            if head[0] != signed.signer:
                raise LedgerError(f"Account {order.account} is homed on another node; mint there.")
            entry = sign(self._next(head, order.account, "mint", order.amount, None, signed.id, order.nonce))
            conn.execute("INSERT INTO ledger_treasury(id, signer, account, amount, reason, nonce, created_at, sig, "
                         "actor, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (signed.id, signed.signer, order.account, order.amount, order.reason, order.nonce,
                          signed.created_at, signed.sig, actor, time.time()))
            self._append(conn, entry)
            self._update_tree(conn, [entry])
            return self._mint_result(conn, signed.id, entry)

    def close_hold(self, hold_id: str, to_state: machine.HoldState, payee: str | None,
                   sign: EntrySigner) -> HoldView:
        """Capture (to ``payee``) or release a hold: the payer's entry, the payee's credit, the state."""
        with self._tx() as conn:
            row = one(conn, "SELECT id, payer, payee, amount, state, captured_to, nonce FROM ledger_holds "
                       "WHERE id = ?", (hold_id,))
            if row is None:
                raise HoldNotFoundError(hold_id)
            machine.check(hold_id, row["state"], to_state)
            payer, amount, nonce = row["payer"], row["amount"], row["nonce"]
            head = self._head(conn, payer)
            assert head is not None  # the hold entry made the account
            if to_state == "captured":
                if payee is None or payee == payer:
                    raise InvalidAuthorisationError("invalid_payee", "A capture needs a payee other than the payer.")
                if row["payee"] is not None and payee != row["payee"]:
                    raise InvalidAuthorisationError(
                        "recipient_mismatch", f"Hold {hold_id} was authorised for {row['payee']} only.")
                if self._heads(conn, payee).get(payee, head)[0] != head[0]:
                    raise InvalidAuthorisationError("remote_account", "The payee is homed on another node.")
                written = [sign(self._next(head, payer, "capture", amount, payee, hold_id, nonce))]
                payee_head = self._head(conn, payee) or (head[0], 0, GENESIS, 0)
                written.append(sign(self._next(payee_head, payee, "credit", amount, payer, hold_id, nonce)))
            else:
                written = [sign(self._next(head, payer, "release", amount, None, hold_id, nonce))]
            for entry in written:
                self._append(conn, entry)
            conn.execute("UPDATE ledger_holds SET state = ?, captured_to = ?, updated_at = ? WHERE id = ?",
                         (to_state, payee if to_state == "captured" else None, time.time(), hold_id))
            self._update_tree(conn, written)
        return self.hold(hold_id)

    # -- internals ------------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[apsw.Connection]:
        """`Database.tx()` with SQLite's refusals turned into errors that name the broken invariant.

        While it waits for the write lock, it polls every ~0.2-2 ms instead of SQLite's default
        back-off (1, 2, 5, 10 … 100 ms sleeps): a ledger write holds the lock for about a
        millisecond, so with several processes paying at once the default leaves the lock idle
        while everyone sleeps. The same overall timeout applies; the connection's own busy
        timeout is put back afterwards.
        """
        conn = self.db.connection()
        conn.set_busy_handler(_Waiter())
        try:
            with self.db.tx() as conn:
                yield conn
        except apsw.ConstraintError as error:
            raise LedgerError(f"The ledger database refused the write: {error}") from error
        except apsw.Error as error:
            raise StoreError(f"Ledger write failed on {self.db.path}: {error}") from error
        finally:
            conn.set_busy_timeout(BUSY_TIMEOUT_MS)

    @staticmethod
    def _head(conn: apsw.Connection, account: str) -> tuple[str, int, str, int] | None:
        row = one(conn, "SELECT home, seq, head, balance FROM ledger_accounts WHERE account = ?",
                           (account,))
        return None if row is None else (row["home"], row["seq"], row["head"], row["balance"])

    @staticmethod
    def _heads(conn: apsw.Connection, *accounts: str | None) -> dict[str, tuple[str, int, str, int]]:
        """(home, seq, head hash, balance) of each account that exists, in one statement."""
        wanted = [a for a in accounts if a is not None]
        rows = tuples(conn, f"SELECT account, home, seq, head, balance FROM ledger_accounts WHERE account IN "
                             f"({','.join('?' * len(wanted))})", wanted)
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    @staticmethod
    def _next(head: tuple[str, int, str, int], account: str, kind: str, amount: int, counterparty: str | None,
              ref: str, nonce: str) -> EntryBody:
        return EntryBody(account=account, seq=head[1] + 1, prev=head[2], kind=kind, amount=amount,
                         balance=head[3] + DELTA[kind] * amount, counterparty=counterparty, ref=ref, nonce=nonce)

    @staticmethod
    def _append(conn: apsw.Connection, e: Entry) -> None:
        b = e.body
        conn.execute(f"INSERT INTO ledger_entries({ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (b.account, b.seq, b.prev, b.kind, b.amount, b.balance, b.counterparty, b.ref, b.nonce,
                      e.signer, e.created_at, e.id, e.sig))

    @staticmethod
    def _claim(conn: apsw.Connection, signed: SignedTransfer, result: TransferResult) -> None:
        a = signed.auth
        conn.execute(f"INSERT INTO ledger_transfers({TRANSFER_COLUMNS}, entries, payer_balance, recorded_at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (a.payer, a.nonce, signed.id, a.op, a.payee, a.amount, a.valid_after, a.valid_before, a.memo,
                      signed.created_at, signed.sig, result.status, result.reason, " ".join(result.entries),
                      result.payer_balance,
                      time.time()))

    @staticmethod
    def _replay(seen: TransferResult, signed: SignedTransfer) -> TransferResult:
        if seen.transfer_id != signed.id:
            raise InvalidAuthorisationError(
                "nonce_already_used", f"The nonce {signed.auth.nonce} was already used by this payer for a "
                "different payment; sign a new authorisation with a fresh nonce.")
        return seen

    @staticmethod
    def _mint_result(conn: apsw.Connection, treasury_id: str, entry: Entry | None = None) -> MintResult:
        """The result of a treasury order: from the entry just written, or (a retry) found in the chain."""
        t = get(conn, "SELECT account, amount, reason FROM ledger_treasury WHERE id = ?", (treasury_id,))
        if entry is None:
            row = get(conn, f"SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE account = ? AND kind = 'mint' "
                       "AND ref = ?", (t["account"], treasury_id))
            entry = entry_of(tuple(row.values()))
        supply = get(conn, "SELECT minted FROM ledger_supply WHERE id = 1")["minted"]
        return MintResult(treasury_id=treasury_id, account=t["account"], amount=t["amount"], reason=t["reason"],
                          entry=entry.id, balance=entry.body.balance, supply=supply)

    @staticmethod
    def _update_tree(conn: apsw.Connection, written: list[Entry]) -> None:
        """Set the changed accounts' leaves and rehash their paths to the root (four statements).

        Each node above the buckets is one row holding its 16 child slots, so a path costs one
        row per level to read and to write, however many accounts the ledger holds.
        """
        heads = {e.body.account: e for e in written}  # the last entry written is the account's head
        leaves = {a: merkle.leaf_hash(a, e.body.seq, e.id, e.body.balance) for a, e in heads.items()}
        conn.execute("UPDATE ledger_accounts SET leaf = CASE account " + "WHEN ? THEN ? " * len(leaves) + "END "
                     f"WHERE account IN ({','.join('?' * len(leaves))})",
                     [x for pair in leaves.items() for x in pair] + list(leaves))
        bucket_ids = sorted({a[:merkle.DEPTH] for a in leaves})
        buckets: dict[str, dict[str, str]] = {b: {} for b in bucket_ids}
        rows = tuples(conn, "SELECT account, leaf FROM ledger_accounts WHERE "
                      + " OR ".join(["(account >= ? AND account < ?)"] * len(bucket_ids)),
                      [x for b in bucket_ids for x in (b, b + "g")])
        for account, leaf in rows:
            buckets[account[:merkle.DEPTH]][account] = leaf
        nodes = sorted({a[:depth] for a in leaves for depth in range(merkle.DEPTH)})
        slots = dict(tuples(conn, "SELECT prefix, slots FROM ledger_tree WHERE (depth, prefix) IN (VALUES "
                            + ",".join(["(?, ?)"] * len(nodes)) + ")", [x for p in nodes for x in (len(p), p)]))
        updated = merkle.update_paths(leaves, buckets, slots)
        conn.execute("INSERT INTO ledger_tree(depth, prefix, hash, slots) VALUES "
                     + ",".join(["(?, ?, ?, ?)"] * len(updated))
                     + " ON CONFLICT(depth, prefix) DO UPDATE SET hash = excluded.hash, slots = excluded.slots",
                     [x for p, (h, sl) in updated.items() for x in (len(p), p, h, sl)])
