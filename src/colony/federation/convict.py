"""What a member node convicted of equivocation loses here: membership, its agents' bids, its awards.

A ledger entry is signed by its home node's key, so an `EquivocationProof` convicts a *node*. The
market's slash (`colony.federation.replication.slash_equivocators`) reaches only staked agents this
node hosts; a member node has no stake here to slash. What this node can do, on its own evidence
(a stored proof it verified, found by a sync or imported from anyone), is stop trusting it:

1. the member is removed with the reason ``equivocated`` (`membership.remove_equivocator`): its
   requests are refused from then on and recorded as incidents, it is sent nothing, and no invite
   lets it back; it stays removed while the proof is held (an operator's ``colony peers add`` is
   undone by the next pass: a key that signed two histories cannot be trusted with a ledger again);
2. its agents — the agent cards of its last announcement, whose cards name it — may no longer bid
   in this node's auctions, whichever member relays the bid (`refusal`, asked by
   `remote_market.accept_bid`), and every live award to one of them is given up through
   `remote_faults.give_up` (``abandoned``; the escrow goes back to the poster and the task is
   auctioned again, which the old winner may not enter);
3. money: a member's agents' bonds and stakes are held on their **home** ledger (the convicted
   node's), never on this one, and an award's escrow is the poster's money, returned by (2). So
   this node holds nothing of theirs to forfeit; what the convicted node holds of its own agents is
   out of reach of anyone but that node.

`convict` is idempotent: it looks at every stored proof each time, removes a member once, and an
award given up once is never given up again (`give_up` returns None). It runs where proofs arrive
(`colony.federation.replicate.slash`, after an import or a sync that found one) and in every market
pass (`step`), so an award made after the conviction — to a bid revealed before it — is given up too.

May import `colony.federation`, `colony.market`, `colony.identity` and `colony.store`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from colony.errors import IdentityError
from colony.federation import _replica_store as rs
from colony.federation import _store, membership, remote_faults, remote_store
from colony.identity.cards import verify_card_event
from colony.market.service import Market
from colony.store import Database, Row

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["Conviction", "convict", "convicted_agents", "give_up_convicted", "refusal", "step"]

log = logging.getLogger("colony.federation")


@dataclass(frozen=True)
class Conviction:
    """What one `convict` call changed (all empty when it had been done before)."""

    removed: tuple[str, ...]
    given_up: tuple[str, ...]


def _convicted_members(db: Database) -> list[Row]:
    return [m for m in _store.list_members(db, "removed") if m.get("removed_reason") == membership.EQUIVOCATED]


def _announced_agents(member: Row) -> dict[str, str]:
    """The agents (account → name) whose verified cards in ``member``'s last announcement name it."""
    ann = member["last_announcement"]
    try:
        cards = json.loads(ann["content"])["agents"] if ann else []
    except (ValueError, KeyError, TypeError):
        return {}
    agents: dict[str, str] = {}
    for raw in cards:
        try:
            card = verify_card_event(raw)
        except IdentityError:
            continue
        ext = card.get("colony") or {}
        if (ext.get("node") or {}).get("pubkey") == member["pubkey"] and isinstance(ext.get("pubkey"), str):
            agents[str(ext["pubkey"])] = str(card.get("name", ""))[:64]
    return agents


def convicted_agents(db: Database) -> dict[str, str]:
    """Every agent announced by a member removed as an equivocator: account → its node's key."""
    return {account: m["pubkey"] for m in _convicted_members(db) for account in _announced_agents(m)}


def refusal(db: Database, bidder: str) -> str | None:
    """Why ``bidder`` may not bid here (its node is convicted), or None when it may."""
    node = convicted_agents(db).get(bidder)
    if node is None:
        return None
    return (f"The bidder {bidder[:16]}… is an agent of node {node[:16]}…, which this node holds proof signed two "
            "ledger histories (equivocated): its agents no longer bid here.")


def give_up_convicted(market: Market) -> list[str]:
    """Give up every live award to an agent of a convicted member (once each); returns what was done."""
    db = market.node.db
    convicted = {m["pubkey"] for m in _convicted_members(db)}
    if not convicted:
        return []
    agents = convicted_agents(db)
    out = []
    for award in remote_store.live_awards(db):
        node = award["node"] if award["node"] in convicted else agents.get(award["winner"])
        if node is None:
            continue
        again = remote_faults.give_up(market, award["auction"], "abandoned",
                                      f"equivocated: the winner's node {node[:16]}… signed two ledger histories")
        if again is not None:
            log.warning("federation: gave up award %s… to an agent of convicted node %s…", award["auction"][:12],
                        node[:12])
            out.append(f"gave up {award['auction'][:12]} (equivocated)" + (f", again as {again[:12]}" if again else ""))
    return out


def convict(node: Node, *, market: Market | None = None) -> Conviction:
    """Apply the consequences of every stored proof against a member node (see the module docstring)."""
    db = node.db
    removed = []
    for signer in sorted({str(r["signer"]) for r in rs.proofs(db)}):
        if membership.remove_equivocator(db, signer):
            log.warning("federation: removed member %s…: it signed two ledger histories", signer[:12])
            removed.append(signer)
    given_up = give_up_convicted(market or Market(node)) if _convicted_members(db) else []
    return Conviction(removed=tuple(removed), given_up=tuple(given_up))


def step(market: Market) -> list[str]:
    """The market pass's share: `convict` again (a new proof, an award made since), as log lines."""
    done = convict(market.node, market=market)
    return [f"removed {m[:12]} (equivocated)" for m in done.removed] + list(done.given_up)
