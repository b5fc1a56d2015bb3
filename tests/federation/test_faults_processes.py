"""A winner's node killed in the middle of the task it won, with three `colony up` processes on loopback.

Node a posts; ada (on b, the cheaper) and bob (on c) bid. The scripted model hangs ada's replies on cue,
so b is lost while it runs the task it won:

1. b is stopped (SIGSTOP) mid-task and continued before the result deadline: its result is taken and paid
   as usual;
2. b is killed (SIGKILL) and stays dead past the deadline: a gives the award up (escrow back to the poster, the auction cancelled,
   a signed notice to members) and auctions the task again; bob wins it, runs it on c and is paid. When b
   comes back it hears of the abandonment, cancels its task and frees ada's stake — not slashed, not paid.

Each piece of work is paid exactly once (a's ledger and journal say so), every ledger verifies, and no node
recorded an incident.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fed_helpers import (
    ANSWER,
    POSTER_FUNDS,
    STAKE,
    WALLET,
    NodeProc,
    Script,
    approve_and_wait_paid,
    auction,
    award_ended,
    awarded_to,
    check_nodes_sound,
    executing_on,
    join,
    ledger_of,
    market_colony,
    post,
    remote_on,
    wait_for,
)

from colony.federation import remote_store
from colony.market import stakes
from colony.market.service import Market
from colony.payments.journal import open_journal
from colony.store import open_database
from colony.testing import Reply, ScriptedModelServer

#: Seconds a member's winner has for its result after the award, and a member waits for an award.
RESULT_TIMEOUT_S, AWARD_GRACE_S = 14, 30


@pytest.fixture
def colony(tmp_path: Path, script: tuple[Script, ScriptedModelServer]) -> Iterator[tuple[list[NodeProc], dict[str, str]]]:
    with market_colony(tmp_path, script[1].base_url, COLONY_TASK_LEASE_TTL_S="60",
                       COLONY_MARKET_RESULT_TIMEOUT_S=str(RESULT_TIMEOUT_S),
                       COLONY_MARKET_AWARD_GRACE_S=str(AWARD_GRACE_S)) as found:
        yield found


def test_a_winner_killed_mid_task_is_resumed_in_time_or_given_up_and_the_work_is_paid_once(
        colony: tuple[list[NodeProc], dict[str, str]], script: tuple[Script, ScriptedModelServer]) -> None:
    (a, b, c), keys = colony
    plan, _ = script
    join(a, b, c)

    # 1. b stops (SIGSTOP) mid-task and comes back before the result deadline: a takes the result as usual.
    plan.ada.append(Reply.text(ANSWER, delay_s=2))
    first = post(a, "Write digit_sum(n).")
    wait_for("ada's award", lambda: awarded_to(a, first, keys["ada"]), timeout=30)
    wait_for("b to run the task", lambda: executing_on(b, first), timeout=20)
    b.signal(signal.SIGSTOP)
    time.sleep(4)
    b.signal(signal.SIGCONT)
    first_price = approve_and_wait_paid(a, first)
    db = open_database(a.home / "colony.db")
    try:
        assert remote_store.award_row(db, first)["ended"] is None  # type: ignore[index]
    finally:
        db.close()

    # 2. b is killed mid-task and stays dead past the result deadline: a gives the award up and re-auctions.
    plan.ada.append(Reply.hang())
    second = post(a, "Write digit_product(n).")
    wait_for("ada's second award", lambda: awarded_to(a, second, keys["ada"]), timeout=30)
    wait_for("b to run the second task", lambda: executing_on(b, second), timeout=20)
    b.kill()
    given_up = wait_for("a to give the award up", lambda: award_ended(a, second), timeout=RESULT_TIMEOUT_S + 15)
    assert given_up["ended"] == "abandoned" and given_up["reauction"]
    again = given_up["reauction"]
    detail = auction(a, second)
    assert detail["state"] == "cancelled" and detail["escrow_state"] == "released"
    wait_for("bob's award", lambda: awarded_to(a, again, keys["bob"]), timeout=30)
    assert auction(a, again)["task_id"] == detail["task_id"]  # the same task, auctioned again
    bob_price = approve_and_wait_paid(a, again)

    # b comes back. Its restarted worker takes the killed worker's task back at once (that process is gone)
    # and may finish it before a's cancel notice arrives: then its late result is declined on a; else the
    # notice cancels the task. Either way the award ends refunded on b and the work is not paid twice.
    b.start()
    b.wait_ready()
    ended = wait_for("b to hear of the abandonment", lambda: (r := remote_on(b, second)) is not None
                     and r[0] == "refunded" and r[1] in ("cancelled", "completed") and r, timeout=30)
    if ended[1] == "completed":
        def declined() -> bool:
            db = open_database(a.home / "colony.db")
            try:
                return any(r["auction"] == second and r["winner"] == keys["ada"] for r in remote_store.stale_results(db))
            finally:
                db.close()

        wait_for("a to decline b's late result", declined, timeout=30)
    check_ledgers(a, b, c, keys, first, second, again, first_price, bob_price)


def check_ledgers(a: NodeProc, b: NodeProc, c: NodeProc, keys: dict[str, str], first: str, second: str, again: str,
                  first_price: int, bob_price: int) -> None:
    poster = keys["a:colony"]
    node, store = ledger_of(a)
    try:  # a: ada paid once (the first task), bob once (the re-auction); the given-up escrow went back
        assert store.account(keys["ada"]).balance == first_price
        assert store.account(keys["bob"]).balance == bob_price
        assert store.account(poster).balance == POSTER_FUNDS - first_price - bob_price
        assert store.account(poster).held == 0
        market = Market(node)
        assert market.hold(market.row(second)["escrow_hold"]).state == "released"  # type: ignore[union-attr]
        out = [(p.status, p.amount, p.pay_to) for p in open_journal(node.db, node.settings).payments(limit=20)
               if p.direction == "out"]
        assert sorted(out) == sorted([("settled", str(first_price), keys["ada"]),
                                      ("settled", str(bob_price), keys["bob"])])
        assert market.row(again)["state"] == "paid" and market.verification(second) is None
    finally:
        node.db.close()
    node, store = ledger_of(b)
    try:  # b: ada not slashed, no lock left, bonds back; the abandoned award recorded as such
        assert stakes.staked(node, "ada") == STAKE and stakes.locked(node, "ada") == 0
        assert store.account(keys["ada"]).balance == WALLET
        assert sorted(x["bond"] for x in remote_store.bid_rows(node.db)) == ["released", "released"]
        assert remote_store.get_end(node.db, second)["cause"] == "abandoned"  # type: ignore[index]
        received = [(p.amount, p.agent) for p in open_journal(node.db, node.settings).payments(limit=20)
                    if p.direction == "in"]
        assert received == [(str(first_price), "ada")]
    finally:
        node.db.close()
    node, store = ledger_of(c)
    try:
        assert stakes.locked(node, "bob") == 0 and store.account(keys["bob"]).balance == WALLET
    finally:
        node.db.close()
    check_nodes_sound((a, b, c), inbox_handled=False)
