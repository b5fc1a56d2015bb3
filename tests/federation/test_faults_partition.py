"""A partitioned node and a killed queen, with three `colony up` processes on loopback and the scripted model.

The nodes' roles follow their keys, so the queen (the lowest node key) is known before they start: the queen
posts in the partition test, the middle node's agent ada bids and wins, the highest node is cut off.

4. **Partition then heal.** The highest node (c) is stopped (SIGSTOP) for longer than three heartbeats, so
   the others see it dead; meanwhile a and b transfer credits, a's auction is won by ada on b, run there and
   paid, and notes are queued for c. After SIGCONT every message queued for c arrives once and in order,
   every node's replicas of the others' ledgers reach their roots, every ledger verifies and conserves its
   supply, and c's agent — paid on a's ledger before the cut — spends those credits only through a: the
   settled authorisation is refused a second time, and b's facilitator cannot settle it at all.
5. **The queen killed while work is in flight.** The highest node posts an auction; while it is open the
   queen is killed (SIGKILL); the survivors agree on a new term with the middle node as queen, and the
   auction completes: awarded to ada, the result returned, paid once through x402 on the poster's ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from fed_helpers import HEARTBEAT_S, NodeProc, wait_for
from test_colony_processes import agreed
from test_colony_wiring import ledger_root, replica_of
from test_remote_market_processes import (
    ANSWER,
    COSTS,
    POSTER_FUNDS,
    STAKE,
    WALLET,
    auction,
    ledger_of,
    prepare,
    settings_of,
)
from x402.schemas import PaymentPayload, PaymentRequirements

from colony.federation import NOTE_KIND, _store, remote_store, send
from colony.federation.replication import verify_replica
from colony.ledger import MICRO
from colony.market.service import Market
from colony.node import Node
from colony.payments.credits import CREDITS_NETWORK, CREDITS_SCHEME, UNIT, CreditsClientScheme
from colony.payments.journal import open_journal
from colony.store import open_database
from colony.testing import Reply, ScriptedModelServer

#: The facilitator secret every node shares with the test, which settles payments as a peer would.
SECRET = "partition-test-facilitator-secret"
#: Credits a's colony agent pays c's on a's ledger before the cut, and what c's agent then spends there.
PAID_TO_C, SPENT_BY_C = 5 * MICRO, 2 * MICRO
NOTES = 3
Trio = tuple[list[NodeProc], dict[str, str]]


@pytest.fixture
def model() -> Iterator[ScriptedModelServer]:
    server = ScriptedModelServer(lambda body: Reply.text(ANSWER))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def trio(tmp_path: Path, model: ScriptedModelServer) -> Iterator[Trio]:
    """Three joined nodes ordered by node key (queen first); ada on the middle one; every colony agent funded."""
    nodes = [NodeProc(f"n{i}", tmp_path) for i in range(3)]
    keys: dict[str, str] = {}
    for n in nodes:
        n.env.update(COLONY_MARKET_ENABLED="true", COLONY_MARKET_INTERVAL_S="0.3", COLONY_MODEL_NAME="scripted",
                     COLONY_MODEL_BASE_URL=model.base_url, COLONY_RETRY_BASE_DELAY_S="0.01",
                     COLONY_FEDERATION_SYNC_EVERY="2", COLONY_X402_FACILITATOR_SECRET=SECRET)
        keys.update({f"{n.name}:{k}": v for k, v in prepare(n, {}).items()})
    nodes.sort(key=lambda n: keys[f"{n.name}:node"])
    keys.update(prepare(nodes[1], {"ada": COSTS["ada"]}))
    try:
        for n in nodes:
            n.start()
        for n in nodes:
            n.wait_ready()
        a, b, c = nodes
        for joiner, host in ((b, a), (c, a), (b, c)):  # everyone joins everyone, with invites
            token = host.api("POST", "/api/v1/peers/invites", json={}).json()["token"]
            r = joiner.api("POST", "/api/v1/peers", json={"url": host.url, "invite": token, "pubkey": host.pubkey})
            assert r.status_code == 200 and r.json()["joined"] is True, r.text
        assert a.pubkey < b.pubkey < c.pubkey
        yield nodes, keys
    finally:
        for n in nodes:
            n.stop()


def settle(nodes: list[NodeProc], poster: NodeProc, worker: NodeProc) -> int:
    """Wait for every node to follow the lowest key and the poster to know ada; returns the term."""
    term = wait_for("everyone live and following the lowest key", lambda: agreed(nodes, nodes[0].pubkey))
    wait_for(f"{poster.name} to know ada", lambda: any(
        p["pubkey"] == worker.pubkey and "ada" in p["agents"] for p in poster.peers()["peers"]))
    return term


def is_dead(n: NodeProc, peer: NodeProc) -> bool:
    """Whether ``n`` sees ``peer`` dead (not heard from for its live window)."""
    return not next(p for p in n.peers()["peers"] if p["pubkey"] == peer.pubkey)["live"]


def post(poster: NodeProc, goal: str, commit_s: int) -> str:
    r = poster.api("POST", "/api/v1/market/auctions", json={
        "goal": goal, "skills": ["python"], "reserve": 20 * MICRO, "verification": "approval", "commit_s": commit_s,
        "reveal_s": 2})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def complete(poster: NodeProc, worker: NodeProc, auction_id: str, ada: str) -> int:
    """The award goes to ada, her result comes back, the poster approves it and pays; returns the price."""
    detail = wait_for("ada's award", lambda: (d := auction(poster, auction_id))["state"] == "awarded" and d,
                      timeout=30)
    assert detail["winner"] == ada
    wait_for("the result on the poster", lambda: auction(poster, auction_id)["task_state"] == "completed",
             timeout=30)
    r = poster.api("POST", f"/api/v1/market/auctions/{auction_id}/verdict", json={"passed": True})
    assert r.status_code == 200, r.text
    wait_for("the payment", lambda: auction(poster, auction_id)["state"] == "paid", timeout=30)
    wait_for(f"{worker.name} to settle ada's side", lambda: _remote_state(worker, auction_id) == "paid", timeout=30)
    return int(auction(poster, auction_id)["price"])


def _remote_state(n: NodeProc, auction_id: str) -> str | None:
    db = open_database(n.home / "colony.db")
    try:
        row = remote_store.get_remote(db, auction_id)
        return str(row["state"]) if row else None
    finally:
        db.close()


def transfer(n: NodeProc, source: str, to: str, amount: int) -> None:
    r = n.api("POST", "/api/v1/wallet/transfers", json={"from": source, "to": to, "amount": f"{amount}u"})
    assert r.status_code == 201, r.text


def paid_once(poster: NodeProc, worker: NodeProc, auction_id: str, ada: str, price: int) -> None:
    """The poster's escrow was captured to ada and journalled once; the worker journalled it received once."""
    node, store = ledger_of(poster)
    try:
        market = Market(node)
        hold = market.hold(market.row(auction_id)["escrow_hold"])
        assert hold is not None and (hold.state, hold.captured_to) == ("captured", ada)
        assert store.account(ada).balance >= price
        out = [(p.status, p.amount, p.pay_to) for p in open_journal(node.db, node.settings).payments(limit=50)
               if p.direction == "out"]
        assert out == [("settled", str(price), ada)]
    finally:
        node.db.close()
    node, _ = ledger_of(worker)
    try:
        received = [(p.status, p.amount, p.agent) for p in open_journal(node.db, node.settings).payments(limit=50)
                    if p.direction == "in"]
        assert received == [("settled", str(price), "ada")]
    finally:
        node.db.close()


def ledger_sound(n: NodeProc, minted: int) -> None:
    """The ledger verifies, and what its accounts hold (balances and holds) is exactly what was minted."""
    report = n.api("GET", "/api/v1/ledger/verify").json()
    assert report["ok"] is True and report["problems"] == [], report
    node, store = ledger_of(n)
    try:
        assert store.supply() == minted == report["supply"]
        assert sum(x.balance + x.held for x in store.accounts()) == minted
    finally:
        node.db.close()


def clean(n: NodeProc) -> None:
    """Nothing was refused along the way and nothing crashed."""
    db = open_database(n.home / "colony.db")
    try:
        assert _store.list_incidents(db) == [], n.name
    finally:
        db.close()
    assert "Traceback" not in n.log(), n.log()[-3000:]


# -- 4. partition then heal ---------------------------------------------------------------------------
def test_a_stopped_node_comes_back_to_converged_ledgers_its_messages_once_in_order_and_no_credit_spent_twice(
        trio: Trio) -> None:
    (a, b, c), keys = trio
    term = settle([a, b, c], a, b)
    ada, a_colony, c_colony = keys["ada"], keys[f"{a.name}:colony"], keys[f"{c.name}:colony"]
    transfer(a, "colony", c_colony, PAID_TO_C)  # c's agent is paid on a's ledger before the cut

    c.signal(signal.SIGSTOP)
    try:
        stopped_at, cut_at = time.monotonic(), time.time()
        for n in (a, b):
            wait_for(f"{n.name} to see c dead", partial(is_dead, n, c), timeout=10)
        # Ledger activity on a and b, and a cross-node auction between them, while c cannot hear.
        transfer(a, "colony", ada, 1 * MICRO)
        transfer(b, "colony", a_colony, 2 * MICRO)
        sent = {n.pubkey: _queue_notes(n, c, "before") for n in (a, b)}
        job = post(a, "Write digit_sum(n).", commit_s=3)
        price = complete(a, b, job, ada)
        for n in (a, b):
            sent[n.pubkey] += _queue_notes(n, c, "after")
        assert time.monotonic() - stopped_at > 3 * HEARTBEAT_S
        for n in (a, b):  # nothing reached c: its messages (notes, the auction's, …) wait in the senders' outboxes
            db = open_database(n.home / "colony.db")
            try:
                waiting = [r for r in _store.outbox_rows(db, c.pubkey) if r["created_at"] > cut_at]
            finally:
                db.close()
            assert [r["delivered_at"] for r in waiting] == [None] * len(waiting)
            assert len([r for r in waiting if r["kind"] == NOTE_KIND]) == 2 * NOTES
    finally:
        c.signal(signal.SIGCONT)

    for n in (a, b):
        delivered_once_in_order(n, c, sent[n.pubkey])
    assert wait_for("the colony to settle again", lambda: agreed([a, b, c], a.pubkey), timeout=20) == term
    paid_once(a, b, job, ada, price)
    converged([a, b, c])
    ledger_sound(a, POSTER_FUNDS)
    ledger_sound(b, POSTER_FUNDS + WALLET + STAKE)
    ledger_sound(c, POSTER_FUNDS)
    spent_only_at_home(a, b, c_colony, a_colony, c)
    for n in (a, b, c):
        clean(n)


def _queue_notes(sender: NodeProc, to: NodeProc, tag: str) -> list[str]:
    node = Node(settings_of(sender))
    try:
        return [send(node, to.pubkey, NOTE_KIND, json.dumps({"tag": tag, "n": i})).id for i in range(NOTES)]
    finally:
        node.db.close()


def delivered_once_in_order(sender: NodeProc, to: NodeProc, sent: list[str]) -> None:
    """Every message ``sender`` queued for ``to`` is in ``to``'s inbox once, numbered 1..n without a gap, and
    handled (notes have no handler: they stay as they came)."""
    def all_delivered() -> bool:
        db = open_database(sender.home / "colony.db")
        try:
            return all(r["delivered_at"] is not None for r in _store.outbox_rows(db, to.pubkey))
        finally:
            db.close()

    def unhandled() -> list[tuple[int, int, str | None]]:
        db = open_database(to.home / "colony.db")
        try:
            return [(r["seq"], r["kind"], r["error"]) for r in _store.list_inbox(db, sender.pubkey)
                    if r["handled_at"] is None and r["kind"] != NOTE_KIND]  # notes have no handler: kept
        finally:
            db.close()

    wait_for(f"{sender.name}'s outbox to {to.name} to drain", all_delivered, timeout=30)
    try:
        wait_for(f"{to.name} to handle {sender.name}'s messages", lambda: unhandled() == [] or None, timeout=20)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; unhandled (seq, kind, error): {unhandled()}") from exc
    out_db, in_db = open_database(sender.home / "colony.db"), open_database(to.home / "colony.db")
    try:
        outbox = _store.outbox_rows(out_db, to.pubkey)
        inbox = _store.list_inbox(in_db, sender.pubkey)
    finally:
        out_db.close()
        in_db.close()
    assert [r["seq"] for r in inbox] == list(range(1, len(inbox) + 1))  # no gap, no duplicate
    assert [(r["seq"], r["event_id"]) for r in inbox] == [(r["seq"], r["event_id"]) for r in outbox]
    assert len({r["event_id"] for r in inbox}) == len(inbox)
    assert [r["event_id"] for r in inbox if r["kind"] == NOTE_KIND] == sent  # the notes, in the order sent


def converged(nodes: list[NodeProc]) -> None:
    """Every node's replica of every other node's ledger has that ledger's root, and verifies."""
    for n in nodes:
        for origin in nodes:
            if origin is n:
                continue

            def caught_up(n: NodeProc = n, origin: NodeProc = origin) -> bool:
                root, r = ledger_root(origin), replica_of(n, origin)
                return bool(r["local_root"] == root and r["remote_root"] == root and r["in_sync"])

            wait_for(f"{n.name}'s replica of {origin.name} to reach its root", caught_up, timeout=30)
            db = open_database(n.home / "colony.db")
            try:
                report = verify_replica(db, origin.pubkey)
                assert report.ok, report.problems
            finally:
                db.close()


def _settle_at(n: NodeProc, payload: PaymentPayload, requirements: PaymentRequirements) -> dict[str, Any]:
    """POST the payment to ``n``'s facilitator as a peer would (HMAC under the shared secret)."""
    body = json.dumps({"x402Version": 2, "paymentPayload": payload.model_dump(by_alias=True, exclude_none=True),
                       "paymentRequirements": requirements.model_dump(by_alias=True, exclude_none=True)}).encode()
    mac = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    r = httpx.post(f"{n.url}/x402/settle", content=body, timeout=15,
                   headers={"content-type": "application/json", "x-colony-signature": mac})
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _requirements(ledger: str, pay_to: str) -> PaymentRequirements:
    return PaymentRequirements(scheme=CREDITS_SCHEME, network=CREDITS_NETWORK, asset=ledger, amount=str(SPENT_BY_C),
                               pay_to=pay_to, max_timeout_seconds=60, extra={"unit": UNIT, "decimals": 6})


def spent_only_at_home(a: NodeProc, b: NodeProc, payer: str, payee: str, c: NodeProc) -> None:
    """c's agent's credits on a's ledger: a settles its authorisation once; a second time, or at b, never."""
    node = Node(settings_of(c))
    try:
        key = node.keyring.schnorr_key("colony")
    finally:
        node.db.close()
    assert key.public_hex == payer
    on_a = _requirements(a.pubkey, payee)
    payload = PaymentPayload(payload=CreditsClientScheme(key).create_payment_payload(on_a), accepted=on_a)

    def balances() -> tuple[int, int]:
        node, store = ledger_of(a)
        try:
            mine, theirs = store.account(payer), store.account(payee)
            assert mine is not None and theirs is not None
            return mine.balance, theirs.balance
        finally:
            node.db.close()

    before = balances()
    assert before[0] == PAID_TO_C
    first = _settle_at(a, payload, on_a)
    assert first["success"] is True and first["transaction"], first
    after = balances()
    assert after == (before[0] - SPENT_BY_C, before[1] + SPENT_BY_C)
    again = _settle_at(a, payload, on_a)  # the same authorisation (same nonce) again
    assert again["success"] is False and again["errorReason"] == "invalid_credits_nonce_already_used", again
    assert balances() == after

    b_root = ledger_root(b)
    elsewhere = _settle_at(b, payload, on_a)  # a's credits: only a's facilitator settles them
    assert elsewhere["success"] is False and elsewhere["errorReason"] == "invalid_credits_asset", elsewhere
    on_b = _requirements(b.pubkey, payee)  # the same authorisation against b's own ledger
    as_b = _settle_at(b, PaymentPayload(payload=payload.payload, accepted=on_b), on_b)
    assert as_b["success"] is False and as_b["errorReason"] == "insufficient_funds", as_b
    assert ledger_root(b) == b_root and balances() == after
    node, store = ledger_of(b)
    try:
        assert store.account(payer) is None  # c's agent has nothing on b's ledger, then or now
    finally:
        node.db.close()


# -- 5. the queen killed while work is in flight --------------------------------------------------------
def test_the_queen_killed_while_an_auction_is_open_another_node_takes_over_and_the_work_is_paid_once(
        trio: Trio) -> None:
    (queen, worker, poster), keys = trio
    term = settle([queen, worker, poster], poster, worker)
    job = post(poster, "Write digit_sum(n).", commit_s=8)
    wait_for(f"{worker.name} to hear of the auction", lambda: _remote_state(worker, job) == "open", timeout=10)
    assert auction(poster, job)["state"] == "open"
    queen.kill()

    survivors = [worker, poster]
    new_term = wait_for("the survivors to agree on a new queen", lambda: agreed(survivors, worker.pubkey), timeout=20)
    assert new_term == term + 1
    assert auction(poster, job)["state"] == "open"  # the takeover happened while the auction was open
    for n in survivors:
        assert n.peers()["me"]["role"] == ("queen" if n is worker else "member")
        assert is_dead(n, queen)

    price = complete(poster, worker, job, keys["ada"])
    paid_once(poster, worker, job, keys["ada"], price)
    detail = auction(poster, job)
    assert detail["escrow_state"] == "captured" and detail["winner"] == keys["ada"]
    node, store = ledger_of(poster)
    try:
        poster_colony = store.account(keys[f"{poster.name}:colony"])
        assert poster_colony is not None and (poster_colony.balance, poster_colony.held) == (POSTER_FUNDS - price, 0)
        assert store.account(keys["ada"]).balance == price
    finally:
        node.db.close()
    ledger_sound(poster, POSTER_FUNDS)
    ledger_sound(worker, POSTER_FUNDS + WALLET + STAKE)
    for n in survivors:
        clean(n)
