"""The ``credits`` scheme's facilitator on a real ledger: every refusal has its standard-style
reason and moves nothing; a settled payment is exactly one ledger transfer; the nonce is
claimed in the same transaction that moves the credits (a refusal by the ledger spends it too);
processes racing with one authorisation get one success."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
from x402.schemas import PaymentPayload, PaymentRequirements

from colony.identity import SchnorrKey
from colony.ledger import MICRO
from colony.payments.credits import (
    CREDITS_NETWORK,
    CreditsClientScheme,
    CreditsFacilitatorScheme,
    CreditsServerScheme,
    credits_price,
)
from ledger_helpers import Book, Clock, open_book

PRICE = 300_000


@pytest.fixture
def book(tmp_path: Path) -> Book:
    return open_book(tmp_path / "credits.db", accounts=2, funds=MICRO)


def _requirements(book: Book, payee: str, amount: int = PRICE, **changes: Any) -> PaymentRequirements:
    data: dict[str, Any] = {"scheme": "credits", "network": CREDITS_NETWORK, "asset": book.ledger.node,
                            "amount": str(amount), "payTo": payee, "maxTimeoutSeconds": 300,
                            "extra": {"unit": "micro-credit", "decimals": 6}}
    data.update(changes)
    return PaymentRequirements.model_validate(data)


def _payload(req: PaymentRequirements, key: SchnorrKey, clock: Clock | None = None) -> PaymentPayload:
    scheme = CreditsClientScheme(key, clock=clock) if clock is not None else CreditsClientScheme(key)
    return PaymentPayload(x402_version=2, accepted=req, payload=scheme.create_payment_payload(req))


def test_a_payment_verifies_then_settles_as_one_ledger_transfer(book: Book) -> None:
    payer, payee = book.keys
    fac = CreditsFacilitatorScheme(book.ledger)
    req = _requirements(book, payee.public_hex)
    payload = _payload(req, payer)
    verdict = fac.verify(payload, req)
    assert (verdict.is_valid, verdict.payer) == (True, payer.public_hex)
    settled = fac.settle(payload, req)
    assert settled.success and settled.amount == str(PRICE) and settled.network == CREDITS_NETWORK
    assert book.balance(payer) == MICRO - PRICE and book.balance(payee) == MICRO + PRICE
    assert settled.transaction == book.ledger.history(payer.public_hex)[0].id
    again = fac.settle(payload, req)
    assert (again.success, again.error_reason) == (False, "invalid_credits_nonce_already_used")
    assert fac.verify(payload, req).invalid_reason == "invalid_credits_nonce_already_used"
    assert book.balance(payee) == MICRO + PRICE and book.ledger.verify().ok


def _refusals(book: Book) -> list[tuple[str, tuple[PaymentPayload, PaymentRequirements]]]:
    payer, payee = book.keys
    req = _requirements(book, payee.public_hex)
    good = _payload(req, payer)
    other_ledger = _requirements(book, payee.public_hex, asset=SchnorrKey.generate().public_hex)
    hold = good.model_copy(deep=True)
    cases = {
        "invalid_credits_amount_mismatch": (_payload(_requirements(book, payee.public_hex, PRICE + 1), payer), req),
        "invalid_credits_recipient_mismatch": (_payload(_requirements(book, SchnorrKey.generate().public_hex),
                                                        payer), req),
        "invalid_credits_self_payment": (_payload(_requirements(book, payer.public_hex), payer),
                                         _requirements(book, payer.public_hex)),
        "invalid_credits_payment_to_facilitator": (_payload(_requirements(book, book.ledger.node), payer),
                                                   _requirements(book, book.ledger.node)),
        "invalid_credits_asset": (_payload(other_ledger, payer), other_ledger),
        "network_mismatch": (good, _requirements(book, payee.public_hex, network="x402:elsewhere")),
        "unsupported_scheme": (good, _requirements(book, payee.public_hex, scheme="exact")),
        "invalid_payment_requirements": (good, _requirements(book, payee.public_hex, amount=0)),
        "invalid_payload": (good.model_copy(update={"payload": {"authorization": "nope"}}), req),
        "invalid_credits_payload_signature": (good.model_copy(update={"payload": {"authorization": {
            **good.payload["authorization"], "sig": "00" * 64}}}), req),
        "insufficient_funds": (_payload(_requirements(book, payee.public_hex, 2 * MICRO), payer),
                               _requirements(book, payee.public_hex, 2 * MICRO)),
        "invalid_credits_authorization_valid_before": (_payload(req, payer, Clock(time.time() - 295)), req),
        "invalid_credits_authorization_valid_after": (_payload(req, payer, Clock(time.time() + 120)), req),
    }
    hold.payload["authorization"] = {"kind": 7100}  # an object, but not an event
    return [*cases.items(), ("invalid_payload", (hold, req))]


def test_every_refusal_has_its_reason_and_moves_nothing(book: Book) -> None:
    fac = CreditsFacilitatorScheme(book.ledger)
    payer, payee = book.keys
    for reason, (payload, req) in _refusals(book):
        verdict = fac.verify(payload, req)
        assert (verdict.is_valid, verdict.invalid_reason) == (False, reason), reason
        settled = fac.settle(payload, req)
        assert (settled.success, settled.error_reason) == (False, reason), reason
        assert settled.transaction == ""
    assert (book.balance(payer), book.balance(payee)) == (MICRO, MICRO) and book.ledger.verify().ok


def test_prices_are_integers_never_floats(book: Book) -> None:
    server = CreditsServerScheme(book.ledger.node)
    assert server.parse_price("0.05", CREDITS_NETWORK).amount == "50000"
    assert server.parse_price(7, CREDITS_NETWORK).amount == "7000000"
    assert credits_price(50_000, book.ledger.node)["amount"] == "50000"
    for bad in (0.05, "$0.05", "-1", "0", "abc", True):
        with pytest.raises((ValueError, Exception)):
            server.parse_price(bad, CREDITS_NETWORK)  # type: ignore[arg-type]


def _settle_in_process(path: str, node_secret: str, payload: dict[str, Any], req: dict[str, Any],
                       start: float, out: Any) -> None:
    from colony.ledger import Ledger, SqliteLedgerStore
    from colony.store import open_database

    ledger = Ledger(SqliteLedgerStore(open_database(path)), SchnorrKey(bytes.fromhex(node_secret)))
    fac = CreditsFacilitatorScheme(ledger)
    while time.time() < start:
        time.sleep(0.001)
    result = fac.settle(PaymentPayload.model_validate(payload), PaymentRequirements.model_validate(req))
    out.put(result.success)


def test_processes_racing_with_one_authorisation_get_one_success(book: Book) -> None:
    payer, payee = book.keys
    req = _requirements(book, payee.public_hex)
    payload = _payload(req, payer)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start = time.time() + 3
    procs = [ctx.Process(target=_settle_in_process, args=(str(book.path), book.node_key.secret.hex(),
                                                         payload.model_dump(by_alias=True),
                                                         req.model_dump(by_alias=True), start, out))
             for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sorted(results) == [False, False, False, True]
    assert book.balance(payer) == MICRO - PRICE and book.balance(payee) == MICRO + PRICE
    assert book.ledger.verify().ok
