"""The ledger's writes, once for both engines: what each write reads, decides, claims and appends.

Why one algorithm for SQLite and PostgreSQL: the refusals, the result a nonce records, the
entries signed and the Merkle paths rehashed must not depend on the engine (the contract suite
compares the state roots). What differs is only how an engine keeps other writers out, so a
store runs these functions inside its transaction and hands them a `LedgerTx`:

- SQLite: the transaction is ``BEGIN IMMEDIATE`` — the node's one write lock is held before the
  first read — so `LedgerTx.lock` is empty and the ``lock_*`` methods do nothing;
- PostgreSQL: writers run at once, so `LedgerTx.lock_accounts` locks the accounts a write
  touches — those that have no row yet too, which a row lock cannot — in one fixed order, then
  ``lock`` turns the reads of the account heads and of a hold into ``SELECT … FOR UPDATE``
  (heads in account order), and `LedgerTx.lock_tree` serialises the short rehash of the state
  tree, whose root every write changes. Every write takes its locks in the same order (a hold's
  row, its accounts, the tree), so two writes cannot wait for each other in a cycle.

Order inside a transfer: the recorded result of the nonce is looked up first (a retry is
answered without locking anything); then the heads are read (locked) and the entries signed,
since the result names them; then the nonce is claimed — its row written with the result,
``ON CONFLICT DO NOTHING``, so of two submissions racing on PostgreSQL exactly one claims it and
the other gets the recorded result — and only then is money moved: the entries appended, the
hold written, the tree rehashed. The claim row carries the result (an append-only row cannot be
filled in later), which is why the heads are read before it is written.

SQL is written with ``?`` placeholders (the PostgreSQL adapter rewrites them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from colony.ledger import machine, merkle
from colony.ledger._reads import ENTRY_COLUMNS, RESULT_COLUMNS, TRANSFER_COLUMNS, entry_of, result_of
from colony.ledger.errors import HoldNotFoundError, InvalidAuthorisationError, LedgerError
from colony.ledger.records import Entry, MintResult, SignedMint, SignedTransfer, TransferResult
from colony.ledger.wire import DELTA, GENESIS, EntryBody

__all__ = ["EntrySigner", "Head", "LedgerTx", "apply_mint", "apply_transfer", "close_hold"]

#: Signs an entry body as the home node (called inside the write transaction).
EntrySigner = Callable[[EntryBody], Entry]
#: An account's head: (home node, seq, hash of the head entry, available balance).
Head = tuple[str, int, str, int]


class LedgerTx(Protocol):
    """One engine's open write transaction, as the write algorithms use it."""

    #: Appended to a SELECT of rows the write will change: ``" FOR UPDATE"``, or ``""`` when the
    #: transaction already excludes every other writer.
    lock: str

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def lock_accounts(self, accounts: Sequence[str]) -> None:
        """Exclude other writers of these accounts (existing or not) until this transaction ends."""
        ...
    def lock_tree(self) -> None:
        """Exclude other writers from the state tree until this transaction ends."""
        ...


# -- the three writes ----------------------------------------------------------------------------


def apply_transfer(tx: LedgerTx, signed: SignedTransfer, home: str, sign: EntrySigner) -> TransferResult:
    """Claim the nonce and move the credits (or record the refusal); a claimed nonce gets its result back."""
    auth = signed.auth
    seen = _recorded(tx, auth.payer, auth.nonce)
    if seen is not None:
        return _replay(seen, signed)
    found = _heads(tx, auth.payer, auth.payee)
    payer = found.get(auth.payer)
    refusal = None
    if payer is None or payer[3] < auth.amount:
        refusal = "insufficient_funds"
    elif any(h[0] != home for h in found.values()):
        refusal = "remote_account"  # federation will route these to the account's home node
    if refusal is not None:
        result = TransferResult(transfer_id=signed.id, op=auth.op, payer=auth.payer, payee=auth.payee,
                                nonce=auth.nonce, amount=auth.amount, memo=auth.memo, status="refused",
                                reason=refusal, payer_balance=payer[3] if payer else 0)
        return result if _claim(tx, signed, result) else _replay(_get_recorded(tx, auth.payer, auth.nonce), signed)
    assert payer is not None
    kind = "debit" if auth.op == "transfer" else "hold"
    debit = sign(_next(payer, auth.payer, kind, auth.amount, auth.payee, signed.id, auth.nonce))
    written = [debit]
    if auth.op == "transfer":
        assert auth.payee is not None
        credit_head = found.get(auth.payee) or (home, 0, GENESIS, 0)
        written.append(sign(_next(credit_head, auth.payee, "credit", auth.amount, auth.payer, signed.id, auth.nonce)))
    result = TransferResult(transfer_id=signed.id, op=auth.op, payer=auth.payer, payee=auth.payee,
                            nonce=auth.nonce, amount=auth.amount, memo=auth.memo, status="applied",
                            entries=[e.id for e in written], payer_balance=debit.body.balance)
    if not _claim(tx, signed, result):  # the nonce first, then the money
        return _replay(_get_recorded(tx, auth.payer, auth.nonce), signed)
    for entry in written:
        _append(tx, entry)
    if auth.op == "hold":
        now = time.time()
        tx.execute("INSERT INTO ledger_holds(id, payer, nonce, payee, amount, state, created_at, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, 'held', ?, ?)",
                   (signed.id, auth.payer, auth.nonce, auth.payee, auth.amount, now, now))
    _update_tree(tx, written)
    return result


def apply_mint(tx: LedgerTx, signed: SignedMint, sign: EntrySigner, actor: str) -> MintResult:
    """Record the treasury order and credit the account; the same order again gets its result back.

    The account's head is read (locked) before the nonce is looked up, so on PostgreSQL a second
    submission of the order waits for the first and then finds it.
    """
    order = signed.order
    head = _heads(tx, order.account).get(order.account) or (signed.signer, 0, GENESIS, 0)
    seen = tx.rows("SELECT id FROM ledger_treasury WHERE nonce = ?", (order.nonce,))
    if seen:
        if seen[0][0] != signed.id:
            raise InvalidAuthorisationError("nonce_already_used", "This treasury nonce was already used "
                                            "for a different mint; sign a new order.")
        return _mint_result(tx, signed.id)
    if head[0] != signed.signer:
        raise LedgerError(f"Account {order.account} is homed on another node; mint there.")
    entry = sign(_next(head, order.account, "mint", order.amount, None, signed.id, order.nonce))
    tx.execute("INSERT INTO ledger_treasury(id, signer, account, amount, reason, nonce, created_at, sig, actor, "
               "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (signed.id, signed.signer, order.account, order.amount, order.reason, order.nonce,
                signed.created_at, signed.sig, actor, time.time()))
    _append(tx, entry)
    _update_tree(tx, [entry])
    return _mint_result(tx, signed.id, entry)


def close_hold(tx: LedgerTx, hold_id: str, to_state: machine.HoldState, payee: str | None,
               sign: EntrySigner) -> None:
    """Capture (to ``payee``) or release a hold: the payer's entry, the payee's credit, the state.

    The hold's row is read (locked) first: two closings of one hold serialise on it, and the
    second finds it closed and is refused by the hold machine.
    """
    rows = tx.rows("SELECT payer, payee, amount, state, nonce FROM ledger_holds WHERE id = ?" + tx.lock, (hold_id,))
    if not rows:
        raise HoldNotFoundError(hold_id)
    payer, named, amount, state, nonce = rows[0]
    machine.check(hold_id, state, to_state)
    found = _heads(tx, payer, payee if to_state == "captured" else None)
    head = found.get(payer)
    assert head is not None  # the hold entry made the account
    if to_state == "captured":
        if payee is None or payee == payer:
            raise InvalidAuthorisationError("invalid_payee", "A capture needs a payee other than the payer.")
        if named is not None and payee != named:
            raise InvalidAuthorisationError("recipient_mismatch", f"Hold {hold_id} was authorised for {named} only.")
        if found.get(payee, head)[0] != head[0]:
            raise InvalidAuthorisationError("remote_account", "The payee is homed on another node.")
        written = [sign(_next(head, payer, "capture", amount, payee, hold_id, nonce))]
        payee_head = found.get(payee) or (head[0], 0, GENESIS, 0)
        written.append(sign(_next(payee_head, payee, "credit", amount, payer, hold_id, nonce)))
    else:
        written = [sign(_next(head, payer, "release", amount, None, hold_id, nonce))]
    for entry in written:
        _append(tx, entry)
    tx.execute("UPDATE ledger_holds SET state = ?, captured_to = ?, updated_at = ? WHERE id = ?",
               (to_state, payee if to_state == "captured" else None, time.time(), hold_id))
    _update_tree(tx, written)


# -- internals -----------------------------------------------------------------------------------


def _heads(tx: LedgerTx, *accounts: str | None) -> dict[str, Head]:
    """The head of each account that exists, in one statement (locked, in account order)."""
    wanted = sorted({a for a in accounts if a is not None})
    tx.lock_accounts(wanted)
    rows = tx.rows(f"SELECT account, home, seq, head, balance FROM ledger_accounts WHERE account IN "
                   f"({','.join('?' * len(wanted))}) ORDER BY account{tx.lock}", wanted)
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def _next(head: Head, account: str, kind: str, amount: int, counterparty: str | None, ref: str,
          nonce: str) -> EntryBody:
    return EntryBody(account=account, seq=head[1] + 1, prev=head[2], kind=kind, amount=amount,
                     balance=head[3] + DELTA[kind] * amount, counterparty=counterparty, ref=ref, nonce=nonce)


def _append(tx: LedgerTx, e: Entry) -> None:
    b = e.body
    tx.execute(f"INSERT INTO ledger_entries({ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (b.account, b.seq, b.prev, b.kind, b.amount, b.balance, b.counterparty, b.ref, b.nonce,
                e.signer, e.created_at, e.id, e.sig))


def _recorded(tx: LedgerTx, payer: str, nonce: str) -> TransferResult | None:
    rows = tx.rows(f"SELECT {RESULT_COLUMNS} FROM ledger_transfers WHERE payer = ? AND nonce = ?", (payer, nonce))
    return result_of(rows[0]) if rows else None


def _get_recorded(tx: LedgerTx, payer: str, nonce: str) -> TransferResult:
    """The result of a nonce another writer claimed while this one was deciding (it has committed)."""
    seen = _recorded(tx, payer, nonce)
    if seen is None:
        raise LedgerError(f"The nonce {nonce} was claimed by another write that cannot be read back; retry, then "
                          "run `colony ledger verify`.")
    return seen


def _claim(tx: LedgerTx, signed: SignedTransfer, result: TransferResult) -> bool:
    """Write the nonce's row with its result; False when another write claimed the nonce first."""
    a = signed.auth
    return bool(tx.rows(
        f"INSERT INTO ledger_transfers({TRANSFER_COLUMNS}, entries, payer_balance, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (payer, nonce) DO NOTHING RETURNING payer",
        (a.payer, a.nonce, signed.id, a.op, a.payee, a.amount, a.valid_after, a.valid_before, a.memo,
         signed.created_at, signed.sig, result.status, result.reason, " ".join(result.entries), result.payer_balance,
         time.time())))


def _replay(seen: TransferResult, signed: SignedTransfer) -> TransferResult:
    if seen.transfer_id != signed.id:
        raise InvalidAuthorisationError(
            "nonce_already_used", f"The nonce {signed.auth.nonce} was already used by this payer for a "
            "different payment; sign a new authorisation with a fresh nonce.")
    return seen


def _one(tx: LedgerTx, sql: str, params: Sequence[Any]) -> tuple[Any, ...]:
    rows = tx.rows(sql, params)
    if not rows:
        raise LedgerError(f"The ledger database lost a row it had just written ({sql.split()[1]}…); run "
                          "`colony ledger verify`.")
    return rows[0]


def _mint_result(tx: LedgerTx, treasury_id: str, entry: Entry | None = None) -> MintResult:
    """The result of a treasury order: from the entry just written, or (a retry) found in the chain."""
    account, amount, reason = _one(tx, "SELECT account, amount, reason FROM ledger_treasury WHERE id = ?",
                                   (treasury_id,))
    if entry is None:
        entry = entry_of(_one(tx, f"SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE account = ? AND kind = 'mint' "
                                  "AND ref = ?", (account, treasury_id)))
    supply = _one(tx, "SELECT minted FROM ledger_supply WHERE id = 1", ())[0]
    return MintResult(treasury_id=treasury_id, account=account, amount=amount, reason=reason, entry=entry.id,
                      balance=entry.body.balance, supply=supply)


def _update_tree(tx: LedgerTx, written: list[Entry]) -> None:
    """Set the changed accounts' leaves and rehash their paths to the root (four statements).

    Each node above the buckets is one row holding its 16 child slots, so a path costs one row
    per level to read and to write, however many accounts the ledger holds. The tree is locked
    first, so the sibling leaves and slots read here are the latest committed ones.
    """
    tx.lock_tree()
    heads = {e.body.account: e for e in written}  # the last entry written is the account's head
    leaves = {a: merkle.leaf_hash(a, e.body.seq, e.id, e.body.balance) for a, e in heads.items()}
    tx.execute("UPDATE ledger_accounts SET leaf = CASE account " + "WHEN ? THEN ? " * len(leaves) + "END "
               f"WHERE account IN ({','.join('?' * len(leaves))})",
               [x for pair in leaves.items() for x in pair] + list(leaves))
    bucket_ids = sorted({a[:merkle.DEPTH] for a in leaves})
    buckets: dict[str, dict[str, str]] = {b: {} for b in bucket_ids}
    rows = tx.rows("SELECT account, leaf FROM ledger_accounts WHERE "
                   + " OR ".join(["(account >= ? AND account < ?)"] * len(bucket_ids)),
                   [x for b in bucket_ids for x in (b, b + "g")])
    for account, leaf in rows:
        buckets[account[:merkle.DEPTH]][account] = leaf
    nodes = sorted({a[:depth] for a in leaves for depth in range(merkle.DEPTH)})
    slots = {prefix: bytes(value) for prefix, value in tx.rows(
        "SELECT prefix, slots FROM ledger_tree WHERE (depth, prefix) IN (VALUES "
        + ",".join(["(?, ?)"] * len(nodes)) + ")", [x for p in nodes for x in (len(p), p)])}
    updated = merkle.update_paths(leaves, buckets, slots)
    tx.execute("INSERT INTO ledger_tree(depth, prefix, hash, slots) VALUES "
               + ",".join(["(?, ?, ?, ?)"] * len(updated))
               + " ON CONFLICT(depth, prefix) DO UPDATE SET hash = excluded.hash, slots = excluded.slots",
               [x for p, (h, sl) in updated.items() for x in (len(p), p, h, sl)])
