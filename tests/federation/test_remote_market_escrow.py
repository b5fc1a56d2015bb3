"""Paying a winner from an escrow through the ``credits`` scheme: the hold is what pays, exactly once.

The facilitator settles an authorisation that names an escrow hold (memo) and carries the hold's own
nonce by capturing that hold to ``payTo``: verify and settle check payer, payee and amount against the
hold; a retry of the settled payment answers the same success and moves nothing; the authorisation can
never be applied as a plain transfer; an escrow requirement is paid only by such an authorisation and
such an authorisation pays only an escrow requirement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from x402.schemas import PaymentPayload, PaymentRequirements

from colony.identity import SchnorrKey
from colony.ledger import MICRO, InvalidAuthorisationError
from colony.payments.credits import (
    CREDITS_NETWORK,
    CreditsClientScheme,
    CreditsEscrowClientScheme,
    CreditsFacilitatorScheme,
)
from ledger_helpers import Book, open_book

PRICE = 300_000
NONCE = "ab" * 32


@pytest.fixture
def book(tmp_path: Path) -> Book:
    return open_book(tmp_path / "escrow.db", accounts=2, funds=MICRO)


def _hold(book: Book) -> str:
    payer, payee = book.keys
    return book.ledger.pay(payer, payee.public_hex, PRICE, op="hold", nonce=NONCE, memo="market escrow").transfer_id


def _req(book: Book, escrow: str | None, amount: int = PRICE, pay_to: str | None = None) -> PaymentRequirements:
    extra: dict[str, Any] = {"unit": "micro-credit", "decimals": 6, **({"escrow": escrow} if escrow else {})}
    return PaymentRequirements.model_validate({
        "scheme": "credits", "network": CREDITS_NETWORK, "asset": book.ledger.node, "amount": str(amount),
        "payTo": pay_to or book.keys[1].public_hex, "maxTimeoutSeconds": 60, "extra": extra})


def _pay(book: Book, req: PaymentRequirements, hold: str, nonce: str = NONCE, amount: int = PRICE) -> PaymentPayload:
    scheme = CreditsEscrowClientScheme(book.keys[0], hold, nonce, pay_to=book.keys[1].public_hex, amount=amount)
    return PaymentPayload(x402_version=2, accepted=req, payload=scheme.create_payment_payload(req))


def test_the_escrow_pays_once_and_a_retry_answers_the_same_settlement(book: Book) -> None:
    payer, payee = book.keys
    hold = _hold(book)
    fac = CreditsFacilitatorScheme(book.ledger)
    req = _req(book, hold)
    payload = _pay(book, req, hold)
    assert fac.verify(payload, req).is_valid
    first = fac.settle(payload, req)
    assert (first.success, first.transaction, first.amount) == (True, hold, str(PRICE))
    assert book.ledger.store.hold(hold).captured_to == payee.public_hex
    assert book.balance(payer) == MICRO - PRICE and book.balance(payee) == MICRO + PRICE
    entries = len(book.ledger.history(payee.public_hex, limit=100))
    again = fac.settle(_pay(book, req, hold), req)  # re-signed after a lost answer: the same payment
    assert (again.success, again.transaction) == (True, hold)
    assert len(book.ledger.history(payee.public_hex, limit=100)) == entries and book.balance(payee) == MICRO + PRICE
    # The authorisation is not a transfer: the hold already spent its nonce.
    with pytest.raises(InvalidAuthorisationError) as refused:
        book.ledger.transfer(payload.payload["authorization"])
    assert refused.value.code == "nonce_already_used"
    assert book.balance(payer) == MICRO - PRICE and book.ledger.verify().ok


def test_an_escrow_payment_that_does_not_match_its_hold_is_refused_and_moves_nothing(book: Book) -> None:
    payer, payee = book.keys
    hold = _hold(book)
    fac = CreditsFacilitatorScheme(book.ledger)
    other_nonce = _pay(book, _req(book, hold), hold, nonce="cd" * 32)
    assert fac.verify(other_nonce, _req(book, hold)).invalid_reason == "invalid_credits_escrow"
    more = _req(book, hold, amount=PRICE + 1)
    assert fac.settle(_pay(book, more, hold, amount=PRICE + 1), more).error_reason == "invalid_credits_escrow_mismatch"
    # A plain payment cannot claim an escrow, nor an escrow authorisation pay a plain requirement.
    plain = _req(book, None)
    plain_payload = PaymentPayload(x402_version=2, accepted=plain,
                                   payload=CreditsClientScheme(payer).create_payment_payload(plain))
    assert fac.verify(plain_payload, _req(book, hold)).invalid_reason == "invalid_credits_escrow_mismatch"
    assert fac.verify(_pay(book, _req(book, hold), hold), plain).invalid_reason == "invalid_credits_escrow_mismatch"
    # A released escrow pays nothing.
    book.ledger.release(hold)
    req = _req(book, hold)
    assert fac.settle(_pay(book, req, hold), req).error_reason == "invalid_credits_escrow_closed"
    assert book.balance(payer) == MICRO and book.balance(payee) == MICRO and book.ledger.verify().ok


def test_the_client_signs_only_the_escrow_amount_and_payee_it_agreed_to(book: Book) -> None:
    hold = _hold(book)
    scheme = CreditsEscrowClientScheme(book.keys[0], hold, NONCE, pay_to=book.keys[1].public_hex, amount=PRICE)
    for req in (_req(book, hold, amount=PRICE + 1), _req(book, hold, pay_to=SchnorrKey.generate().public_hex),
                _req(book, "ef" * 32), _req(book, None)):
        with pytest.raises(ValueError, match="only"):
            scheme.create_payment_payload(req)
