"""Sending: every message to a peer is signed, numbered and queued durably before it leaves.

`send` signs a message for one peer with the next sequence number for that peer and stores it in
``federation_outbox`` in one transaction; the federation loop (`colony.federation.loop`) delivers
each peer's queue in order, one event at a time, retrying with backoff until the peer answers. A
peer that is down, stopped or cut off therefore gets everything, in order, when it is back, and a
sender that crashes loses nothing it had queued. `broadcast` sends to every trusted member.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from colony.federation import _store
from colony.federation.errors import FederationError
from colony.federation.messages import message_event
from colony.identity.events import Event

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["broadcast", "send"]


def send(node: Node, peer: str, kind: int, content: str, tags: list[list[str]] | None = None) -> Event:
    """Queue a message of ``kind`` for ``peer`` (a trusted member); returns the signed event."""
    member = _store.get_member(node.db, peer)
    if member is None or member["status"] != "trusted":
        raise FederationError(f"{peer[:16]}… is not a trusted member of this node's colony: add it first "
                              "(colony peers add URL).", reason="not_found")
    key = node.keyring.node().schnorr_key  # unlocked before the transaction: scrypt must not hold the write lock
    return _store.enqueue(node.db, peer, lambda seq: message_event(key, peer, seq, kind, content, tags), time.time())


def broadcast(node: Node, kind: int, content: str, tags: list[list[str]] | None = None) -> list[Event]:
    """Queue the message for every trusted member; returns the events, one per member."""
    return [send(node, m["pubkey"], kind, content, tags) for m in _store.list_members(node.db, "trusted")]
