"""The ledger store's reads, shared by both engines: accounts, chains, authorisations, holds, the
supply, the state tree.

Each store supplies `LedgerReads._rows` (SQL with ``?`` placeholders, rows as plain tuples) and
its own `snapshot`; the statements are the same on SQLite and PostgreSQL, so the two engines
answer every read alike. Hot reads (a full verification reads every entry) stay plain tuples, no
dict per row. Every listing has a total order (``ORDER BY`` down to a key), so both engines list
the same rows in the same order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import apsw

from colony.ledger import merkle
from colony.ledger.errors import HoldNotFoundError
from colony.ledger.records import AccountView, Entry, HoldView, SignedMint, SignedTransfer, TransferResult
from colony.ledger.wire import EntryBody, MintOrder, TransferAuth

__all__ = ["ENTRY_COLUMNS", "RESULT_COLUMNS", "TRANSFER_COLUMNS", "LedgerReads", "entry_of", "result_of", "tuples"]

ENTRY_COLUMNS = "account, seq, prev, kind, amount, balance, counterparty, ref, nonce, signer, created_at, id, sig"
TRANSFER_COLUMNS = "payer, nonce, id, op, payee, amount, valid_after, valid_before, memo, created_at, sig, status, reason"
RESULT_COLUMNS = "id, op, payer, payee, nonce, amount, memo, status, reason, entries, payer_balance"


def tuples(conn: apsw.Connection, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    """Rows as plain tuples inside a SQLite transaction (hot paths: no dict per row)."""
    cursor = conn.cursor()
    cursor.set_row_trace(None)
    return list(cursor.execute(sql, params))


def entry_of(row: Sequence[Any]) -> Entry:
    return Entry(body=EntryBody(*row[:9]), signer=row[9], created_at=row[10], id=row[11], sig=row[12])


def result_of(row: Sequence[Any]) -> TransferResult:
    """A nonce's recorded first result, as a retry gets it back."""
    return TransferResult(transfer_id=row[0], op=row[1], payer=row[2], payee=row[3], nonce=row[4], amount=row[5],
                          memo=row[6], status=row[7], reason=row[8], entries=row[9].split(), payer_balance=row[10],
                          replayed=True)


def _account(row: Sequence[Any]) -> AccountView:
    return AccountView(account=row[0], home=row[1], seq=row[2], head=row[3], balance=row[4], held=row[5])


def _hold(row: Sequence[Any]) -> HoldView:
    return HoldView(id=row[0], payer=row[1], payee=row[2], amount=row[3], state=row[4], captured_to=row[5])


class LedgerReads(ABC):
    """Read functions over the ledger tables; a store provides `_rows` and `snapshot`."""

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read (``?`` placeholders) as tuples, inside the caller's snapshot if one is open."""

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[None]:
        """One read transaction around several reads, so they all see the same moment.

        A verification reads the journal, the authorisations and the caches in several queries;
        without a snapshot a transfer committed between two of them would look like a mismatch.
        """

    def transfer_result(self, payer: str, nonce: str) -> TransferResult | None:
        rows = self._rows(f"SELECT {RESULT_COLUMNS} FROM ledger_transfers WHERE payer = ? AND nonce = ?",
                          (payer, nonce))
        return result_of(rows[0]) if rows else None

    def account(self, account: str) -> AccountView | None:
        rows = self._rows("SELECT account, home, seq, head, balance, held FROM ledger_accounts WHERE account = ?",
                          (account,))
        return _account(rows[0]) if rows else None

    def accounts(self) -> list[AccountView]:
        return [_account(r) for r in self._rows(
            "SELECT account, home, seq, head, balance, held FROM ledger_accounts ORDER BY account")]

    def entries(self, account: str | None = None, *, limit: int | None = None,
                before_seq: int | None = None) -> list[Entry]:
        """One account's entries, newest first (or every entry by account and seq, oldest first)."""
        if account is None:
            return list(self.scan_entries())
        sql = f"SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE account = ?"
        params: list[Any] = [account]
        if before_seq is not None:
            sql += " AND seq < ?"
            params.append(before_seq)
        sql += " ORDER BY seq DESC" + (" LIMIT ?" if limit is not None else "")
        if limit is not None:
            params.append(limit)
        return [entry_of(r) for r in self._rows(sql, params)]

    def scan_entries(self) -> Iterator[Entry]:
        yield from map(entry_of, self._rows(f"SELECT {ENTRY_COLUMNS} FROM ledger_entries ORDER BY account, seq"))

    def entries_after(self, account: str, after_seq: int, limit: int) -> list[Entry]:
        """One account's entries after ``after_seq``, oldest first: what a replica pulls for one account."""
        return [entry_of(r) for r in self._rows(
            f"SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE account = ? AND seq > ? ORDER BY seq LIMIT ?",
            (account, after_seq, limit))]

    def scan_after(self, account: str, seq: int, limit: int) -> list[Entry]:
        """Entries after (``account``, ``seq``) in (account, seq) order: a replica's first pull, page by page."""
        return [entry_of(r) for r in self._rows(
            f"SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE account > ? OR (account = ? AND seq > ?) "
            "ORDER BY account, seq LIMIT ?", (account, account, seq, limit))]

    def cited(self, entries: Sequence[Entry]) -> tuple[list[SignedTransfer], list[SignedMint]]:
        """The signed authorisations and treasury orders ``entries`` cite, found by their keys (no scan).

        A transfer is keyed by (payer, nonce): the payer is the entry's account, or its counterparty
        for a credit. A ref no row matches is simply absent (the verifier reports it).
        """
        pairs = sorted({((e.body.counterparty or "") if e.body.kind == "credit" else e.body.account, e.body.nonce)
                        for e in entries if e.body.kind != "mint"})
        refs = {e.body.ref for e in entries}
        transfers: list[SignedTransfer] = []
        for i in range(0, len(pairs), 100):
            chunk = pairs[i:i + 100]
            where = " OR ".join(["(payer = ? AND nonce = ?)"] * len(chunk))
            for r in self._rows(f"SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE {where} ORDER BY payer, nonce",
                                [v for pair in chunk for v in pair]):
                if r[2] in refs:
                    auth = TransferAuth(op=r[3], payer=r[0], payee=r[4], amount=r[5], nonce=r[1], valid_after=r[6],
                                        valid_before=r[7], memo=r[8])
                    transfers.append(SignedTransfer(auth=auth, created_at=r[9], id=r[2], sig=r[10]))
        mint_ids = sorted({e.body.ref for e in entries if e.body.kind == "mint"})
        mints: list[SignedMint] = []
        for i in range(0, len(mint_ids), 500):
            ids = mint_ids[i:i + 500]
            mints += [SignedMint(order=MintOrder(account=r[2], amount=r[3], nonce=r[5], reason=r[4]), signer=r[1],
                                 created_at=r[6], id=r[0], sig=r[7])
                      for r in self._rows("SELECT id, signer, account, amount, reason, nonce, created_at, sig FROM "
                                          f"ledger_treasury WHERE id IN ({','.join('?' * len(ids))}) ORDER BY id",
                                          ids)]
        return transfers, mints

    def transfers(self) -> list[tuple[SignedTransfer, str | None, str | None]]:
        """Every claimed nonce: the signed authorisation, its status and refusal reason."""
        out: list[tuple[SignedTransfer, str | None, str | None]] = []
        for r in self._rows(f"SELECT {TRANSFER_COLUMNS} FROM ledger_transfers ORDER BY payer, nonce"):
            auth = TransferAuth(op=r[3], payer=r[0], payee=r[4], amount=r[5], nonce=r[1], valid_after=r[6],
                                valid_before=r[7], memo=r[8])
            out.append((SignedTransfer(auth=auth, created_at=r[9], id=r[2], sig=r[10]), r[11], r[12]))
        return out

    def mints(self) -> list[SignedMint]:
        return [SignedMint(order=MintOrder(account=r[2], amount=r[3], nonce=r[5], reason=r[4]), signer=r[1],
                           created_at=r[6], id=r[0], sig=r[7])
                for r in self._rows("SELECT id, signer, account, amount, reason, nonce, created_at, sig "
                                    "FROM ledger_treasury ORDER BY recorded_at, id")]

    def hold(self, hold_id: str) -> HoldView:
        rows = self._rows("SELECT id, payer, payee, amount, state, captured_to FROM ledger_holds WHERE id = ?",
                          (hold_id,))
        if not rows:
            raise HoldNotFoundError(hold_id)
        return _hold(rows[0])

    def holds(self, account: str | None = None) -> list[HoldView]:
        sql = "SELECT id, payer, payee, amount, state, captured_to FROM ledger_holds"
        rows = (self._rows(sql + " WHERE payer = ? ORDER BY created_at, id", (account,)) if account
                else self._rows(sql + " ORDER BY created_at, id"))
        return [_hold(r) for r in rows]

    def memos(self, entries: list[Entry]) -> dict[str, str]:
        """Entry id → the memo of the payment (or the reason of the mint) behind it, for history views."""
        out: dict[str, str] = {}
        for e in entries:
            b = e.body
            if b.kind == "mint":
                rows = self._rows("SELECT reason FROM ledger_treasury WHERE id = ?", (b.ref,))
            else:  # the payer is the account, or the counterparty of a credit
                payer = b.counterparty if b.kind == "credit" else b.account
                rows = self._rows("SELECT memo FROM ledger_transfers WHERE payer = ? AND nonce = ?", (payer, b.nonce))
            if rows:
                out[e.id] = str(rows[0][0])
        return out

    def supply(self) -> int:
        return int(self._rows("SELECT coalesce(max(minted), 0) FROM ledger_supply WHERE id = 1")[0][0])

    def entry_count(self) -> int:
        return int(self._rows("SELECT count(*) FROM ledger_entries")[0][0])

    def root(self) -> str:
        rows = self._rows("SELECT hash FROM ledger_tree WHERE depth = 0 AND prefix = ''")
        return str(rows[0][0]) if rows else merkle.EMPTY_ROOT

    def tree_nodes(self) -> dict[str, tuple[str, dict[str, str]]]:
        """Every stored node of the state tree: prefix → (hash, children), for verification."""
        buckets: dict[str, dict[str, str]] = {}
        for account, leaf in self._rows("SELECT account, leaf FROM ledger_accounts"):
            buckets.setdefault(account[:merkle.DEPTH], {})[account] = leaf
        return {prefix: (value, buckets.get(prefix, {}) if slots is None else merkle.children_of(bytes(slots)))
                for prefix, value, slots in self._rows("SELECT prefix, hash, slots FROM ledger_tree")}

    def tree_children(self, prefix: str) -> dict[str, str]:
        if len(prefix) > merkle.DEPTH or any(c not in "0123456789abcdef" for c in prefix):
            raise ValueError(f"a tree prefix is 0 to {merkle.DEPTH} lowercase hex digits")
        if len(prefix) == merkle.DEPTH:
            return dict(self._rows("SELECT account, leaf FROM ledger_accounts WHERE account >= ? AND account < ?",
                                   (prefix, prefix + "g")))
        rows = self._rows("SELECT slots FROM ledger_tree WHERE depth = ? AND prefix = ?", (len(prefix), prefix))
        return merkle.children_of(bytes(rows[0][0])) if rows else {}
