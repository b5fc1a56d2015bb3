"""Peers: other nodes' agents that introduced themselves with a signed card.

A peer directory is only as good as what it refuses. `record_peer` keeps a card only after
`verify_card_event` has checked it (signature over the recomputed id, the card naming its
signer, the EVM binding proof), and only when the introduction was made by that same key — so
nobody can file a card for someone else. Cards are replaceable: an older one never overwrites a
newer one, so a replayed old introduction changes nothing.
"""

from __future__ import annotations

import time
from typing import Any

from colony.errors import IdentityError
from colony.identity._store import list_peers, upsert_peer
from colony.identity.cards import verify_card_event
from colony.identity.events import Event
from colony.identity.keys import npub
from colony.store import Database

__all__ = ["known_peers", "record_peer"]

MAX_NAME_CHARS = 64


def record_peer(db: Database, card_event: Event, *, introduced_by: str) -> tuple[dict[str, Any], bool]:
    """Keep a peer's verified card; returns (the peer's summary, whether the stored card changed).

    ``introduced_by`` is the public key that authenticated the request (NIP-98); it must be the
    card's own. `IdentityError` (reason ``invalid``) for a card that does not verify, ``forbidden``
    for a card introduced by another key.
    """
    card = verify_card_event(card_event)
    if card_event.pubkey != introduced_by:
        raise IdentityError("A card can only be introduced by its own key: the NIP-98 header must be signed by "
                            "the key that signed the card.", reason="forbidden")
    name = card.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise IdentityError(f"The card's name must be 1-{MAX_NAME_CHARS} characters.", reason="invalid")
    changed = upsert_peer(db, card_event.pubkey, name, card, card_event.model_dump(), card_event.created_at,
                          time.time())
    return {"pubkey": card_event.pubkey, "npub": npub(card_event.pubkey), "name": name}, changed


def known_peers(db: Database) -> list[dict[str, Any]]:
    """Every peer's newest card, most recently seen first."""
    return [{"pubkey": p["public_hex"], "npub": npub(p["public_hex"]), "name": p["name"], "card": p["card"],
             "event": p["event"], "first_seen": p["first_seen"], "last_seen": p["last_seen"]}
            for p in list_peers(db)]
