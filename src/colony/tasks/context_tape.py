"""Recording what enters the prompt besides the conversation: recalled memory and cognition.

Memory recall and the cognitive substrate's block change as the node learns, so a replay that
recalled afresh would report a "changed prompt" for every task that ran before the node learned
something. Both are therefore taped like model responses: a live run records what it recalled
(and the substrate's block and tool budgets), a resumed or replayed run is served the recording.
In replay, nothing is written back to memory or to the substrate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from colony.agent.context import CognitionProvider, MemoryProvider
from colony.agent.loop import Agent
from colony.agent.perception import Perception
from colony.tasks.checkpoints import Checkpoint
from colony.tasks.recording import SaveStep

__all__ = ["TapeCognition", "TapeMemory", "tape_agent"]


class TapeMemory:
    """A `MemoryProvider` whose recall is taped; ``inner`` None (replay) writes nothing."""

    def __init__(self, inner: MemoryProvider | None, tape: dict[str, Checkpoint], *, prefix: str,
                 save: SaveStep | None = None) -> None:
        self.inner, self.tape, self.key, self._save = inner, tape, f"{prefix}recall", save

    def recall_for_context(self, query: str, *, limit: int | None = None) -> list[str]:
        rec = self.tape.get(self.key)
        if rec is not None:
            return [str(x) for x in rec.body["memories"]]
        found = self.inner.recall_for_context(query, limit=limit) if self.inner is not None else []
        if self._save is not None:
            self._save(self.key, "step", {"memories": found})
        return found

    def record_episode(self, *, asked: str, done: Sequence[str], outcome: str, session_id: str) -> int | None:
        if self.inner is None:
            return None
        return self.inner.record_episode(asked=asked, done=done, outcome=outcome, session_id=session_id)

    def __getattr__(self, name: str) -> Any:  # memory tools reach the real memory through the context
        if self.inner is None:
            raise AttributeError(name)
        return getattr(self.inner, name)


class TapeCognition:
    """A `CognitionProvider` whose prompt block and tool budgets are taped; replay updates nothing."""

    def __init__(self, inner: CognitionProvider | None, tape: dict[str, Checkpoint], *, prefix: str,
                 save: SaveStep | None = None) -> None:
        self.inner, self.tape, self.prefix, self._save = inner, tape, prefix, save
        self._budgets = 0

    def _taped(self, key: str, live: Any) -> Any:
        rec = self.tape.get(key)
        if rec is not None:
            return rec.body["value"]
        value = live()
        if self._save is not None:
            self._save(key, "step", {"value": value})
        return value

    def begin_turn(self, *, prompt: str, perception: Perception, session_id: str, turn_id: str,
                   tool_names: Sequence[str] = ()) -> str:
        inner = self.inner
        return str(self._taped(f"{self.prefix}cognition", lambda: "" if inner is None else inner.begin_turn(
            prompt=prompt, perception=perception, session_id=session_id, turn_id=turn_id, tool_names=tool_names)))

    def tool_budget(self, base: int) -> int:
        key = f"{self.prefix}budget{self._budgets}"
        self._budgets += 1
        inner = self.inner
        return int(self._taped(key, lambda: base if inner is None else inner.tool_budget(base)))

    def note_request(self, tokens: int) -> None:
        if self.inner is not None:
            self.inner.note_request(tokens)

    def begin_batch(self, size: int) -> object | None:
        return self.inner.begin_batch(size) if self.inner is not None else None

    def end_batch(self, token: object | None, outcomes: Sequence[str]) -> str | None:
        return self.inner.end_batch(token, outcomes) if self.inner is not None else None

    def end_turn(self, *, prompt: str, perception: Perception, status: str, calls: Sequence[tuple[str, str]],
                 session_id: str, turn_id: str) -> None:
        if self.inner is not None:
            self.inner.end_turn(prompt=prompt, perception=perception, status=status, calls=calls,
                                session_id=session_id, turn_id=turn_id)


def tape_agent(agent: Agent, tape: dict[str, Checkpoint], *, prefix: str, save: SaveStep | None,
               replay: bool) -> Agent:
    """The agent with its memory and cognition taped (replay: served only, nothing written back)."""
    memory = TapeMemory(None if replay else agent.memory, tape, prefix=prefix, save=save)
    cognition = None
    if agent.cognition is not None:
        cognition = TapeCognition(None if replay else agent.cognition, tape, prefix=prefix, save=save)
    return dataclasses.replace(agent, memory=memory, cognition=cognition)
