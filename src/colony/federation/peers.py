"""The operator's side of federation: add and remove peers, and what the surfaces show.

`add_peer` is what ``colony peers add URL`` and ``POST /api/v1/peers`` do: fetch the node's hello,
verify it (and, with ``expect``, that it is the key the operator meant), trust it, then ask it to
accept us (``/federation/v1/join``, with an invite if we have one). The other side may refuse —
it does not trust us yet — and that is not an error here: our side is recorded, and the join
completes when its operator adds us too (a *mutual add*) or we come back with an invite.

`peer_table` and `status` are the views ``colony peers list|status`` and ``GET /api/v1/peers``
print: both read only the database, so they work whether or not the node is running. Each member
shows how it came (``added_by``; an introduced one also its introducer, ``introduced_by``) and,
once removed, why when this node knows (``removed_reason``: ``equivocated``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from colony.federation import _store
from colony.federation.announce import Announcer, own_url
from colony.federation.client import PeerClient
from colony.federation.errors import FederationError, Refused
from colony.federation.membership import AddedBy, remove, trust
from colony.federation.messages import Announcement
from colony.federation.queen import current_queen, live_nodes
from colony.federation.replication import equivocations
from colony.federation.roles import view
from colony.identity.keys import npub

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["AddResult", "PeerOut", "PeersOut", "SelfOut", "StatusOut", "add_peer", "heartbeat_of", "peer_table",
           "remove_peer", "status"]


class PeerOut(BaseModel):
    pubkey: str
    npub: str
    name: str
    url: str
    status: Literal["joining", "trusted", "removed"]
    added_by: Literal["operator", "spawn", "invite", "introduced"]
    #: The member that introduced this one (``added_by`` ``introduced``; `colony.federation.introduce`).
    introduced_by: str | None = None
    added_at: float
    last_seen: float | None
    live: bool
    role: Literal["queen", "member"]
    agents: list[str]
    #: Why it was removed, when this node knows (``equivocated``: it holds a proof against the key).
    removed_reason: str | None = None


class SelfOut(BaseModel):
    pubkey: str
    npub: str
    url: str
    running: bool
    role: Literal["queen", "member", "alone"]


class PeersOut(BaseModel):
    me: SelfOut
    queen: str | None
    term: int
    heartbeat_s: float
    peers: list[PeerOut]


class StatusOut(PeersOut):
    live: list[str]
    dead: list[str]
    incidents: dict[str, int]
    outbox_pending: dict[str, int]


class AddResult(BaseModel):
    peer: PeerOut
    joined: bool
    message: str | None = None


def heartbeat_of(node: Node) -> float:
    """The heartbeat the running node uses (recorded by its loop), else this process's setting."""
    recorded = _store.get_self(node.db)["heartbeat_s"]
    return float(recorded) if recorded else node.settings.federation_heartbeat_s




def _agents(announcement: object) -> list[str]:
    if not isinstance(announcement, dict):
        return []
    try:
        content = Announcement.model_validate_json(str(announcement.get("content", "")))
    except ValueError:
        return []
    names = []
    for card in content.agents:
        try:
            names.append(str(json.loads(card.content).get("name", "?")))
        except ValueError:
            names.append("?")
    return names


def peer_table(node: Node) -> PeersOut:
    """Every member this node knows (removed ones too), with liveness and role from its view."""
    me = node.keyring.node().public_hex
    hb = heartbeat_of(node)
    v = view(node.db, me, heartbeat_s=hb)
    live = live_nodes(v)
    queen = current_queen(v)
    rows = _store.list_members(node.db)
    peers = [PeerOut(pubkey=r["pubkey"], npub=npub(r["pubkey"]), name=r["name"], url=r["url"], status=r["status"],
                     added_by=r["added_by"], introduced_by=r["introduced_by"], added_at=r["added_at"],
                     last_seen=r["last_seen"], removed_reason=r["removed_reason"],
                     live=r["status"] == "trusted" and r["pubkey"] in live,
                     role="queen" if r["pubkey"] == v.role.queen else "member", agents=_agents(r["last_announcement"]))
             for r in rows]
    role: Literal["queen", "member", "alone"] = (
        "alone" if not v.last_seen else "queen" if v.role.queen == me else "member")
    return PeersOut(me=SelfOut(pubkey=me, npub=npub(me), url=own_url(node), running=_store.serving(node.db), role=role),
                    queen=queen if queen is not None else v.role.queen, term=v.role.term, heartbeat_s=hb, peers=peers)


def status(node: Node) -> StatusOut:
    """The table plus this node's view: live and dead members, incident counts, undelivered messages."""
    table = peer_table(node)
    trusted = [p for p in table.peers if p.status == "trusted"]
    pending: dict[str, int] = {}
    for row in _store.outbox_rows(node.db):
        if row["delivered_at"] is None:
            pending[row["peer"]] = pending.get(row["peer"], 0) + 1
    return StatusOut(**table.model_dump(), live=[p.pubkey for p in trusted if p.live],
                     dead=[p.pubkey for p in trusted if not p.live], incidents=_store.incident_counts(node.db),
                     outbox_pending=pending)


def _row(node: Node, pubkey: str) -> PeerOut:
    found = next((p for p in peer_table(node).peers if p.pubkey == pubkey), None)
    if found is None:
        raise FederationError(f"No member {pubkey[:16]}… on this node.", reason="not_found")
    return found


async def add_peer(node: Node, url: str, *, invite: str | None = None, expect: str | None = None,
                   added_by: AddedBy = "operator", listen_url: str | None = None,
                   timeout_s: float = 10.0) -> AddResult:
    """Trust the node at ``url`` and ask it to accept us (see the module docstring).

    Raises `PeerUnreachable` when nothing Colony answers there, `FederationError` when its hello
    does not verify, names another key than ``expect``, or is this node itself.
    """
    me = await asyncio.to_thread(node.keyring.node)
    key = await asyncio.to_thread(lambda: me.schnorr_key)
    base = url.rstrip("/")
    async with PeerClient(key, timeout_s=timeout_s) as client:
        hello = await client.hello(base, expect=expect)
        if hello.pubkey == me.public_hex:
            raise FederationError(f"{base} is this node itself.", reason="conflict")
        if await asyncio.to_thread(equivocations, node.db, signer=hello.pubkey):
            raise FederationError(f"{base} signed two different histories of its ledger: this node holds the proof "
                                  "(colony peers status counts them), so it will not trust that key again.",
                                  reason="conflict")
        # Trusted as "joining" first, so its requests are accepted from the moment it accepts ours,
        # but sent nothing until its answer is in: our loop's next announcement must not reach it
        # before it knows us (it would record us as an unknown peer).
        await asyncio.to_thread(trust, node.db, hello, base, added_by, joining=True)
        ours = await asyncio.to_thread(Announcer(node, await asyncio.to_thread(own_url, node, listen_url)).build)
        try:
            theirs = await client.join(base, ours, invite, expect=hello.pubkey)
        except Refused as exc:
            await asyncio.to_thread(_store.set_status, node.db, hello.pubkey, "trusted")  # mutual add: it may add us later
            return AddResult(peer=await asyncio.to_thread(_row, node, hello.pubkey), joined=False,
                             message=f"{base} has not accepted this node yet ({exc}). It will once its operator "
                                     "adds this node too, or add it again with --invite TOKEN.")
        except BaseException:
            await asyncio.to_thread(_store.set_status, node.db, hello.pubkey, "trusted")
            raise
    name = Announcement.model_validate_json(theirs.content).name
    await asyncio.to_thread(_store.set_status, node.db, hello.pubkey, "trusted")
    await asyncio.to_thread(_store.store_announcement, node.db, theirs.pubkey, theirs, name, time.time())
    return AddResult(peer=await asyncio.to_thread(_row, node, hello.pubkey), joined=True)


def remove_peer(node: Node, pubkey: str) -> PeerOut:
    """Remove a member; `FederationError` (``not_found``) when there is none."""
    if not remove(node.db, pubkey):
        raise FederationError(f"No member {pubkey[:16]}… on this node.", reason="not_found")
    return _row(node, pubkey)
