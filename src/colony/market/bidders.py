"""The node's agents as bidders: each eligible agent commits a sealed bid, then opens it.

Eligible for an auction: an active agent with a configured profile (its cost model is what it
bids from; an agent without one has no prices and would bid next to nothing), every skill the
announcement wants, a reputation at the market's minimum, and — for a bid above the stake-free
size — free stake to back it (`stakes.lock` takes it). The poster and the auction's verifier do
not bid. The amount is `bidding.reservation_price` of the agent's own cost and chance of
success; an agent whose price is above the reserve, or who cannot post the bond, stays out.

A commitment is one transaction (`colony.store.engine.Engine.atomic`, the auction's and the
bidder's stake locked first): the bond held from the agent's wallet (nonce fixed by auction and
bidder, so a retry is the same hold), the stake lock, the signed commit event and the sealed
amount. The database refuses it after the commit deadline, and the whole transaction with it.
A reveal is the signed opening, accepted only between the two deadlines; its salt comes from the
agent's key (`bidding.bid_salt`), so a restart between commit and reveal loses nothing.

Many nodes, one database: every node sees every auction and every sealed bid, and agent names
are local to a node. So a node's agents bid only in auctions one of its own agents posted (that
node releases or captures every bidder's bond and stake, and another node's accounts are not its
to sign for: `colony.market.service`), and a node opens only its own agents' sealed bids, signed
with the key found by the bidder's account, never by ``bidder_name``.

Auctions other nodes posted are not in this database: the node's agents bid in them through
`colony.federation.remote_market`, with the same decisions (`eligible`) and the same bond and
stake taken at home (`hold_bid`) — their home ledger is this one, so this node releases, captures
or slashes them when the poster's signed award and verdict arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from colony.identity.keys import SchnorrKey
from colony.ledger import TransferRefusedError
from colony.market import _market_store as _store
from colony.market import stakes
from colony.market.auction import commit_event, reveal_event
from colony.market.backlog import backlog
from colony.market.bidding import bid_salt, chance_ppm, reservation_price, step_success, task_cost
from colony.market.events import MARKET_KINDS, Announcement, MarketEventError
from colony.market.profiles import AgentRecord, list_agents
from colony.market.reputation import ReputationBook
from colony.market.service import auction_lock, escrow_nonce, lock_ref
from colony.market.stake import BP, MarketParams, may_bid, required_stake
from colony.observability.logs import get_logger
from colony.observability.metrics import observe_market_bid
from colony.store import Row

if TYPE_CHECKING:
    from colony.market.service import Market

__all__ = ["Decision", "RoundInputs", "bid_round", "bidders", "commit", "decide", "eligible", "hold_bid",
           "reveal", "round_inputs"]

_log = get_logger("colony.market")


@dataclass(frozen=True)
class Decision:
    """What one agent decided about one auction: a bid, or why not (``reason``)."""

    agent: str
    account: str
    amount: int | None
    cost: int
    chance_ppm: int
    stake_needed: int
    reason: str | None


def bidders(market: Market) -> list[AgentRecord]:
    """The agents that take part in auctions at all: active, with a profile (a cost model)."""
    return [a for a in list_agents(market.node.keyring) if a.active and a.configured]


def decide(agent: AgentRecord, terms: Announcement, *, reputation: float, step: float, free_stake: int,  # reputation, step: probabilities, not money
           params: MarketParams, backlog: int = 0) -> Decision:
    """The agent's bid for ``terms`` (pure: everything it depends on is an argument).

    ``backlog`` is how many tasks the agent already has on its plate (`colony.market.backlog`):
    each adds ``params.backlog_bp`` of the task's cost to what this one costs it (rounded up).
    """
    if backlog < 0:
        raise ValueError("backlog is a count of tasks, ≥ 0")
    base = task_cost(agent.cost, terms.goal, agent.persona).total
    cost = base + -(-base * params.backlog_bp * backlog // BP)
    chance = chance_ppm(step, reputation)

    def out(reason: str, amount: int | None = None, need: int = 0) -> Decision:
        return Decision(agent.name, agent.public_hex, amount, cost, chance, need, reason)

    if not set(terms.skills) <= set(agent.skills):
        return out("skills")
    if reputation < params.min_reputation:
        return out("reputation")
    amount = reservation_price(cost, chance, params, ceiling=terms.reserve)
    if amount is None:
        return out("above_reserve")
    need = required_stake(amount, params, reputation=reputation)
    if not may_bid(amount, free_stake, reputation, params):
        return out("stake", amount, need)
    return Decision(agent.name, agent.public_hex, amount, cost, chance, need, None)


def hold_bid(market: Market, auction: str, terms: Announcement, decision: Decision, key: SchnorrKey) -> str | None:
    """Inside a commit's step: hold the bond and lock the stake behind ``decision``'s bid on this node's
    ledger; the bond's hold id ("" without a bond), or None when the wallet cannot post the bond."""
    bidder = decision.account
    if market.ledger.balance(bidder).balance < terms.bond:
        return None  # checked in the step: no refused hold is ever recorded for a bond
    bond_ref = ""
    if terms.bond:
        hold = market.ledger.pay(key, None, terms.bond, op="hold", nonce=escrow_nonce("bond", auction, bidder),
                                 memo=f"market bond {auction[:16]}")
        bond_ref = hold.transfer_id
    if decision.stake_needed:
        stakes.lock(market.node, decision.agent, decision.stake_needed, ref=lock_ref(auction, bidder))
    return bond_ref


def commit(market: Market, auction: str, terms: Announcement, decision: Decision, key: SchnorrKey) -> str | None:
    """Commit ``decision``'s bid (module docstring); the commit event's id, or None if it was not made."""
    assert decision.amount is not None
    db, bidder, amount = market.db, decision.account, decision.amount

    def step() -> str | None:
        db.lock(auction_lock(auction), stakes.stake_lock(bidder))
        if any(e.pubkey == bidder for e, _ in _store.auction_events(db, auction, [MARKET_KINDS["commit"]])):
            return None
        bond_ref = hold_bid(market, auction, terms, decision, key)
        if bond_ref is None:
            return None
        now = market.now()
        event = commit_event(key, terms, amount, bid_salt(key, auction), created_at=now, bond_ref=bond_ref)
        _store.insert_event(db, event, auction, now)
        _store.insert_sealed(db, {"auction": auction, "bidder": bidder, "bidder_name": decision.agent,
                                  "amount": amount, "cost": decision.cost,
                                  "chance_ppm": decision.chance_ppm, "commit_event": event.id})
        return event.id

    made = db.atomic(step)
    if made is not None:
        observe_market_bid("commit")
    return made


def reveal(market: Market, auction: str, terms: Announcement, sealed: Row) -> str | None:
    """Open a sealed bid of one of the node's agents; the reveal's id, or None if already opened
    or if the bidder is not this node's (module docstring)."""
    bidder = market.node.keyring.by_public_key(sealed["bidder"])
    if bidder is None or bidder.role != "agent":
        return None
    key = market.node.keyring.schnorr_key(bidder.name)
    db = market.db

    def step() -> str | None:
        db.lock(auction_lock(auction))
        done = _store.auction_events(db, auction, [MARKET_KINDS["reveal"]])
        if any(e.pubkey == sealed["bidder"] for e, _ in done):
            return None
        now = market.now()
        event = reveal_event(key, terms, sealed["amount"], bid_salt(key, auction), created_at=now)
        _store.insert_event(db, event, auction, now)
        return event.id

    made = db.atomic(step)
    if made is not None:
        observe_market_bid("reveal")
    return made


def bid_round(market: Market) -> tuple[list[str], list[str]]:
    """One round for every open auction: commits while the commit phase lasts, then reveals.

    Commits go only to auctions this node's agents posted, reveals open only its agents' bids
    (module docstring). Returns ("agent→auction" for each commitment made, the same for each
    reveal). A refusal by the database (a deadline passed during the round) skips that bid; the
    round goes on.
    """
    now = market.now()
    rows = _store.list_auctions(market.db, states=["open"], limit=1000)
    own = market.own_accounts()
    committing = [r for r in rows if now <= r["commit_deadline"] and r["poster"] in own]
    revealing = [r for r in rows if r["commit_deadline"] < now <= r["reveal_deadline"]]
    commits: list[str] = []
    reveals: list[str] = []
    if committing:
        inputs = round_inputs(market)
        for row in committing:
            commits += _commit_all(market, row, inputs)
    for row in revealing:
        terms = market.terms(row["id"])
        for sealed in _store.sealed_bids(market.db, row["id"]):
            if sealed["reveal_event"] is not None or sealed["bidder"] not in own:
                continue
            try:
                if reveal(market, row["id"], terms, sealed):
                    reveals.append(f"{sealed['bidder_name']}→{row['id'][:12]}")
            except MarketEventError as exc:
                _log.warning("market_reveal_refused", auction=row["id"], agent=sealed["bidder_name"], reason=exc.reason)
    return commits, reveals


@dataclass(frozen=True)
class RoundInputs:
    """What every decision of one round reads once: the bidders, reputations, predicted step success, params,
    and each bidder's backlog (won work changes only with awards and results, never within a round)."""

    agents: list[AgentRecord]
    book: ReputationBook
    step: float
    params: MarketParams
    backlogs: dict[str, int]


def round_inputs(market: Market) -> RoundInputs:
    cognition = market.node.cognition
    agents = bidders(market)
    return RoundInputs(agents, market.reputation_book(),
                       step_success(market.node.records, cognition.predictor if cognition is not None else None),
                       market.params, {a.public_hex: backlog(market, a.public_hex) for a in agents})


def eligible(market: Market, auction: str, terms: Announcement, inputs: RoundInputs,
             skip: set[str]) -> list[tuple[AgentRecord, Decision]]:
    """The node's agents that bid in ``terms`` and their bids; agents whose account is in ``skip`` (the
    poster, the verifier, those that committed already) are left out, the others that stay out are logged."""
    out = []
    for agent in inputs.agents:
        if agent.public_hex in skip:
            continue
        free = stakes.staked(market.node, agent.name) - stakes.locked(market.node, agent.name)
        decision = decide(agent, terms, reputation=inputs.book.expectation(agent.public_hex), step=inputs.step,
                          free_stake=max(0, free), params=inputs.params,
                          backlog=inputs.backlogs[agent.public_hex])
        if decision.reason is not None:
            _log.info("market_no_bid", auction=auction, agent=agent.name, reason=decision.reason)
            continue
        out.append((agent, decision))
    return out


def _commit_all(market: Market, row: Row, inputs: RoundInputs) -> list[str]:
    auction = row["id"]
    terms = market.terms(auction)
    done = {e.pubkey for e, _ in _store.auction_events(market.db, auction, [MARKET_KINDS["commit"]])}
    made = []
    for agent, decision in eligible(market, auction, terms, inputs, done | {row["poster"], row["verifier"]}):
        key = market.node.keyring.schnorr_key(agent.name)
        try:
            if commit(market, auction, terms, decision, key):
                made.append(f"{agent.name}→{auction[:12]}")
        except (MarketEventError, stakes.StakeError, TransferRefusedError) as exc:
            # a wallet spent below the bond between the check and the hold (PostgreSQL lets other
            # payers run meanwhile): the step rolled back whole, the bid is simply not made
            _log.warning("market_commit_refused", auction=auction, agent=agent.name, reason=str(exc))
    return made
