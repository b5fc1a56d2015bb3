"""Receiving: what this node checks before it accepts anything another node sends.

The HTTP layer has already checked the NIP-98 header (a fresh, unreplayed request signed by the
caller's key) and that the caller is a trusted member. Here, for a message (``/inbox``):

1. the event is the caller's own (``event.pubkey`` is the NIP-98 signer) and its id and signature
   recompute (`verify_event`) — else ``bad_signature``;
2. it is a message kind and addressed to this node (``p`` tag) — else refused; addressed to another
   node it is a ``replay`` of someone else's message;
3. its ``seq`` is exactly the last accepted from this sender + 1, checked and recorded in one
   transaction: the same event again is answered ``{"duplicate": true}`` and is not an incident —
   only its signer can send it (the NIP-98 header must be signed by the same key, fresh), so it is
   the sender's own retry after a lost answer or a crash between delivering and marking delivered;
   another event with an old number is a ``replay`` (409); a number past the next is a ``reorder``
   (409, with the number expected, so the sender resends from there).

An accepted message is stored in ``federation_inbox`` and handed to its kind's handler
(`colony.federation.messages.register_handler`); a handler that fails is retried by the loop
(`sweep`) up to `MAX_HANDLER_ATTEMPTS` times, later messages of the same sender waiting behind it.

For an announcement (``/announce``): signed by the caller, verified whole when it is newer than
the stored one (an older one — a heartbeat delayed in the network — only counts as contact; one
dated far in the future is ``stale``), the caller marked heard-from now, and the role it carries
adopted if the queen rule prefers it (`colony.federation.roles.adopt_from`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from colony.federation import _store
from colony.federation.errors import FederationError, Refused
from colony.federation.membership import IncidentKind, check_announcement, refuse
from colony.federation.messages import (
    FIRST_MESSAGE_KIND,
    LAST_KIND,
    handled_kinds,
    handler_for,
    message_seq,
    parse_announcement,
)
from colony.federation.roles import adopt_from
from colony.identity.events import Event, verify_event

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["MAX_HANDLER_ATTEMPTS", "dispatch", "receive_announcement", "receive_message", "sweep"]

log = logging.getLogger("colony.federation")

MAX_HANDLER_ATTEMPTS = 5
#: An announcement dated further ahead of this node's clock is refused as ``stale`` (a bad clock).
MAX_FUTURE_S = 300


def receive_message(node: Node, caller: str, event: Event) -> dict[str, Any]:
    """Accept the next message from ``caller`` (a trusted member) or raise `Refused`."""
    db, me = node.db, node.keyring.node().public_hex
    if event.pubkey != caller:
        raise refuse(db, 403, caller, "bad_signature", "The message is not signed by the key that signed the request.")
    if not verify_event(event):
        raise refuse(db, 403, caller, "bad_signature", "The message's id does not match its fields or its signature "
                     "does not verify.")
    if not FIRST_MESSAGE_KIND <= event.kind <= LAST_KIND:
        raise Refused(403, "invalid", f"Messages have kinds {FIRST_MESSAGE_KIND}-{LAST_KIND}, not {event.kind}.")
    if event.tag("p") != me:
        raise refuse(db, 403, caller, "replay", "The message is addressed to another node.")
    seq = message_seq(event)
    if seq is None:
        raise Refused(403, "invalid", "A message carries a ['seq', n] tag with n a positive integer.")
    verdict, last = _store.accept_inbox(db, caller, seq, event, time.time())
    if verdict == "accepted":
        if not _store.waiting_before(db, caller, seq, handled_kinds(), MAX_HANDLER_ATTEMPTS):
            dispatch(node, caller, seq, event)  # else the sweep runs it after the ones before it
        return {"accepted": True, "seq": seq}
    if verdict == "duplicate":
        log.info("federation: message %d from %s delivered again (a retry): answered as a duplicate", seq, caller[:12])
        return {"accepted": False, "duplicate": True, "seq": seq}
    kind: IncidentKind = "replay" if verdict == "replay" else "reorder"
    message = (f"Message {seq} is not the next one from you: {last} were accepted, {last + 1} is expected." if
               kind == "reorder" else f"Message {seq} was already accepted as another event.")
    raise refuse(db, 409, caller, kind, message, expected=last + 1)


def dispatch(node: Node, sender: str, seq: int, event: Event) -> bool:
    """Run the kind's handler on an accepted message and record the outcome; False when it failed."""
    handler = handler_for(event.kind)
    if handler is None:
        return False  # stays unhandled until a capability registers a handler for its kind
    try:
        handler(node, event)
    except Exception as exc:  # a handler's failure must not lose the message: it is retried by the sweep
        log.warning("federation: handler of kind %d failed on %s… #%d: %s", event.kind, sender[:12], seq, exc)
        _store.mark_handled(node.db, sender, seq, time.time(), error=f"{type(exc).__name__}: {exc}")
        return False
    _store.mark_handled(node.db, sender, seq, time.time())
    return True


def sweep(node: Node, kinds: list[int]) -> int:
    """Handle accepted messages whose handler has not run (or failed); returns how many succeeded."""
    done, blocked = 0, set()
    for row in _store.unhandled(node.db, kinds, MAX_HANDLER_ATTEMPTS):
        if row["sender"] in blocked:
            continue
        if dispatch(node, row["sender"], int(row["seq"]), Event.model_validate_json(row["event"])):
            done += 1
        else:
            blocked.add(row["sender"])  # later messages of this sender wait behind the failed one
    return done


def receive_announcement(node: Node, caller: str, event: Event) -> bool:
    """Take a member's heartbeat; returns True when its stored announcement changed."""
    db = node.db
    member = _store.get_member(db, caller)
    try:
        if event.pubkey != caller:
            raise FederationError("The announcement is not signed by the key that signed the request.",
                                  reason="bad_signature")
        stored = member["announced_at"] if member else None
        if event.created_at > time.time() + MAX_FUTURE_S:
            raise refuse(db, 409, caller, "stale", f"The announcement is dated more than {MAX_FUTURE_S} s ahead of "
                         "this node's clock; check the clock.")
        newer = stored is None or event.created_at > stored
        announcement = check_announcement(event) if newer else parse_announcement(event)
    except FederationError as exc:
        if isinstance(exc, Refused):
            raise
        raise refuse(db, 403, caller, "bad_signature", str(exc)) from exc
    now = time.time()
    vouch = None
    if announcement.role.queen is not None and announcement.queen_seen_s is not None:
        vouch = (announcement.role.queen, now - announcement.queen_seen_s)
    changed = _store.store_announcement(db, caller, event, announcement.name, now, vouch)
    adopt_from(db, announcement.role)
    return changed
