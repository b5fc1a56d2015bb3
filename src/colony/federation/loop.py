"""The federation loop: what a serving node does in the background to stay part of its colony.

Every heartbeat (``COLONY_FEDERATION_HEARTBEAT_S``) the loop:

- runs the handlers of accepted messages that have not run yet (`colony.federation.inbox.sweep`);
- reads the trusted members (an operator may have added or removed one from the CLI, which writes
  the database directly) and, when there are any, re-signs this node's announcement;
- applies the queen rule to its view (`colony.federation.queen`) and claims the next term when the
  rule says so (`colony.federation.roles.claim`);
- introduces its direct members to each other and completes the handshakes with the members it was
  introduced to (`colony.federation.introduce`);
- passes on the equivocation proofs it has not reported yet (`colony.federation.replicate`);
- computes Psi over its live members and feeds it to the cognitive sphere (`colony.federation.colony_state`).

Every ``federation_sync_every`` heartbeats it also pulls each live member's ledger and reputation
into its replica, one member at a time in a thread (`colony.federation.replicate.sync_member`), as a
task of its own so a slow member never delays the heartbeat (a pass still running when the next is
due is not doubled). Every ``federation_learn_every`` heartbeats it runs a federated-averaging step
(`colony.federation.learn_task.Learner`). Each of these parts fails alone: its error is logged and
the rest of the tick goes on.

A node that has been away claims no term for `start_grace_s` (the members' longest backoff plus a
live window). Away means restarted, or paused while running: stopped (SIGSTOP), its machine
suspended, its event loop blocked — a pause shows as the loop's own watch (`_watch_pauses`) waking
more than ``LIVE_FACTOR - 1`` heartbeats late. Either way the last-seen times it holds are older
than its return, so its view shows everyone dead, while the members' links to it are backing off
from when it did not answer (or looking for it at its new address). Without the grace it would
claim a new term on its own and move the whole colony off a healthy queen: a node cannot tell
"everyone died" from "I was not there", so it gives the members their backoff to reach it again.
A restarted node's grace ends early once it has heard again from every member it knew
(`_settling` says why a paused node's cannot).

A node without members touches no key: its loop only reads two tables.

Each member has a *link* of its own, so a slow or stopped peer delays nobody else: every heartbeat
the link POSTs the announcement to the member (at the URL it was added with, or, when that does not
answer, at the one its latest signed announcement gives: a member restarted on another port is
followed there, `addresses`, and its stored URL becomes that one, `membership.follow_url`) and then
delivers the member's outbox in sequence order, one event at a time, marking each delivered only
when the member accepted it (or already had it). A member that does not answer is retried with backoff (doubling from one heartbeat, at
most eight heartbeats or 30 s); a member that asks for an earlier number (``reorder``) is resent
everything from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from colony.federation import _store
from colony.federation.announce import Announcer
from colony.federation.client import PeerClient
from colony.federation.colony_facts import announced_url, own_facts
from colony.federation.colony_state import load_series, psi_now, save_series
from colony.federation.errors import FederationError
from colony.federation.inbox import sweep
from colony.federation.introduce import Introductions
from colony.federation.learn_task import Learner
from colony.federation.membership import follow_url
from colony.federation.messages import RoleView, handled_kinds
from colony.federation.psi import PsiSeries
from colony.federation.queen import LIVE_FACTOR, Decision, decide, live_nodes
from colony.federation.replicate import MemberSync, gossip_proofs, slash, sync_member
from colony.federation.roles import adopt_from, claim, view
from colony.identity.events import Event
from colony.identity.keys import SchnorrKey
from colony.store import Row

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["Federation", "addresses", "start_in_process"]

log = logging.getLogger("colony.federation")

#: Backoff for a member that does not answer: heartbeats × 2^failures, at most this many heartbeats…
MAX_BACKOFF_BEATS = 8
#: … and never more than this many seconds.
MAX_BACKOFF_S = 30.0
#: One member's sync may take this many heartbeats (at least `MIN_SYNC_BUDGET_S`, at most `MAX_SYNC_BUDGET_S`).
SYNC_BUDGET_BEATS = 12
MIN_SYNC_BUDGET_S = 10.0
MAX_SYNC_BUDGET_S = 120.0


class Federation:
    """The running node's federation: its announcement, one link per member, the queen rule."""

    def __init__(self, node: Node, url: str) -> None:
        self.node, self.url = node, url
        settings = node.settings
        self.heartbeat_s = settings.federation_heartbeat_s
        self.sync_every, self.learn_every = settings.federation_sync_every, settings.federation_learn_every
        self.announcer = Announcer(node, url, extra=lambda: own_facts(node))
        self.me = ""  # set at the first tick with members (reading the key may unlock it: scrypt, off the loop)
        self.client: PeerClient | None = None
        self.beats = 0
        #: The last sync with each member (their totals are in the database).
        self.syncs: dict[str, MemberSync] = {}
        self.learner = Learner(node, interval_s=self.learn_every * self.heartbeat_s)
        self.series = PsiSeries()  # the persisted one is read when the loop starts
        self.introductions = Introductions(node, self.heartbeat_s)
        self._key: SchnorrKey | None = None
        self._announcement: tuple[float, Event] | None = None
        self._links: dict[str, asyncio.Task[None]] = {}
        self._syncing: asyncio.Task[None] | None = None
        self._reach: dict[str, str] = {}  # the address each member last answered at
        self._live: frozenset[str] = frozenset()
        self._stable_since = time.time()
        #: When this node last woke from a pause (`_watch_pauses`), if it did.
        self._woke_at: float | None = None

    # -- the announcement ---------------------------------------------------------------------
    async def announcement(self) -> Event:
        """This node's announcement, signed at most one heartbeat ago."""
        cached = self._announcement
        if cached is None or time.monotonic() - cached[0] >= self.heartbeat_s:
            event = await asyncio.to_thread(self.announcer.build)
            self._announcement = cached = (time.monotonic(), event)
        return cached[1]

    # -- one heartbeat ------------------------------------------------------------------------
    async def tick(self) -> None:
        """Run pending handlers, follow membership changes, announce, apply the queen rule, then the colony's
        shared work (`_colony`)."""
        db = self.node.db
        await asyncio.to_thread(sweep, self.node, handled_kinds())
        members = {m["pubkey"]: m for m in await asyncio.to_thread(_store.list_members, db, "trusted")}
        for gone in set(self._links) - set(members):
            self._links.pop(gone).cancel()
        if not members:
            return  # alone: nothing to announce, nobody to follow (and no key to unlock yet)
        if self.client is None:
            identity = await asyncio.to_thread(self.node.keyring.node)
            key = await asyncio.to_thread(lambda: identity.schnorr_key)
            self.me, self._key = identity.public_hex, key
            self.client = PeerClient(key, timeout_s=max(2.0, 2 * self.heartbeat_s))
        self._announcement = None
        await self.announcement()
        for peer in set(members) - set(self._links):
            self._links[peer] = asyncio.create_task(self._link(peer), name=f"colony-federation-{peer[:8]}")
        try:
            await self.introductions.step(self.client, self.announcement)
        except Exception:  # introductions fail alone: the heartbeat goes on
            log.exception("federation: introductions failed")
        now = time.time()
        v = await asyncio.to_thread(view, db, self.me, heartbeat_s=self.heartbeat_s, stable_since=self._stable_since,
                                    now=now)
        live = live_nodes(v)
        if live != self._live:
            self._live, self._stable_since = live, now
            v = await asyncio.to_thread(view, db, self.me, heartbeat_s=self.heartbeat_s, stable_since=now, now=now)
        decision = decide(v)
        if decision.action == "claim" and self._settling(members.values(), now):
            decision = Decision("wait")
        if decision.action == "claim" and await asyncio.to_thread(claim, self.node, decision.term) is not None:
            self._announcement = None  # the next heartbeat carries the new role
        self.beats += 1
        await self._colony(live)

    def _settling(self, members: Iterable[Row], now: float) -> bool:
        """True while a node that has just been away (restarted or paused) may still hear from members
        it knew before: it claims nothing then (see the module docstring).

        After a restart the grace ends early once every member it knew has been heard from again: its
        new socket took nothing while it was down, so a member heard has a working link to it. After a
        pause it does not: the announcements members sent meanwhile sat in the paused socket's backlog
        and are taken on waking, although their senders gave up on them and are backing off — heard
        once, those members then fall silent for up to their backoff."""
        if self._woke_at is not None and now - self._woke_at < self.start_grace_s:
            return True
        started = self.announcer.started_at
        if now - started >= self.start_grace_s:
            return False
        return any(m["last_seen"] is not None and float(m["last_seen"]) < started for m in members)

    @property
    def pause_s(self) -> float:
        """How late the loop's watch may wake before the node counts as having been away: later, and
        members it heard from just before may already look dead."""
        return (LIVE_FACTOR - 1) * self.heartbeat_s

    async def _watch_pauses(self) -> None:
        """Note every pause of this process (see the module docstring): a short sleep on the event loop
        that ends far too late means nothing here ran — nor answered a member — meanwhile. Wall-clock
        time, because a suspended machine's monotonic clock stands still."""
        every = min(self.heartbeat_s / 2, 1.0)
        while True:
            before = time.time()
            await asyncio.sleep(every)
            after = time.time()
            if after - before - every > self.pause_s:
                self._woke_at = after
                if self._links:  # a node on its own has nobody to mislead
                    log.warning("federation: this node did not run for %.1f s (stopped, suspended or its event loop "
                                "blocked); it claims no queen term for %.0f s while its members reach it again",
                                after - before, self.start_grace_s)

    @property
    def start_grace_s(self) -> float:
        return min(MAX_BACKOFF_S, MAX_BACKOFF_BEATS * self.heartbeat_s) + LIVE_FACTOR * self.heartbeat_s

    async def _colony(self, live: frozenset[str]) -> None:
        """The colony's shared work of this heartbeat: proofs, replication, learning, Psi."""
        try:
            await asyncio.to_thread(gossip_proofs, self.node)
        except Exception:
            log.exception("federation: passing on equivocation proofs failed")
        if self.beats % self.sync_every == 0 and (self._syncing is None or self._syncing.done()):
            self._syncing = asyncio.create_task(self._replicate(live - {self.me}), name="colony-federation-sync")
        if self.beats % self.learn_every == 0:
            try:
                await asyncio.to_thread(self.learner.step, self.me, live)
            except Exception:
                log.exception("federation: the learning step failed")
        try:
            await asyncio.to_thread(self._psi_step)
        except Exception:
            log.exception("federation: computing Psi failed")

    def _psi_step(self) -> None:
        now = time.time()
        reading = psi_now(self.node, self.me, self.heartbeat_s, now=now)
        if self.series.record(now, reading):
            save_series(self.node, self.series)
        substrate = self.node.cognition
        if substrate is not None:
            substrate.set_colony_psi(reading.psi)

    # -- replication ----------------------------------------------------------------------------
    @property
    def sync_budget_s(self) -> float:
        return min(MAX_SYNC_BUDGET_S, max(MIN_SYNC_BUDGET_S, SYNC_BUDGET_BEATS * self.heartbeat_s))

    async def _replicate(self, members: frozenset[str]) -> None:
        """Pull each live member's ledger and reputation, one at a time (see the module docstring)."""
        key = self._key
        assert key is not None, "replication starts once the key is read"
        found = 0
        for origin in sorted(members):
            try:  # one member's failure must not stop the others' syncs
                member = await asyncio.to_thread(_store.get_member, self.node.db, origin)
                if member is None or member["status"] != "trusted":
                    continue
                url = self._reach.get(origin) or addresses(member)[-1]
                done = await asyncio.to_thread(sync_member, self.node.db, key, origin, url,
                                               budget_s=self.sync_budget_s, timeout_s=max(2.0, 4 * self.heartbeat_s))
            except Exception:
                log.exception("federation: syncing %s… failed", origin[:12])
                continue
            self.syncs[origin] = done
            found += done.proofs
            if done.problems:
                log.info("federation: sync with %s (%s…): %s", url, origin[:12], "; ".join(done.problems))
        if found:
            await asyncio.to_thread(slash, self.node)  # never raises: a refused slash is retried next time

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every heartbeat until ``stop`` is set; one failed tick is logged, the next retries."""
        try:
            await asyncio.to_thread(_store.set_self, self.node.db, url=self.url, pid=os.getpid(),
                                    started_at=self.announcer.started_at, heartbeat_s=self.heartbeat_s)
        except Exception:  # the CLI then shows this node as not running; federation itself still works
            log.exception("federation: cannot record this node's URL")
        try:
            self.series = await asyncio.to_thread(load_series, self.node, self.heartbeat_s)
        except Exception:  # Psi starts a new series; the old one stays in the store
            log.exception("federation: cannot read the stored Psi series")
        watch = asyncio.create_task(self._watch_pauses(), name="colony-federation-pauses")
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except Exception:  # a background loop must outlive one bad tick
                    log.exception("federation tick failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.heartbeat_s)
        finally:
            tasks = [watch, *self._links.values(), *([self._syncing] if self._syncing is not None else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._links.clear()
            await self.introductions.close()
            if self.client is not None:
                await self.client.aclose()
                self.client = None

    # -- one member ---------------------------------------------------------------------------
    async def _link(self, peer: str) -> None:
        assert self.client is not None, "links start once the client is made"
        failures = 0
        while True:
            member = await asyncio.to_thread(_store.get_member, self.node.db, peer)
            if member is None or member["status"] != "trusted":
                return
            try:
                url, role = await self._announce_to(peer, member)
                if role is not None and await asyncio.to_thread(adopt_from, self.node.db, role):
                    self._announcement = None  # the next heartbeat carries the role just adopted
                await self._drain(peer, url)
            except FederationError as exc:
                failures += 1
                if failures == 1:
                    log.info("federation: %s (%s…) did not take our messages: %s", member["url"], peer[:12], exc)
            else:
                failures = 0
            beats = min(2 ** failures, MAX_BACKOFF_BEATS) if failures else 1
            await asyncio.sleep(min(self.heartbeat_s * beats, MAX_BACKOFF_S))

    async def _announce_to(self, peer: str, member: Row) -> tuple[str, RoleView | None]:
        """POST the announcement at the member's addresses (`addresses`), the one that last answered
        first; returns the one that took it and the role it follows. Raises the last failure."""
        assert self.client is not None, "links start once the client is made"
        urls = addresses(member)
        known = self._reach.get(peer)
        if known in urls:
            urls = [known, *(u for u in urls if u != known)]
        failed: FederationError | None = None
        for url in urls:
            try:
                role = await self.client.announce(url, await self.announcement())
            except FederationError as exc:
                failed = exc
                continue
            self._reach[peer] = url
            if url != str(member["url"]).rstrip("/"):  # the stored one did not answer; its announced one did
                await asyncio.to_thread(follow_url, self.node.db, peer, url)
            return url, role
        assert failed is not None, "a member has at least one address"
        raise failed

    async def _drain(self, peer: str, url: str) -> None:
        """Deliver the member's outbox in order; stops at the first event it does not take."""
        db, client = self.node.db, self.client
        assert client is not None, "links start once the client is made"
        while rows := await asyncio.to_thread(_store.pending, db, peer):
            for row in rows:
                seq = int(row["seq"])
                await asyncio.to_thread(_store.note_attempt, db, peer, seq)
                result = await client.deliver(url, Event.model_validate_json(row["event"]))
                if result.outcome == "reorder" and result.expected is not None:
                    if result.expected >= seq or not await asyncio.to_thread(_store.rewind, db, peer, result.expected):
                        raise FederationError(f"the member expects message {result.expected}, which this node never "
                                              f"queued for it (it has {seq})", reason="reorder")
                    break  # resend from what it expects
                await asyncio.to_thread(_store.mark_delivered, db, peer, seq, time.time())


def addresses(member: Row) -> list[str]:
    """Where a member may be reached: the URL it was added with, then the one its latest announcement
    gives if that differs (a member restarted on another port announces its new one; a node behind a
    proxy may announce one its peers cannot use, hence both, in this order)."""
    urls = [str(member["url"]).rstrip("/")]
    announced = announced_url(member["last_announcement"])
    if announced is not None and announced not in urls:
        urls.append(announced)
    return urls


def start_in_process(node: Node, url: str) -> tuple[Federation, Callable[[], Awaitable[None]]]:
    """Run the loop as a task of the running event loop (``colony up``); return it and its stopper."""
    federation = Federation(node, url)
    stop = asyncio.Event()
    task = asyncio.create_task(federation.run(stop), name="colony-federation")

    async def shutdown() -> None:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 10.0)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return federation, shutdown
