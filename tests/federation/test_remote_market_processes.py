"""Work across nodes with three `colony up` processes on loopback and the scripted model.

Node a posts two tasks for auction (verified by a person's approval); agents on b (ada) and c (bob)
bid in a's auctions by commit–reveal over HTTP; ada, the cheaper, wins both at bob's price (reverse
Vickrey) and runs them on b; the results come back signed by ada. a approves one: ada is paid exactly
once, through x402 (credits) on a's ledger, from the escrow; a rejects the other: the escrow goes back
to the poster and b slashes ada's stake (to the poster's account). Losers' bonds and stake locks are
released on their home ledgers, every ledger verifies, and supply is conserved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fed_helpers import NodeProc, wait_for

from colony.config import Settings
from colony.federation import _store, remote_store
from colony.ledger import MICRO, open_ledger_store
from colony.market import stakes
from colony.market.cost import CostModel
from colony.market.profiles import AgentSpec, create_agent
from colony.market.service import Market
from colony.market.stake import settle_verification
from colony.node import Node
from colony.payments.journal import open_journal
from colony.testing import Reply, ScriptedModelServer

#: Bids above the stake-free 5 credits: a failed verification slashes part of the stake behind the price.
COSTS = {"ada": 3 * MICRO, "bob": 9 * MICRO // 2}
WALLET, STAKE, POSTER_FUNDS = 3 * MICRO, 5 * MICRO, 100 * MICRO
ANSWER = "```python\ndef digit_sum(n):\n    return sum(int(c) for c in str(abs(n)))\n```"


def settings_of(n: NodeProc) -> Settings:
    return Settings(home=n.home, key_passphrase_file=Path(n.env["COLONY_KEY_PASSPHRASE_FILE"]))


def prepare(n: NodeProc, agents: dict[str, int]) -> dict[str, str]:
    """Create ``n``'s agents (funded and staked) or fund its poster; returns name → account."""
    n.home.mkdir(parents=True, exist_ok=True)
    node = Node(settings_of(n))
    try:
        market = Market(node)
        keys = {}
        for name, cost in agents.items():
            create_agent(node.keyring, AgentSpec(name=name, persona=f"You are {name}, a Python programmer.",
                                                 skills=["python"], cost=CostModel(overhead=cost)))
            keys[name] = node.keyring.agent(name).public_hex
            market.ledger.mint(keys[name], WALLET + STAKE, "test: wallet")
            stakes.deposit(node, name, STAKE)
        if not agents:
            keys["colony"] = node.keyring.agent("colony").public_hex
            market.ledger.mint(keys["colony"], POSTER_FUNDS, "test: the poster's budget")
        keys["node"] = node.keyring.node().public_hex
        return keys
    finally:
        node.db.close()


@pytest.fixture
def model() -> Iterator[ScriptedModelServer]:
    server = ScriptedModelServer(lambda body: Reply.text(ANSWER))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def colony(tmp_path: Path, model: ScriptedModelServer) -> Iterator[tuple[list[NodeProc], dict[str, str]]]:
    nodes = [NodeProc(name, tmp_path) for name in ("a", "b", "c")]
    keys: dict[str, str] = {}
    for n, agents in zip(nodes, ({}, {"ada": COSTS["ada"]}, {"bob": COSTS["bob"]}), strict=True):
        n.env.update(COLONY_MARKET_ENABLED="true", COLONY_MARKET_INTERVAL_S="0.3", COLONY_MODEL_NAME="scripted",
                     COLONY_MODEL_BASE_URL=model.base_url, COLONY_RETRY_BASE_DELAY_S="0.01")
        keys.update({(f"{n.name}:{k}" if k in ("node", "colony") else k): v for k, v in prepare(n, agents).items()})
    try:
        for n in nodes:
            n.start()
        for n in nodes:
            n.wait_ready()
        yield nodes, keys
    finally:
        for n in nodes:
            n.stop()


def post(a: NodeProc, goal: str) -> dict[str, Any]:
    r = a.api("POST", "/api/v1/market/auctions", json={
        "goal": goal, "skills": ["python"], "reserve": 20 * MICRO, "verification": "approval", "commit_s": 6,
        "reveal_s": 4})
    assert r.status_code == 201, r.text
    detail: dict[str, Any] = r.json()
    return detail


def auction(a: NodeProc, auction_id: str) -> dict[str, Any]:
    r = a.api("GET", f"/api/v1/market/auctions/{auction_id}")
    assert r.status_code == 200, r.text
    detail: dict[str, Any] = r.json()
    return detail


def sealed_bids(n: NodeProc) -> dict[tuple[str, str], int]:
    db = Node(settings_of(n)).db
    try:
        return {(r["auction"], r["bidder"]): r["amount"] for r in remote_store.bid_rows(db)}
    finally:
        db.close()


def ledger_of(n: NodeProc) -> Any:
    node = Node(settings_of(n))
    return node, open_ledger_store(node.db, node.settings)


def test_a_task_is_bid_for_across_nodes_run_by_the_winner_and_paid_once_through_x402(
        colony: tuple[list[NodeProc], dict[str, str]]) -> None:
    (a, b, c), keys = colony
    for joiner in (b, c):
        token = a.api("POST", "/api/v1/peers/invites", json={}).json()["token"]
        r = joiner.api("POST", "/api/v1/peers", json={"url": a.url, "invite": token, "pubkey": a.pubkey})
        assert r.status_code == 200 and r.json()["joined"] is True, r.text

    def agents_known() -> bool:
        agents = {p["pubkey"]: set(p["agents"]) for p in a.peers()["peers"]}
        return "ada" in agents.get(b.pubkey, set()) and "bob" in agents.get(c.pubkey, set())

    wait_for("a to know b's and c's agents", agents_known)

    good, bad = post(a, "Write digit_sum(n)."), post(a, "Write digit_product(n).")
    for one in (good, bad):
        done = wait_for("the award", lambda one=one: auction(a, one["id"])["state"] == "awarded" or None,
                        timeout=30)
        assert done
    sealed = {**sealed_bids(b), **sealed_bids(c)}  # what each home node committed to, by (auction, bidder)
    for one in (good, bad):
        detail = auction(a, one["id"])
        # Both bids arrived over HTTP from their home nodes, revealed as sealed; ada (cheaper) wins at bob's bid.
        bids = {x["bidder"]: (x["amount"], x["outcome"]) for x in detail["bids"]}
        assert bids == {keys["ada"]: (sealed[one["id"], keys["ada"]], "won"),
                        keys["bob"]: (sealed[one["id"], keys["bob"]], "lost")}
        assert bids[keys["ada"]][0] < bids[keys["bob"]][0]
        assert detail["winner"] == keys["ada"] and detail["price"] == bids[keys["bob"]][0]
        assert detail["winner_name"].startswith("ada@") and detail["escrow_state"] == "held"
        assert a.api("GET", f"/api/v1/market/auctions/{one['id']}/recheck").json()["ok"] is True
    price = auction(a, good["id"])["price"]

    # ada runs both tasks on b; the signed results complete a's copies.
    for one in (good, bad):
        wait_for("the result on a", lambda one=one: auction(a, one["id"])["task_state"] == "completed", timeout=40)
    r = a.api("POST", f"/api/v1/market/auctions/{good['id']}/verdict", json={"passed": True})
    assert r.status_code == 200, r.text
    r = a.api("POST", f"/api/v1/market/auctions/{bad['id']}/verdict", json={"passed": False, "reason": "wrong"})
    assert r.status_code == 200 and r.json()["state"] == "refunded", r.text
    wait_for("the payment", lambda: auction(a, good["id"])["state"] == "paid", timeout=30)
    slash = settle_verification(price, False).slashed
    assert slash > 0

    def settled_on_b() -> bool:
        db = Node(settings_of(b)).db
        try:
            states = {r["id"]: r["state"] for r in remote_store.remote_rows(db, ["paid", "refunded"])}
        finally:
            db.close()
        return states == {good["id"]: "paid", bad["id"]: "refunded"}

    wait_for("b to settle its winner's stake", settled_on_b, timeout=30)
    check_ledgers(a, b, c, keys, good["id"], bad["id"], price, slash)


def check_ledgers(a: NodeProc, b: NodeProc, c: NodeProc, keys: dict[str, str], good: str, bad: str, price: int,
                  slash: int) -> None:
    poster = keys["a:colony"]
    # a: the winner's account on a's ledger got the price once, from the escrow; the other escrow went back.
    node, store = ledger_of(a)
    try:
        assert store.account(keys["ada"]).balance == price
        assert store.account(poster).balance == POSTER_FUNDS - price and store.account(poster).held == 0
        credits = [e for e in store.entries(keys["ada"], limit=50) if e.body.kind == "credit"]
        assert len(credits) == 1 and credits[0].body.amount == price
        market = Market(node)
        escrow = market.row(good)["escrow_hold"]
        assert market.hold(escrow).captured_to == keys["ada"]  # type: ignore[union-attr]
        assert market.hold(market.row(bad)["escrow_hold"]).state == "released"  # type: ignore[union-attr]
        out = [p for p in open_journal(node.db, node.settings).payments(limit=20) if p.direction == "out"]
        assert [(p.status, p.amount, p.pay_to) for p in out] == [("settled", str(price), keys["ada"])]
    finally:
        node.db.close()
    # b: ada's bonds released, slashed once for the failed task (to the poster's account), no lock left.
    node, store = ledger_of(b)
    try:
        assert store.account(keys["ada"]).balance == WALLET  # both bonds came back whole
        assert stakes.staked(node, "ada") == STAKE - slash and store.account(keys["ada"]).held == STAKE - slash
        assert store.account(poster).balance == slash  # the poster's account on b's ledger: the slash
        assert stakes.locked(node, "ada") == 0
        bids = remote_store.bid_rows(node.db)
        assert sorted(x["bond"] for x in bids) == ["released", "released"]
        row = remote_store.get_remote(node.db, good)
        assert row is not None and row["paid_tx"] == escrow  # the settlement's transaction: the escrow captured
        received = [p for p in open_journal(node.db, node.settings).payments(limit=20) if p.direction == "in"]
        assert [(p.status, p.amount, p.agent) for p in received] == [("settled", str(price), "ada")]
    finally:
        node.db.close()
    # c: bob lost both: bonds released, locks released, wallet whole.
    node, store = ledger_of(c)
    try:
        assert store.account(keys["bob"]).balance == WALLET and stakes.locked(node, "bob") == 0
        assert sorted(x["bond"] for x in remote_store.bid_rows(node.db)) == ["released", "released"]
    finally:
        node.db.close()
    for n in (a, b, c):
        db = Node(settings_of(n)).db
        try:
            assert _store.list_incidents(db) == [], n.name  # nothing was refused along the way
            assert all(r["handled_at"] is not None for r in _store.list_inbox(db)), n.name
        finally:
            db.close()
        assert "Traceback" not in n.log(), n.log()[-3000:]
        done = subprocess.run([sys.executable, "-m", "colony", "ledger", "verify"], env=n.env, capture_output=True,
                              text=True, timeout=60, cwd=os.getcwd())
        assert done.returncode == 0, done.stdout + done.stderr
