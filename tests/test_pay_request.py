"""Paying 402 resources with `pay_request`: a real node's agent pays a real x402 v2 server (the
official SDK's FastAPI middleware over an embedded facilitator on a real ledger, on loopback).

Each test asserts the money (balances on the seller's ledger move exactly, or not at all), what
reached the server (a refused payment is never signed, so no PAYMENT-SIGNATURE is ever sent), and
the payments journal (every outcome is a row, with the reason)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request
from fastapi.responses import Response
from x402.http.utils import encode_payment_required_header
from x402.schemas import PaymentRequired, PaymentRequirements, ResourceInfo

from colony.config import Settings
from colony.identity import Identity, Keyring, SchnorrKey
from colony.ledger import MICRO
from colony.payments.journal import PaymentRecord, SqlitePaymentJournal
from colony.payments.paying import PayError, pay_request
from colony.payments.policy import DAY_S, AssetLimit, SpendPolicy
from colony.store import Database, open_database
from ledger_helpers import Book, open_book
from pay_helpers import Seller, credits_option, selling

PRICE = 250_000


@dataclass
class Person:
    """An approver that records what it was asked and answers ``decision``."""

    decision: str = "denied"
    asked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def __call__(self, reason: str, facts: dict[str, Any]) -> str:
        self.asked.append((reason, facts))
        return self.decision


@dataclass
class World:
    db: Database
    keyring: Keyring
    agent: Identity
    book: Book
    payee: SchnorrKey
    seller: Seller
    #: A ledger key no facilitator here settles: offers in it are refused by policy, or fail verify.
    foreign: str

    def settings(self, **limit: int | None) -> Settings:
        values: dict[str, int | None] = {"max_per_payment": MICRO, "max_per_day": 2 * MICRO, "ask_above": None, **limit}
        return Settings(spend_policies={"colony": SpendPolicy(hosts=["127.0.0.1"], assets=[
            AssetLimit(network="x402:colony", asset=self.book.ledger.node, **values)])})

    async def pay(self, path: str, settings: Settings | None = None, person: Person | None = None,
                  **kw: Any) -> Any:
        return await pay_request(db=self.db, keyring=self.keyring, settings=settings or self.settings(), agent="colony",
                                 url=self.seller.url(path), approve=person or Person(), **kw)

    def journal(self) -> list[PaymentRecord]:
        return SqlitePaymentJournal(self.db).payments(agent="colony", direction="out")

    def balances(self) -> tuple[int, int]:
        return self.book.balance(self.agent.public_hex), self.book.balance(self.payee)


async def not_x402(request: Request) -> Response:
    return Response("pay me somehow", status_code=402)


async def evm_only(request: Request) -> Response:
    """A standard v2 402 that offers USDC on Base only (this agent has no EVM asset in its policy)."""
    required = PaymentRequired(x402_version=2, error="Payment required", resource=ResourceInfo(url=str(request.url)),
                               accepts=[PaymentRequirements(scheme="exact", network="eip155:8453", amount="10000",
                                                            asset="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
                                                            pay_to="0x" + "12" * 20, max_timeout_seconds=60,
                                                            extra={"name": "USD Coin", "version": "2"})])
    return Response("{}", status_code=402, media_type="application/json",
                    headers={"PAYMENT-REQUIRED": encode_payment_required_header(required)})


HAND_MADE = {"GET /not-x402": not_x402, "GET /evm-only": evm_only}


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[World]:
    db = open_database(settings.db_path)
    keyring = Keyring(db, settings)
    keyring.ensure(announce=False)
    agent = keyring.agent("colony")
    book = open_book(tmp_path / "seller.db", accounts=1)
    [payee] = book.keys
    book.ledger.mint(agent.public_hex, 5 * MICRO, "the agent's credits at the seller")
    foreign = SchnorrKey.generate().public_hex
    drain = SchnorrKey.generate().public_hex

    def drain_payer() -> None:  # between verify and settle: the payer's credits leave
        book.ledger.pay(agent.schnorr_key, drain, book.balance(agent.public_hex), memo="elsewhere")

    node = book.ledger.node
    routes = {
        "GET /paid": [credits_option(node, payee.public_hex, PRICE)],
        "POST /echo": [credits_option(node, payee.public_hex, PRICE)],
        "GET /dear": [credits_option(node, payee.public_hex, 3 * MICRO)],
        "GET /free": None,
        "GET /foreign": [credits_option(foreign, payee.public_hex, PRICE)],
        # The first offer is in an asset the policy does not know; the SDK must pick the second.
        "GET /mixed": [credits_option(foreign, payee.public_hex, 1000), credits_option(node, payee.public_hex, PRICE)],
        "GET /drain": [credits_option(node, payee.public_hex, PRICE)],
    }
    with selling(book.ledger, routes, before={"GET /drain": drain_payer}, custom=HAND_MADE) as seller:
        yield World(db, keyring, agent, book, payee, seller, foreign)
    book.close()
    db.close()


async def test_a_payment_within_policy_settles_and_is_journaled(world: World) -> None:
    result = await world.pay("/paid")
    assert (result.outcome, result.status) == ("paid", 200), result.reason
    assert '"secret":"the paid answer"' in result.body and result.content_type == "application/json"
    assert world.balances() == (5 * MICRO - PRICE, PRICE)
    [rec] = world.journal()
    [debit] = world.book.ledger.history(world.agent.public_hex, limit=1)
    assert rec.tx == debit.id and debit.body.kind == "debit" and debit.body.amount == PRICE
    assert (rec.status, rec.direction, rec.scheme, rec.network, rec.asset, rec.amount) == (
        "settled", "out", "credits", "x402:colony", world.book.ledger.node, str(PRICE))
    assert (rec.payer, rec.pay_to, rec.resource) == (world.agent.public_hex, world.payee.public_hex,
                                                    world.seller.url("/paid"))
    assert result.payment == rec and result.amount_text == "0.25 credits"
    assert world.seller.signed == ["GET /paid"]

    # POST with a JSON body: sent as JSON, paid, echoed back.
    echoed = await world.pay("/echo", method="POST", body='{"q": "weather"}')
    assert echoed.outcome == "paid" and '"echo":"{\\"q\\": \\"weather\\"}"' in echoed.body
    # A free resource: answered without any payment or journal row.
    free = await world.pay("/free")
    assert (free.outcome, free.status, free.payment) == ("not_required", 200, None)
    assert len(world.journal()) == 2 and world.balances() == (5 * MICRO - 2 * PRICE, 2 * PRICE)


async def test_over_the_per_payment_cap_is_refused_and_never_signed(world: World) -> None:
    result = await world.pay("/dear")
    assert (result.outcome, result.status) == ("refused", 402)
    assert "3000000 atomic units" in (result.reason or "") and f"above the maximum of {MICRO} per payment" in (
        result.reason or "")
    assert world.seller.signed == [] and world.seller.calls == []
    assert world.balances() == (5 * MICRO, 0)
    [rec] = world.journal()
    assert (rec.status, rec.amount, rec.tx, rec.reason) == ("refused", str(3 * MICRO), None, result.reason)
    # The caller's own cap refuses too, however generous the policy.
    capped = await world.pay("/paid", max_amount=PRICE - 1)
    assert capped.outcome == "refused" and f"above the cap of {PRICE - 1}" in (capped.reason or "")
    assert world.seller.signed == [] and world.balances() == (5 * MICRO, 0)


async def test_the_day_budget_counts_earlier_settled_payments(world: World) -> None:
    settings = world.settings(max_per_day=2 * PRICE + PRICE // 2)
    # A big payment 24 hours and a bit ago no longer counts; a failed one today never did.
    for at, status in ((time.time() - DAY_S - 5, "settled"), (time.time(), "failed")):
        SqlitePaymentJournal(world.db).record(PaymentRecord(
            at=at, direction="out", agent="colony", scheme="credits", network="x402:colony",
            asset=world.book.ledger.node.upper(), amount=str(10 * MICRO), pay_to=world.payee.public_hex,
            resource="earlier", status=status))  # type: ignore[arg-type]
    assert (await world.pay("/paid", settings)).outcome == "paid"
    assert (await world.pay("/paid", settings)).outcome == "paid"
    third = await world.pay("/paid", settings)
    assert third.outcome == "refused"
    assert f"(already spent: {2 * PRICE})" in (third.reason or "")
    assert world.balances() == (5 * MICRO - 2 * PRICE, 2 * PRICE)
    assert world.seller.signed == ["GET /paid", "GET /paid"]
    assert [r.status for r in world.journal()] == ["refused", "settled", "settled", "failed", "settled"]


async def test_unknown_payees_and_assets_are_refused(world: World) -> None:
    nobody = Settings(spend_policies={"colony": SpendPolicy(assets=world.settings().spend_policies["colony"].assets)})
    stranger = await world.pay("/paid", nobody)
    assert stranger.outcome == "refused" and "neither the host '127.0.0.1' nor the payTo" in (stranger.reason or "")
    # Naming the payee is enough, from any host.
    trusting = Settings(spend_policies={"colony": nobody.spend_policies["colony"].model_copy(
        update={"pay_to": [world.payee.public_hex]})})
    assert (await world.pay("/paid", trusting)).outcome == "paid"

    foreign = await world.pay("/foreign")
    assert foreign.outcome == "refused" and "not in this agent's spend policy" in (foreign.reason or "")
    assert foreign.payment is not None and foreign.payment.asset != world.book.ledger.node
    # The default policy (no agent entry) pays nobody.
    default = await world.pay("/paid", Settings())
    assert default.outcome == "refused"
    assert world.seller.signed == ["GET /paid"] and world.balances() == (5 * MICRO - PRICE, PRICE)
    assert [r.status for r in world.journal()] == ["refused", "refused", "settled", "refused"]


async def test_the_sdk_selects_the_offer_the_policy_allows(world: World) -> None:
    result = await world.pay("/mixed")
    assert result.outcome == "paid", result.reason
    assert result.payment is not None and result.payment.asset == world.book.ledger.node
    assert world.balances() == (5 * MICRO - PRICE, PRICE)


async def test_above_the_threshold_a_person_decides(world: World) -> None:
    settings = world.settings(ask_above=PRICE - 1)
    no = Person("denied")
    denied = await world.pay("/paid", settings, no)
    [(reason, facts)] = no.asked
    assert "0.25 credits" in reason and f"above the approval threshold of {PRICE - 1}" in reason
    assert (facts["amount"], facts["pay_to"], facts["url"], facts["agent"]) == (
        str(PRICE), world.payee.public_hex, world.seller.url("/paid"), "colony")
    assert denied.outcome == "denied" and (denied.reason or "").startswith("not approved (denied)")
    assert world.seller.signed == [] and world.balances() == (5 * MICRO, 0)

    class Broken:
        async def __call__(self, reason: str, facts: dict[str, Any]) -> str:
            raise RuntimeError("the surface crashed")

    broken = await pay_request(db=world.db, keyring=world.keyring, settings=settings, agent="colony",
                               url=world.seller.url("/paid"), approve=Broken())
    assert broken.outcome == "denied" and world.seller.signed == []
    odd = await world.pay("/paid", settings, Person("yes please"))  # only "approved" approves
    assert odd.outcome == "denied"

    yes = Person("approved")
    approved = await world.pay("/paid", settings, yes)
    assert approved.outcome == "paid" and len(yes.asked) == 1
    assert world.balances() == (5 * MICRO - PRICE, PRICE)
    assert [(r.status, r.reason) for r in world.journal()][:2] == [
        ("settled", None), ("denied", "not approved (denied): " + denied.reason.split(": ", 1)[1])]
    assert [r.status for r in world.journal()] == ["settled", "denied", "denied", "denied"]
    # Within the threshold nobody is asked.
    quiet = Person("denied")
    assert (await world.pay("/paid", world.settings(ask_above=PRICE), quiet)).outcome == "paid" and quiet.asked == []


async def test_a_failed_settlement_or_verification_is_journaled_as_failed(world: World) -> None:
    drained = await world.pay("/drain")
    assert (drained.outcome, drained.status) == ("failed", 402)
    assert drained.reason == "the server did not settle the payment (402): insufficient_funds"
    assert world.seller.calls == ["GET /drain"] and world.balances() == (0, 0)  # the handler moved them, not we
    [rec] = world.journal()
    assert (rec.status, rec.reason, rec.tx) == ("failed", drained.reason, None)

    # An asset this facilitator does not settle (allowed by the policy): verify fails, 402 again.
    settings = Settings(spend_policies={"colony": SpendPolicy(hosts=["127.0.0.1"], assets=[
        AssetLimit(network="x402:colony", asset=world.foreign, max_per_payment=MICRO,
                   max_per_day=MICRO)])})
    unverified = await world.pay("/foreign", settings)
    assert unverified.outcome == "failed"
    assert unverified.reason == "the server refused the payment (402 again): invalid_credits_asset"
    assert world.seller.signed == ["GET /drain", "GET /foreign"]
    assert [r.status for r in world.journal()] == ["failed", "failed"]


async def test_requests_that_cannot_be_made_raise_and_journal_nothing(world: World, settings: Settings) -> None:
    with pytest.raises(PayError, match="not in http_allowed_hosts") as denied:
        await world.pay("/paid", Settings(http_allowed_hosts=["localhost"]))
    assert denied.value.reason == "host_not_allowed"
    for bad, reason in (("ftp://127.0.0.1/x", "invalid_request"), ("http://user@127.0.0.1/", "host_not_allowed")):
        with pytest.raises(PayError) as caught:
            await pay_request(db=world.db, keyring=world.keyring, settings=settings, agent="colony", url=bad,
                              approve=Person())
        assert caught.value.reason == reason
    with pytest.raises(PayError, match="Only GET and POST"):
        await world.pay("/paid", method="DELETE")
    with pytest.raises(PayError, match="No identity named 'ghost'") as unknown:
        await pay_request(db=world.db, keyring=world.keyring, settings=settings, agent="ghost",
                          url=world.seller.url("/paid"), approve=Person())
    assert unknown.value.reason == "unknown_agent"
    with pytest.raises(PayError, match="max_amount must be a positive integer"):
        await world.pay("/paid", max_amount=0.5)
    closed = world.seller.url("/paid").rsplit(":", 1)[0] + ":9/paid"
    with pytest.raises(PayError, match="Could not reach") as unreachable:
        await pay_request(db=world.db, keyring=world.keyring, settings=settings, agent="colony", url=closed,
                          approve=Person())
    assert unreachable.value.reason == "unreachable"
    assert world.journal() == [] and world.seller.signed == []


async def test_concurrent_payments_cannot_both_fit_one_day_budget(world: World) -> None:
    settings = world.settings(max_per_day=PRICE + PRICE // 2)
    results = await asyncio.gather(*(world.pay("/paid", settings) for _ in range(3)))
    assert sorted(r.outcome for r in results) == ["paid", "refused", "refused"]
    assert world.balances() == (5 * MICRO - PRICE, PRICE)


async def test_what_cannot_be_paid_is_explained_and_journaled(world: World) -> None:
    evm = await world.pay("/evm-only")
    assert evm.outcome == "refused"
    assert "this agent cannot pay scheme 'exact' on eip155:8453" in (evm.reason or "")
    assert evm.payment is not None and (evm.payment.scheme, evm.payment.amount) == ("exact", "10000")
    broken = await world.pay("/not-x402")
    assert (broken.outcome, broken.status) == ("failed", 402)
    assert "without a valid PAYMENT-REQUIRED header" in (broken.reason or "")
    assert [(r.status, r.scheme, r.amount) for r in world.journal()] == [("failed", "", "0"), ("refused", "exact", "10000")]
    assert world.seller.signed == [] and world.balances() == (5 * MICRO, 0)
