"""A node with ``COLONY_DATABASE_URL`` keeps its ledger, its x402 journal and its market on PostgreSQL.

The `colony ledger` / `colony wallet` / `colony market` commands run in subprocesses, as a user
runs them; their writes must land in PostgreSQL and nothing in the node's SQLite file. The
payments journal and the EVM nonce claims go through the node's factories to the same database.
The market's tables live beside the ledger there, so a stake deposit or an auction records its
credit moves in the transaction that makes them, and the database checks each stake against its
ledger hold (`colony.market.ledger_guard` refuses only a ledger kept elsewhere).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from colony.config import Settings
from colony.identity import SchnorrKey
from colony.ledger import MICRO, Ledger, SqliteLedgerStore, open_ledger_store
from colony.ledger.pg_store import PgLedgerStore
from colony.market import gov_service as gov
from colony.market import stakes
from colony.market.governance import SetMarketParam
from colony.market.ledger_guard import MarketLedgerElsewhereError, market_ledger
from colony.market.service import Market
from colony.node import Node
from colony.payments.journal import PaymentRecord, open_journal
from colony.payments.pg_journal import PgPaymentJournal
from colony.server import create_app
from colony.server.turns import ApprovalBroker

COLONY = [sys.executable, "-m", "colony"]
TOKEN = "test-token-0123456789abcdef"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COLONY, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def node(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Node]:
    monkeypatch.setenv("COLONY_DATABASE_URL", pg_url)
    monkeypatch.setenv("COLONY_MEMORY_EMBEDDER", "none")
    n = Node(Settings())
    n.keyring.ensure(announce=False)
    yield n
    asyncio.run(n.aclose())  # closes its SQLite file and this process's pool


def test_wallet_and_ledger_commands_write_to_postgresql_not_the_sqlite_file(node: Node, pg_url: str) -> None:
    assert cli("ledger", "mint", "colony", "100", "--reason", "initial allocation").returncode == 0
    outsider = SchnorrKey.generate()
    paid = cli("wallet", "transfer", outsider.npub, "2.5", "--memo", "on postgres", "--json")
    assert paid.returncode == 0, paid.stderr
    assert json.loads(paid.stdout)["payer_balance"] == 97_500_000
    refused = cli("wallet", "transfer", outsider.public_hex, "1000")
    assert refused.returncode == 1 and "insufficient funds" in refused.stderr

    assert (_count(pg_url, "ledger_entries"), _count(pg_url, "ledger_transfers"), _count(pg_url, "ledger_treasury")) == (
        3, 2, 1)
    for table in ("ledger_entries", "ledger_transfers", "ledger_treasury", "ledger_accounts", "ledger_tree"):
        assert node.db.scalar(f"SELECT count(*) FROM {table}") == 0, table  # nothing in the node's SQLite file
    store = open_ledger_store(node.db, node.settings)
    assert isinstance(store, PgLedgerStore)
    assert store.account(outsider.public_hex) is not None and store.supply() == 100 * MICRO

    history = json.loads(cli("wallet", "history", "--json").stdout)
    assert [(h["kind"], h["memo"]) for h in history] == [("debit", "on postgres"), ("mint", "initial allocation")]
    root = json.loads(cli("ledger", "root", "--json").stdout)
    assert (root["root"], root["entries"], root["supply"]) == (store.root(), 3, 100 * MICRO)
    verified = cli("ledger", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ok 3 entries"), verified.stderr


def test_the_payments_journal_and_nonce_claims_live_on_postgresql(node: Node, pg_url: str) -> None:
    journal = open_journal(node.db, node.settings)
    assert isinstance(journal, PgPaymentJournal)
    first = journal.record(PaymentRecord(direction="out", agent="colony", scheme="exact", network="eip155:1",
                                         asset="0xToken", amount="250", pay_to="0xabc", resource="https://x/y",
                                         status="settled", tx="0x01", payer="0xPayer"))
    second = journal.record(PaymentRecord(direction="in", agent="colony", scheme="credits", network="x402:colony",
                                          asset="ab" * 32, amount="7", pay_to="cd" * 32, resource="/c/w",
                                          status="failed", reason="no"))
    assert second > first
    assert [r.id for r in journal.payments()] == [second, first]
    assert journal.spent_since(["0xpayer"], "eip155:1", "0xTOKEN", 0) == 250
    assert journal.claim_nonce("eip155:1", "0xToken", "0xPayer", "0x" + "ab" * 32)
    assert not journal.claim_nonce("eip155:1", "0xtoken", "0xpayer", "0x" + "AB" * 32)  # the same, any case
    assert journal.nonce_claimed("eip155:1", "0xTOKEN", "0xPAYER", "0x" + "ab" * 32)
    assert (_count(pg_url, "x402_payments"), _count(pg_url, "x402_nonces")) == (2, 1)
    assert node.db.scalar("SELECT count(*) FROM x402_payments") == 0
    assert node.db.scalar("SELECT count(*) FROM x402_nonces") == 0

    listed = cli("wallet", "payments", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [second, first]
    with psycopg.connect(pg_url) as conn:
        for sql in ("UPDATE x402_payments SET amount = '1'", "DELETE FROM x402_nonces", "TRUNCATE x402_payments"):
            with pytest.raises(psycopg.errors.RaiseException):
                conn.execute(sql)
            conn.rollback()


def test_the_wallet_api_and_page_read_and_write_postgresql(node: Node, pg_url: str) -> None:
    colony = node.keyring.agent("colony")
    Ledger(open_ledger_store(node.db, node.settings), node.keyring.node().schnorr_key).mint(
        colony.public_hex, 20 * MICRO, "seed")
    open_journal(node.db, node.settings).record(PaymentRecord(
        direction="in", agent="colony", scheme="credits", network="x402:colony", asset="ab" * 32, amount="5",
        pay_to=colony.public_hex, resource="/c/weather", status="settled"))
    outsider = SchnorrKey.generate().public_hex
    app = create_app(node, ApprovalBroker(), token=TOKEN, connect_model=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        paid = client.post("/api/v1/wallet/transfers", headers=auth,
                           json={"from": "colony", "to": outsider, "amount": "1.5", "memo": "over http"})
        assert paid.status_code == 201, paid.text
        assert client.get(f"/api/v1/wallet/accounts/{outsider}", headers=auth).json()["balance"] == 1_500_000
        assert [p["resource"] for p in client.get("/api/v1/payments", headers=auth).json()] == ["/c/weather"]
        client.post("/login", data={"token": TOKEN}, follow_redirects=False)
        html = client.get("/wallet").text
        assert re.search(r'id="wallet-balances".*colony.*>18.5<', html, re.S) and "over http" in html
        assert _count(pg_url, "ledger_entries") == 3 and node.db.scalar("SELECT count(*) FROM ledger_entries") == 0


def test_the_market_moves_credits_on_postgresql_and_keeps_its_rows_there(node: Node, pg_url: str) -> None:
    node.keyring.create_agent("scout")
    assert cli("ledger", "mint", "scout", "10", "--reason", "stake money").returncode == 0
    assert cli("ledger", "mint", "colony", "20", "--reason", "the poster's budget").returncode == 0
    staked = cli("market", "stake", "deposit", "scout", "2", "--key", "first stake", "--json")
    assert staked.returncode == 0, staked.stderr
    assert json.loads(staked.stdout)["staked"] == 2 * MICRO
    again = stakes.deposit(node, "scout", 2 * MICRO, key="first stake")  # the same key: staked once
    assert (again.staked, again.balance) == (2 * MICRO, 8 * MICRO)
    posted = cli("market", "post", "Summarise NOTES.md", "--reserve", "5", "--json")
    assert posted.returncode == 0, posted.stderr
    auction = json.loads(posted.stdout)["id"]
    proposal = gov.propose(node, SetMarketParam(name="slash_failed_bp", value=6_000))
    assert (proposal.total_weight, proposal.status) == (2 * MICRO, "voting")  # scout's stake, from PostgreSQL

    for table, rows in (("market_stake_holds", 1), ("market_stake_events", 1), ("market_auctions", 1),
                        ("market_events", 1), ("gov_proposals", 1), ("gov_snapshots", 1), ("gov_log", 1),
                        ("tasks", 1), ("ledger_holds", 1)):
        assert _count(pg_url, table) == rows, table
        assert node.db.scalar(f"SELECT count(*) FROM {table}") == 0, table  # nothing in the node's SQLite file
    market = Market(node)
    row = market.row(auction)
    assert (row["state"], row["poster_name"]) == ("open", "colony")
    assert market.tasks.get(row["task_id"]).state == "bidding"
    shown = cli("market", "show", auction[:8], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["state"] == "open", shown.stderr
    assert market.ledger.verify().ok

    # The database ties each stake record to its ledger hold, in the same database.
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.RaiseException, match="own account"):
        conn.execute("INSERT INTO market_stake_holds(hold_id, agent, account, origin, created_at) "
                     "SELECT hold_id, 'scout', %s, 'deposit', 0 FROM market_stake_holds", ("ab" * 32,))
    # A ledger kept elsewhere is refused before any credit moves.
    with pytest.raises(MarketLedgerElsewhereError, match="another database"):
        market_ledger(SqliteLedgerStore(node.db), market.db, node.keyring.node().schnorr_key)
