"""The one narrow seam between Colony and a language model.

A model has a single required async method, `request`, and an optional streaming one. Anything
that speaks this protocol can drive the agent loop: the OpenAI-compatible cascade in production,
`colony.testing.FunctionModel` in unit tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from colony.llm.messages import Message, ModelSettings, StreamEvent, ToolDefinition
from colony.llm.messages import ModelResponse as ModelResponse

__all__ = ["Model", "ModelResponse"]


@runtime_checkable
class Model(Protocol):
    """A chat model. ``name`` is shown in health and recorded with each call."""

    @property
    def name(self) -> str: ...

    async def request(
        self,
        messages: Sequence[Message],
        settings: ModelSettings,
        tools: Sequence[ToolDefinition],
    ) -> ModelResponse:
        """Return one complete answer."""
        ...

    def request_stream(
        self,
        messages: Sequence[Message],
        settings: ModelSettings,
        tools: Sequence[ToolDefinition],
    ) -> AsyncIterator[StreamEvent]:
        """Yield `TextDelta`s as visible text arrives, then exactly one `ResponseDone`.

        Models that cannot stream raise `ModelNotSupportedError` from here.
        """
        ...
