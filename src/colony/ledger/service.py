"""The ledger's policy: what may move credits, checked before the store writes anything.

`Ledger` is the one entry point for every surface (CLI, API, market). It verifies a payer's
signed authorisation completely before touching the database — the event id recomputed from
its fields, the signature against the recomputed id, the signer being the payer, canonical
content, amount > 0, no self-payment, a validity window of at most 300 s that contains *now* —
then hands it to the `LedgerStore`, which claims the nonce and moves the credits atomically,
the node signing each entry as the accounts' home node.

Signature bytes are never the key: two BIP-340 signatures of one authorisation differ (fresh
randomness) and both verify, so a payment is identified by the payer's nonce and the event id —
a re-signed copy of an applied authorisation is the same payment, not a second one.

Why stateless refusals do not consume the nonce while state-dependent ones do: a bad signature
or an expired window says nothing about the payer's intent and can be sent by anyone, so it
writes nothing; insufficient funds is a real outcome of a real authorisation, recorded as the
nonce's first result so a retry cannot succeed later and pay twice in spirit.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ValidationError

from colony.identity.events import KINDS, Event, event_id
from colony.identity.keys import SchnorrKey, decode_npub
from colony.ledger._sigs import Signer, is_public_key, verify_signatures
from colony.ledger.amounts import MAX_AMOUNT
from colony.ledger.errors import InvalidAuthorisationError, TransferRefusedError
from colony.ledger.feed import read_all
from colony.ledger.records import (
    AccountView,
    Entry,
    HoldView,
    MintResult,
    SignedMint,
    SignedTransfer,
    TransferResult,
    VerifyReport,
)
from colony.ledger.store import LedgerStore
from colony.ledger.verify import verify_feed
from colony.ledger.wire import GENESIS, MAX_WINDOW_S, EntryBody, MintOrder, TransferAuth, entry_event_id
from colony.observability.metrics import observe_ledger_transfer, observe_ledger_verify

__all__ = ["Ledger", "account_id", "sign_transfer"]

#: How far back a freshly signed authorisation starts, so a node whose clock is a little behind
#: the payer's still accepts it.
SKEW_S = 30


def account_id(text: str) -> str:
    """An account id (64 hex) from hex or ``npub1…``; InvalidAuthorisationError otherwise."""
    try:
        account = decode_npub(text)
    except ValueError as exc:
        raise InvalidAuthorisationError("invalid_account", f"{text!r} is not an account: give a 64-character "
                                        "hex public key or an npub1… name") from exc
    if not is_public_key(account):
        raise InvalidAuthorisationError("invalid_account", f"{text!r} is not a public key on secp256k1.")
    return account


def sign_transfer(payer: SchnorrKey, to: str | None, amount: int, *, memo: str = "", nonce: str | None = None,
                  op: Literal["transfer", "hold"] = "transfer", now: float | None = None) -> Event:  # now: not money
    """A payer's signed authorisation, valid from `SKEW_S` ago for `MAX_WINDOW_S` seconds.

    ``nonce`` defaults to 32 fresh random bytes; reuse one only to retry the same payment.
    """
    at = int(time.time() if now is None else now)
    auth = TransferAuth(op=op, payer=payer.public_hex, payee=to, amount=amount,
                        nonce=nonce or secrets.token_hex(32), valid_after=at - SKEW_S,
                        valid_before=at - SKEW_S + MAX_WINDOW_S, memo=memo)
    content = auth.content()
    eid = event_id(auth.payer, at, KINDS["transfer"], [], content)
    return Event(id=eid, pubkey=auth.payer, created_at=at, kind=KINDS["transfer"], tags=[], content=content,
                 sig=payer.sign(bytes.fromhex(eid)).hex())


class Ledger:
    """Credits moved only by signed authorisations; every entry signed by this node's key."""

    def __init__(self, store: LedgerStore, node_key: SchnorrKey, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.signer = Signer(node_key)
        #: This node's public key: the home (and only signer) of every account it keeps.
        self.node = self.signer.public_hex
        self.clock = clock

    # -- moving credits -------------------------------------------------------------------------
    def check_authorisation(self, event: Event | dict[str, Any]) -> SignedTransfer:
        """The verified authorisation in ``event``; InvalidAuthorisationError says what is wrong."""
        try:
            ev = event if isinstance(event, Event) else Event.model_validate(event)
            signed = SignedTransfer.from_event(ev)
        except (ValidationError, ValueError) as exc:
            raise InvalidAuthorisationError("invalid_payload", f"Not a valid transfer authorisation: "
                                            f"{_first_line(exc)}") from exc
        a = signed.auth
        if event_id(ev.pubkey, ev.created_at, ev.kind, ev.tags, ev.content) != ev.id:
            raise InvalidAuthorisationError("invalid_signature", "The authorisation's id does not match its fields.")
        if not verify_signatures([(ev.pubkey, ev.id, ev.sig)])[0]:
            raise InvalidAuthorisationError("invalid_signature", "The payer's signature does not verify.")
        if a.payee == a.payer:
            raise InvalidAuthorisationError("self_payment", "A payer cannot pay itself.")
        if a.payee == self.node:
            raise InvalidAuthorisationError("payment_to_node", "The node's own key holds no account; pay an agent.")
        if a.payee is not None:
            account_id(a.payee)  # on the curve, or refused
        if not 0 < a.valid_before - a.valid_after <= MAX_WINDOW_S:
            raise InvalidAuthorisationError("invalid_window", f"valid_before - valid_after must be 1 to "
                                            f"{MAX_WINDOW_S} s (got {a.valid_before - a.valid_after} s).")
        return signed

    def transfer(self, event: Event | dict[str, Any]) -> TransferResult:
        """Apply a signed transfer once; a retry of its nonce returns the first result."""
        return self._apply(event, "transfer")

    def hold(self, event: Event | dict[str, Any]) -> TransferResult:
        """Apply a signed escrow hold (``op: hold``): the payer's credits move into a hold record."""
        return self._apply(event, "hold")

    def pay(self, payer: SchnorrKey, to: str | None, amount: int, *, memo: str = "", nonce: str | None = None,
            op: Literal["transfer", "hold"] = "transfer") -> TransferResult:
        """Sign as ``payer`` (an agent whose key this node holds) and apply.

        A retry with the same ``nonce`` and the same payment (payee, amount, memo) gets the first
        result back even though the new signature carries a later window: the holder of the key is
        asking again for the same payment. The same nonce for anything else is refused.
        """
        if nonce is not None and (prior := self._same_payment(payer.public_hex, nonce, op, to, amount, memo)):
            return self._outcome(prior)
        event = sign_transfer(payer, to, amount, memo=memo, nonce=nonce, op=op, now=self.clock())
        try:
            return self._apply(event, op)
        except InvalidAuthorisationError as exc:
            # Another process applied the same payment with this nonce between our check and our
            # write (its signature has another window, hence another id): that is its first result.
            if exc.code == "nonce_already_used" and nonce is not None and (
                    prior := self._same_payment(payer.public_hex, nonce, op, to, amount, memo)):
                return self._outcome(prior)
            raise

    def _same_payment(self, payer: str, nonce: str, op: str, to: str | None, amount: int,
                      memo: str) -> TransferResult | None:
        """The recorded result of this nonce if it was this same payment; refused if it was another."""
        prior = self.store.transfer_result(payer, nonce)
        if prior is not None and (prior.op, prior.payee, prior.amount, prior.memo) != (op, to, amount, memo):
            observe_ledger_transfer("invalid", "nonce_already_used")
            raise InvalidAuthorisationError("nonce_already_used", "This nonce was already used by this payer for "
                                            "a different payment; sign a new one.")
        return prior

    def capture(self, hold_id: str, payee: str | None = None) -> HoldView:
        """Send a hold's credits to ``payee`` (or the payee it names). Illegal moves raise, change nothing."""
        target = account_id(payee) if payee is not None else self.store.hold(hold_id).payee
        if target == self.node:
            raise InvalidAuthorisationError("payment_to_node", "The node's own key holds no account; pay an agent.")
        return self.store.close_hold(hold_id, "captured", target, self._sign_entry)

    def release(self, hold_id: str) -> HoldView:
        """Give a hold's credits back to its payer."""
        return self.store.close_hold(hold_id, "released", None, self._sign_entry)

    def mint(self, account: str, amount: int, reason: str, *, actor: str = "cli", nonce: str | None = None) -> MintResult:
        """Create credits: a treasury order signed by the node, recorded in the audit table."""
        order = MintOrder(account=account_id(account), amount=amount, nonce=nonce or secrets.token_hex(32),
                          reason=reason.strip())
        if order.account == self.node:
            raise InvalidAuthorisationError("payment_to_node", "The node's own key holds no account; mint to an agent.")
        if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
            raise InvalidAuthorisationError("invalid_amount", f"A mint is 1 to {MAX_AMOUNT} micro-credits.")
        if not order.reason:
            raise InvalidAuthorisationError("missing_reason", "A mint needs a reason (--reason), kept in the audit.")
        event = self.signer.event(KINDS["treasury"], order.content(), int(self.clock()))
        signed = SignedMint(order=order, signer=self.node, created_at=event.created_at, id=event.id, sig=event.sig)
        return self.store.apply_mint(signed, self._sign_entry, actor)

    # -- reading --------------------------------------------------------------------------------
    def balance(self, account: str) -> AccountView:
        acc = account_id(account)
        return self.store.account(acc) or AccountView(account=acc, home=self.node, seq=0, head=GENESIS, balance=0,
                                                      held=0)

    def history(self, account: str, *, limit: int = 50, before_seq: int | None = None) -> list[Entry]:
        return self.store.entries(account_id(account), limit=limit, before_seq=before_seq)

    def root(self) -> str:
        return self.store.root()

    def verify(self, *, threads: int | None = None) -> VerifyReport:
        """Recompute every chain, signature, balance, pairing, the supply and the caches."""
        feed, caches = read_all(self.store)
        report = verify_feed(feed, caches, threads=threads)
        observe_ledger_verify(report.ok)
        return report

    # -- internals ------------------------------------------------------------------------------
    def _sign_entry(self, body: EntryBody) -> Entry:
        created = int(self.clock())
        eid = entry_event_id(body, self.node, created, KINDS["ledger_entry"])
        return Entry(body=body, signer=self.node, created_at=created, id=eid, sig=self.signer.sign_id(eid))

    def _apply(self, event: Event | dict[str, Any], op: str) -> TransferResult:
        try:
            signed = self.check_authorisation(event)
            if signed.auth.op != op:
                raise InvalidAuthorisationError("invalid_payload", f"This authorisation is a {signed.auth.op}, "
                                                f"not a {op}.")
            result = self.store.transfer_result(signed.auth.payer, signed.auth.nonce)
            if result is not None and result.transfer_id != signed.id:
                raise InvalidAuthorisationError("nonce_already_used", "This nonce was already used by this payer "
                                                "for a different payment; sign a new one.")
            if result is None:
                self._check_window(signed.auth)
                result = self.store.apply_transfer(signed, self.node, self._sign_entry)
        except InvalidAuthorisationError as exc:
            observe_ledger_transfer("invalid", exc.code)
            raise
        return self._outcome(result)

    @staticmethod
    def _outcome(result: TransferResult) -> TransferResult:
        """Count the result; a refusal (first time or replayed) is raised, with the result attached."""
        if result.status == "refused":
            observe_ledger_transfer("refused", result.reason or "refused")
            raise TransferRefusedError(result, _refusal(result))
        observe_ledger_transfer("replayed" if result.replayed else "applied", "")
        return result

    def _check_window(self, auth: TransferAuth) -> None:
        now = self.clock()
        if now < auth.valid_after:
            raise InvalidAuthorisationError("authorization_not_yet_valid", f"The authorisation is valid only from "
                                            f"{auth.valid_after} (now {int(now)}); check the payer's clock.")
        if now >= auth.valid_before:
            raise InvalidAuthorisationError("authorization_expired", f"The authorisation expired at "
                                            f"{auth.valid_before} (now {int(now)}); sign a new one.")


def _refusal(result: TransferResult) -> str:
    if result.reason == "insufficient_funds":
        return (f"Refused: insufficient funds — {result.payer[:12]}… has {result.payer_balance} micro-credits "
                f"available, the payment needs {result.amount}. This nonce is spent; sign a new payment.")
    return f"Refused: {result.reason}. This nonce is spent; sign a new payment."


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        return f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}"
    return str(exc).splitlines()[0]
