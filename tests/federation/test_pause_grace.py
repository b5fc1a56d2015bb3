"""A node that was paused (SIGSTOP, a suspended machine, a blocked event loop) claims no queen term on
waking just because its view went stale while it was away (`colony.federation.loop`).

One node, c, runs its real federation loop in-process; its two members a and b (lower keys, so c would
be queen only if both were dead) are real nodes whose signed announcements reach c through the real
inbox (`receive_announcement`) every tenth of a second while they "speak". The pause is the event loop
itself blocked, as SIGSTOP blocks it: nothing in c runs meanwhile. The members' links to c would then
be backing off, so they are silent for a while after c wakes.

Found in CI: the highest node of three, stopped longer than three heartbeats, woke, saw both others
dead, claimed term 2 after one live window and moved the whole colony off a healthy queen. Ending the
grace as soon as every member was heard again is not enough: the members' announcements sent during
the pause are taken from the socket's backlog on waking, and then the members are silent for their
backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from fed_helpers import key, trust

from colony.config import Settings
from colony.federation.announce import Announcer
from colony.federation.inbox import receive_announcement
from colony.federation.loop import Federation
from colony.federation.queen import LIVE_FACTOR
from colony.federation.roles import current_role
from colony.node import Node
from colony.server.run import free_port

HEARTBEAT_S = 0.3
#: A pause: longer than the live window (0.9 s), so everything c heard before looks dead when it wakes.
PAUSE_S = 3.0
#: How long the members stay silent after c wakes: their links' backoff (at most 8 heartbeats) left to run.
BACKOFF_S = 2.2
Trio = tuple[Node, Node, Node]


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Trio]:
    """Nodes a < b < c by key; c trusts a and b (at addresses where nothing answers: their links to c are
    what would carry their heartbeats, and the test plays those)."""
    made = [Node(Settings(home=tmp_path / name, federation_heartbeat_s=HEARTBEAT_S)) for name in "xyz"]
    for n in made:
        n.keyring.ensure(announce=False)
    made.sort(key=key)
    a, b, c = made
    trust(c, a, b)
    try:
        yield a, b, c
    finally:
        for n in made:
            n.db.close()


class Colony:
    """c's federation loop, running, and the members' heartbeats into c's inbox while they speak."""

    def __init__(self, trio: Trio) -> None:
        self.a, self.b, self.c = trio
        self.fed = Federation(self.c, f"http://127.0.0.1:{free_port('127.0.0.1')}")
        self.speaking: set[Node] = set()
        self.announcers = {m: Announcer(m, f"http://127.0.0.1:9/{m.settings.home.name}") for m in (self.a, self.b)}
        self.claimed_at: float | None = None
        self.claimed = asyncio.Event()

    async def _heartbeats(self) -> None:
        while True:
            for m in list(self.speaking):
                event = await asyncio.to_thread(self.announcers[m].build)
                await asyncio.to_thread(receive_announcement, self.c, key(m), event)
            await asyncio.sleep(0.1)

    async def _watch_role(self) -> None:
        while self.claimed_at is None:
            if (await asyncio.to_thread(current_role, self.c.db)).queen == key(self.c):
                self.claimed_at = time.time()
                self.claimed.set()
            await asyncio.sleep(0.05)

    async def wait_for_claim(self, within_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.claimed.wait(), within_s)

    async def run(self, scenario: Coroutine[Any, Any, None]) -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(coro) for coro in
                 (self.fed.run(stop), self._heartbeats(), self._watch_role())]
        try:
            await scenario
        finally:
            stop.set()
            for t in tasks[1:]:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def settle(self) -> None:
        """Both members speak for longer than the live window: c follows nobody's claim and claims nothing."""
        self.speaking = {self.a, self.b}
        await asyncio.sleep(LIVE_FACTOR * HEARTBEAT_S + 1.0)
        assert self.claimed_at is None

    def pause(self) -> float:
        """Block c's event loop (nothing of c runs, as under SIGSTOP); the members fall silent at once."""
        self.speaking = set()
        time.sleep(PAUSE_S)
        return time.time()


def test_a_paused_node_claims_nothing_while_its_members_find_it_again(trio: Trio) -> None:
    colony = Colony(trio)

    async def scenario() -> None:
        await colony.settle()
        colony.pause()
        # On waking c takes the announcements that waited in its socket's backlog (their senders gave
        # up on them) ...
        for m in (colony.a, colony.b):
            await asyncio.to_thread(receive_announcement, colony.c, key(m), colony.announcers[m].build())
        # ... then the members, backing off, are silent for longer than a live window ...
        await asyncio.sleep(BACKOFF_S)
        # ... and reach it again.
        colony.speaking = {colony.a, colony.b}
        await asyncio.sleep(colony.fed.start_grace_s)

    asyncio.run(colony.run(scenario()))
    assert colony.claimed_at is None, "c claimed a term although its members were alive and reached it again"
    assert current_role(colony.c.db).queen is None


def test_a_paused_node_whose_members_are_really_gone_claims_once_the_grace_has_passed(trio: Trio) -> None:
    colony = Colony(trio)
    woke: list[float] = []

    async def scenario() -> None:
        await colony.settle()
        woke.append(colony.pause())
        await colony.wait_for_claim(colony.fed.start_grace_s + 10.0)

    asyncio.run(colony.run(scenario()))
    assert colony.claimed_at is not None, "nobody is left, yet c never took the queen role"
    assert colony.claimed_at - woke[0] >= colony.fed.start_grace_s - 0.1, "c claimed inside its grace"
    assert current_role(colony.c.db).term == 1


def test_members_that_fall_silent_while_the_node_runs_are_replaced_without_the_grace(trio: Trio) -> None:
    """Only a pause of the node itself delays its claim: members it could hear and that went silent are
    dead by the ordinary rule (a live window, then a stable one)."""
    colony = Colony(trio)
    silent: list[float] = []

    async def scenario() -> None:
        await colony.settle()
        colony.speaking = set()
        silent.append(time.time())
        await colony.wait_for_claim(30.0)

    asyncio.run(colony.run(scenario()))
    assert colony.claimed_at is not None
    assert colony.claimed_at - silent[0] < colony.fed.start_grace_s, "a running node waited out a pause grace"
