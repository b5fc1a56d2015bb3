"""tempo-x402's hardening, as runtime checks of `GuardedExactEvm` on a real (in-process) chain:
the nonce claimed before money moves and never released, one success for one authorisation
under concurrency, high-s and malformed signatures refused by Colony itself, no self-payment or
payment to the facilitator, the window bounded by validBefore − now (validAfter = 0 accepted),
and the claim surviving a restart."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak
from x402 import x402Client, x402FacilitatorSync, x402ResourceServerSync
from x402.interfaces import FacilitatorContext
from x402.schemas import PaymentPayload, PaymentRequirements, ResourceConfig, SettleResponse

from colony.payments.evm import allowed_asset, client_scheme, facilitator_scheme, price, server_scheme
from colony.payments.evm.local import InProcessChain
from colony.payments.evm_guard import SECP256K1_N, GuardedExactEvm
from colony.payments.journal import SqlitePaymentJournal
from colony.store import Database, open_database

PRICE = 10_000
PAYER = Account.from_key(keccak(text="colony-guard-test-payer"))
PAYEE = Account.from_key(keccak(text="colony-guard-test-payee")).address


class Rig:
    def __init__(self, chain: InProcessChain, db: Database) -> None:
        self.chain, self.rail, self.db = chain, chain.rail, db
        self.inner = facilitator_scheme(self.rail, chain.facilitator_key, chain.provider)
        self.guard = GuardedExactEvm(self.inner, SqlitePaymentJournal(db))
        self.facilitator = x402FacilitatorSync()
        self.facilitator.register([self.rail.network], self.guard)
        self.server = x402ResourceServerSync(self.facilitator)
        self.server.register(self.rail.network, server_scheme())  # type: ignore[arg-type]
        self.server.initialize()

    def requirements(self, pay_to: str = PAYEE, timeout: int = 300) -> PaymentRequirements:
        [req] = self.server.build_payment_requirements(ResourceConfig(
            scheme="exact", network=self.rail.network, pay_to=pay_to, price=price(self.rail, PRICE),
            max_timeout_seconds=timeout))
        return req

    def pay(self, requirements: PaymentRequirements, key: Any = PAYER.key) -> PaymentPayload:
        client = x402Client()
        client.register(self.rail.network, client_scheme(key))
        client.set_spend_controls({"allowed_assets": [allowed_asset(self.rail, 100 * PRICE)]})
        required = self.server.create_payment_required_response([requirements])
        payload = asyncio.run(client.create_payment_payload(required))
        assert isinstance(payload, PaymentPayload)
        return payload

    def balances(self) -> tuple[int, int]:
        return self.chain.balance(PAYER.address), self.chain.balance(PAYEE)


@pytest.fixture(scope="module")
def chain() -> InProcessChain:
    return InProcessChain({PAYER.address: 10_000_000})


@pytest.fixture
def rig(chain: InProcessChain, tmp_path: Path) -> Rig:
    return Rig(chain, open_database(tmp_path / "guard.db"))


def _with_signature(payload: PaymentPayload, signature: str) -> PaymentPayload:
    return payload.model_copy(update={"payload": {**payload.payload, "signature": signature}})


def test_a_valid_payment_settles_and_its_nonce_is_claimed_for_good(rig: Rig, tmp_path: Path) -> None:
    req = rig.requirements()
    payload = rig.pay(req)
    assert payload.payload["authorization"]["validAfter"] == "0"  # the official client's default: accepted
    before = rig.balances()
    assert rig.facilitator.verify(payload, req).is_valid
    settled = rig.facilitator.settle(payload, req)
    assert settled.success, settled.error_reason
    assert rig.balances() == (before[0] - PRICE, before[1] + PRICE)
    # A new guard on the same database (a restarted node) still refuses the nonce, before the chain.
    fresh = GuardedExactEvm(rig.inner, SqlitePaymentJournal(open_database(tmp_path / "guard.db")))
    verdict = fresh.verify(payload, req)
    assert (verdict.is_valid, verdict.invalid_reason) == (False, "invalid_exact_evm_nonce_already_used")


def test_high_s_twin_and_malformed_signatures_are_refused_by_colony(rig: Rig) -> None:
    req = rig.requirements()
    payload = rig.pay(req)
    sig = bytes.fromhex(payload.payload["signature"][2:])
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    twin = "0x" + (r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])).hex()
    for bad in (twin, "0x" + sig[:64].hex(), "0x" + sig.hex() + "00", "0xzz" + sig.hex()[2:], "not hex"):
        verdict = rig.guard.verify(_with_signature(payload, bad), req)
        assert (verdict.is_valid, verdict.invalid_reason) == (False, "invalid_exact_evm_payload_signature"), bad
        settled = rig.guard.settle(_with_signature(payload, bad), req)
        assert not settled.success and settled.transaction == ""
    # Refusing the twin claimed nothing: the genuine signature still pays, once.
    assert rig.facilitator.settle(payload, req).success


def test_no_self_payment_and_no_payment_to_the_facilitator(rig: Rig) -> None:
    to_self = rig.requirements(pay_to=PAYER.address)
    verdict = rig.guard.verify(rig.pay(to_self), to_self)
    assert verdict.invalid_reason == "invalid_exact_evm_self_payment"
    to_fac = rig.requirements(pay_to=rig.chain.facilitator)
    verdict = rig.guard.verify(rig.pay(to_fac), to_fac)
    assert verdict.invalid_reason == "invalid_exact_evm_payment_to_facilitator"


def test_the_window_is_bounded_by_valid_before_minus_now(rig: Rig) -> None:
    # Signed for 3,600 s while the route allows 300: a long-lived authorisation is refused...
    long_lived = rig.pay(rig.requirements(timeout=3600))
    verdict = rig.guard.verify(long_lived, rig.requirements(timeout=300))
    assert verdict.invalid_reason == "invalid_exact_evm_payload_authorization_valid_before"
    # ...while the standard client's validAfter = 0 with validBefore = now + 300 is fine.
    req = rig.requirements()
    assert rig.guard.verify(rig.pay(req), req).is_valid


def test_one_authorisation_settled_from_many_threads_pays_once(rig: Rig) -> None:
    req = rig.requirements()
    payload = rig.pay(req)
    before = rig.balances()
    results: list[SettleResponse] = []
    start = threading.Barrier(8)

    def settle() -> None:
        start.wait()
        results.append(rig.facilitator.settle(payload, req))

    threads = [threading.Thread(target=settle) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(r.success for r in results) == [False] * 7 + [True]
    assert rig.balances() == (before[0] - PRICE, before[1] + PRICE)


class _FailingSend:
    """The SDK scheme, except that sending fails after the nonce is claimed (an RPC error)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.scheme, self.caip_family = inner, inner.scheme, inner.caip_family
        self.get_extra, self.get_signers, self.verify = inner.get_extra, inner.get_signers, inner.verify

    def settle(self, payload: PaymentPayload, requirements: PaymentRequirements,
               context: FacilitatorContext | None = None) -> SettleResponse:
        raise ConnectionError("the RPC node went away")


def test_a_nonce_is_never_released_when_sending_fails(rig: Rig) -> None:
    req = rig.requirements()
    payload = rig.pay(req)
    broken = GuardedExactEvm(_FailingSend(rig.inner), SqlitePaymentJournal(rig.db))
    with pytest.raises(ConnectionError):
        broken.settle(payload, req)
    # The transfer may still land: the authorisation can never be settled again through this node.
    verdict = rig.guard.verify(payload, req)
    assert verdict.invalid_reason == "invalid_exact_evm_nonce_already_used"
    settled = rig.guard.settle(payload, req)
    assert (settled.success, settled.error_reason) == (False, "invalid_exact_evm_nonce_already_used")
