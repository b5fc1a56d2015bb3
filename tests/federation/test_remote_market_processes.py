"""Work across nodes with three `colony up` processes on loopback and the scripted model; every node on
SQLite, then the poster's and the winner's nodes on PostgreSQL.

Node a posts two tasks for auction (verified by a person's approval); agents on b (ada) and c (bob)
bid in a's auctions by commit–reveal over HTTP; ada, the cheaper, wins both at bob's price (reverse
Vickrey) and runs them on b; the results come back signed by ada. a approves one: ada is paid exactly
once, through x402 (credits) on a's ledger, from the escrow; a rejects the other: the escrow goes back
to the poster and b slashes ada's stake (to the poster's account). Losers' bonds and stake locks are
released on their home ledgers, every ledger verifies, and supply is conserved.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fed_helpers import (
    ANSWER,
    COSTS,
    POSTER_FUNDS,
    STAKE,
    WALLET,
    NodeProc,
    Script,
    auction,
    check_nodes_sound,
    join,
    ledger_of,
    market_colony,
    post,
    prepare,
    sealed_bids,
    settings_of,
    wait_for,
)

from colony.federation import remote_store
from colony.market import stakes
from colony.market.service import Market
from colony.market.stake import settle_verification
from colony.node import Node
from colony.payments.journal import open_journal
from colony.testing import ScriptedModelServer

#: test_faults_partition imports the colony's shared pieces from here (they live in fed_helpers now).
__all__ = ["ANSWER", "COSTS", "POSTER_FUNDS", "STAKE", "WALLET", "auction", "ledger_of", "prepare", "settings_of"]


@pytest.fixture(params=["sqlite", "postgres"])
def colony(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[list[NodeProc], dict[str, str]]]:
    """Every node on SQLite; or the poster's node (a) and the winner's (b) each on a PostgreSQL database of
    its own — market, ledger, tasks and payments there, federation state in the node's file (node-local)
    — and c on SQLite."""
    server = request.getfixturevalue("pg_server") if request.param == "postgres" else None
    names = {n: f"fed_{n}_{uuid.uuid4().hex[:10]}" for n in ("a", "b")} if server is not None else {}
    only = {n: {"COLONY_DATABASE_URL": server.create_database(name)} for n, name in names.items()} if server else None
    try:
        with ScriptedModelServer(Script()) as model, market_colony(tmp_path, model.base_url, only=only) as found:
            yield found
    finally:
        for name in names.values():
            server.drop_database(name)  # type: ignore[union-attr]


def test_a_task_is_bid_for_across_nodes_run_by_the_winner_and_paid_once_through_x402(
        colony: tuple[list[NodeProc], dict[str, str]]) -> None:
    (a, b, c), keys = colony
    join(a, b, c)

    good = post(a, "Write digit_sum(n).", commit_s=6, reveal_s=4)
    bad = post(a, "Write digit_product(n).", commit_s=6, reveal_s=4)
    for one in (good, bad):
        done = wait_for("the award", lambda one=one: auction(a, one)["state"] == "awarded" or None,
                        timeout=30)
        assert done
    sealed = {**sealed_bids(b), **sealed_bids(c)}  # what each home node committed to, by (auction, bidder)
    for one in (good, bad):
        detail = auction(a, one)
        # Both bids arrived over HTTP from their home nodes, revealed as sealed; ada (cheaper) wins at bob's bid.
        bids = {x["bidder"]: (x["amount"], x["outcome"]) for x in detail["bids"]}
        assert bids == {keys["ada"]: (sealed[one, keys["ada"]], "won"),
                        keys["bob"]: (sealed[one, keys["bob"]], "lost")}
        assert bids[keys["ada"]][0] < bids[keys["bob"]][0]
        assert detail["winner"] == keys["ada"] and detail["price"] == bids[keys["bob"]][0]
        assert detail["winner_name"].startswith("ada@") and detail["escrow_state"] == "held"
        assert a.api("GET", f"/api/v1/market/auctions/{one}/recheck").json()["ok"] is True
    price = auction(a, good)["price"]

    # ada runs both tasks on b; the signed results complete a's copies.
    for one in (good, bad):
        wait_for("the result on a", lambda one=one: auction(a, one)["task_state"] == "completed", timeout=40)
    r = a.api("POST", f"/api/v1/market/auctions/{good}/verdict", json={"passed": True})
    assert r.status_code == 200, r.text
    r = a.api("POST", f"/api/v1/market/auctions/{bad}/verdict", json={"passed": False, "reason": "wrong"})
    assert r.status_code == 200 and r.json()["state"] == "refunded", r.text
    wait_for("the payment", lambda: auction(a, good)["state"] == "paid", timeout=30)
    slash = settle_verification(price, False).slashed
    assert slash > 0

    def settled_on_b() -> bool:
        db = Node(settings_of(b)).db
        try:
            states = {r["id"]: r["state"] for r in remote_store.remote_rows(db, ["paid", "refunded"])}
        finally:
            db.close()
        return states == {good: "paid", bad: "refunded"}

    wait_for("b to settle its winner's stake", settled_on_b, timeout=30)
    check_ledgers(a, b, c, keys, good, bad, price, slash)


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
    check_nodes_sound((a, b, c))
