"""Messages exchanged with a model: plain pydantic values with a ``kind`` discriminator.

IDs, parent links and timestamps belong to storage, not here. `MESSAGES` is the one adapter
used to serialize a conversation (to the database, to a recording for replay).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

__all__ = [
    "MESSAGES",
    "AssistantMessage",
    "Message",
    "ModelResponse",
    "ModelSettings",
    "ResponseDone",
    "StreamEvent",
    "SystemMessage",
    "TextDelta",
    "ToolCall",
    "ToolDefinition",
    "ToolResultMessage",
    "Usage",
    "UserMessage",
]


class ToolCall(BaseModel):
    """A request by the model to run one tool.

    ``arguments`` is what the model asked for, parsed into a dict when possible. When the model
    sent something that is not a JSON object, ``arguments`` is empty and ``raw_arguments`` keeps
    the original text so the middleware can report a readable validation error.
    """

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str | None = None


class SystemMessage(BaseModel):
    kind: Literal["system"] = "system"
    content: str


class UserMessage(BaseModel):
    kind: Literal["user"] = "user"
    content: str


class AssistantMessage(BaseModel):
    kind: Literal["assistant"] = "assistant"
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)


class ToolResultMessage(BaseModel):
    kind: Literal["tool"] = "tool"
    tool_call_id: str
    name: str
    content: str
    is_error: bool = False


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolResultMessage, Field(discriminator="kind")
]
MESSAGES: TypeAdapter[list[Message]] = TypeAdapter(list[Message])


class ToolDefinition(BaseModel):
    """What a model is told about a tool: a name, a description and a JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


class ModelSettings(BaseModel):
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_s: float | None = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class ModelResponse(BaseModel):
    """One completed model answer, already cleaned: thinking stripped, text tool calls recovered."""

    message: AssistantMessage
    usage: Usage = Field(default_factory=Usage)
    model_name: str = ""
    provider: str = ""
    finish_reason: str | None = None
    #: True when tool calls were recovered from the text rather than sent natively.
    recovered_tool_calls: bool = False


class TextDelta(BaseModel):
    """A piece of visible answer text, streamed as it arrives."""

    kind: Literal["text_delta"] = "text_delta"
    text: str


class ResponseDone(BaseModel):
    kind: Literal["response_done"] = "response_done"
    response: ModelResponse


StreamEvent = Annotated[TextDelta | ResponseDone, Field(discriminator="kind")]
