"""The paying side's surfaces: ``POST /api/v1/payments/pay`` and ``GET /api/v1/payments`` on the
node's app, the Wallet page's Payments table, and ``colony pay`` / ``colony wallet payments`` in
subprocesses — each paying a real x402 server from an agent's credits on the node's own ledger."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from colony.config import Settings
from colony.identity import Keyring, SchnorrKey
from colony.ledger import MICRO, Ledger, SqliteLedgerStore
from colony.node import Node
from colony.payments.journal import PaymentRecord, SqlitePaymentJournal
from colony.payments.policy import SpendPolicy
from colony.server import create_app
from colony.server.api.payments import router as payments_router
from colony.server.turns import ApprovalBroker
from colony.store import open_database
from pay_helpers import Seller, credits_option, selling

TOKEN = "test-token-0123456789abcdef"
CHEAP, DEAR = 100_000, 500_000
POLICY = {"hosts": ["127.0.0.1"]}  # the default assets: this node's credits, asking above 0.25


@dataclass
class Shop:
    seller: Seller
    ledger: Ledger
    agent: str
    payee: str


@pytest.fixture
def shop(settings: Settings) -> Iterator[Shop]:
    db = open_database(settings.db_path)
    keyring = Keyring(db, settings)
    keyring.ensure(announce=False)
    agent = keyring.agent("colony").public_hex
    payee = keyring.create_agent("seller").public_hex
    ledger = Ledger(SqliteLedgerStore(db), keyring.node().schnorr_key)
    ledger.mint(agent, 2 * MICRO, "test funds")
    routes = {"GET /report": [credits_option(ledger.node, payee, CHEAP)],
              "GET /premium": [credits_option(ledger.node, payee, DEAR)]}
    with selling(ledger, routes) as seller:
        yield Shop(seller, ledger, agent, payee)
    db.close()


def app_for(node: Node) -> FastAPI:
    app = create_app(node, ApprovalBroker(), token=TOKEN, connect_model=False)
    if not any(getattr(r, "path", None) == "/api/v1/payments/pay" for r in app.routes):
        app.include_router(payments_router)  # until app.py registers it
    return app


def test_the_api_pays_with_the_tokens_approval_and_lists_the_journal(shop: Shop) -> None:
    node = Node(Settings(default_spend_policy=SpendPolicy.model_validate(POLICY)))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app_for(node), base_url="http://127.0.0.1") as c:
        assert c.post("/api/v1/payments/pay", json={"url": shop.seller.url("/report")}).status_code == 401
        assert c.get("/api/v1/payments").status_code == 401

        paid = c.post("/api/v1/payments/pay", headers=auth, json={"url": shop.seller.url("/report")})
        assert paid.status_code == 200, paid.text
        body = paid.json()
        assert (body["outcome"], body["status"], body["amount_text"]) == ("paid", 200, "0.1 credits")
        assert "the paid answer" in body["body"] and body["payment"]["status"] == "settled"

        # Above the threshold the token holder must say so; then it goes through.
        unasked = c.post("/api/v1/payments/pay", headers=auth, json={"url": shop.seller.url("/premium")})
        assert (unasked.status_code, unasked.json()["code"]) == (403, "approval_required")
        assert '"approve": true' in unasked.json()["message"]
        assert unasked.json()["result"]["payment"]["status"] == "denied"
        approved = c.post("/api/v1/payments/pay", headers=auth, json={"url": shop.seller.url("/premium"),
                                                                       "approve": True})
        assert approved.status_code == 200 and approved.json()["outcome"] == "paid"
        assert shop.ledger.balance(shop.agent).balance == 2 * MICRO - CHEAP - DEAR

        capped = c.post("/api/v1/payments/pay", headers=auth, json={"url": shop.seller.url("/report"),
                                                                     "max_amount": CHEAP - 1})
        assert (capped.status_code, capped.json()["code"]) == (403, "payment_refused")
        for payload, status, code in (
                ({"url": shop.seller.url("/report"), "agent": "ghost"}, 404, "unknown_agent"),
                ({"url": "http://example.org/x"}, 403, "url_refused"),
                ({"url": "http://127.0.0.1:9/x"}, 409, "unreachable"),
                ({"url": "ftp://127.0.0.1/x"}, 422, "invalid_request"),
                ({"url": shop.seller.url("/report"), "method": "PUT"}, 422, "invalid_request")):
            r = c.post("/api/v1/payments/pay", headers=auth, json=payload)
            assert (r.status_code, r.json()["code"]) == (status, code), (payload, r.text)

        listed = c.get("/api/v1/payments", headers=auth).json()
        assert [(p["status"], p["amount"]) for p in listed] == [
            ("refused", str(CHEAP)), ("settled", str(DEAR)), ("denied", str(DEAR)), ("settled", str(CHEAP))]
        page = c.get("/api/v1/payments", headers=auth, params={"limit": 2, "before_id": listed[1]["id"]}).json()
        assert [p["id"] for p in page] == [listed[2]["id"], listed[3]["id"]]
        assert c.get("/api/v1/payments", headers=auth, params={"direction": "in"}).json() == []
        assert len(c.get("/api/v1/payments", headers=auth, params={"agent": "colony"}).json()) == 4
        assert c.get("/api/v1/payments", headers=auth, params={"limit": 0}).status_code == 422


def test_the_wallet_page_lists_payments_in_and_out(shop: Shop, settings: Settings) -> None:
    node = Node(Settings(default_spend_policy=SpendPolicy.model_validate(POLICY)))
    outsider = SchnorrKey.generate().public_hex
    # A payment the node received for one of its routes (the charging side writes these).
    SqlitePaymentJournal(node.db).record(PaymentRecord(direction="in", agent="seller", scheme="credits", network="x402:colony",
                                          asset=shop.ledger.node, amount="50000", payer=outsider, pay_to=shop.payee,
                                          resource="/c/<b>weather</b>", status="settled", tx="e" * 64))
    with TestClient(app_for(node), base_url="http://127.0.0.1") as c:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert c.post("/api/v1/payments/pay", headers=auth, json={"url": shop.seller.url("/report")}).json()[
            "outcome"] == "paid"
        assert c.post("/api/v1/payments/pay", headers=auth, json={"url": shop.seller.url("/premium")}).status_code == 403
        c.post("/login", data={"token": TOKEN}, follow_redirects=False)
        html = c.get("/wallet").text
        [rec] = [r for r in SqlitePaymentJournal(node.db).payments(direction="out") if r.status == "settled"]
    table = html.split('id="wallet-payments"')[1].split("</table>")[0]
    rows = re.findall(r'<tr id="payment-(\d+)">(.*?)</tr>', table, re.S)
    assert len(rows) == 3
    cells = [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
             for _, row in rows]
    denied, paid, received = cells
    assert paid[1:8] == ["out", "colony", "credits", "0.1 credits", "seller", shop.seller.url("/report"), "settled"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", paid[0]), paid[0]
    assert rec.tx is not None and paid[8] == rec.tx[:16] + "…"
    assert denied[1] == "out" and denied[7].startswith("denied") and "above the approval threshold" in denied[7]
    assert received[1:6] == ["in", "seller", "credits", "0.05 credits", outsider[:18] + "…"]
    assert received[6] == "/c/&lt;b&gt;weather&lt;/b&gt;" and received[7] == "settled"
    assert "<b>" not in table  # the resource is escaped


COLONY = [sys.executable, "-m", "colony"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "COLONY_DEFAULT_SPEND_POLICY": json.dumps(POLICY)}
    return subprocess.run([*COLONY, *args], capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


def test_colony_pay_and_colony_wallet_payments(shop: Shop) -> None:
    paid = cli("pay", shop.seller.url("/report"), "--json")
    assert paid.returncode == 0, paid.stderr
    result = json.loads(paid.stdout)
    assert (result["outcome"], result["payment"]["amount"]) == ("paid", str(CHEAP))

    plain = cli("pay", shop.seller.url("/report"))
    assert plain.returncode == 0 and "the paid answer" in plain.stdout
    assert "paid 0.1 credits to" in plain.stderr

    # Above the threshold with no terminal: denied (exit 1) unless --yes approves it.
    denied = cli("pay", shop.seller.url("/premium"))
    assert denied.returncode == 1 and "pass --yes to approve" in denied.stderr and "denied:" in denied.stderr
    yes = cli("pay", shop.seller.url("/premium"), "--yes", "--json")
    assert yes.returncode == 0 and json.loads(yes.stdout)["outcome"] == "paid"
    refused = cli("pay", shop.seller.url("/report"), "--max-amount", "10")
    assert refused.returncode == 1 and "above the cap of 10" in refused.stderr
    for bad, code, words in ((["-X", "DELETE"], 2, "only GET and POST"), (["--agent", "ghost"], 2, "No identity"),
                             (["--data", "@/nonexistent/file"], 2, "cannot read")):
        r = cli("pay", shop.seller.url("/report"), *bad)
        assert r.returncode == code and words in " ".join(r.stderr.split()), (bad, r.stderr)
    host = cli("pay", "http://example.org/x")
    assert host.returncode == 1 and "COLONY_HTTP_ALLOWED_HOSTS" in host.stderr

    assert shop.ledger.balance(shop.agent).balance == 2 * MICRO - 2 * CHEAP - DEAR
    listed = cli("wallet", "payments", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [p["status"] for p in json.loads(listed.stdout)] == ["refused", "settled", "denied", "settled", "settled"]
    table = cli("wallet", "payments", "--agent", "colony", "--direction", "out")
    assert table.returncode == 0 and "0.5 credits" in table.stdout and "seller" in table.stdout
    assert "denied: not approved (denied)" in " ".join(table.stdout.split())
    bad = cli("wallet", "payments", "--direction", "sideways")
    assert bad.returncode == 2
