"""The marketplace's mechanism core (E): sealed-bid procurement auctions, beta reputation, stake.

Agents bid for tasks in commit–reveal auctions settled by a pure function from signed events
(`auction`); verified results are paid, failed ones refunded and the stake behind them slashed
(`stake`); ratings count only when backed by a settled payment (`reputation`). Every message is a
NIP-01 event whose format is fixed in `events`. Nothing here moves credits or stores anything:
callers hold escrow in the ledger and record events; these functions decide what is owed, and
anyone can recompute the decision from the public events.

The agents that take part are configured here too: `profiles` (persona, model tier, cost model
of each hosted agent; table ``agent_profiles``) and `cost` (what a task would cost an agent, the
floor of its bids).

The mechanism modules (`events`, `auction`, `reputation`, `stake`) are pure: they may import
`colony.errors`, `colony.identity` (keys and events) and `colony.ledger` (amounts and equivocation
proofs), nothing with state. Surfaces import this package; nothing here imports them.

The market that runs on a node is built on them, with state (migrations 13 and 14, in the node's
SQLite file or — with ``COLONY_DATABASE_URL`` — on PostgreSQL beside the ledger and the task
queue, `colony.store.engine`; import the modules, this package does not re-export them):
`service` (post, award, verify and settle — each step one transaction that moves credits exactly
once), `task_queue` (the node's queue, with the winners' claim), `bidders` and `bidding` (how the
node's agents decide and place their sealed bids), `verify_result` (tests, benchmark, review,
approval), `worker` (the schedule that drives it all, in ``colony up``), `queries` and `views`
(what the surfaces show), `_market_store` (the auctions' SQL; `_stake_store`, `_gov_store` and
`_agents_store` hold the rest).
"""

from __future__ import annotations

from colony.market.auction import (
    Bid,
    CoBidding,
    Commitment,
    Forfeit,
    Opening,
    Outcome,
    Recheck,
    Refusal,
    announcement_event,
    award_event,
    bid_digest,
    co_bidding,
    commit_event,
    read_announcement,
    recheck,
    reveal_event,
    settle,
    settle_bids,
)
from colony.market.events import (
    GOVERNANCE_KINDS,
    MARKET_KINDS,
    Announcement,
    AuctionOpenError,
    InvalidProofError,
    MarketError,
    MarketEventError,
    Rule,
    open_market,
    sign_market,
)
from colony.market.reputation import (
    PRIOR,
    Feedback,
    ReputationBook,
    ReputationParams,
    Standing,
    feedback_event,
    read_feedback,
    replay,
)
from colony.market.stake import (
    MarketParams,
    Settlement,
    apply_contribution,
    contribution_multiplier,
    forfeited_bonds,
    may_bid,
    read_verification,
    required_stake,
    settle_verification,
    slash_equivocation,
    slash_failed,
    verification_event,
)

__all__ = [
    "GOVERNANCE_KINDS",
    "MARKET_KINDS",
    "PRIOR",
    "Announcement",
    "AuctionOpenError",
    "Bid",
    "CoBidding",
    "Commitment",
    "Feedback",
    "Forfeit",
    "InvalidProofError",
    "MarketError",
    "MarketEventError",
    "MarketParams",
    "Opening",
    "Outcome",
    "Recheck",
    "Refusal",
    "ReputationBook",
    "ReputationParams",
    "Rule",
    "Settlement",
    "Standing",
    "announcement_event",
    "apply_contribution",
    "award_event",
    "bid_digest",
    "co_bidding",
    "commit_event",
    "contribution_multiplier",
    "feedback_event",
    "forfeited_bonds",
    "may_bid",
    "open_market",
    "read_announcement",
    "read_feedback",
    "read_verification",
    "recheck",
    "replay",
    "required_stake",
    "reveal_event",
    "settle",
    "settle_bids",
    "settle_verification",
    "sign_market",
    "slash_equivocation",
    "slash_failed",
    "verification_event",
]
