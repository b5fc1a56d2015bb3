"""Who belongs to the colony, as this node sees it: trusted members, invites, joins, incidents.

A node trusts another only by an operator's act: ``colony peers add URL`` (after fetching and
verifying that node's signed announcement), ``colony spawn`` (the parent and its child), or an
invite this node issued (``colony peers invite``: a one-time token with an expiry, stored only as
its sha256). A join (``POST /federation/v1/join``) is accepted when this node already trusts the
caller's key (both operators added each other) or the caller spends a valid invite; anything
else is refused and recorded. ``colony peers remove`` marks a member removed: its requests are
refused from then on, and it is no longer sent anything. A member this node holds an equivocation
proof against is removed the same way with the reason `EQUIVOCATED` (`colony.federation.convict`);
the refusals say so, and no invite lets it back in: it stays removed while the proof is held.

**Introductions** delegate that act, one step only. A member this node trusts *directly* (added by
its operator, a spawn or an invite: `DIRECT`) may introduce one of its own direct members
(`colony.federation.introduce`); this node accepts when its operator allows it
(``COLONY_FEDERATION_ACCEPT_INTRODUCTIONS``, on by default) and the key is neither one it removed
nor one it holds an equivocation proof against (`introduction_refusal`). A member it trusts only
because it was introduced cannot introduce anyone: no transitive chains. The introduced member is
``joining`` (``added_by`` ``introduced``, ``introduced_by`` the introducer) until the two nodes
have verified each other's signed announcements; a join may carry the introduction the caller
received as its evidence (`accept_join`). Removing an introducer does not remove the members it
introduced: once both sides verified each other, each stands on its own (remove it by hand).

A trusted member's URL changes only to the one its own signed announcement gives, once it answered
there and not at the stored one (a node restarted on another port): `follow_url`.

Every refusal of another node's request is an *incident* (`record`): the peer's key when known,
one of `INCIDENT_KINDS`, and what was wrong.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from colony.errors import IdentityError
from colony.federation import _replica_store, _store
from colony.federation.errors import FederationError, Refused
from colony.federation.messages import Announcement, parse_announcement, parse_introduction
from colony.identity.cards import verify_card_event
from colony.identity.events import Event
from colony.store import Database, Row

__all__ = [
    "DIRECT",
    "EQUIVOCATED",
    "INCIDENT_KINDS",
    "INVITE_PREFIX",
    "AddedBy",
    "IncidentKind",
    "Invite",
    "Origin",
    "accept_join",
    "check_announcement",
    "follow_url",
    "introduction_refusal",
    "new_invite",
    "record",
    "remove",
    "remove_equivocator",
    "require_member",
    "trust",
]

IncidentKind = Literal["unknown_peer", "bad_signature", "replay", "reorder", "stale"]
INCIDENT_KINDS: tuple[IncidentKind, ...] = ("unknown_peer", "bad_signature", "replay", "reorder", "stale")
#: How an operator's own act added a member (add, spawn, invite): a *direct* member.
AddedBy = Literal["operator", "spawn", "invite"]
#: Every origin a member can have: direct, or introduced by a direct member.
Origin = AddedBy | Literal["introduced"]
#: The direct origins: only members added so may introduce others.
DIRECT: tuple[AddedBy, ...] = ("operator", "spawn", "invite")
INVITE_PREFIX = "colony-invite-"
#: The removal reason of a member convicted of signing two ledger histories.
EQUIVOCATED = "equivocated"
#: Invites last an hour unless asked otherwise.
DEFAULT_INVITE_TTL_S = 3600

log = logging.getLogger("colony.federation")


@dataclass(frozen=True)
class Invite:
    """A one-time token (shown once: only its hash is stored) and when it expires (Unix s)."""

    token: str
    expires_at: float


def _hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def new_invite(db: Database, ttl_s: float = DEFAULT_INVITE_TTL_S, *, now: float | None = None) -> Invite:
    """Issue a one-time invite valid for ``ttl_s`` seconds."""
    if ttl_s <= 0:
        raise FederationError("An invite must be valid for a positive number of seconds.")
    at = time.time() if now is None else now
    token = INVITE_PREFIX + secrets.token_urlsafe(32)
    _store.insert_invite(db, _hash(token), at, at + ttl_s)
    return Invite(token, at + ttl_s)


def spend_invite(db: Database, token: str, by: str) -> bool:
    """Use an invite on behalf of ``by`` (a node joining through this node's database); False if not valid."""
    return _store.use_invite(db, _hash(token), by, time.time())


def record(db: Database, peer: str | None, kind: IncidentKind, detail: str) -> None:
    """Record a refused request (see the module docstring)."""
    _store.record_incident(db, peer, kind, detail, time.time())


def refuse(db: Database, status: int, peer: str | None, kind: IncidentKind, message: str, **extra: object) -> Refused:
    """Record an incident and return the `Refused` to raise."""
    record(db, peer, kind, message)
    return Refused(status, kind, message, incident=kind, **extra)


def require_member(db: Database, caller: str) -> Row:
    """The trusted member ``caller``; refused (403, incident ``unknown_peer``) otherwise.

    A member still ``joining`` is accepted too: it is the node this one just asked to join, and it
    may start calling as soon as it has accepted, before its answer reached us.
    """
    row = _store.get_member(db, caller)
    if row is None:
        raise refuse(db, 403, caller, "unknown_peer", "This node does not know your key: ask its operator to add you "
                     "(colony peers add) or for an invite (colony peers invite).")
    if row["status"] not in ("trusted", "joining"):
        why = (": it holds proof that your key signed two ledger histories (equivocated)"
               if row.get("removed_reason") == EQUIVOCATED else "")
        raise refuse(db, 403, caller, "unknown_peer", f"This node removed you from its colony{why}.")
    return row


def check_announcement(event: Event, *, signer: str | None = None) -> Announcement:
    """A verified announcement: signature, content, every agent card (signed by its agent and naming
    the announcing node), and — with ``signer`` — signed by that key. `FederationError` otherwise."""
    announcement = parse_announcement(event)
    if signer is not None and event.pubkey != signer:
        raise FederationError("The announcement is signed by another key than the request.", reason="bad_signature")
    for card in announcement.agents:
        try:
            facts = verify_card_event(card)
        except IdentityError as exc:
            raise FederationError(str(exc), reason="bad_signature") from exc
        if facts.get("colony", {}).get("node", {}).get("pubkey") != event.pubkey:
            raise FederationError("An agent card in the announcement names another node.", reason="bad_signature")
    return announcement


def trust(db: Database, event: Event, url: str, added_by: AddedBy, *, joining: bool = False) -> Row:
    """Trust the node that signed ``event`` (a verified announcement) at ``url``.

    ``joining``: this node is about to ask it to join; until that answer is in, nothing is sent to
    it (see `colony.federation.peers.add_peer`), though its requests are accepted.
    """
    announcement = check_announcement(event)
    return _store.upsert_member(db, event.pubkey, url, name=announcement.name, added_by=added_by, now=time.time(),
                                announcement=event, status="joining" if joining else "trusted")


def introduction_refusal(db: Database, me: str, introducer: str, pubkey: str, *, allowed: bool) -> str | None:
    """Why this node refuses ``introducer``'s introduction of ``pubkey`` (see the module docstring);
    None when it may accept it. A key it already trusts is no refusal: there is nothing to do."""
    if not allowed:
        return "this node's operator does not accept introductions (COLONY_FEDERATION_ACCEPT_INTRODUCTIONS is off)"
    if pubkey in (me, introducer):
        return "an introduction names a third node, not the introducer or the receiver"
    by = _store.get_member(db, introducer)
    if by is None or by["status"] != "trusted" or by["added_by"] not in DIRECT:
        return ("the introducer is not a member this node trusts directly (an introduced member cannot "
                "introduce others)")
    known = _store.get_member(db, pubkey)
    if known is not None and known["status"] == "removed":
        why = " (equivocated)" if known.get("removed_reason") == EQUIVOCATED else ""
        return f"this node removed that key{why}"
    if _replica_store.proofs(db, signer=pubkey):
        return "this node holds proof that the key signed two ledger histories (equivocated)"
    return None


def _vouched(db: Database, me: str, caller: str, introduction: Event, *, allowed: bool) -> str:
    """The introducer of ``caller`` to this node, by the introduction it received (its evidence);
    `Refused` (403, an incident) when that does not introduce this node to the caller or is refused."""
    try:
        named = parse_introduction(introduction)
    except FederationError as exc:
        raise refuse(db, 403, caller, "bad_signature", f"Join refused: {exc}") from exc
    if introduction.tag("p") != caller or named.pubkey != me:
        raise refuse(db, 403, caller, "unknown_peer", "Join refused: the introduction you sent does not introduce "
                     "this node to you.")
    why = introduction_refusal(db, me, introduction.pubkey, caller, allowed=allowed)
    if why is not None:
        raise refuse(db, 403, caller, "unknown_peer", f"Join refused: {why}.")
    return introduction.pubkey


def accept_join(db: Database, me: str, caller: str, event: Event, invite: str | None,
                introduction: Event | None = None, *, allow_introductions: bool = False) -> tuple[Row, bool]:
    """Accept or refuse a join (see the module docstring); returns (the member, whether an invite was spent).

    ``introduction``: the kind-7303 message a member of this node sent the caller naming this node;
    with ``allow_introductions`` it admits the caller as ``introduced`` when the rules allow.

    Raises `Refused`: 403 with an incident for a bad announcement or an unknown caller without a
    valid invite or introduction, 409 for a node joining itself.
    """
    try:
        announcement = check_announcement(event, signer=caller)
    except FederationError as exc:
        raise refuse(db, 403, caller, "bad_signature", str(exc)) from exc
    if caller == me:
        raise Refused(409, "conflict", "A node cannot join itself.")
    known = _store.get_member(db, caller)
    now = time.time()
    if known is not None and known["status"] in ("trusted", "joining"):  # joining: both added each other at once
        row = _store.upsert_member(db, caller, known["url"], name=announcement.name, added_by=known["added_by"],
                                   now=now, announcement=event, introduced_by=known.get("introduced_by"))
        return row, False
    if known is not None and known.get("removed_reason") == EQUIVOCATED:
        raise refuse(db, 403, caller, "unknown_peer", "Join refused: this node holds proof that your key signed two "
                     "ledger histories (equivocated).")
    if invite and _store.use_invite(db, _hash(invite), caller, now):
        return _store.upsert_member(db, caller, announcement.url, name=announcement.name, added_by="invite", now=now,
                                    announcement=event), True
    if introduction is not None:
        introducer = _vouched(db, me, caller, introduction, allowed=allow_introductions)
        return _store.upsert_member(db, caller, announcement.url, name=announcement.name, added_by="introduced",
                                    now=now, announcement=event, introduced_by=introducer), False
    why = ("the invite is unknown, used or expired" if invite else
           "this node does not trust your key yet and you sent no invite")
    raise refuse(db, 403, caller, "unknown_peer", f"Join refused: {why}. Ask this node's operator for an invite "
                 "(colony peers invite) or to add you (colony peers add YOUR_URL).")


def follow_url(db: Database, pubkey: str, url: str) -> str | None:
    """Store ``url`` as a trusted member's address if its stored announcement — re-verified here:
    signed by that key — gives it (the loop reached it there, and not at the stored URL). Returns the
    old URL when it changed, None otherwise; the change is logged."""
    member = _store.get_member(db, pubkey)
    if member is None or member["status"] != "trusted" or not member["last_announcement"]:
        return None
    try:
        stored = Event.model_validate(member["last_announcement"])
        announced = parse_announcement(stored).url.rstrip("/")
    except (ValueError, FederationError):
        return None
    if stored.pubkey != pubkey or announced != url.rstrip("/"):
        return None
    old = _store.set_url(db, pubkey, announced)
    if old is not None:
        log.info("federation: member %s… moved from %s to %s (its signed announcement)", pubkey[:12], old, announced)
    return old


def remove(db: Database, pubkey: str) -> bool:
    """Mark a member removed (its requests are refused from now on); False when it is not a member."""
    return _store.set_status(db, pubkey, "removed")


def remove_equivocator(db: Database, pubkey: str) -> bool:
    """Mark a member removed as `EQUIVOCATED`; False when it is no member or was removed for it before."""
    return _store.remove_for(db, pubkey, EQUIVOCATED)
