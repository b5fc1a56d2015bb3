"""A winner's node that restarts sends its result once, and the poster takes only the first it gets.

The member side (`remote_bidding.send_results`) queues the signed result and records it sent in one
transaction, so a node restarted after sending does not sign and send another; on the poster's side
(`remote_market.on_result`) a second result for the same award — the same event delivered again, or
another one signed later — changes nothing once the first completed the task. Two real nodes in
process, with the handlers fed the envelopes the outbox would deliver (as tests/federation/test_remote_market.py).
"""

from __future__ import annotations

import test_remote_market
from test_remote_market import Pair, _award

from colony.federation import _store, remote_bidding, remote_market, remote_store
from colony.federation.remote_wire import AWARD_KIND, RESULT_KIND, ResultBody, ResultNotice, result_event
from colony.identity.events import Event
from colony.market.service import Market

pair = test_remote_market.pair  # the two nodes and a's auction, as that module's tests have them


def test_a_result_is_sent_once_across_restarts_and_a_second_one_changes_nothing(pair: Pair) -> None:
    remote_bidding.on_award(pair.b, pair.envelope(pair.a, AWARD_KIND, _award(pair)))
    row = remote_store.get_remote(pair.b.db, pair.auction)
    assert row is not None and row["state"] == "won"
    tasks_b = Market(pair.b).tasks
    lease = tasks_b.claim_assigned("market@b:2", 60)  # the restarted node's worker resumes and finishes it
    assert lease is not None and lease.task_id == row["task_id"]
    tasks_b.complete(lease, "def digit_sum(n): ...")

    a_key = pair.a.keyring.node().public_hex
    assert remote_bidding.send_results(Market(pair.b)) == [f"result of {pair.auction[:12]} sent (completed)"]
    assert remote_bidding.send_results(Market(pair.b)) == []  # a pass after another restart: already sent
    queued = [Event.model_validate_json(r["event"]) for r in _store.pending(pair.b.db, a_key)]
    results = [e for e in queued if e.kind == RESULT_KIND]
    assert len(results) == 1

    market_a = Market(pair.a)
    task_id = market_a.row(pair.auction)["task_id"]
    remote_market.on_result(pair.a, pair.envelope(pair.b, RESULT_KIND, results[0].content))
    remote_market.on_result(pair.a, pair.envelope(pair.b, RESULT_KIND, results[0].content))  # delivered again
    later = result_event(pair.b.keyring.schnorr_key("ada"), ResultBody(
        auction=pair.auction, task_id=row["task_id"], status="completed", result="something else"))
    remote_market.on_result(pair.a, pair.envelope(pair.b, RESULT_KIND, ResultNotice(result=later).model_dump_json()))

    task = market_a.tasks.get(task_id)
    assert (task.state, task.result) == ("completed", "def digit_sum(n): ...")
    assert [e.to_state for e in market_a.tasks.events(task_id)].count("completed") == 1
    assert market_a.row(pair.auction)["state"] == "awarded"  # the verdict and the payment are still to come, once
    assert pair.incidents(pair.a) == [] and remote_store.stale_results(pair.a.db) == []
