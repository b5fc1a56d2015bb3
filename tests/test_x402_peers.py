"""Paying a route on node A with credits homed on node B: A offers B's credits too, the SDK client
picks the ledger it can pay from, and A verifies and settles through B's facilitator endpoints
(NIP-98 signed by A's node key). B's ledger moves the credits — the payer spends only on its home
node — and A's journal records B's entry as the transaction. A peer that is down is a refusal,
never a free call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from x402 import x402Client
from x402.http.clients.httpx import x402HttpxClient
from x402.http.utils import decode_payment_required_header, decode_payment_response_header

from colony.cartridges import Cartridges
from colony.config import PeerLedger, Settings
from colony.identity import Keyring, SchnorrKey
from colony.ledger import MICRO, Ledger, SqliteLedgerStore
from colony.payments import journal
from colony.payments.credits import CREDITS_NETWORK, CreditsClientScheme
from colony.payments.prices import cartridge_route, set_price
from colony.store import Database, open_database
from colony.testing import NodeServer

ECHO = '''
def handle(request, kv, log):
    return {"status": 200, "body": {"payer": request["headers"].get("x-colony-payment-payer")}}
'''


@pytest.fixture(autouse=True)
def _shared_cache(wasm_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLONY_SANDBOX_CACHE_DIR", str(wasm_cache))


def _node_key(settings: Settings) -> tuple[Database, Keyring]:
    db = open_database(settings.db_path)
    keyring = Keyring(db, settings)
    keyring.ensure(announce=False)
    return db, keyring


def test_credits_homed_on_a_peer_pay_a_route_through_the_peers_facilitator(tmp_path: Path) -> None:
    a_settings, b_settings = Settings(home=tmp_path / "a"), Settings(home=tmp_path / "b")
    a_db, a_keys = _node_key(a_settings)
    b_db, b_keys = _node_key(b_settings)
    a_node, b_node = a_keys.node().public_hex, b_keys.node().public_hex
    b_ledger = Ledger(SqliteLedgerStore(b_db), b_keys.node().schnorr_key)
    payer = SchnorrKey.generate()
    b_ledger.mint(payer.public_hex, 2 * MICRO, "home funds")

    b_settings = b_settings.model_copy(update={"x402_peer_ledgers": [PeerLedger(ledger=a_node,
                                                                                url="http://127.0.0.1:9")]})
    b = NodeServer(b_settings).start()
    try:
        a_settings = a_settings.model_copy(update={"x402_peer_ledgers": [PeerLedger(ledger=b_node,
                                                                                    url=b.base_url)]})
        Cartridges(a_db, a_settings).deploy("echo", ECHO, lang="python")
        set_price(a_db, cartridge_route("echo"), credits=250_000, evm_amount=None, pay_to="colony")
        with NodeServer(a_settings) as a:
            offer = decode_payment_required_header(httpx.get(f"{a.base_url}/c/echo").headers["payment-required"])
            assert [o.asset for o in offer.accepts] == [a_node, b_node]

            client = x402Client()
            client.register(CREDITS_NETWORK, CreditsClientScheme(payer))
            client.set_spend_controls({"allowed_assets": [{"network": CREDITS_NETWORK, "asset": b_node,
                                                           "max_amount_per_payment": "1000000"}]})

            async def pay() -> httpx.Response:
                async with x402HttpxClient(client, base_url=a.base_url, timeout=60) as c:
                    return await c.get("/c/echo")

            r = asyncio.run(pay())
            assert r.status_code == 200, r.text
            assert r.json() == {"payer": payer.public_hex}
            settled = decode_payment_response_header(r.headers["payment-response"])
            a_agent = a_keys.agent("colony").public_hex
            # B's ledger moved the credits: the payer's home, and A's agent's account there.
            assert b_ledger.balance(payer.public_hex).balance == 2 * MICRO - 250_000
            assert b_ledger.balance(a_agent).balance == 250_000
            assert settled.transaction == b_ledger.history(payer.public_hex)[0].id
            [row] = journal.SqlitePaymentJournal(a_db).payments(direction="in")
            assert (row.status, row.asset, row.tx) == ("settled", b_node, settled.transaction)
            assert b_ledger.verify().ok

            b.stop()  # the payer's home is gone: nothing can be verified, so nothing is served
            r = asyncio.run(pay())
            assert r.status_code == 402
            assert decode_payment_required_header(r.headers["payment-required"]).error == "unexpected_verify_error"
            assert b_ledger.balance(payer.public_hex).balance == 2 * MICRO - 250_000
    finally:
        b.stop()
        a_db.close()
        b_db.close()
