"""The wallet and ledger surfaces: the `colony wallet` / `colony ledger` CLI in subprocesses, the
JSON API on a real node server, and the Wallet page — against real identities and signatures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from colony.config import Settings
from colony.identity import Keyring, SchnorrKey
from colony.ledger import MICRO, Ledger, SqliteLedgerStore, read_lines, sign_transfer, verify_feed
from colony.node import Node
from colony.server import create_app
from colony.server.turns import ApprovalBroker
from colony.store import open_database
from colony.testing import NodeServer

COLONY = [sys.executable, "-m", "colony"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COLONY, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def _ledger(settings: Settings) -> tuple[Ledger, Keyring, Any]:
    db = open_database(settings.db_path)
    keyring = Keyring(db, settings)
    keyring.ensure(announce=False)
    return Ledger(SqliteLedgerStore(db), keyring.node().schnorr_key), keyring, db


# -- CLI ----------------------------------------------------------------------------------------


def test_the_wallet_and_ledger_commands_end_to_end(settings: Settings, tmp_path: Path) -> None:
    assert cli("ledger", "mint", "colony", "100", "--reason", "initial allocation").returncode == 0
    outsider = SchnorrKey.generate()
    paid = cli("wallet", "transfer", outsider.npub, "2.5", "--memo", "for the summary", "--json")
    assert paid.returncode == 0, paid.stderr
    result = json.loads(paid.stdout)
    assert (result["status"], result["amount"], result["payer_balance"]) == ("applied", 2_500_000, 97_500_000)
    # The same payment again, by its nonce: the first result, not a second payment.
    again = cli("wallet", "transfer", outsider.npub, "2.5", "--memo", "for the summary", "--nonce", result["nonce"])
    assert again.returncode == 0 and "already applied" in again.stdout
    balance = json.loads(cli("wallet", "balance", "colony", "--json").stdout)
    assert (balance["agent"], balance["balance"], balance["held"]) == ("colony", 97_500_000, 0)

    refused = cli("wallet", "transfer", outsider.public_hex, "1000")
    assert refused.returncode == 1 and "insufficient funds" in refused.stderr
    for bad, words in [(["wallet", "transfer", outsider.npub, "1.0000001"], "at most 6 decimals"),
                       (["wallet", "transfer", "nobody", "1"], "not an agent of this node"),
                       (["wallet", "transfer", outsider.npub, "1", "--nonce", "xyz"], "64 lowercase hex"),
                       (["ledger", "mint", "colony", "5"], "needs a reason")]:
        r = cli(*bad)
        assert r.returncode == 2 and words in " ".join(r.stderr.split()), (bad, r.stderr)

    history = json.loads(cli("wallet", "history", "--json").stdout)
    assert [(h["kind"], h["change"], h["memo"]) for h in history] == [
        ("debit", -2_500_000, "for the summary"), ("mint", 100 * MICRO, "initial allocation")]
    table = cli("wallet", "history").stdout
    assert "for the summary" in table and "-2.5" in table and "97.5" in table

    root = json.loads(cli("ledger", "root", "--json").stdout)
    assert (root["accounts"], root["entries"], root["supply"]) == (2, 3, 100 * MICRO)
    ok = cli("ledger", "verify")
    assert ok.returncode == 0 and ok.stdout.startswith("ok 3 entries")

    feed = tmp_path / "feed.jsonl"
    assert cli("ledger", "export", "-o", str(feed)).returncode == 0
    assert cli("ledger", "verify", "--file", str(feed)).returncode == 0
    as_array = cli("ledger", "export", "--account", "colony", "--json")
    assert as_array.returncode == 0 and len(json.loads(as_array.stdout)) == 4  # 2 orders cited + 2 entries
    # One changed amount in the file: exit 1, and the message names the entry.
    lines = feed.read_text().splitlines()
    entry = json.loads(lines[-1])
    content = json.loads(entry["content"])
    entry["content"] = entry["content"].replace(f'"amount":{content["amount"]}', f'"amount":{content["amount"] + 1}')
    feed.write_text("\n".join([*lines[:-1], json.dumps(entry)]) + "\n")
    bad = cli("ledger", "verify", "--file", str(feed))
    assert bad.returncode == 1
    assert f"account {content['account']} seq {content['seq']}" in bad.stderr and "entry_hash" in bad.stderr


# -- API ----------------------------------------------------------------------------------------


@pytest.fixture
def server(settings: Settings) -> Iterator[tuple[NodeServer, Ledger, Keyring]]:
    ledger, keyring, db = _ledger(settings)
    keyring.create_agent("scout")
    ledger.mint(keyring.agent("colony").public_hex, 50 * MICRO, "test funds")
    with NodeServer(settings) as node:
        yield node, ledger, keyring
    db.close()


def test_the_wallet_api(server: tuple[NodeServer, Ledger, Keyring]) -> None:
    node, ledger, keyring = server
    scout = keyring.agent("scout").public_hex
    with httpx.Client(base_url=node.base_url, headers=node.auth, timeout=30) as c:
        assert httpx.get(f"{node.base_url}/api/v1/wallet/balances").status_code == 401
        agents = {a["agent"]: a for a in c.get("/api/v1/wallet/balances").json()["agents"]}
        assert (agents["colony"]["balance"], agents["scout"]["balance"]) == (50 * MICRO, 0)

        # The node signs for its own agent.
        r = c.post("/api/v1/wallet/transfers", json={"from": "colony", "to": "scout", "amount": "1.5", "memo": "m"})
        assert r.status_code == 201, r.text
        assert r.json()["transfer"]["amount"] == 1_500_000
        # A payer whose key the node never sees signs its own authorisation.
        outsider = SchnorrKey.generate()
        ledger.mint(outsider.public_hex, 10 * MICRO, "outsider funds")
        event = sign_transfer(outsider, scout, 3 * MICRO, memo="from outside").model_dump()
        first = c.post("/api/v1/wallet/transfers", json={"authorisation": event})
        assert first.status_code == 201 and not first.json()["transfer"]["replayed"]
        again = c.post("/api/v1/wallet/transfers", json={"authorisation": event})
        assert again.status_code == 200 and again.json()["transfer"]["replayed"]
        assert again.json()["transfer"]["entries"] == first.json()["transfer"]["entries"]
        assert c.get("/api/v1/wallet/accounts/scout").json()["balance"] == 4_500_000

        def refused(body: dict[str, Any], status: int, code: str) -> None:
            resp = c.post("/api/v1/wallet/transfers", json=body)
            assert (resp.status_code, resp.json()["code"]) == (status, code), resp.text
            assert set(resp.json()) >= {"code", "message"}

        nonce = json.loads(event["content"])["nonce"]
        other = sign_transfer(outsider, keyring.agent("colony").public_hex, MICRO, nonce=nonce).model_dump()
        refused({"authorisation": other}, 409, "nonce_already_used")
        refused({"authorisation": sign_transfer(outsider, scout, 100 * MICRO).model_dump()}, 409, "insufficient_funds")
        forged = {**sign_transfer(outsider, scout, MICRO).model_dump(), "sig": "00" * 64}
        refused({"authorisation": forged}, 403, "invalid_signature")
        refused({"from": "colony", "to": "colony", "amount": 1}, 403, "self_payment")
        refused({"from": "node", "to": "scout", "amount": 1}, 403, "not_a_local_agent")
        refused({"from": "colony", "to": "nobody", "amount": 1}, 404, "unknown_account")
        refused({"from": "colony", "to": "scout", "amount": "1.0000001"}, 422, "invalid_request")
        refused({"from": "colony", "to": "scout", "amount": 0}, 422, "invalid_request")
        refused({"from": "colony", "to": "scout"}, 422, "invalid_request")
        refused({}, 422, "invalid_request")
        refused({"authorisation": event, "to": "scout"}, 422, "invalid_request")

        hold = c.post("/api/v1/wallet/holds", json={"from": "colony", "amount": 2 * MICRO, "memo": "task"})
        assert hold.status_code == 201
        hold_id = hold.json()["transfer"]["transfer_id"]
        assert c.get(f"/api/v1/wallet/holds/{hold_id}").json()["hold"]["state"] == "held"
        captured = c.post(f"/api/v1/wallet/holds/{hold_id}/capture", json={"to": "scout"})
        assert captured.status_code == 200 and captured.json()["hold"]["captured_to"] == scout
        late = c.post(f"/api/v1/wallet/holds/{hold_id}/release")
        assert (late.status_code, late.json()["code"]) == (409, "illegal_transition")
        assert c.post(f"/api/v1/wallet/holds/{'ab' * 32}/release").status_code == 404

        history = c.get("/api/v1/wallet/accounts/scout/history", params={"limit": 10}).json()["entries"]
        assert [(h["kind"], h["change"], h["memo"]) for h in history] == [
            ("credit", 2 * MICRO, "task"), ("credit", 3 * MICRO, "from outside"), ("credit", 1_500_000, "m")]
        root = c.get("/api/v1/ledger/root").json()
        assert root["supply"] == 60 * MICRO and root["root"] == ledger.root()
        children = c.get("/api/v1/ledger/tree", params={"prefix": ""}).json()["children"]
        assert children and all(len(k) == 1 for k in children)
        report = c.get("/api/v1/ledger/verify").json()
        assert report["ok"] and report["entries"] == ledger.store.entry_count()
        feed = c.get("/api/v1/ledger/export", params={"account": "scout"})
        assert feed.headers["content-type"].startswith("application/x-ndjson")
        checked = verify_feed(read_lines(feed.text.splitlines()))
        assert checked.ok and checked.partial and checked.accounts == 1
        metrics = c.get("/metrics").text
        assert re.search(r'colony_ledger_transfers_total\{outcome="applied",reason=""\} [1-9]', metrics)


# -- the Wallet page ------------------------------------------------------------------------------


def test_the_wallet_page_shows_balances_history_and_a_chart(settings: Settings) -> None:
    node = Node(settings, approver=ApprovalBroker())
    ledger = Ledger(SqliteLedgerStore(node.db), node.keyring.node().schnorr_key)
    colony = node.keyring.agent("colony")
    ledger.mint(colony.public_hex, 20 * MICRO, "seed")
    outsider = SchnorrKey.generate().public_hex
    for i in range(5):
        ledger.pay(colony.schnorr_key, outsider, (i + 1) * MICRO, memo='<script>alert("x")</script>' if i == 4 else "")
    app = create_app(node, ApprovalBroker(), token="test-token-0123456789abcdef", connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/wallet", follow_redirects=False).status_code == 303  # login first
        client.post("/login", data={"token": "test-token-0123456789abcdef"}, follow_redirects=False)
        page = client.get("/wallet")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        html = page.text
        assert 'href="/wallet" aria-current="page"' in html
        assert re.search(r'id="wallet-balances".*colony.*>5<', html, re.S)  # 20 - (1+2+3+4+5) = 5
        assert html.count("<tr><td class=\"num\"") == 6  # mint + 5 debits
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html and '<script>alert("x")' not in html
        points = re.search(r'<polyline[^>]* points="([^"]+)"', html)
        assert points and len(points.group(1).split()) == 2 * 6 - 1  # a step line through 6 balances
        assert "style=" not in html.split('id="wallet-chart"')[1].split("</svg>")[0]
        assert client.get("/wallet", params={"agent": "nobody"}).status_code == 404
