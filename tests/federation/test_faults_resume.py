"""A winner's node killed mid-task and restarted before the result deadline finishes the work, paid once.

Three `colony up` processes on loopback and the scripted model: a posts, ada (on b) wins over bob (on c).
ada's first model request hangs; b is killed (SIGKILL) while it waits for it and started again at once,
well before a's result deadline. b's durable queue resumes the task: the killed worker's lease expires,
the restarted node's worker claims the task again (attempt 2) and finishes it from its checkpoints;
ada's signed result goes to a, a approves it and pays ada exactly once from the escrow. Nothing is given
up and nothing is auctioned again; a's ledger and b's replica of it agree on the one payment.

"Not stalled" is asserted as well as "finished": the resumed attempt is claimed within the lease's
TTL plus one backoff of the restart, is the only attempt after the killed one (a lease lost on the
way would show as a third), and reaches its model request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fed_helpers import (
    POSTER_FUNDS,
    STAKE,
    WALLET,
    NodeProc,
    Script,
    approve_and_wait_paid,
    award_ended,
    awarded_to,
    check_nodes_sound,
    executing_on,
    is_ada,
    join,
    ledger_of,
    market_colony,
    post,
    remote_on,
    settings_of,
    wait_for,
)

from colony.federation import _replica_store, _store, remote_store
from colony.federation.remote_wire import RESULT_KIND
from colony.federation.replication import verify_replica
from colony.market import stakes
from colony.market.service import Market
from colony.node import Node
from colony.payments.journal import open_journal
from colony.store import open_database
from colony.testing import Reply, ScriptedModelServer

#: The winner's lease (renewed every third) and the result deadline, far beyond a restart and a lease.
LEASE_TTL_S, RESULT_TIMEOUT_S = 8.0, 300


@pytest.fixture
def colony(tmp_path: Path, script: tuple[Script, ScriptedModelServer]) -> Iterator[tuple[list[NodeProc], dict[str, str]]]:
    with market_colony(tmp_path, script[1].base_url, COLONY_TASK_LEASE_TTL_S=str(LEASE_TTL_S),
                       COLONY_MARKET_RESULT_TIMEOUT_S=str(RESULT_TIMEOUT_S),
                       COLONY_MARKET_AWARD_GRACE_S="60") as found:
        yield found


def task_on(n: NodeProc, auction_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``n``'s task for a remote auction it won: its row and its events, oldest first."""
    db = open_database(n.home / "colony.db")
    try:
        row = remote_store.get_remote(db, auction_id)
        assert row is not None and row["task_id"], row
        task = db.one("SELECT * FROM tasks WHERE id = ?", (row["task_id"],))
        events = db.query("SELECT from_state, to_state, actor, reason, at FROM task_events WHERE task_id = ? "
                          "ORDER BY id", (row["task_id"],))
        assert task is not None
        return task, events
    finally:
        db.close()


def test_a_winner_killed_mid_task_and_restarted_in_time_finishes_it_and_is_paid_once(
        colony: tuple[list[NodeProc], dict[str, str]], script: tuple[Script, ScriptedModelServer]) -> None:
    (a, b, c), keys = colony
    plan, model = script
    join(a, b, c)

    plan.ada.append(Reply.hang())  # ada's first model request never answers: b dies waiting for it
    job = post(a, "Write digit_sum(n).")
    wait_for("ada's award", lambda: awarded_to(a, job, keys["ada"]), timeout=30)
    wait_for("b to run the task", lambda: executing_on(b, job), timeout=30)
    wait_for("ada's model request", lambda: any(is_ada(r) for r in model.requests), timeout=30)
    killed_worker = task_on(b, job)[0]["lease_owner"]
    b.kill()

    b.start()  # same home, same port: a's messages to b find it again
    b.wait_ready()
    restarted = b.proc.pid if b.proc else None
    wait_for("the resumed task to finish on b", lambda: remote_on(b, job) in (("won", "completed"),
                                                                            ("paid", "completed")),
             timeout=LEASE_TTL_S + 60)
    price = approve_and_wait_paid(a, job)
    wait_for("b to record the payment", lambda: remote_on(b, job) == ("paid", "completed"), timeout=30)

    # b: the killed attempt's lease was taken back, the restarted node's worker claimed the task again and
    # finished it.
    task, events = task_on(b, job)
    assert task["state"] == "completed" and task["attempts"] == 2, events
    starts = [e for e in events if e["to_state"] == "executing"]
    assert [e["actor"] for e in starts] == [killed_worker, f"{killed_worker.rsplit(':', 1)[0]}:{restarted}"]
    [reaped] = [e for e in events if e["actor"] == "reaper"]
    # Taken back as soon as the restarted node saw its old worker's process gone, or at the lease's expiry
    # if that came first (the restart can outlast what was left of the 8 s lease).
    assert ("process is gone" in reaped["reason"] or "expired" in reaped["reason"]), reaped
    assert reaped["to_state"] == "retry_wait"
    # Not stalled: claimed again within a lease and a backoff of the reap, and the model was asked again.
    assert starts[1]["at"] - reaped["at"] < LEASE_TTL_S, events
    assert sum(is_ada(r) for r in model.requests) == 2  # the hung request, then the resumed one

    # a: one auction, its award never given up; the result came once; ada paid once from the escrow.
    node, store = ledger_of(a)
    try:
        market = Market(node)
        assert [r["id"] for r in market.posted(["open", "awarded", "paid", "cancelled", "refunded"])] == [job]
        assert award_ended(a, job) is None and market.row(job)["state"] == "paid"
        hold = market.hold(market.row(job)["escrow_hold"])
        assert hold is not None and (hold.state, hold.captured_to, hold.amount) == ("captured", keys["ada"], price)
        assert store.account(keys["ada"]).balance == price
        assert store.account(keys["a:colony"]).balance == POSTER_FUNDS - price
        assert store.account(keys["a:colony"]).held == 0
        out = [(p.status, p.amount, p.pay_to) for p in open_journal(node.db, node.settings).payments(limit=20)
               if p.direction == "out"]
        assert out == [("settled", str(price), keys["ada"])]
        results = [r for r in _store.list_inbox(node.db, b.pubkey) if r["kind"] == RESULT_KIND]
        assert len(results) == 1 and results[0]["handled_at"] is not None
        assert remote_store.stale_results(node.db) == []
    finally:
        node.db.close()

    # b: paid once (the escrow's capture), ada's bond and stake lock released, nothing slashed.
    node, store = ledger_of(b)
    try:
        row = remote_store.get_remote(node.db, job)
        assert row is not None and row["paid_tx"] == hold.id and row["result_sent_at"] is not None
        received = [(p.status, p.amount, p.agent) for p in open_journal(node.db, node.settings).payments(limit=20)
                    if p.direction == "in"]
        assert received == [("settled", str(price), "ada")]
        assert store.account(keys["ada"]).balance == WALLET
        assert stakes.staked(node, "ada") == STAKE and stakes.locked(node, "ada") == 0
        assert [x["bond"] for x in remote_store.bid_rows(node.db, job)] == ["released"]
    finally:
        node.db.close()

    # b's replica of a's ledger comes to agree: ada credited the price once, the poster debited once.
    def replica_agrees() -> bool:
        db = Node(settings_of(b)).db
        try:
            heads = _replica_store.heads(db, a.pubkey)
            return heads.get(keys["ada"], (0, "", 0))[2] == price and \
                heads.get(keys["a:colony"], (0, "", 0))[2] == POSTER_FUNDS - price and \
                verify_replica(db, a.pubkey).ok
        finally:
            db.close()

    wait_for("b's replica of a's ledger to show the payment", replica_agrees, timeout=60)

    node, store = ledger_of(c)
    try:  # c: bob lost: bond and stake lock released, wallet whole
        assert store.account(keys["bob"]).balance == WALLET and stakes.locked(node, "bob") == 0
        assert [x["bond"] for x in remote_store.bid_rows(node.db, job)] == ["released"]
    finally:
        node.db.close()
    check_nodes_sound((a, b, c), inbox_handled=False)
