"""The ``credits`` x402 scheme: pay a Colony agent with credits from the payer's home ledger.

Plugged into the official SDK through its three scheme protocols (`x402.interfaces`), so the
standard middleware, clients and facilitator carry it like any other scheme:

- requirements: ``scheme "credits"``, ``network "x402:colony"``, ``asset`` = the public key of
  the node whose ledger issues the credits (credits on two ledgers are two assets, as two
  tokens are), ``amount`` in micro-credits (an integer string), ``payTo`` = the payee agent's
  public key (64 hex), ``extra {"unit": "micro-credit", "decimals": 6}``;
- payload: ``{"authorization": <kind-7100 NIP-01 event>}`` — the payer's signed ledger
  authorisation, exactly what ``colony wallet send`` applies, for the exact amount to ``payTo``;
- verify: the event (id, signature, payer = signer), op ``transfer``, payee and amount equal to
  the requirements (an overpayment is refused too), the window contains now and ends at least
  `MIN_REMAINING_S` later, the nonce is unused, the payer's available balance covers it;
- settle: re-verify, then `Ledger.transfer` — the nonce claim and the move are one database
  transaction, so a nonce is never released and an authorisation pays at most once; the
  transaction is the id of the payer's debit entry in the ledger.

The facilitator part holds one lock per payer across verify-then-settle so two requests spending
the same balance are serialised in process (the ledger's write lock serialises processes).

**Paying from an escrow** (the market across nodes, `colony.federation.remote_market`): a
requirement may name an escrow hold on this ledger (``extra.escrow``: its id). The payer then signs
the same kind-7100 ``transfer`` authorisation, but with the memo ``x402 escrow <hold id>`` and the
**hold's own nonce** (`CreditsEscrowClientScheme`). Verify checks, besides the above, that the
nonce is the one that made that hold, that the hold's payer, payee and amount are exactly the
authorisation's, and that it is still held; settle **captures the hold** to ``payTo`` instead of
moving new credits. So the escrow is what pays — funded by construction, nothing released in
between — and the money moves once: the hold closes once (the ledger refuses a second close), a
retry of the settled payment finds it captured to the same payee and answers the same success
(transaction = the hold's id), and the authorisation can never be applied as a plain transfer,
whose nonce the hold already spent. An escrow requirement is paid only by such an authorisation,
and such an authorisation pays only an escrow requirement.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from x402.interfaces import FacilitatorContext, PaymentFlowConfig
from x402.schemas import (
    AssetAmount,
    Network,
    PaymentPayload,
    PaymentRequirements,
    Price,
    SettleResponse,
    SupportedKind,
    VerifyResponse,
)

from colony.errors import ColonyError
from colony.identity.events import KINDS, Event, event_id
from colony.identity.keys import SchnorrKey
from colony.ledger import HoldNotFoundError, InvalidAuthorisationError, Ledger, TransferRefusedError
from colony.ledger.amounts import MAX_AMOUNT, parse_amount
from colony.ledger.wire import MAX_MEMO, MAX_WINDOW_S, TransferAuth

__all__ = [
    "CREDITS_NETWORK",
    "CREDITS_SCHEME",
    "CreditsClientScheme",
    "CreditsEscrowClientScheme",
    "CreditsFacilitatorScheme",
    "CreditsServerScheme",
    "PayerLocks",
    "credits_price",
    "escrow_memo",
]

CREDITS_SCHEME = "credits"
#: CAIP-2: namespace ``x402`` (not a chain), reference ``colony``.
CREDITS_NETWORK = "x402:colony"
#: An authorisation must stay valid this long after verify, so settle (after the handler) can land.
MIN_REMAINING_S = 6
#: The client starts its window this far in the past, so a node whose clock is behind accepts it.
CLIENT_SKEW_S = 30
UNIT = "micro-credit"
#: The memo of an authorisation that pays by capturing an escrow hold: this prefix and the hold's id.
ESCROW_MEMO = "x402 escrow "


def escrow_memo(hold_id: str) -> str:
    """The memo that names ``hold_id`` as the escrow an authorisation pays from (module docstring)."""
    return ESCROW_MEMO + hold_id


def _escrow_named(requirements: PaymentRequirements) -> str | None:
    """The escrow hold a requirement names (``extra.escrow``), or None."""
    value = (requirements.extra or {}).get("escrow")
    return value if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value) \
        else None


def credits_price(amount: int | str, ledger: str) -> dict[str, Any]:
    """A route price in the SDK's AssetAmount form: ``amount`` micro-credits on ``ledger``'s credits.

    ``amount`` is an integer or a text like ``"0.25"`` credits / ``"250000u"`` (see `parse_amount`).
    """
    micro = amount if isinstance(amount, int) and not isinstance(amount, bool) else parse_amount(str(amount))
    if not 0 < micro <= MAX_AMOUNT:
        raise ValueError(f"A price is 1 to {MAX_AMOUNT} micro-credits (got {micro}).")
    return {"amount": str(micro), "asset": ledger, "extra": {"unit": UNIT, "decimals": 6}}


class CreditsClientScheme:
    """Signs the payer's ledger authorisation for a ``credits`` requirement.

    ``key`` is the paying agent's Schnorr key. The window is [now − `CLIENT_SKEW_S`, now +
    maxTimeoutSeconds], cut to the ledger's `MAX_WINDOW_S`; the nonce is 32 fresh random bytes.
    """

    scheme = CREDITS_SCHEME

    def __init__(self, key: SchnorrKey, *, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    @property
    def public_hex(self) -> str:
        return self._key.public_hex

    def create_payment_payload(self, requirements: PaymentRequirements) -> dict[str, Any]:
        import secrets

        amount = _atomic(requirements.amount)
        if amount is None:
            raise ValueError(f"credits: the amount {requirements.amount!r} is not an integer of micro-credits")
        now = int(self._clock())
        valid_after = now - CLIENT_SKEW_S
        valid_before = min(now + max(int(requirements.max_timeout_seconds), MIN_REMAINING_S + 1),
                           valid_after + MAX_WINDOW_S)
        memo = _memo(requirements)
        auth = TransferAuth(op="transfer", payer=self._key.public_hex, payee=requirements.pay_to.lower(),
                            amount=amount, nonce=secrets.token_hex(32), valid_after=valid_after,
                            valid_before=valid_before, memo=memo)
        content = auth.content()
        eid = event_id(auth.payer, now, KINDS["transfer"], [], content)
        event = Event(id=eid, pubkey=auth.payer, created_at=now, kind=KINDS["transfer"], tags=[],
                      content=content, sig=self._key.sign(bytes.fromhex(eid)).hex())
        return {"authorization": event.model_dump()}


class CreditsEscrowClientScheme:
    """Signs the authorisation that pays one requirement from one escrow hold (module docstring).

    ``key`` is the hold's payer, ``hold_id`` the hold and ``nonce`` the nonce that made it; ``pay_to``
    and ``amount`` are what the payer agreed to (the hold's payee and amount). Any requirement that
    asks for anything else is refused before anything is signed, so the scheme cannot be steered into
    paying another escrow, another payee or another amount.
    """

    scheme = CREDITS_SCHEME

    def __init__(self, key: SchnorrKey, hold_id: str, nonce: str, *, pay_to: str, amount: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._key, self.hold_id, self._nonce, self._clock = key, hold_id, nonce, clock
        self.pay_to, self.amount = pay_to, amount

    def create_payment_payload(self, requirements: PaymentRequirements) -> dict[str, Any]:
        amount = _atomic(requirements.amount)
        if (_escrow_named(requirements) != self.hold_id or amount != self.amount
                or requirements.pay_to.lower() != self.pay_to):
            raise ValueError(f"credits: this payment pays {self.amount} micro-credits to {self.pay_to[:12]}… from "
                             f"escrow {self.hold_id[:12]}… only")
        now = int(self._clock())
        valid_after = now - CLIENT_SKEW_S
        valid_before = min(now + max(int(requirements.max_timeout_seconds), MIN_REMAINING_S + 1),
                           valid_after + MAX_WINDOW_S)
        auth = TransferAuth(op="transfer", payer=self._key.public_hex, payee=requirements.pay_to.lower(),
                            amount=amount, nonce=self._nonce, valid_after=valid_after, valid_before=valid_before,
                            memo=escrow_memo(self.hold_id))
        content = auth.content()
        eid = event_id(auth.payer, now, KINDS["transfer"], [], content)
        event = Event(id=eid, pubkey=auth.payer, created_at=now, kind=KINDS["transfer"], tags=[],
                      content=content, sig=self._key.sign(bytes.fromhex(eid)).hex())
        return {"authorization": event.model_dump()}


def _memo(requirements: PaymentRequirements) -> str:
    """What the payment was for, kept in the ledger entry: the route's resource if the server said."""
    resource = str((requirements.extra or {}).get("resource") or "")
    text = f"x402 {resource}".strip()
    text = "".join(ch for ch in text if ch.isprintable())
    return text[:MAX_MEMO]


class CreditsServerScheme:
    """The resource-server part: prices in micro-credits, requirements enriched with the unit."""

    scheme = CREDITS_SCHEME
    default_asset_transfer_method = "default"
    payment_flows: Mapping[str, PaymentFlowConfig] = {
        "default": {"supported": ("authorization", "upfront"), "default": "authorization"},
    }

    def __init__(self, ledger_key: str) -> None:
        #: The node whose credits a bare price (a number or "0.5") is in.
        self.ledger_key = ledger_key

    def parse_price(self, price: Price, network: Network) -> AssetAmount:
        if isinstance(price, AssetAmount):
            return price
        if isinstance(price, dict) and "amount" in price:
            data = credits_price(str(price["amount"]), str(price.get("asset") or self.ledger_key))
            return AssetAmount(amount=data["amount"], asset=data["asset"], extra=data["extra"])
        if isinstance(price, bool) or not isinstance(price, (str, int, float)):
            raise ValueError(f"credits: cannot price {price!r}")
        if isinstance(price, float):
            raise ValueError("credits: give prices as integers of micro-credits or decimal text, never floats")
        text = str(price).strip()
        if text.startswith("$"):
            raise ValueError("credits: prices are in credits, not dollars")
        data = credits_price(text, self.ledger_key)
        return AssetAmount(amount=data["amount"], asset=data["asset"], extra=data["extra"])

    def enhance_payment_requirements(self, requirements: PaymentRequirements, supported_kind: SupportedKind,
                                     extensions: list[str]) -> PaymentRequirements:
        extra = dict(requirements.extra or {})
        extra.setdefault("unit", UNIT)
        extra.setdefault("decimals", 6)
        return requirements.model_copy(update={"extra": extra})


class PayerLocks:
    """One lock per payer, so verify-then-settle of two payments by one payer cannot interleave."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, payer: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(payer)
            if lock is None:
                if len(self._locks) > 10_000:  # unheld locks are cheap to forget
                    self._locks = {k: v for k, v in self._locks.items() if v.locked()}
                lock = self._locks[payer] = threading.Lock()
            return lock


class CreditsFacilitatorScheme:
    """Verifies and settles ``credits`` payments on this node's ledger."""

    scheme = CREDITS_SCHEME
    caip_family = "x402:*"

    def __init__(self, ledger: Ledger, *, locks: PayerLocks | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.ledger = ledger
        self.locks = locks or PayerLocks()
        self._clock = clock or ledger.clock

    def get_extra(self, network: Network) -> dict[str, Any] | None:
        return {"unit": UNIT, "decimals": 6, "assets": [self.ledger.node]}

    def get_signers(self, network: Network) -> list[str]:
        return [self.ledger.node]

    def verify(self, payload: PaymentPayload, requirements: PaymentRequirements,
               context: FacilitatorContext | None = None) -> VerifyResponse:
        checked = self._check(payload, requirements)
        if isinstance(checked, VerifyResponse):
            return checked
        _, auth, escrow = checked
        problem = self._escrow_problem(auth, escrow) if escrow else self._state_problem(auth)
        if problem is not None:
            return _invalid(problem, auth.payer)
        return VerifyResponse(is_valid=True, payer=auth.payer)

    def settle(self, payload: PaymentPayload, requirements: PaymentRequirements,
               context: FacilitatorContext | None = None) -> SettleResponse:
        network = str(requirements.network)
        checked = self._check(payload, requirements)
        if isinstance(checked, VerifyResponse):
            return _failed(checked.invalid_reason or "invalid_payload", network, checked.payer)
        event, auth, escrow = checked
        if escrow is not None:
            return self._capture(auth, escrow, network)
        with self.locks(auth.payer):
            problem = self._state_problem(auth)
            if problem is not None:
                return _failed(problem, network, auth.payer)
            try:
                result = self.ledger.transfer(event)
            except TransferRefusedError as exc:
                return _failed(exc.result.reason or "insufficient_funds", network, auth.payer)
            except InvalidAuthorisationError as exc:
                return _failed(_reason(exc.code), network, auth.payer)
        if result.replayed:  # settled before (another request won): this one does not pay twice
            return _failed("invalid_credits_nonce_already_used", network, auth.payer)
        return SettleResponse(success=True, payer=auth.payer, transaction=result.entries[0], network=network,
                              amount=str(auth.amount))

    # -- checks ---------------------------------------------------------------------------------
    def _capture(self, auth: TransferAuth, escrow: str, network: str) -> SettleResponse:
        """Settle an escrow payment: capture the hold to the payee, once (module docstring)."""
        with self.locks(auth.payer):
            problem = self._escrow_problem(auth, escrow)
            if problem is not None:
                return _failed(problem, network, auth.payer)
            if self.ledger.store.hold(escrow).state == "held":
                try:
                    self.ledger.capture(escrow, auth.payee)
                except ColonyError:  # closed meanwhile (another process): the state below says how
                    problem = self._escrow_problem(auth, escrow)
                    if problem is not None:
                        return _failed(problem, network, auth.payer)
        return SettleResponse(success=True, payer=auth.payer, transaction=escrow, network=network,
                              amount=str(auth.amount))

    def _escrow_problem(self, auth: TransferAuth, escrow: str) -> str | None:
        """What the ledger says against paying ``auth`` from hold ``escrow``; None when it may (or did)."""
        made = self.ledger.store.transfer_result(auth.payer, auth.nonce)
        if made is None or made.op != "hold" or made.transfer_id != escrow:
            return "invalid_credits_escrow"  # the nonce did not make this hold: not the payer's escrow
        try:
            hold = self.ledger.store.hold(escrow)
        except HoldNotFoundError:
            return "invalid_credits_escrow"
        if (hold.payer, hold.payee, hold.amount) != (auth.payer, auth.payee, auth.amount):
            return "invalid_credits_escrow_mismatch"
        if hold.state == "held" or (hold.state == "captured" and hold.captured_to == auth.payee):
            return None  # payable, or paid by this same payment already (a retry answers the same)
        return "invalid_credits_escrow_closed"

    def _check(self, payload: PaymentPayload,
               requirements: PaymentRequirements) -> tuple[Event, TransferAuth, str | None] | VerifyResponse:
        """Stateless checks; the verified (event, authorisation, escrow it pays from) or an invalid response."""
        accepted = payload.accepted
        if payload.x402_version != 2:
            return _invalid("invalid_x402_version")
        if requirements.scheme != CREDITS_SCHEME or accepted.scheme != CREDITS_SCHEME:
            return _invalid("unsupported_scheme")
        if str(requirements.network) != CREDITS_NETWORK or str(accepted.network) != str(requirements.network):
            return _invalid("network_mismatch")
        if requirements.asset.lower() != self.ledger.node:
            return _invalid("invalid_credits_asset")  # credits of another ledger: settle on that node
        amount = _atomic(requirements.amount)
        if amount is None or amount == 0:
            return _invalid("invalid_payment_requirements")
        raw = payload.payload.get("authorization") if isinstance(payload.payload, dict) else None
        if not isinstance(raw, dict):
            return _invalid("invalid_payload")
        try:
            signed = self.ledger.check_authorisation(raw)
        except InvalidAuthorisationError as exc:
            return _invalid(_reason(exc.code))
        auth = signed.auth
        event = Event.model_validate(raw)
        if auth.op != "transfer":
            return _invalid("invalid_payload", auth.payer)
        if auth.payee != requirements.pay_to.lower():
            return _invalid("invalid_credits_recipient_mismatch", auth.payer)
        if auth.amount != amount:
            return _invalid("invalid_credits_amount_mismatch", auth.payer)
        now = self._clock()
        if auth.valid_after > now:
            return _invalid("invalid_credits_authorization_valid_after", auth.payer)
        if auth.valid_before < now + MIN_REMAINING_S:
            return _invalid("invalid_credits_authorization_valid_before", auth.payer)
        escrow = _escrow_named(requirements)
        if (auth.memo != escrow_memo(escrow)) if escrow else auth.memo.startswith(ESCROW_MEMO):
            return _invalid("invalid_credits_escrow_mismatch", auth.payer)  # each pays only the other
        return event, auth, escrow

    def _state_problem(self, auth: TransferAuth) -> str | None:
        """What the ledger's current state says against this payment (nonce, balance), if anything."""
        if self.ledger.store.transfer_result(auth.payer, auth.nonce) is not None:
            return "invalid_credits_nonce_already_used"
        if self.ledger.balance(auth.payer).balance < auth.amount:
            return "insufficient_funds"
        return None


def _reason(code: str) -> str:
    """The ledger's refusal code as an x402 reason (the SDK's names where one exists)."""
    return {
        "invalid_signature": "invalid_credits_payload_signature",
        "nonce_already_used": "invalid_credits_nonce_already_used",
        "authorization_expired": "invalid_credits_authorization_valid_before",
        "authorization_not_yet_valid": "invalid_credits_authorization_valid_after",
        "self_payment": "invalid_credits_self_payment",
        "payment_to_node": "invalid_credits_payment_to_facilitator",
        "insufficient_funds": "insufficient_funds",
    }.get(code, "invalid_payload" if code in {"invalid_payload", "invalid_window", "invalid_account"}
          else f"invalid_credits_{code}")


def _atomic(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_AMOUNT else None


def _invalid(reason: str, payer: str | None = None) -> VerifyResponse:
    return VerifyResponse(is_valid=False, invalid_reason=reason, payer=payer)


def _failed(reason: str, network: str, payer: str | None) -> SettleResponse:
    return SettleResponse(success=False, error_reason=reason, payer=payer, transaction="", network=network)
