"""Governance: counting and states (pure, by hand), and the recorded lifecycle — snapshot weights,
quorum, timelock, one execution, the owner's veto (directly and through the approvals queue),
refused votes and forged events. Times are injected; stakes in credits are worked by hand:
ada 60, bob 30, cy 10 (total 100), dan none. The recorded lifecycle runs on both engines
(`engine`): the node's file, or PostgreSQL beside the ledger and the approvals queue.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from gov_helpers import DAY, T0, node_keyring, staked_agents
from pydantic import ValidationError

from colony.errors import StoreError
from colony.identity import Keyring, SchnorrKey
from colony.identity.events import Event
from colony.ledger import MICRO
from colony.market import gov_service as gov
from colony.market import stakes
from colony.market.events import MarketEventError, open_market
from colony.market.governance import (
    ACTION_ADAPTER,
    ExecutionBody,
    GovernanceError,
    GovernanceParams,
    SetMarketParam,
    SetPrice,
    SetToolTier,
    Terms,
    check_action,
    proposal_event,
    read_proposal,
    read_vote,
    status,
    tally,
    vote_event,
)
from colony.market.stakes import market_db
from colony.store.records import open_records

TIER = SetToolTier(agent="dan", tool="save_note", tier="allow")


# -- pure ---------------------------------------------------------------------------------------


def test_tally_counts_weights_against_the_quorum_by_hand() -> None:
    # Total 100, quorum 20 %: turnout × 10,000 ≥ 2,000 × 100 = 200,000 is needed.
    assert not tally([("yes", 15)], total=100, quorum_bp=2_000).quorum_met  # 150,000
    met = tally([("yes", 12), ("no", 8)], total=100, quorum_bp=2_000)  # 200,000: exactly the quorum
    assert met.quorum_met and met.passed and met.turnout == 20
    assert not tally([("yes", 10), ("no", 10)], total=100, quorum_bp=2_000).passed  # a tie does not pass
    assert tally([("yes", 1), ("abstain", 19)], total=100, quorum_bp=2_000).passed  # abstaining counts to quorum
    assert not tally([("yes", 0)], total=0, quorum_bp=1).quorum_met  # nothing staked: never a quorum
    with pytest.raises(ValueError, match="negative"):
        tally([("yes", -1)], total=100, quorum_bp=2_000)


def test_status_follows_the_clock_and_the_records() -> None:
    terms = Terms(created_at=0, voting_ends=100, executable_at=150, expires_at=250, quorum_bp=2_000)
    passed = tally([("yes", 30)], total=100, quorum_bp=2_000)
    failed = tally([("yes", 10)], total=100, quorum_bp=2_000)
    at = {now: status(terms, passed, now=now, vetoed=False, executed=None) for now in (99, 100, 149, 150, 249, 250)}
    assert at == {99: "voting", 100: "queued", 149: "queued", 150: "executable", 249: "executable", 250: "expired"}
    assert status(terms, failed, now=100, vetoed=False, executed=None) == "rejected"
    assert status(terms, passed, now=120, vetoed=True, executed=None) == "vetoed"
    assert status(terms, passed, now=300, vetoed=False, executed="applied") == "executed"
    assert status(terms, passed, now=300, vetoed=False, executed="failed") == "failed"


def test_equal_inputs_give_equal_outcomes_in_any_order() -> None:
    rng = random.Random(15)
    votes = [(rng.choice(("yes", "no", "abstain")), rng.randrange(0, 10 * MICRO)) for _ in range(200)]
    first = tally(votes, total=2_000 * MICRO, quorum_bp=2_500)
    for _ in range(5):
        rng.shuffle(votes)
        again = tally(votes, total=2_000 * MICRO, quorum_bp=2_500)
        assert again == first
        terms = Terms(0, 10, 20, 30, 2_500)
        assert [status(terms, again, now=n, vetoed=False, executed=None) for n in range(35)] == \
               [status(terms, first, now=n, vetoed=False, executed=None) for n in range(35)]


def test_actions_are_a_closed_typed_set() -> None:
    parsed = ACTION_ADAPTER.validate_python({"type": "set_tool_tier", "agent": "scout", "tool": "write_file",
                                             "tier": "allow"})
    assert parsed == SetToolTier(agent="scout", tool="write_file", tier="allow")
    for bad in ({"type": "run_prompt", "prompt": "hi"}, {"type": "set_tool_tier", "agent": "scout",
                "tool": "write_file", "tier": "deny"}, {"type": "expel_agent", "agent": "Scout"},
                {"type": "admit_agent", "agent": "scout", "extra": 1},
                {"type": "set_market_param", "name": "stake_bp", "value": "10"}):
        with pytest.raises(ValidationError):
            ACTION_ADAPTER.validate_python(bad)
    assert check_action(SetMarketParam(name="stake_bp", value=10_001)) == "stake_bp must be within 0..10000"
    assert check_action(SetMarketParam(name="voting_period_s", value=59)) is not None
    assert check_action(SetPrice(route="/c/x/*", pay_to="scout")) == "a price needs credits and/or evm_amount"
    assert check_action(SetMarketParam(name="quorum_bp", value=1)) is None


# -- recorded ------------------------------------------------------------------------------------


@pytest.fixture
def keyring(engine: str) -> Iterator[Keyring]:
    with node_keyring() as kr:
        staked_agents(kr, {"ada": 60 * MICRO, "bob": 30 * MICRO, "cy": 10 * MICRO, "dan": 0}, funds=100 * MICRO)
        yield kr


def test_a_passed_proposal_waits_out_its_timelock_and_executes_once(keyring: Keyring) -> None:
    p = gov.propose(keyring, TIER, by="ada", now=T0)
    assert (p.status, p.total_weight, p.quorum_bp, p.proposer_name) == ("voting", 100 * MICRO, 2_000, "ada")
    assert (p.voting_ends, p.executable_at, p.expires_at) == (T0 + DAY, T0 + 2 * DAY, T0 + 9 * DAY)
    # Stake added after the proposal counts for nothing: bob's weight stays his 30 credits.
    stakes.deposit(keyring, "bob", 50 * MICRO)
    gov.vote(keyring, p.id, "ada", "yes", now=T0 + 10)
    gov.vote(keyring, p.id, "bob", "no", now=T0 + 20)
    p = gov.vote(keyring, p.id, "dan", "yes", now=T0 + 30)  # no stake at the snapshot: weight 0
    assert {v.voter_name: (v.choice, v.weight) for v in p.votes} == {
        "ada": ("yes", 60 * MICRO), "bob": ("no", 30 * MICRO), "dan": ("yes", 0)}
    assert (p.yes, p.no, p.abstain, p.quorum_met, p.passed) == (60 * MICRO, 30 * MICRO, 0, True, True)
    with pytest.raises(GovernanceError) as twice:
        gov.vote(keyring, p.id, "ada", "no", now=T0 + 40)
    assert twice.value.reason == "duplicate"
    with pytest.raises(GovernanceError) as late:
        gov.vote(keyring, p.id, "cy", "no", now=T0 + DAY)
    assert late.value.reason == "closed"

    # The vote is over: queued behind the timelock, offered to a person for a veto meanwhile.
    assert gov.execute_due(keyring, now=T0 + DAY) == []
    assert gov.get_proposal(keyring, p.id, now=T0 + DAY).status == "queued"
    offer = open_records(keyring.db, keyring.settings).get_approval(gov.veto_approval_id(p.id))
    assert offer is not None and offer["status"] == "pending" and offer["tool"] == "governance.execute"
    assert gov.execute_due(keyring, now=T0 + 2 * DAY - 1) == []
    assert gov.agent_tool_tier(market_db(keyring), keyring.db, "dan", "save_note") is None

    [done] = gov.execute_due(keyring, now=T0 + 2 * DAY)
    assert (done.outcome, done.yes, done.no, done.abstain) == ("applied", 60 * MICRO, 30 * MICRO, 0)
    assert gov.execute_due(keyring, now=T0 + 2 * DAY) == [] and gov.execute_due(keyring, now=T0 + 3 * DAY) == []
    assert gov.agent_tool_tier(market_db(keyring), keyring.db, "dan", "save_note") == "allow"
    p = gov.get_proposal(keyring, p.id, now=T0 + 3 * DAY)
    assert p.status == "executed" and p.execution == done
    # The execution record is an event the node signed, carrying the tally it ran on.
    row = market_db(keyring).one("SELECT event FROM gov_executions WHERE proposal_id = ?", (p.id,))
    assert row is not None
    event = Event.model_validate_json(row["event"])
    body = open_market(event, ExecutionBody)
    assert event.pubkey == keyring.node().public_hex and (body.yes, body.no) == (60 * MICRO, 30 * MICRO)
    offer = open_records(keyring.db, keyring.settings).get_approval(gov.veto_approval_id(p.id))
    assert offer is not None and (offer["status"], offer["decided_by"]) == ("expired", "timelock")
    with pytest.raises(GovernanceError) as too_late:
        gov.veto(keyring, p.id, reason="changed my mind", now=T0 + 3 * DAY)
    assert too_late.value.reason == "closed"
    log = [(r["action"], r["agent"]) for r in gov._gov_store.list_log(market_db(keyring), proposal_id=p.id)]
    assert log == [("proposed", "ada"), ("voted", "ada"), ("voted", "bob"), ("voted", "dan"),
                   ("offered_veto", None), ("executed", None)]


def test_the_tally_is_recomputed_from_the_signed_events_alone(keyring: Keyring) -> None:
    p = gov.propose(keyring, TIER, now=T0)
    for name, choice, at in (("bob", "yes", 5), ("cy", "no", 6), ("ada", "abstain", 7)):
        gov.vote(keyring, p.id, name, choice, now=T0 + at)
    view = gov.get_proposal(keyring, p.id, now=T0 + DAY)
    db = market_db(keyring)
    snapshot = {r["account"]: r["weight"] for r in
                db.query("SELECT account, weight FROM gov_snapshots WHERE proposal_id = ?", (p.id,))}
    events = [Event.model_validate_json(r["event"]) for r in
              db.query("SELECT event FROM gov_votes WHERE proposal_id = ?", (p.id,))]
    recount = tally([(read_vote(e).choice, snapshot.get(e.pubkey, 0)) for e in events], total=sum(snapshot.values()),
                    quorum_bp=read_proposal(view.event, gov.current_params(market_db(keyring))).quorum_bp)
    assert (recount.yes, recount.no, recount.abstain) == (view.yes, view.no, view.abstain) == (
        30 * MICRO, 10 * MICRO, 60 * MICRO)
    assert recount.passed and view.status == "queued"


def test_without_quorum_a_proposal_is_rejected_and_never_runs(keyring: Keyring) -> None:
    p = gov.propose(keyring, TIER, by="cy", now=T0)
    p = gov.vote(keyring, p.id, "cy", "yes", now=T0 + 1)  # 10 of 100 credits: below the 20 % quorum
    assert (p.yes, p.quorum_met) == (10 * MICRO, False)
    assert gov.get_proposal(keyring, p.id, now=T0 + DAY).status == "rejected"
    assert gov.execute_due(keyring, now=T0 + 2 * DAY) == []
    assert gov.get_proposal(keyring, p.id, now=T0 + 5 * DAY).status == "rejected"
    assert gov.agent_tool_tier(market_db(keyring), keyring.db, "dan", "save_note") is None
    with pytest.raises(GovernanceError) as nothing:
        gov.veto(keyring, p.id, reason="no need", now=T0 + DAY)
    assert nothing.value.reason == "closed"


def test_only_the_owner_or_an_agent_with_stake_proposes(keyring: Keyring) -> None:
    with pytest.raises(GovernanceError) as dan:
        gov.propose(keyring, TIER, by="dan", now=T0)
    assert dan.value.reason == "not_allowed"
    stakes.deposit(keyring, "dan", MICRO // 2)  # below the 1-credit proposal stake
    with pytest.raises(GovernanceError):
        gov.propose(keyring, TIER, by="dan", now=T0)
    stakes.deposit(keyring, "dan", MICRO // 2)
    assert gov.propose(keyring, TIER, by="dan", now=T0).proposer_name == "dan"
    owner = gov.propose(keyring, SetToolTier(agent="ada", tool="save_note", tier="ask"), now=T0)
    assert owner.proposer_name == "node"
    with pytest.raises(GovernanceError) as ghost:
        gov.propose(keyring, SetToolTier(agent="ghost", tool="save_note", tier="allow"), now=T0)
    assert ghost.value.reason == "not_found"
    with pytest.raises(GovernanceError) as bounds:
        gov.propose(keyring, SetMarketParam(name="quorum_bp", value=0), now=T0)
    assert bounds.value.reason == "invalid"


def test_forged_stale_or_foreign_events_are_refused(keyring: Keyring) -> None:
    p = gov.propose(keyring, TIER, now=T0)
    ada = keyring.schnorr_key("ada")
    good = vote_event(ada, p.id, "yes", created_at=T0 + 5)
    forged_sig = good.model_copy(update={"sig": keyring.schnorr_key("bob").sign(bytes.fromhex(good.id)).hex()})
    flipped = good.model_copy(update={"content": good.content.replace('"yes"', '"no"')})
    for bad in (forged_sig, flipped):
        with pytest.raises(MarketEventError) as refused:
            gov.submit_vote(keyring, bad, now=T0 + 5)
        assert refused.value.reason == "bad_signature"
    with pytest.raises(GovernanceError) as stale:
        gov.submit_vote(keyring, vote_event(ada, p.id, "yes", created_at=T0 - 400), now=T0 + 5)
    assert stale.value.reason == "invalid"
    gov.submit_vote(keyring, good, now=T0 + 5)
    assert gov.submit_vote(keyring, good, now=T0 + 6).yes == 60 * MICRO  # the same event again: no change

    short = GovernanceParams(voting_period_s=60)  # a proposer choosing its own short window
    with pytest.raises(MarketEventError) as terms:
        gov.submit_proposal(keyring, proposal_event(ada, TIER, created_at=T0, params=short), now=T0)
    assert terms.value.reason == "wrong_terms"
    stranger = proposal_event(SchnorrKey.generate(), TIER, created_at=T0, params=GovernanceParams())
    with pytest.raises(GovernanceError) as foreign:
        gov.submit_proposal(keyring, stranger, now=T0)
    assert foreign.value.reason == "not_allowed"
    with pytest.raises(GovernanceError) as unknown:
        gov.vote(keyring, "ab" * 32, "ada", "yes", now=T0)
    assert unknown.value.reason == "not_found"


def test_the_owner_vetoes_any_time_before_execution(keyring: Keyring) -> None:
    during = gov.propose(keyring, TIER, now=T0)
    gov.vote(keyring, during.id, "ada", "yes", now=T0 + 1)
    vetoed = gov.veto(keyring, during.id, reason="not this agent", now=T0 + 2)
    assert vetoed.status == "vetoed" and vetoed.veto is not None and vetoed.veto.actor == "cli"
    assert gov.veto(keyring, during.id, reason="again", now=T0 + 3).veto == vetoed.veto  # no second veto
    with pytest.raises(GovernanceError) as closed:
        gov.vote(keyring, during.id, "bob", "yes", now=T0 + 4)
    assert closed.value.reason == "closed"

    # In the timelock, through the approvals queue: denying the offer is a veto.
    queued = gov.propose(keyring, SetToolTier(agent="cy", tool="save_note", tier="allow"), now=T0 + 10)
    gov.vote(keyring, queued.id, "ada", "yes", now=T0 + 11)
    gov.execute_due(keyring, now=T0 + 10 + DAY)  # offers it
    assert open_records(keyring.db, keyring.settings).decide_approval(gov.veto_approval_id(queued.id), "denied", "web")
    assert gov.execute_due(keyring, now=T0 + 10 + 2 * DAY) == []
    after = gov.get_proposal(keyring, queued.id, now=T0 + 10 + 2 * DAY)
    assert after.status == "vetoed" and after.veto is not None and after.veto.actor == "approvals"
    assert after.execution is None
    assert gov.agent_tool_tier(market_db(keyring), keyring.db, "dan", "save_note") is None
    assert gov.agent_tool_tier(market_db(keyring), keyring.db, "cy", "save_note") is None


def test_a_passed_proposal_not_executed_within_its_grace_expires(keyring: Keyring) -> None:
    p = gov.propose(keyring, TIER, now=T0)
    gov.vote(keyring, p.id, "ada", "yes", now=T0 + 1)
    assert gov.execute_due(keyring, now=T0 + 9 * DAY) == []
    assert gov.get_proposal(keyring, p.id, now=T0 + 9 * DAY).status == "expired"
    assert gov.agent_tool_tier(market_db(keyring), keyring.db, "dan", "save_note") is None


def test_the_database_refuses_what_breaks_the_rules(keyring: Keyring) -> None:
    p = gov.propose(keyring, TIER, now=T0)
    gov.vote(keyring, p.id, "ada", "yes", now=T0 + 1)
    row = {"proposal_id": p.id, "voter": "cd" * 32, "choice": "yes", "weight": 5, "created_at": T0 + 2,
           "event_id": "ef" * 32, "event": "{}", "recorded_at": T0 + 2}
    with pytest.raises(StoreError, match="snapshot"):  # a weight that is not the voter's snapshot
        gov._gov_store.insert_vote(market_db(keyring), row)
    with pytest.raises(StoreError, match="closed"):
        gov._gov_store.insert_vote(market_db(keyring), {**row, "weight": 0, "recorded_at": T0 + DAY})
    with pytest.raises(StoreError, match=r"(?i)unique constraint"):  # one vote per voter
        gov._gov_store.insert_vote(market_db(keyring), {**row, "voter": keyring.agent("ada").public_hex,
                                                "weight": 60 * MICRO, "event_id": "ab" * 32})
    with pytest.raises(StoreError, match="timelock"):
        gov._gov_store.insert_execution(market_db(keyring), {
            "proposal_id": p.id, "outcome": "applied", "yes": 1, "no": 0, "abstain": 0, "detail": "",
            "created_at": T0, "event_id": "12" * 32, "event": "{}", "recorded_at": T0 + DAY})
    with pytest.raises(StoreError, match="audit record"):
        market_db(keyring).execute("UPDATE gov_votes SET choice = 'no'")
    with pytest.raises(StoreError, match="audit record"):
        market_db(keyring).execute("DELETE FROM gov_proposals")
