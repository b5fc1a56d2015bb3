"""An agent's backlog: the work it has won and not yet done.

Why the market prices it: a node runs its winners' tasks one at a time (`colony.market.worker`), so
every task already on an agent's plate is paid for in delay by the next poster. Without a price
for that, an agent that is cheapest by a hair wins every auction posted at once and the rest of the
colony waits idle; with it (`colony.market.stake.MarketParams.backlog_bp`, applied by
`colony.market.bidders.decide`), a busy agent's next bid rises until an idle one underbids it, and
a colony's work spreads over its nodes by price alone as tasks keep arriving.

Bids still out do not count: every bidder has them in the same auctions, so they would raise every
bid alike and move no award; and an agent cannot know which it will win. So auctions posted in
one burst are all priced before any award and the cheapest takes them all; it is the tasks that
arrive while it is busy that go elsewhere.

What counts, on this node's market tables: an ``awarded`` auction whose task has not finished.
Other capabilities add their own part with `register_backlog_source` (federation: won work in
other nodes' auctions whose result has not been sent), so the market never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from colony.tasks.machine import TERMINAL_STATES

if TYPE_CHECKING:
    from colony.market.service import Market

__all__ = ["BacklogSource", "backlog", "register_backlog_source"]

#: Another capability's part of an agent's plate: ``source(market, account) -> count``.
BacklogSource: TypeAlias = Callable[["Market", str], int]
_sources: dict[str, BacklogSource] = {}

_FINISHED = tuple(sorted(TERMINAL_STATES))


def register_backlog_source(name: str, source: BacklogSource) -> None:
    """Count ``source`` in every agent's backlog (one source per name; the last registered wins)."""
    _sources[name] = source


def backlog(market: Market, account: str) -> int:
    """How many tasks ``account`` has won on this node (and through its sources) and not yet finished."""
    marks = ", ".join("?" for _ in _FINISHED)
    won = market.db.scalar(
        "SELECT count(*) FROM market_auctions a JOIN tasks t ON t.id = a.task_id "
        f"WHERE a.winner = ? AND a.state = 'awarded' AND t.state NOT IN ({marks})", (account, *_FINISHED))
    return int(won or 0) + sum(source(market, account) for source in _sources.values())
