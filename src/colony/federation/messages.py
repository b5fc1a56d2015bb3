"""Federation's wire format: event kinds, the announcement, node-to-node messages, and handlers.

Everything one node tells another is a NIP-01 event signed by the sender's node key
(`colony.identity.events`), in the 7300-7399 range:

- **7300, announcement**: who the node is — its URL, name, version, start time, its agents' signed
  cards (`colony.identity.cards`), the queen and term it follows with the queen's own signed claim,
  and a small status. ``GET /federation/v1/hello`` answers it; it is also the heartbeat, POSTed to
  every member's ``/federation/v1/announce``. It is not numbered: the newest wins.
- **7301 and up, messages**: tagged ``["p", receiver]`` and ``["seq", n]`` (per sender → receiver,
  from 1, no gaps), delivered in order through the sender's outbox to ``/federation/v1/inbox``.
  7302 is the queen's claim (content ``{"term": n}``); 7301 is a plain note; 7303 is an
  *introduction* (`Introduction`: the sender introduces one of its members to the receiver,
  `colony.federation.introduce`); other capabilities take kinds from 7310 on and register a handler
  for them (`register_handler`).

Parsing trusts nothing it can recompute: the id and signature are checked (`verify_event`), the
kind must be the one expected, the content must parse into the model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from colony.federation.errors import FederationError
from colony.identity.events import Event, sign_event, verify_event
from colony.identity.keys import SchnorrKey

if TYPE_CHECKING:
    from colony.node import Node

__all__ = [
    "ANNOUNCE_KIND",
    "CLAIM_KIND",
    "FIRST_MESSAGE_KIND",
    "INTRODUCE_KIND",
    "LAST_KIND",
    "NOTE_KIND",
    "Announcement",
    "Handler",
    "Introduction",
    "RoleView",
    "claim_term",
    "handled_kinds",
    "handler_for",
    "message_event",
    "message_seq",
    "parse_announcement",
    "parse_introduction",
    "register_handler",
]

ANNOUNCE_KIND = 7300
NOTE_KIND = 7301
CLAIM_KIND = 7302
INTRODUCE_KIND = 7303
FIRST_MESSAGE_KIND = 7301
LAST_KIND = 7399
HEX64 = r"^[0-9a-f]{64}$"
URL_PATTERN = r"^https?://[^/\s?#]+(/[^\s?#]*)?$"


class RoleView(BaseModel):
    """The queen a node follows, her term, and her signed claim (None before any claim)."""

    model_config = ConfigDict(extra="forbid")

    queen: str | None = Field(default=None, pattern=HEX64)
    term: int = Field(default=0, ge=0, le=2**53)
    claim: Event | None = None


class Announcement(BaseModel):
    """The content of a kind-7300 event. Unknown fields are ignored: a newer node may say more."""

    model_config = ConfigDict(extra="ignore")

    url: str = Field(pattern=URL_PATTERN, max_length=500)
    name: str = Field(default="", max_length=64)
    version: str = Field(default="", max_length=64)
    started_at: float = 0.0
    agents: list[Event] = Field(default_factory=list, max_length=256)
    role: RoleView = Field(default_factory=RoleView)
    #: Seconds since the announcer last heard from the queen directly (0: it is the queen; None: not
    #: directly): how a node vouches for a queen its peers may have no link to (`colony.federation.queen`).
    queen_seen_s: float | None = Field(default=None, ge=0)
    status: dict[str, Any] = Field(default_factory=dict)


def parse_announcement(event: Event) -> Announcement:
    """The announcement inside a signed kind-7300 event; `FederationError` (``bad_signature`` or
    ``invalid``) when it does not verify or does not parse."""
    if event.kind != ANNOUNCE_KIND:
        raise FederationError(f"An announcement has kind {ANNOUNCE_KIND}, not {event.kind}.", reason="invalid")
    if not verify_event(event):
        raise FederationError("The announcement's id does not match its fields or its signature does not verify.",
                              reason="bad_signature")
    try:
        return Announcement.model_validate_json(event.content)
    except ValidationError as exc:
        raise FederationError(f"The announcement's content is not valid: {exc.errors()[0]['msg']}.",
                              reason="invalid") from exc


class Introduction(BaseModel):
    """The content of a kind-7303 message: a member of the sender's, introduced to the receiver.

    The event also carries the member's key as a ``["member", key]`` tag (so a node can list what
    it introduced to whom without parsing contents). The URL is where the sender reaches it; the
    receiver verifies the member's own signed hello there before trusting it
    (`colony.federation.introduce`)."""

    model_config = ConfigDict(extra="ignore")

    pubkey: str = Field(pattern=HEX64)
    url: str = Field(pattern=URL_PATTERN, max_length=500)
    name: str = Field(default="", max_length=64)


def parse_introduction(event: Event) -> Introduction:
    """The introduction inside a signed kind-7303 event; `FederationError` (``bad_signature`` or
    ``invalid``) when it does not verify or does not parse."""
    if event.kind != INTRODUCE_KIND:
        raise FederationError(f"An introduction has kind {INTRODUCE_KIND}, not {event.kind}.", reason="invalid")
    if not verify_event(event):
        raise FederationError("The introduction's id does not match its fields or its signature does not verify.",
                              reason="bad_signature")
    try:
        introduction = Introduction.model_validate_json(event.content)
    except ValidationError as exc:
        raise FederationError(f"The introduction's content is not valid: {exc.errors()[0]['msg']}.",
                              reason="invalid") from exc
    if event.tag("member") != introduction.pubkey:
        raise FederationError("An introduction's ['member', key] tag names the member of its content.",
                              reason="invalid")
    return introduction


def claim_term(event: Event) -> int:
    """The term a signed kind-7302 claim names; `FederationError` when it is not a valid claim."""
    if event.kind != CLAIM_KIND or not verify_event(event):
        raise FederationError("Not a valid queen claim: wrong kind, or the signature does not verify.",
                              reason="bad_signature")
    try:
        term = json.loads(event.content)["term"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FederationError("A queen claim's content must be {\"term\": n}.", reason="invalid") from exc
    if not isinstance(term, int) or isinstance(term, bool) or not 1 <= term <= 2**53:
        raise FederationError("A queen claim's term must be a positive integer.", reason="invalid")
    return term


def message_event(key: SchnorrKey, receiver: str, seq: int, kind: int, content: str,
                  tags: list[list[str]] | None = None) -> Event:
    """A message to ``receiver``, number ``seq`` from this sender to it, signed by ``key``."""
    if not FIRST_MESSAGE_KIND <= kind <= LAST_KIND:
        raise FederationError(f"Message kinds are {FIRST_MESSAGE_KIND}-{LAST_KIND}, not {kind}.")
    return sign_event(key, kind, content, [["p", receiver], ["seq", str(seq)], *(tags or [])])


def message_seq(event: Event) -> int | None:
    """The ``seq`` tag as a positive integer, or None when it is missing or malformed."""
    raw = event.tag("seq")
    if raw is None or not raw.isdigit() or raw.startswith("0"):
        return None
    return int(raw)


#: ``handler(node, event)``: called once per accepted message of its kind, in order per sender.
#: Raise to have it retried (up to `MAX_HANDLER_ATTEMPTS` times, by the federation loop).
Handler = Callable[["Node", Event], None]
_handlers: dict[int, Handler] = {}
_lock = threading.Lock()


def register_handler(kind: int, handler: Handler, *, replace: bool = False) -> None:
    """Have ``handler`` called for every accepted message of ``kind`` (one handler per kind; ``replace``
    swaps an existing one instead of refusing)."""
    if not FIRST_MESSAGE_KIND <= kind <= LAST_KIND:
        raise FederationError(f"Message kinds are {FIRST_MESSAGE_KIND}-{LAST_KIND}, not {kind}.")
    with _lock:
        existing = _handlers.get(kind)
        if existing is not None and existing is not handler and not replace:
            raise FederationError(f"Kind {kind} already has a handler ({existing.__qualname__}).")
        _handlers[kind] = handler


def handler_for(kind: int) -> Handler | None:
    with _lock:
        return _handlers.get(kind)


def handled_kinds() -> list[int]:
    """The message kinds that have a handler."""
    with _lock:
        return sorted(_handlers)
