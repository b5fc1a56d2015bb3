"""Signed objects: NIP-01 events, the one format for everything Colony signs.

The id of an event is ``sha256`` of the canonical serialisation
``[0, pubkey, created_at, kind, tags, content]`` (JSON, no whitespace, non-ASCII kept verbatim);
the signature is BIP-340 over that id. `verify_event` recomputes the id from the fields and
checks the signature against the recomputed id: an ``id`` field that does not match its fields
is refused however valid the signature over it (the NIP examples marked invalid are exactly
that case).

Kinds Colony uses are listed in `KINDS`; ledger entries, transfer authorisations, marketplace
announcements, bids and results all take this shape, so one verifier checks them all.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from colony.identity.keys import SchnorrKey, schnorr_verify

__all__ = ["KINDS", "Event", "canonical", "event_id", "sign_event", "verify_event"]

#: Kinds of Colony's own events (regular range 1000-9999; replaceable 10000-19999: the newest per
#: key wins; NIP-98's HTTP auth is 27235).
KINDS = {
    "transfer": 7100,        # a payer's authorisation of a ledger transfer
    "ledger_entry": 7101,    # a home node's sequenced entry in one account's chain
    "treasury": 7102,        # a node's audited mint
    "agent_card": 17100,     # an agent's ERC-8004-shaped card, signed by the agent (colony.identity.cards)
    "http_auth": 27235,      # NIP-98
}


class Event(BaseModel):
    """A NIP-01 event. Unknown fields are refused; numbers and strings keep their exact values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[0-9a-f]{64}$")
    pubkey: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: int = Field(ge=0, le=2**53)
    kind: int = Field(ge=0, le=65535)
    tags: list[list[str]]
    content: str
    sig: str = Field(pattern=r"^[0-9a-f]{128}$")

    def tag(self, name: str) -> str | None:
        """The first value of the first tag called ``name``."""
        for tag in self.tags:
            if tag and tag[0] == name and len(tag) > 1:
                return tag[1]
        return None


def canonical(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> bytes:
    """The bytes whose sha256 is the event id (NIP-01)."""
    return json.dumps([0, pubkey, created_at, kind, tags, content], separators=(",", ":"),
                      ensure_ascii=False).encode()


def event_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> str:
    return hashlib.sha256(canonical(pubkey, created_at, kind, tags, content)).hexdigest()


def sign_event(key: SchnorrKey, kind: int, content: str, tags: list[list[str]] | None = None,
               created_at: int | None = None) -> Event:
    """A new event by ``key``, signed over its recomputable id."""
    tags = [list(t) for t in (tags or [])]
    at = int(time.time()) if created_at is None else created_at
    pubkey = key.public_hex
    eid = event_id(pubkey, at, kind, tags, content)
    return Event(id=eid, pubkey=pubkey, created_at=at, kind=kind, tags=tags, content=content,
                 sig=key.sign(bytes.fromhex(eid)).hex())


def verify_event(event: Event | dict[str, Any]) -> bool:
    """True when the event's id matches its fields and its signature verifies over that id."""
    try:
        ev = event if isinstance(event, Event) else Event.model_validate(event)
    except ValueError:
        return False
    recomputed = event_id(ev.pubkey, ev.created_at, ev.kind, ev.tags, ev.content)
    if recomputed != ev.id:
        return False
    return schnorr_verify(ev.pubkey, bytes.fromhex(recomputed), bytes.fromhex(ev.sig))
