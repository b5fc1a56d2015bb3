"""The queen rule applied to this node's stored view: claiming a term, accepting claims, the view.

`colony.federation.queen` is the rule as pure functions; this module feeds it from the database
and acts on its decisions. The role a node follows is one row (``federation_self``), changed only
in a transaction that re-checks the rule (`_store.adopt_role`), so a claim arriving by message and
the same claim relayed in an announcement cannot race each other into a wrong state.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from colony.federation import _store
from colony.federation.errors import FederationError
from colony.federation.messages import CLAIM_KIND, RoleView, claim_term, register_handler
from colony.federation.outbox import broadcast
from colony.federation.queen import Role, View
from colony.identity.events import Event

if TYPE_CHECKING:
    from colony.node import Node
    from colony.store import Database

__all__ = ["adopt_claim", "adopt_from", "claim", "current_role", "handle_claim", "role_view", "view"]

log = logging.getLogger("colony.federation")


def current_role(db: Database) -> Role:
    mine = _store.get_self(db)
    return Role(mine["queen"], int(mine["term"]))


def role_view(db: Database) -> RoleView:
    """The role this node follows, with the queen's signed claim, as announcements carry it."""
    mine = _store.get_self(db)
    claim = Event.model_validate(mine["claim"]) if mine["claim"] else None
    return RoleView(queen=mine["queen"], term=int(mine["term"]), claim=claim)


def adopt_claim(db: Database, event: Event) -> bool:
    """Follow the queen of a signed claim if the rule accepts it; False when it is not better than ours.

    `FederationError` when the event is not a valid claim (bad signature, bad content).
    """
    term = claim_term(event)
    changed = _store.adopt_role(db, event.pubkey, term, event)
    if changed:
        log.info("federation: following queen %s… for term %d", event.pubkey[:12], term)
    return changed


def adopt_from(db: Database, role: RoleView) -> bool:
    """Follow the role another node announced, if it carries a valid claim by that queen that wins."""
    if role.claim is None or role.queen is None or role.claim.pubkey != role.queen:
        return False
    current = current_role(db)
    if role.term < current.term or (role.term == current.term and role.queen == current.queen):
        return False  # nothing to gain: skip verifying the signature
    try:
        return adopt_claim(db, role.claim) if claim_term(role.claim) == role.term else False
    except FederationError:
        return False


def claim(node: Node, term: int) -> Event | None:
    """Claim ``term`` as queen: sign, follow it ourselves, and send it to every trusted member.

    Returns the claim, or None when the stored role already moved past it (someone else's claim
    arrived first).
    """
    me = node.keyring.node()
    content = json.dumps({"term": term}, separators=(",", ":"))
    signed = me.sign(CLAIM_KIND, content, [["term", str(term)]])
    if not _store.adopt_role(node.db, me.public_hex, term, signed):
        return None
    log.info("federation: claimed the queen role for term %d", term)
    broadcast(node, CLAIM_KIND, content, [["term", str(term)]])
    return signed


def handle_claim(node: Node, event: Event) -> None:
    """The inbox handler of kind 7302: a member's claim."""
    adopt_claim(node.db, event)


register_handler(CLAIM_KIND, handle_claim)


def view(db: Database, me: str, *, heartbeat_s: float, stable_since: float = 0.0, now: float | None = None) -> View:
    """This node's view: its trusted members' last-heard times and the role it follows."""
    members = _store.list_members(db, "trusted")
    seen = {m["pubkey"]: m["last_seen"] for m in members}
    vouches = {m["pubkey"]: (m["vouches_queen"], float(m["vouched_at"])) for m in members
               if m["vouches_queen"] is not None and m["vouched_at"] is not None}
    return View(me=me, now=time.time() if now is None else now, heartbeat_s=heartbeat_s, last_seen=seen,
                role=current_role(db), stable_since=stable_since, vouches=vouches)
