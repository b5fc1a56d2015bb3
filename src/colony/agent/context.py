"""Context assembly: what the model sees on each request of a turn.

System prompt (persona, tool guidance, perception summary, recalled memory) + as much recent
history as fits the token budget + the new input. Tokens are estimated at four characters
each: no tokenizer can be fetched offline for an arbitrary local model, and the budget only
needs to be safe, not exact.

Memory enters through `MemoryProvider`, a one-method seam the memory capability implements;
the cognitive substrate through `CognitionProvider` (its block joins the system prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from colony.agent.perception import Perception
from colony.llm.messages import AssistantMessage, Message, SystemMessage, ToolResultMessage, UserMessage

__all__ = ["CognitionProvider", "MemoryProvider", "assemble", "estimate_tokens", "trim_history"]

#: History entries longer than this are shortened in the context (the database keeps them whole).
HISTORY_ITEM_CHARS = 4000
#: Share of the context window kept free for the model's answer.
ANSWER_RESERVE = 0.25


class MemoryProvider(Protocol):
    """What the loop needs from memory (the memory capability implements it)."""

    def recall_for_context(self, query: str, *, limit: int | None = None) -> list[str]: ...

    def record_episode(self, *, asked: str, done: Sequence[str], outcome: str, session_id: str) -> int | None: ...


class CognitionProvider(Protocol):
    """What the loop needs from the cognitive substrate (the cognition capability implements it)."""

    def begin_turn(self, *, prompt: str, perception: Perception, session_id: str, turn_id: str,
                   tool_names: Sequence[str] = ()) -> str:
        """Take in the turn's perception; return the block for the system prompt."""
        ...

    def tool_budget(self, base: int) -> int:
        """Tool calls allowed this turn, never more than ``base``."""
        ...

    def note_request(self, tokens: int) -> None: ...

    def begin_batch(self, size: int) -> object | None:
        """Snapshot internal state before ``size`` tool calls; None when not speculating."""
        ...

    def end_batch(self, token: object | None, outcomes: Sequence[str]) -> str | None:
        """Judge the batch; a notice for the user when the internal state was rolled back."""
        ...

    def end_turn(self, *, prompt: str, perception: Perception, status: str, calls: Sequence[tuple[str, str]],
                 session_id: str, turn_id: str) -> None: ...


def estimate_tokens(text: str) -> int:
    return len(text) // 4 + 1


def _message_tokens(m: Message) -> int:
    if isinstance(m, AssistantMessage):
        return estimate_tokens(m.content) + sum(
            estimate_tokens(c.name) + estimate_tokens(str(c.arguments)) for c in m.tool_calls
        ) + 4
    return estimate_tokens(m.content) + 4


def _shorten(m: Message) -> Message:
    if isinstance(m, UserMessage | ToolResultMessage | SystemMessage) and len(m.content) > HISTORY_ITEM_CHARS:
        half = HISTORY_ITEM_CHARS // 2
        return m.model_copy(update={"content": f"{m.content[:half]}\n…[shortened]…\n{m.content[-half:]}"})
    return m


def trim_history(history: Sequence[Message], budget_tokens: int) -> list[Message]:
    """The newest messages that fit the budget, never starting with an orphaned tool result."""
    kept: list[Message] = []
    used = 0
    for m in reversed(history):
        if isinstance(m, SystemMessage):
            continue
        m = _shorten(m)
        cost = _message_tokens(m)
        if used + cost > budget_tokens:
            break
        kept.append(m)
        used += cost
    kept.reverse()
    # A tool result without the assistant message that asked for it confuses every model API.
    while kept and isinstance(kept[0], ToolResultMessage):
        kept.pop(0)
    return kept


def assemble(
    *,
    persona: str,
    tool_names: Sequence[str],
    perception_summary: str,
    memories: Sequence[str],
    history: Sequence[Message],
    prompt: str,
    context_tokens: int,
    cognition: str = "",
) -> list[Message]:
    parts = [persona.strip()]
    if tool_names:
        parts.append(
            "You can call these tools: " + ", ".join(tool_names) + ". Call a tool through the tool-calling "
            "interface when you need it; never describe a call instead of making it. When you have the "
            "answer, reply in plain text."
        )
    if perception_summary:
        parts.append(perception_summary)
    if memories:
        parts.append("Relevant memory:\n" + "\n".join(f"- {m}" for m in memories))
    if cognition:
        parts.append(cognition)
    system = SystemMessage(content="\n\n".join(parts))
    user = UserMessage(content=prompt)
    budget = int(context_tokens * (1 - ANSWER_RESERVE)) - _message_tokens(system) - _message_tokens(user)
    return [system, *trim_history(history, max(0, budget)), user]
