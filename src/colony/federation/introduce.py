"""Introductions: a colony is a mesh, not a star.

``colony spawn`` and invites connect each new node to the one that made or admitted it, so without
more a colony is a star: siblings never hear of each other, a sibling's agents cannot bid in
another's auctions, and when the centre dies the rest cannot reach each other to agree on a queen.
An introduction closes that gap with the trust already given, one step and no further:

1. **Sending** (`Introductions.step`, every heartbeat): for every ordered pair (X, Y) of members this
   node trusts *directly* (`colony.federation.membership.DIRECT`: added by its operator, spawned,
   or invited) that it has not introduced yet, a kind-7303 message to X naming Y — key, the URL
   this node reaches it at, name (`colony.federation.messages.Introduction`). Both directions go
   out, so each side hears of the other. The outbox keeps every event, so a pair is introduced
   once whatever restarts, and a member the CLI added (or a spawn made while this node was down)
   is introduced at the next heartbeat. Members this node knows only by introduction are never
   introduced on, nor introduced to: the receiver would refuse it anyway (no transitive chains).
2. **Receiving** (`handle_introduction`): the rules are membership's (`introduction_refusal`: the
   operator allows introductions, the introducer is trusted directly, the key is neither removed
   nor convicted of equivocation). An accepted introduction records the member as ``joining``,
   ``added_by`` ``introduced``, with its introducer; a refused one is logged and changes nothing.
3. **The handshake** (`handshake`, run by `Introductions` for each pending member, retried with
   backoff while it does not answer): this node fetches the member's hello at the introduced URL
   — a signed announcement, pinned to the introduced key — then asks it to accept us
   (``/federation/v1/join``) carrying the introduction it received as evidence, so the member can
   admit us on the same introducer's word even before its own copy arrives. Its answer is its own
   signed announcement; only then is it ``trusted`` here, and the normal links (announcements,
   outbox) start. Either side's join completes both: the side that accepts a join trusts the
   caller at once. A refusal (403/409: its operator does not accept introductions, it removed us)
   or a hello from another key forgets the pending member (the operator can still add it by hand);
   any other failure is retried.

Removing an introducer does not remove the members it introduced: each verified the other and
stands on its own. ``colony peers list`` shows who introduced whom.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from colony.federation import _store
from colony.federation.errors import FederationError, PeerUnreachable, Refused
from colony.federation.membership import DIRECT, introduction_refusal
from colony.federation.messages import (
    INTRODUCE_KIND,
    Announcement,
    Introduction,
    parse_introduction,
    register_handler,
)
from colony.federation.outbox import send
from colony.identity.events import Event
from colony.store import Database, Row

if TYPE_CHECKING:
    from colony.federation.client import PeerClient
    from colony.node import Node

__all__ = ["Introductions", "Outcome", "accept", "direct_members", "due", "handle_introduction", "handshake",
           "introduce_all", "pending"]

log = logging.getLogger("colony.federation")

#: What one handshake attempt came to: the member is ``trusted``; it was ``dropped`` (refused, or
#: another key answered); it did not answer (``unreachable``: try again later); or it is no longer
#: pending here (``gone``: trusted meanwhile by its own join, or removed by the operator).
Outcome = Literal["trusted", "dropped", "unreachable", "gone"]
#: Retries of an unanswered handshake back off from one heartbeat, doubling, to this many seconds.
MAX_RETRY_S = 30.0


# -- sending --------------------------------------------------------------------------------------
def direct_members(db: Database) -> list[Row]:
    """The trusted members this node's operator added, spawned or invited."""
    return [m for m in _store.list_members(db, "trusted") if m["added_by"] in DIRECT]


def due(db: Database, direct: list[Row] | None = None) -> list[tuple[str, Row]]:
    """(receiver, member) pairs of direct trusted members not introduced to each other yet."""
    direct = direct_members(db) if direct is None else direct
    if len(direct) < 2:
        return []
    sent = _store.introductions_sent(db, INTRODUCE_KIND)
    return [(to["pubkey"], member) for to in direct for member in direct
            if member["pubkey"] != to["pubkey"] and (to["pubkey"], member["pubkey"]) not in sent]


def introduce_all(node: Node, direct: list[Row] | None = None) -> list[Event]:
    """Queue an introduction for every pair `due` returns; returns the events queued."""
    queued = []
    for to, member in due(node.db, direct):
        try:
            content = Introduction(pubkey=member["pubkey"], url=member["url"], name=member["name"])
        except ValidationError:  # a stored URL or name the wire format does not carry: nothing to introduce
            log.info("federation: cannot introduce %s… (URL %r)", member["pubkey"][:12], member["url"])
            continue
        queued.append(send(node, to, INTRODUCE_KIND, content.model_dump_json(), [["member", member["pubkey"]]]))
    return queued


# -- receiving ------------------------------------------------------------------------------------
def accept(db: Database, me: str, introducer: str, named: Introduction, *, allowed: bool) -> Row | None:
    """Record ``named`` as a pending introduced member if the rules allow; the new row, or None when
    it is already a member or the introduction is refused (logged)."""
    known = _store.get_member(db, named.pubkey)
    if known is not None and known["status"] in ("trusted", "joining"):
        return None
    why = introduction_refusal(db, me, introducer, named.pubkey, allowed=allowed)
    if why is not None:
        log.info("federation: refused %s…'s introduction of %s…: %s", introducer[:12], named.pubkey[:12], why)
        return None
    return _store.upsert_member(db, named.pubkey, named.url, name=named.name, added_by="introduced",
                                now=time.time(), status="joining", introduced_by=introducer)


def handle_introduction(node: Node, event: Event) -> None:
    """The inbox handler of kind 7303 (the inbox verified the sender and the signature)."""
    try:
        named = parse_introduction(event)
    except FederationError as exc:  # retrying would not make it valid
        log.info("federation: %s… sent an introduction that does not parse: %s", event.pubkey[:12], exc)
        return
    accept(node.db, node.keyring.node().public_hex, event.pubkey, named,
           allowed=node.settings.federation_accept_introductions)


register_handler(INTRODUCE_KIND, handle_introduction)


# -- the handshake --------------------------------------------------------------------------------
def pending(db: Database) -> list[Row]:
    """Introduced members whose handshake is not done."""
    return [m for m in _store.list_members(db, "joining") if m["added_by"] == "introduced"]


def _drop(db: Database, pubkey: str, why: str) -> Outcome:
    if _store.drop_introduced(db, pubkey):
        log.info("federation: gave up the introduction of %s…: %s", pubkey[:12], why)
    return "dropped"


async def handshake(node: Node, client: PeerClient, pubkey: str, ours: Event) -> Outcome:
    """One attempt at the handshake with the pending member ``pubkey`` (see the module docstring);
    ``ours`` is this node's current announcement."""
    db = node.db
    member = await asyncio.to_thread(_store.get_member, db, pubkey)
    if member is None or member["status"] != "joining" or member["added_by"] != "introduced":
        return "gone"
    introducer, url = str(member["introduced_by"]), str(member["url"])
    why = await asyncio.to_thread(introduction_refusal, db, ours.pubkey, introducer, pubkey,
                                  allowed=node.settings.federation_accept_introductions)
    evidence = await asyncio.to_thread(_store.introduction_from, db, introducer, INTRODUCE_KIND, pubkey)
    if why is not None or evidence is None:  # the rules changed since (the introducer removed, the setting off)
        return await asyncio.to_thread(_drop, db, pubkey, why or "the introduction is no longer in the inbox")
    try:
        await client.hello(url, expect=pubkey)
        theirs = await client.join(url, ours, None, introduction=evidence, expect=pubkey)
    except PeerUnreachable:
        return "unreachable"
    except Refused as exc:
        if exc.status not in (403, 409):  # not its rules' answer (an error, a stale clock): try again later
            log.info("federation: the handshake with %s… failed (%s): %s", pubkey[:12], exc.status, exc)
            return "unreachable"
        return await asyncio.to_thread(_drop, db, pubkey, str(exc))
    except FederationError as exc:  # another key, or no announcement, at that URL
        return await asyncio.to_thread(_drop, db, pubkey, str(exc))
    try:
        name = Announcement.model_validate_json(theirs.content).name
    except ValidationError:  # the client verified it as an announcement; an empty name then
        name = ""
    if not await asyncio.to_thread(_store.promote_joining, db, pubkey):
        return "gone"
    await asyncio.to_thread(_store.store_announcement, db, pubkey, theirs, name, time.time())
    log.info("federation: %s… (%s, introduced by %s…) and this node trust each other", pubkey[:12], url,
             introducer[:12])
    return "trusted"


class Introductions:
    """The serving loop's part (`colony.federation.loop`): introduce new direct members each
    heartbeat, and run one handshake task per pending introduced member."""

    def __init__(self, node: Node, heartbeat_s: float) -> None:
        self.node, self.heartbeat_s = node, heartbeat_s
        self._tasks: dict[str, asyncio.Task[Outcome]] = {}
        #: The direct members when every pair of them was last found introduced: while they are the
        #: same, the outbox (which only grows) is not read again.
        self._introduced: frozenset[str] = frozenset()

    async def step(self, client: PeerClient, announcement: Callable[[], Awaitable[Event]]) -> None:
        """Queue due introductions; start a handshake for each pending member that has none running."""
        direct = await asyncio.to_thread(direct_members, self.node.db)
        keys = frozenset(m["pubkey"] for m in direct)
        if keys != self._introduced:
            await asyncio.to_thread(introduce_all, self.node, direct)
            self._introduced = keys
        for done in [k for k, task in self._tasks.items() if task.done()]:
            self._tasks.pop(done)
        for member in await asyncio.to_thread(pending, self.node.db):
            key = member["pubkey"]
            if key not in self._tasks:
                self._tasks[key] = asyncio.create_task(self._run(client, key, announcement),
                                                       name=f"colony-introduction-{key[:8]}")

    async def _run(self, client: PeerClient, pubkey: str, announcement: Callable[[], Awaitable[Event]]) -> Outcome:
        failures = 0
        while True:
            try:
                outcome = await handshake(self.node, client, pubkey, await announcement())
            except Exception:  # one member's failure must not end the others' (nor the loop)
                log.exception("federation: the handshake with %s… failed", pubkey[:12])
                outcome = "unreachable"
            if outcome != "unreachable":
                return outcome
            failures += 1
            await asyncio.sleep(min(self.heartbeat_s * 2 ** min(failures - 1, 6), MAX_RETRY_S))

    async def close(self) -> None:
        """Cancel the running handshakes (the pending members stay pending for the next start)."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
