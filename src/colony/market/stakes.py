"""Stake on the ledger: credits an agent puts at risk, held in escrow from its own wallet.

A deposit is an escrow hold (`colony.ledger.Ledger.hold`) authorised by the agent's own key, with
no fixed payee: the credits stay the agent's — counted in its balance as held, not spendable —
until they are withdrawn (the hold released) or slashed (captured to the treasury or a named
beneficiary). Which holds are stake is recorded in ``market_stake_holds`` (migration 14); how much
is staked is always read from the ledger's hold states, so the ledger stays the one truth and
`colony ledger verify` checks every credit that moved.

Partial moves. A ledger hold is captured or released whole (``held → captured | released``). To
slash or withdraw part of a hold, the hold is released and the remainder held again as a new
stake hold — and, for a slash, the slashed part paid to the beneficiary — all in one database
transaction, so the stake is never seen half-moved and a crash leaves nothing partial. Whole
holds are captured or released directly. No ledger change was needed.

Accounts, not names. Every stake row, lock and named lock is keyed by the agent's account (its
public key, `Identity.public_hex`); the name is only shown. A name is local to its node, and
nodes sharing one PostgreSQL each have a ``colony``: keyed by name, one's deposit, lock or slash
was the other's (issue 17). The functions below still take the local name — that is how the CLI
and API address an agent — and resolve it through the node's keyring first.

Idempotency. A slash is keyed by its ``ref`` (the offence: an auction's verification, an
equivocation proof): the same ref never slashes twice and a retry gets the first amount back. A
deposit or withdrawal may carry a ``key`` with the same effect, per account. The check and the
moves happen in one step that excludes every other stake step of the account — SQLite's write
lock, or on PostgreSQL the account's named lock (`stake_lock`) — so two processes retrying at
once move credits once. The stake tables live where the ledger does (`colony.store.engine.open_engine`), and each
step's ledger moves join its transaction.

Locks. `locked` is what open bids and awards keep from being withdrawn. The market service
records a lock when stake starts backing a bid (`lock`, keyed by e.g. the commitment's id) and
releases it when the bid settles (`unlock`); until it records any, `locked` is 0. A slash ignores
locks: locked stake is exactly the stake a failure should cost.

Public API (``node`` is a `colony.node.Node` or the node's `Keyring`)::

    deposit(node, "scout", 10 * MICRO) -> StakeView        withdraw(node, "scout", 4 * MICRO) -> StakeView
    staked(node, "scout") -> int                            locked(node, "scout") -> int
    lock(node, "scout", 2 * MICRO, ref="commit:…")          unlock(node, "commit:…")
    slash(node, "scout", 3 * MICRO, reason="failed verification", ref="auction:…") -> int   # what was slashed
    slash_for_equivocation(node, proof) -> int              treasury(node) -> Identity

May import `colony.identity`, `colony.ledger`, `colony.store` and the market's own modules.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from colony.errors import IdentityError
from colony.identity import Identity, Keyring
from colony.identity.keys import SchnorrKey
from colony.identity.store import HasKeyring
from colony.ledger import Ledger, open_ledger_store
from colony.ledger.amounts import MAX_AMOUNT, format_amount
from colony.ledger.errors import TransferRefusedError
from colony.ledger.proofs import EquivocationProof, verify_equivocation
from colony.market import _gov_store, _stake_store
from colony.market.events import InvalidProofError, MarketError
from colony.market.governance import market_params
from colony.market.ledger_guard import market_ledger
from colony.market.profiles import deactivate_agent
from colony.market.stake import slash_equivocation
from colony.store.engine import Engine, open_engine

__all__ = [
    "TREASURY",
    "NodeLike",
    "StakeError",
    "StakeView",
    "deposit",
    "keyring_of",
    "lock",
    "locked",
    "market_db",
    "slash",
    "slash_for_equivocation",
    "stake_lock",
    "stake_view",
    "staked",
    "treasury",
    "unlock",
    "withdraw",
]

log = logging.getLogger("colony.market")

NodeLike = Keyring | HasKeyring
#: The agent whose account receives slashed stake: created on first use, deactivated (it takes no work).
TREASURY = "treasury"
_DOMAIN = b"colony/market/stake/v1\x00"
MAX_REF_CHARS = 200

StakeReason = Literal["unknown", "invalid", "insufficient_funds", "insufficient_stake", "locked", "ref_reused"]


class StakeError(MarketError):
    """A stake operation refused; ``reason`` is a stable code and the message says what to do."""

    code = "stake_error"

    def __init__(self, reason: StakeReason, message: str) -> None:
        self.reason: StakeReason = reason
        super().__init__(message)


class StakeView(BaseModel):
    """An agent's stake, in micro-credits."""

    model_config = ConfigDict(frozen=True)

    agent: str
    account: str
    staked: int = Field(description="Micro-credits held as stake.")
    locked: int = Field(description="Stake backing open bids or awards (not withdrawable).")
    free: int = Field(description="Stake that may be withdrawn now.")
    balance: int = Field(description="Available micro-credits in the agent's wallet (neither staked nor held).")


def keyring_of(node: NodeLike) -> Keyring:
    return node if isinstance(node, Keyring) else node.keyring


def _agent(keyring: Keyring, name: str) -> Identity:
    try:
        return keyring.agent(name)
    except IdentityError as exc:
        raise StakeError("unknown", f"No agent named {name!r} on this node; list them with: colony agents list") from exc


def market_db(node: NodeLike) -> Engine:
    """The database of the market's tables (stake, governance): the node's file, or PostgreSQL with
    ``COLONY_DATABASE_URL`` — wherever the ledger is (`colony.store.engine.open_engine`)."""
    keyring = keyring_of(node)
    return open_engine(keyring.db, keyring.settings)


def _ledger(keyring: Keyring, engine: Engine) -> Ledger:
    """The ledger stake moves on: the one in ``engine``'s database (`colony.market.ledger_guard`)."""
    return market_ledger(open_ledger_store(keyring.db, keyring.settings), engine, keyring.node().schnorr_key)


def stake_lock(account: str) -> str:
    """The name a step locks to move or lock an account's stake (`colony.store.engine.Engine.lock`).

    By account: nodes sharing one database may each have an agent of the same name.
    """
    return f"market:stake:{account}"


def _amount(amount: int, *, zero: bool = False) -> int:
    if type(amount) is not int or not (0 if zero else 1) <= amount <= MAX_AMOUNT:
        floor = 0 if zero else 1
        raise StakeError("invalid", f"A stake amount is a whole number of micro-credits, {floor} to {MAX_AMOUNT}.")
    return amount


def _ref(ref: str, what: str) -> str:
    if not 1 <= len(ref) <= MAX_REF_CHARS or not ref.isprintable():
        raise StakeError("invalid", f"A {what} is printable text of 1 to {MAX_REF_CHARS} characters.")
    return ref


def _nonce(*parts: str) -> str:
    """A ledger nonce fixed by what the move is for, so a retried operation is the same payment."""
    return hashlib.sha256(_DOMAIN + "\x00".join(parts).encode()).hexdigest()


def stake_view(node: NodeLike, agent_name: str) -> StakeView:
    """The agent's stake, what is locked, what may be withdrawn, and its wallet's available balance."""
    keyring = keyring_of(node)
    ident = _agent(keyring, agent_name)
    engine = market_db(keyring)
    total = _stake_store.staked(engine, ident.public_hex)
    held = _stake_store.locked(engine, ident.public_hex)
    account = open_ledger_store(keyring.db, keyring.settings).account(ident.public_hex)
    return StakeView(agent=agent_name, account=ident.public_hex, staked=total, locked=held,
                     free=total - min(total, held), balance=account.balance if account else 0)


def staked(node: NodeLike, agent_name: str) -> int:
    """Micro-credits the agent has staked now (its stake holds the ledger still holds)."""
    keyring = keyring_of(node)
    return _stake_store.staked(market_db(keyring), _agent(keyring, agent_name).public_hex)


def locked(node: NodeLike, agent_name: str) -> int:
    """Stake the market keeps from being withdrawn (open bids and awards): 0 until it records locks."""
    keyring = keyring_of(node)
    return _stake_store.locked(market_db(keyring), _agent(keyring, agent_name).public_hex)


def lock(node: NodeLike, agent_name: str, amount: int, *, ref: str) -> StakeView:
    """Keep ``amount`` of the agent's free stake from being withdrawn until `unlock` (``ref``: the bid).

    Idempotent by ``ref`` for the same agent and amount. Raises `StakeError` (``insufficient_stake``)
    when the free stake is smaller: this is the check that lets a bid above the free size in.
    """
    keyring = keyring_of(node)
    account = _agent(keyring, agent_name).public_hex
    _amount(amount)
    _ref(ref, "lock reference")
    db = market_db(keyring)

    def step() -> None:
        db.lock(stake_lock(account))
        prior = _stake_store.get_lock(db, ref)
        if prior is not None:
            if (prior["account"], prior["amount"]) != (account, amount):
                raise StakeError("ref_reused", f"The lock {ref!r} was taken for another agent or amount.")
            return
        free = _stake_store.staked(db, account) - _stake_store.locked(db, account)
        if amount > free:
            raise StakeError("insufficient_stake", f"{agent_name} has {format_amount(max(0, free))} credits of "
                             f"free stake; {format_amount(amount)} are needed. Deposit more: "
                             f"colony market stake deposit {agent_name} AMOUNT")
        _stake_store.insert_lock(db, ref, agent_name, account, amount, time.time())

    db.atomic(step)
    return stake_view(keyring, agent_name)


def unlock(node: NodeLike, ref: str) -> bool:
    """Release the lock ``ref``; False when it was released already or never taken."""
    return _stake_store.release_lock(market_db(node), _ref(ref, "lock reference"), time.time())


def deposit(node: NodeLike, agent_name: str, amount: int, *, key: str | None = None,
            actor: str = "cli") -> StakeView:
    """Stake ``amount`` micro-credits from the agent's wallet: a hold signed by the agent's key.

    ``key`` makes a retry safe (the same key deposits once). Raises `StakeError`:
    ``insufficient_funds`` when the wallet's available balance is smaller.
    """
    keyring = keyring_of(node)
    ident = _agent(keyring, agent_name)
    _amount(amount)
    if key is not None:
        _ref(key, "deposit key")
    db = market_db(keyring)
    ledger, payer = _ledger(keyring, db), keyring.schnorr_key(agent_name)  # scrypt before the step
    account = ident.public_hex
    nonce = _nonce("deposit", account, key) if key is not None else secrets.token_hex(32)

    def step() -> bool:
        db.lock(stake_lock(account))
        if key is not None and (prior := _stake_store.event_by_ref(db, "deposit", key, account=account)):
            _same(prior, amount, key)
            return False
        try:
            hold = ledger.pay(payer, None, amount, memo="stake", nonce=nonce, op="hold")
        except TransferRefusedError as exc:
            raise StakeError("insufficient_funds", f"{agent_name} has {format_amount(exc.result.payer_balance)} "
                             f"credits available; staking {format_amount(amount)} needs more. Fund its wallet "
                             "first (colony wallet).") from exc
        now = time.time()
        _stake_store.record_hold(db, hold.transfer_id, agent_name, account, "deposit", now)
        _stake_store.record_event(db, _event(ident, "deposit", amount, key, None, "", [hold.transfer_id],
                                             _stake_store.staked(db, account), actor, now))
        return True

    if db.atomic(step):
        log.info("stake deposited", extra={"agent": agent_name, "amount": amount})
    return stake_view(keyring, agent_name)


def withdraw(node: NodeLike, agent_name: str, amount: int, *, key: str | None = None,
             actor: str = "cli") -> StakeView:
    """Give ``amount`` of the agent's stake back to its wallet (newest holds first).

    Raises `StakeError`: ``insufficient_stake`` (more than is staked), ``locked`` (the stake backs
    open bids or awards: `locked`).
    """
    keyring = keyring_of(node)
    ident = _agent(keyring, agent_name)
    _amount(amount)
    if key is not None:
        _ref(key, "withdrawal key")
    db = market_db(keyring)
    ledger, payer = _ledger(keyring, db), keyring.schnorr_key(agent_name)
    account = ident.public_hex

    def step() -> bool:
        db.lock(stake_lock(account))
        if key is not None and (prior := _stake_store.event_by_ref(db, "withdraw", key, account=account)):
            _same(prior, amount, key)
            return False
        total, held = _stake_store.staked(db, account), _stake_store.locked(db, account)
        if amount > total:
            raise StakeError("insufficient_stake", f"{agent_name} has {format_amount(total)} credits staked; it "
                             f"cannot withdraw {format_amount(amount)}.")
        if amount > total - min(total, held):
            raise StakeError("locked", f"{format_amount(min(total, held))} of {agent_name}'s stake backs open bids or "
                             f"awards; at most {format_amount(total - min(total, held))} credits can be withdrawn now.")
        touched: list[str] = []
        remaining = amount
        for hold_id, size in reversed(_stake_store.open_holds(db, account)):
            if remaining == 0:
                break
            ledger.release(hold_id)
            touched.append(hold_id)
            if size <= remaining:
                remaining -= size
                continue
            rest_nonce = _nonce("withdraw-rest", account, key) if key is not None else secrets.token_hex(32)
            touched.append(_rehold(ledger, db, payer, ident, size - remaining, rest_nonce))
            remaining = 0
        _stake_store.record_event(db, _event(ident, "withdraw", amount, key, None, "", touched, total - amount,
                                             actor, time.time()))
        return True

    if db.atomic(step):
        log.info("stake withdrawn", extra={"agent": agent_name, "amount": amount})
    return stake_view(keyring, agent_name)


def slash(node: NodeLike, agent_name: str, amount: int, *, reason: str, ref: str,
          beneficiary: str | None = None, actor: str = "market") -> int:
    """Take up to ``amount`` of the agent's stake for an offence; return what was actually taken.

    The slashed credits go to ``beneficiary`` (an agent's name or an account) or, by default, the
    treasury (`treasury`). Never more than is staked; never twice for one ``ref`` (a retry returns
    the first result). Locks do not protect stake from a slash.
    """
    keyring = keyring_of(node)
    ident = _agent(keyring, agent_name)
    _amount(amount, zero=True)
    _ref(ref, "slash reference")
    why = reason.strip()[:500] or "slashed"
    to = _beneficiary(keyring, beneficiary)
    if to == ident.public_hex:
        raise StakeError("invalid", "A slash cannot pay the slashed agent itself; name another beneficiary.")
    db = market_db(keyring)
    ledger, payer = _ledger(keyring, db), keyring.schnorr_key(agent_name)
    account = ident.public_hex

    def step() -> tuple[int, bool]:
        db.lock(stake_lock(account))
        prior = _stake_store.event_by_ref(db, "slash", ref)
        if prior is not None:
            if prior["account"] != account:
                raise StakeError("ref_reused", f"The slash {ref!r} was already applied to another agent.")
            return int(prior["amount"]), False
        total = _stake_store.staked(db, account)
        take = min(amount, total)
        touched: list[str] = []
        remaining = take
        for hold_id, size in _stake_store.open_holds(db, account):
            if remaining == 0:
                break
            touched.append(hold_id)
            if size <= remaining:
                ledger.capture(hold_id, to)
                remaining -= size
                continue
            ledger.release(hold_id)
            ledger.pay(payer, to, remaining, memo=f"stake slashed: {ref}"[:256], nonce=_nonce("slash-pay", ref))
            touched.append(_rehold(ledger, db, payer, ident, size - remaining, _nonce("slash-rest", ref)))
            remaining = 0
        _stake_store.record_event(db, _event(ident, "slash", take, ref, to, why, touched, total - take, actor,
                                             time.time()))
        return take, True

    take, done = db.atomic(step)
    if done:
        log.info("stake slashed", extra={"agent": agent_name, "amount": take, "ref": ref})
    return take


def slash_for_equivocation(node: NodeLike, proof: EquivocationProof, *, actor: str = "market") -> int:
    """Slash the hosted agent whose key signed two ledger histories, by ``slash_equivocation_bp``.

    The proof is verified from its two events alone; its signer must be one of this node's agents.
    Raises `InvalidProofError` otherwise. Idempotent: one proof (in either order) slashes once.
    """
    if not verify_equivocation(proof):
        raise InvalidProofError("the equivocation proof does not verify")
    keyring = keyring_of(node)
    convicted = keyring.by_public_key(proof.signer)
    if convicted is None or convicted.role != "agent":
        raise InvalidProofError(f"the proof convicts {proof.signer[:12]}…, which is none of this node's agents")
    engine = market_db(keyring)
    params = market_params(_gov_store.param_overrides(engine))
    staked_now = _stake_store.staked(engine, convicted.public_hex)
    amount = slash_equivocation(staked_now, convicted.public_hex, proof, params)
    first, second = sorted((proof.first.id, proof.second.id))
    ref = f"equivocation:{hashlib.sha256(bytes.fromhex(first + second)).hexdigest()}"
    return slash(node, convicted.name, amount, reason=f"signed two ledger histories ({first[:12]}…, {second[:12]}…)",
                 ref=ref, actor=actor)


def treasury(node: NodeLike) -> Identity:
    """The node's treasury: an agent identity that receives slashed stake, deactivated so it takes no work.

    The first call creates its keys (scrypt): make it outside a write transaction — e.g. when the
    market starts — so the database's write lock is not held meanwhile.
    """
    keyring = keyring_of(node)
    try:
        return keyring.agent(TREASURY)
    except IdentityError:
        pass

    def out_of_service() -> None:  # in the identity's own transaction: it never exists active
        deactivate_agent(keyring, TREASURY)

    try:
        return keyring.create_agent(TREASURY, description="The node's treasury: slashed stake is paid here.",
                                    then=out_of_service)
    except IdentityError as exc:
        if exc.reason == "exists":  # another process made it first
            return keyring.agent(TREASURY)
        raise


# -- internals ------------------------------------------------------------------------------


def _beneficiary(keyring: Keyring, beneficiary: str | None) -> str:
    if beneficiary is None:
        return treasury(keyring).public_hex
    if len(beneficiary) == 64 and all(c in "0123456789abcdef" for c in beneficiary):
        return beneficiary
    return _agent(keyring, beneficiary).public_hex


def _rehold(ledger: Ledger, db: Engine, payer: SchnorrKey, ident: Identity, amount: int, nonce: str) -> str:
    """Hold ``amount`` again as stake (the remainder of a hold that was released to move part of it)."""
    hold = ledger.pay(payer, None, amount, memo="stake", nonce=nonce, op="hold")
    _stake_store.record_hold(db, hold.transfer_id, ident.name, ident.public_hex, "remainder", time.time())
    return hold.transfer_id


def _same(prior: dict[str, object], amount: int, key: str) -> None:
    """A keyed step found done (for this account: the lookup is by account): the same amount, or a reuse."""
    if prior["amount"] != amount:
        raise StakeError("ref_reused", f"The key {key!r} was already used for another amount.")


def _event(ident: Identity, op: str, amount: int, ref: str | None, beneficiary: str | None, reason: str,
           holds: list[str], staked_after: int, actor: str, now: float) -> dict[str, object]:
    return {"agent": ident.name, "account": ident.public_hex, "op": op, "amount": amount, "ref": ref,
            "beneficiary": beneficiary, "reason": reason, "holds": holds, "staked_after": staked_after,
            "actor": actor, "created_at": now}
