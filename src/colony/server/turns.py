"""Turns that outlive the request that started them, and approvals decided over HTTP.

`TurnManager` runs each turn as an asyncio task and keeps its events in memory, so any number of
SSE subscribers can follow it, reconnect with ``Last-Event-ID`` and miss nothing. Finished turns
stay replayable for `RETENTION_S`; their durable record is the database.

`ApprovalBroker` is the server's `Approver`: an ``ask`` tool call parks on a future until a person
decides through ``POST /api/v1/approvals/{id}`` (or the middleware's timeout denies it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from colony.agent.events import AgentEvent, TextDelta, TurnFinished, TurnStarted
from colony.agent.loop import Agent, run_turn
from colony.node import Node
from colony.tools.approval import ApprovalRequest, Decision

__all__ = ["ApprovalBroker", "TurnManager", "UnknownTurnError"]

RETENTION_S = 600.0


class UnknownTurnError(KeyError):
    pass


class ApprovalBroker:
    """Parks approval requests until a decision arrives from the API."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[Decision]] = {}

    async def __call__(self, request: ApprovalRequest) -> Decision:
        fut: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._waiting[request.approval_id] = fut
        try:
            return await fut
        finally:
            self._waiting.pop(request.approval_id, None)

    def resolve(self, approval_id: str, decision: Decision) -> bool:
        """Wake the waiting call; False if nobody waits on this id in this process."""
        fut = self._waiting.get(approval_id)
        if fut is None or fut.done():
            return False
        fut.set_result(decision)
        return True

    def pending_ids(self) -> list[str]:
        return list(self._waiting)


@dataclass
class _Turn:
    turn_id: str
    session_id: str
    events: list[AgentEvent]
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    task: asyncio.Task[None] | None = None
    done: bool = False
    finished_at: float | None = None


class TurnManager:
    def __init__(self, node: Node, agent: Callable[[], Awaitable[Agent]] | None = None) -> None:
        self.node = node
        self._agent = agent or node.agent
        self._turns: dict[str, _Turn] = {}

    @property
    def running(self) -> int:
        return sum(1 for t in self._turns.values() if not t.done)

    async def start(self, prompt: str, session_id: str | None, *, surface: str = "web") -> tuple[str, str]:
        """Start a turn; return once it is recorded (turn and session ids known)."""
        self._forget_old()
        agent = await self._agent()
        gen = run_turn(agent, self.node.deps, prompt, session_id=session_id, surface=surface)
        first = await gen.__anext__()  # TurnStarted, or PromptTooLargeError before anything is stored
        assert isinstance(first, TurnStarted)
        turn = _Turn(turn_id=first.turn_id, session_id=first.session_id, events=[first])
        self._turns[turn.turn_id] = turn
        turn.task = asyncio.create_task(self._pump(turn, gen), name=f"turn {turn.turn_id}")
        return turn.turn_id, turn.session_id

    async def _pump(self, turn: _Turn, gen: AsyncIterator[AgentEvent]) -> None:
        try:
            async for ev in gen:
                await self._append(turn, ev)
        except asyncio.CancelledError:
            # run_turn recorded the cancellation in the database; tell the subscribers too.
            await self._append(turn, TurnFinished(
                session_id=turn.session_id, turn_id=turn.turn_id, status="cancelled", text="",
                error="The turn was cancelled.", error_code="cancelled",
            ))
        finally:
            turn.done = True
            turn.finished_at = time.monotonic()
            async with turn.changed:
                turn.changed.notify_all()

    async def _append(self, turn: _Turn, ev: AgentEvent) -> None:
        async with turn.changed:
            turn.events.append(ev)
            turn.changed.notify_all()

    def _get(self, turn_id: str) -> _Turn:
        try:
            return self._turns[turn_id]
        except KeyError:
            raise UnknownTurnError(turn_id) from None

    def known(self, turn_id: str) -> bool:
        return turn_id in self._turns

    async def subscribe(self, turn_id: str, after: int = -1) -> AsyncIterator[tuple[int, AgentEvent]]:
        """Yield ``(seq, event)`` from ``after + 1`` on, until the turn finishes.

        ``after`` below -1 means "from the start": a negative sequence number would index the
        event list from its end and, for a finished turn, replay it forever.
        """
        turn = self._get(turn_id)
        seq = max(0, after + 1)
        while True:
            async with turn.changed:
                while seq >= len(turn.events) and not turn.done:
                    await turn.changed.wait()
                batch = turn.events[seq:]
                finished = turn.done
            for ev in batch:
                yield seq, ev
                seq += 1
            if finished and seq >= len(turn.events):
                return

    def text_before(self, turn_id: str, seq: int) -> str:
        """The answer text streamed just before event ``seq``: its text deltas back to the previous
        non-text event. From the turn's whole record, so a subscriber that resumed mid-answer gets
        the full segment too."""
        turn = self._get(turn_id)
        parts: list[str] = []
        for ev in reversed(turn.events[:max(0, seq)]):
            if not isinstance(ev, TextDelta):
                break
            parts.append(ev.text)
        return "".join(reversed(parts))

    def cancel(self, turn_id: str) -> Literal["cancelling", "finished"]:
        turn = self._get(turn_id)
        if turn.done or turn.task is None:
            return "finished"
        turn.task.cancel()
        return "cancelling"

    async def wait(self, turn_id: str) -> None:
        turn = self._get(turn_id)
        if turn.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(turn.task)

    async def shutdown(self) -> None:
        """Cancel every running turn and wait until each has recorded its cancellation."""
        tasks = [t.task for t in self._turns.values() if t.task is not None and not t.done]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for tid in [t.turn_id for t in self._turns.values()
                    if t.finished_at is not None and now - t.finished_at > RETENTION_S]:
            del self._turns[tid]
