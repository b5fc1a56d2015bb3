"""The colony's payment graph: every node's agents and the credits paid between them, across ledgers.

What the Colony page draws and ``GET /api/v1/peers/graph`` returns. Read each time, only from
records that were verified:

- this node's own ledger (`colony.ledger.open_ledger_store`), and
- its replicas of the trusted members' ledgers (`colony.federation._replica_store`), which
  `colony.federation.replication.sync` fills only with entries whose chain, signature and
  authorisation it checked.

A **payment** is a ``credit`` entry: its account is the payee, its counterparty the payer (the credit
half of a transfer, or of a captured hold: a market escrow paid to a winner, on another node's ledger
too). A payment settles on its payer's home ledger only, so summing over the ledgers counts it once;
entries are still deduplicated by id, in case two ledgers ever hold the same one.

**Names** are display text, never trusted: this node's identities by their keyring names, members by
their announced names, members' agents by the ``name`` of the signed cards in their latest
announcement (verified when it was received, `colony.federation.membership.check_announcement`), any
other key as a short npub. Every name is cleaned (`clean_name`: printable characters, at most
`NAME_CHARS`); what is left is still hostile text that the surfaces escape.

An agent's **node** is the node whose keyring or cards hold it; otherwise the node on whose ledger it
paid (a payer spends only on its home node); otherwise unknown (None).

**Bounds**: at most `ENTRIES_PER_LEDGER` entries are read from each ledger (in pages of `PAGE`), at
most `MAX_NODES` ledgers (this node and the first members by join order); the answer keeps the
heaviest payment edges whose agents fit, at most ``max_edges`` of them and ``max_agents`` agents
(agents on kept edges first, then the others by credits moved). What was left out is counted in
``dropped_agents``, ``dropped_edges`` and ``truncated``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError

from colony.federation import _replica_store as rs
from colony.federation import _store
from colony.federation.messages import Announcement
from colony.identity.events import Event
from colony.identity.keys import npub
from colony.ledger import open_ledger_store
from colony.ledger.records import Entry

if TYPE_CHECKING:
    from colony.node import Node

__all__ = [
    "DEFAULT_AGENTS",
    "DEFAULT_EDGES",
    "ENTRIES_PER_LEDGER",
    "MAX_AGENTS",
    "MAX_EDGES",
    "MAX_NODES",
    "NAME_CHARS",
    "PAGE",
    "AgentOut",
    "ColonyGraphOut",
    "GraphLimits",
    "GraphNodeOut",
    "PaymentOut",
    "clean_name",
    "colony_graph",
    "short_npub",
]

#: Entries read from one ledger at most, and per read.
ENTRIES_PER_LEDGER = 100_000
PAGE = 2_000
#: Ledgers read at most: this node's and the first members' (by join order).
MAX_NODES = 64
#: What the page draws by default, and the most an API caller may ask for.
DEFAULT_AGENTS, DEFAULT_EDGES = 40, 80
MAX_AGENTS, MAX_EDGES = 500, 2_000
#: A name is cut to this many characters (an announcement's node name is at most 64 already).
NAME_CHARS = 64


class GraphNodeOut(BaseModel):
    """A node of the colony whose ledger was read: this one (``me``) or a trusted member."""

    pubkey: str
    npub: str
    name: str
    me: bool
    entries_read: int = Field(description="Ledger entries read (this node's ledger, or its replica of the member's).")
    complete: bool = Field(description="False when the ledger had more than the entries read.")


class AgentOut(BaseModel):
    """An account: an agent (or a node's own key) with its display name and home node."""

    account: str
    npub: str
    name: str
    known: bool = Field(description="Named by a keyring or a signed agent card (else the name is a short npub).")
    node: str | None = Field(description="The home node's pubkey, None when no record says.")
    paid: int = Field(description="Micro-credits paid to other accounts, over every ledger read.")
    received: int = Field(description="Micro-credits received from other accounts, over every ledger read.")


class PaymentOut(BaseModel):
    """Credits ``payer`` paid ``payee`` (micro-credits, over ``payments`` credit entries)."""

    payer: str
    payee: str
    credits: int
    payments: int
    ledgers: list[str] = Field(description="The nodes whose ledgers record these payments.")


class GraphLimits(BaseModel):
    max_agents: int
    max_edges: int
    entries_per_ledger: int
    max_nodes: int


class ColonyGraphOut(BaseModel):
    """Nodes in colony order (this one first); agents on the heaviest edges first; edges heaviest first."""

    nodes: list[GraphNodeOut]
    agents: list[AgentOut]
    edges: list[PaymentOut]
    dropped_agents: int
    dropped_edges: int
    truncated: bool = Field(description="True when a ledger was not read to its end or members' ledgers were left "
                                        "out: the totals are then lower bounds.")
    limits: GraphLimits


def clean_name(text: str) -> str:
    """Printable characters only, whitespace runs as one space, at most `NAME_CHARS` (cut with …)."""
    kept = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return kept if len(kept) <= NAME_CHARS else kept[:NAME_CHARS - 1] + "…"


def short_npub(pubkey: str) -> str:
    """``npub1abcde…wxyz``: enough to tell keys apart on a picture."""
    full = npub(pubkey)
    return f"{full[:10]}…{full[-4:]}"


@dataclass
class _Who:
    name: str
    node: str | None
    known: bool


@dataclass
class _Edge:
    credits: int = 0
    payments: int = 0
    ledgers: list[str] = field(default_factory=list)


def _cards(stored: object) -> Iterator[tuple[str, str]]:
    """(agent key, card name) of the cards in a member's stored announcement; nothing when it does not parse."""
    if not isinstance(stored, dict):
        return
    try:
        announcement = Announcement.model_validate_json(Event.model_validate(stored).content)
    except ValidationError:
        return
    for card in announcement.agents:
        try:
            name = json.loads(card.content).get("name")
        except (ValueError, AttributeError):
            continue
        if isinstance(name, str) and clean_name(name):
            yield card.pubkey, clean_name(name)


def _own_name(node: Node) -> str:
    # The name this node's announcement gives (`colony.federation.announce.Announcer.build`).
    return clean_name(node.settings.home.name.lstrip(".") or "colony")


#: ``read(after_account, after_seq, limit)``: a ledger's entries after a position, in (account, seq) order.
Reader = Callable[[str, int, int], list[Entry]]


def _entries(read: Reader, limit: int) -> Iterator[Entry]:
    """Every entry ``read`` pages through, at most ``limit``."""
    account, seq, seen = "", 0, 0
    while seen < limit:
        page: list[Entry] = read(account, seq, min(PAGE, limit - seen))
        if not page:
            return
        yield from page
        seen += len(page)
        account, seq = page[-1].body.account, page[-1].body.seq


def colony_graph(node: Node, *, max_agents: int = DEFAULT_AGENTS, max_edges: int = DEFAULT_EDGES) -> ColonyGraphOut:
    """The colony's agents and the payments among them, as this node's records show them."""
    max_agents, max_edges = max(0, min(max_agents, MAX_AGENTS)), max(0, min(max_edges, MAX_EDGES))
    me = node.keyring.node().public_hex
    who: dict[str, _Who] = {}
    for ident in node.keyring.all():
        name = _own_name(node) if ident.public_hex == me else clean_name(ident.name)
        who.setdefault(ident.public_hex, _Who(name, me, True))
    members = _store.list_members(node.db, "trusted")
    read_members = members[:MAX_NODES - 1]
    for m in members:
        who.setdefault(m["pubkey"], _Who(clean_name(m["name"]) or short_npub(m["pubkey"]), m["pubkey"], True))
        for agent, name in _cards(m["last_announcement"]):
            who.setdefault(agent, _Who(name, m["pubkey"], True))

    edges: dict[tuple[str, str], _Edge] = {}
    seen: set[str] = set()
    nodes: list[GraphNodeOut] = []
    truncated = len(members) > len(read_members)
    store = open_ledger_store(node.db, node.settings)
    sources: list[tuple[str, str, Reader]] = [(me, _own_name(node), store.scan_after)]
    sources += [(m["pubkey"], who[m["pubkey"]].name, partial(rs.scan_after, node.db, m["pubkey"]))
                for m in read_members]
    for origin, name, read in sources:
        count = 0
        for entry in _entries(read, ENTRIES_PER_LEDGER + 1):
            count += 1
            if count > ENTRIES_PER_LEDGER:
                break
            body = entry.body
            if body.kind != "credit" or body.counterparty is None or body.counterparty == body.account:
                continue
            if entry.id in seen:
                continue
            seen.add(entry.id)
            edge = edges.setdefault((body.counterparty, body.account), _Edge())
            edge.credits += body.amount
            edge.payments += 1
            if origin not in edge.ledgers:
                edge.ledgers.append(origin)
            who.setdefault(body.counterparty, _Who(short_npub(body.counterparty), origin, False))
        complete = count <= ENTRIES_PER_LEDGER
        truncated = truncated or not complete
        nodes.append(GraphNodeOut(pubkey=origin, npub=npub(origin), name=name, me=origin == me,
                                  entries_read=min(count, ENTRIES_PER_LEDGER), complete=complete))
    return _bounded(nodes, who, edges, max_agents, max_edges, truncated)


def _bounded(nodes: list[GraphNodeOut], who: dict[str, _Who], edges: dict[tuple[str, str], _Edge],
             max_agents: int, max_edges: int, truncated: bool) -> ColonyGraphOut:
    paid: dict[str, int] = {}
    received: dict[str, int] = {}
    for (payer, payee), e in edges.items():
        paid[payer] = paid.get(payer, 0) + e.credits
        received[payee] = received.get(payee, 0) + e.credits
        who.setdefault(payee, _Who(short_npub(payee), None, False))

    kept: dict[str, None] = {}  # an ordered set
    shown: list[PaymentOut] = []
    for (payer, payee), e in sorted(edges.items(), key=lambda kv: (-kv[1].credits, kv[0])):
        if len(shown) == max_edges:
            break
        if len(kept) + len({payer, payee} - kept.keys()) > max_agents:
            continue
        kept.update({payer: None, payee: None})
        shown.append(PaymentOut(payer=payer, payee=payee, credits=e.credits, payments=e.payments, ledgers=e.ledgers))
    order = {n.pubkey: i for i, n in enumerate(nodes)}
    rest = sorted((a for a in who if a not in kept),
                  key=lambda a: (-(paid.get(a, 0) + received.get(a, 0)), order.get(who[a].node or "", len(order)),
                                 who[a].name, a))
    for account in rest[:max(0, max_agents - len(kept))]:
        kept[account] = None
    agents = [AgentOut(account=a, npub=npub(a), name=who[a].name, known=who[a].known, node=who[a].node,
                       paid=paid.get(a, 0), received=received.get(a, 0)) for a in kept]
    return ColonyGraphOut(nodes=nodes, agents=agents, edges=shown, dropped_agents=len(who) - len(agents),
                          dropped_edges=len(edges) - len(shown), truncated=truncated,
                          limits=GraphLimits(max_agents=max_agents, max_edges=max_edges,
                                             entries_per_ledger=ENTRIES_PER_LEDGER, max_nodes=MAX_NODES))
