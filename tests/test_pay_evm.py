"""Paying a server's EVM ``exact`` offer (EIP-3009) with the agent's own EVM account: the SDK's
client signs, the seller's in-process facilitator settles on a real chain (eth-tester + py-evm
with Colony's token), and the agent's spend policy governs the token exactly as it governs credits."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from x402.http.types import PaymentOption

from colony.config import Settings
from colony.identity import Keyring
from colony.payments.evm import facilitator_scheme, price, server_scheme
from colony.payments.evm.local import InProcessChain
from colony.payments.facilitator import build_facilitator
from colony.payments.journal import SqlitePaymentJournal
from colony.payments.paying import pay_request
from colony.payments.policy import AssetLimit, SpendPolicy
from colony.store import open_database
from ledger_helpers import open_book
from pay_helpers import credits_option, selling

PRICE = 10_000  # 0.01 of a 6-decimal token


@pytest.mark.slow
async def test_an_agent_pays_an_exact_offer_with_its_evm_account(settings: Settings, tmp_path: Path) -> None:
    db = open_database(settings.db_path)
    keyring = Keyring(db, settings)
    keyring.ensure(announce=False)
    agent = keyring.agent("colony")
    chain = InProcessChain({agent.evm_address: 1_000_000})
    rail = chain.rail
    payee = Account.create().address  # servers name payees by checksummed address
    book = open_book(tmp_path / "seller.db")
    facilitator = build_facilitator(book.ledger)
    facilitator.register([rail.network], facilitator_scheme(rail, chain.facilitator_key, chain.provider))
    exact = PaymentOption(scheme="exact", network=rail.network, pay_to=payee, price=price(rail, PRICE),
                          max_timeout_seconds=120)
    # Credits are offered first, but the agent has none at this seller and its policy names only the token.
    routes = {"GET /data": [credits_option(book.ledger.node, "ab" * 32, 1), exact], "GET /pricey": [
        PaymentOption(scheme="exact", network=rail.network, pay_to=payee, price=price(rail, 5 * PRICE))]}
    policy = SpendPolicy(hosts=["127.0.0.1"], assets=[AssetLimit(network=rail.network, asset=rail.token,
                                                                 max_per_payment=2 * PRICE, max_per_day=10 * PRICE)])
    paying = Settings(spend_policies={"colony": policy})

    async def nobody(reason: str, facts: dict[str, object]) -> str:
        return "denied"

    try:
        with selling(book.ledger, routes, facilitator=facilitator,
                     server_schemes={rail.network: server_scheme()}) as seller:
            result = await pay_request(db=db, keyring=keyring, settings=paying, agent="colony",
                                       url=seller.url("/data"), approve=nobody)
            assert result.outcome == "paid", result.reason
            assert (chain.balance(agent.evm_address), chain.balance(payee)) == (1_000_000 - PRICE, PRICE)
            [rec] = SqlitePaymentJournal(db).payments(direction="out")
            assert (rec.scheme, rec.network, rec.asset.lower(), rec.amount) == (
                "exact", rail.network, rail.token.lower(), str(PRICE))
            assert rec.payer is not None and rec.payer.lower() == agent.evm_address.lower()
            receipt = chain.web3.eth.get_transaction_receipt(rec.tx)  # the settlement is a real transaction
            assert receipt["status"] == 1

            pricey = await pay_request(db=db, keyring=keyring, settings=paying, agent="colony",
                                       url=seller.url("/pricey"), approve=nobody)
            assert pricey.outcome == "refused" and f"above the maximum of {2 * PRICE} per payment" in (
                pricey.reason or "")
            assert seller.signed == ["GET /data"] and chain.balance(agent.evm_address) == 1_000_000 - PRICE
    finally:
        book.close()
        db.close()
