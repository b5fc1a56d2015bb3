"""The colony as a graph: the node's agents with their reputation, and the credits paid between them.

What the Market page draws (`colony.server.web.svg_graph` renders it). Everything comes from
the records that are the truth, read each time:

- **nodes** — every agent of the node (deactivated ones too: the treasury receives forfeited
  bonds and slashed stake) with its reputation from the replayed feedback
  (`colony.market.queries.reputation_table`), ratings, stake, wins and earnings;
- **edges** — one per (payer, payee) pair of agents that moved credits: the ledger's applied
  transfers and its captured holds (a market escrow captured to a winner, a forfeited bond, a
  slash), summed in micro-credits. Holds still held or released moved nothing and are left out;
  so are mints (no payer) and payments to keys that are not this node's agents;
- on each edge, the market's settled auctions behind it: how many paid auctions the payer
  posted and the payee won, and the goals of the newest few (user input: escaped when drawn).

May import the market's own modules and `colony.ledger`; nothing here imports a surface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from colony.market import _market_store as _store
from colony.market.profiles import list_agents
from colony.market.queries import reputation_table
from colony.market.views import ReputationRow

if TYPE_CHECKING:
    from colony.market.service import Market

__all__ = ["AUCTIONS_COUNTED", "GOALS_PER_EDGE", "ColonyGraph", "GraphEdge", "GraphNode", "colony_graph"]

#: The newest paid auctions counted on the edges (older ones still weigh through their payments).
AUCTIONS_COUNTED = 10_000
#: Goals of the newest paid auctions named on an edge.
GOALS_PER_EDGE = 3


@dataclass(frozen=True)
class GraphNode:
    """An agent: ``reputation`` is E of its beta book (0.5 for anyone never rated)."""

    account: str
    name: str
    reputation: float
    ratings: int = 0
    active: bool = True
    staked: int = 0
    wins: int = 0
    earned: int = 0


@dataclass
class GraphEdge:
    """Credits ``payer`` paid ``payee`` (micro-credits, over ``payments`` ledger moves)."""

    payer: str
    payee: str
    credits: int = 0
    payments: int = 0
    auctions: int = 0
    goals: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ColonyGraph:
    """Nodes in the order the node created its agents; edges heaviest first."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]


def colony_graph(market: Market, reputation: list[ReputationRow] | None = None) -> ColonyGraph:
    """The node's agents and the payments among them, from the ledger and the market's tables.

    ``reputation`` is `reputation_table` when the caller has it already (the Market page shows it
    too): replaying the feedback once per page is enough.
    """
    agents = list_agents(market.node.keyring)
    ours = {a.public_hex for a in agents}
    standing = {row.account: row for row in (reputation_table(market) if reputation is None else reputation)}
    nodes = []
    for agent in agents:
        row = standing.get(agent.public_hex)
        nodes.append(GraphNode(
            account=agent.public_hex, name=agent.name, reputation=row.reputation if row else 0.5,
            ratings=row.ratings if row else 0, active=agent.active, staked=row.staked if row else 0,
            wins=row.wins if row else 0, earned=row.paid if row else 0))

    edges: dict[tuple[str, str], GraphEdge] = {}

    def paid(payer: str, payee: str | None, amount: int) -> None:
        if payee is None or payer == payee or payer not in ours or payee not in ours:
            return
        edge = edges.setdefault((payer, payee), GraphEdge(payer, payee))
        edge.credits += amount
        edge.payments += 1

    ledger = market.ledger_store
    with ledger.snapshot():  # transfers and holds as of one moment
        for signed, status, _ in ledger.transfers():
            if signed.auth.op == "transfer" and status == "applied":
                paid(signed.auth.payer, signed.auth.payee, signed.auth.amount)
        for hold in ledger.holds():
            if hold.state == "captured":
                paid(hold.payer, hold.captured_to, hold.amount)
    for auction in _store.list_auctions(market.db, states=["paid"], limit=AUCTIONS_COUNTED):
        edge = edges.get((auction["poster"], auction["winner"]))
        if edge is None:  # its escrow is not among the payments (e.g. a party that is no agent here)
            continue
        edge.auctions += 1
        if len(edge.goals) < GOALS_PER_EDGE:
            edge.goals.append(market.terms(auction["id"]).goal)
    ordered = sorted(edges.values(), key=lambda e: (-e.credits, e.payer, e.payee))
    return ColonyGraph(nodes=nodes, edges=ordered)
