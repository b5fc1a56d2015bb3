"""Messages exchanged with a model: plain pydantic values with a ``kind`` discriminator.

IDs, parent links and timestamps belong to storage, not here. `MESSAGES` is the one adapter
used to serialize a conversation (to the database, to a recording for replay).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

__all__ = [
    "INTERRUPTED_CALL",
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
    "close_tool_calls",
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

#: The result given to a tool call whose turn ended before it had one (see `close_tool_calls`).
INTERRUPTED_CALL = "No result: the turn was interrupted before this call finished (the process stopped)."


def close_tool_calls(messages: Sequence[Message], note: str = INTERRUPTED_CALL) -> list[Message]:
    """The conversation with every tool call answered exactly once, right after its request.

    Model APIs refuse a history in which an assistant message's ``tool_calls`` lack their
    ``tool`` answers, or a ``tool`` message answers no call: one interrupted turn would make every
    later request of the session fail. A call without an answer gets an error result saying
    ``note``; an answer that follows no open call (a duplicate, or one whose request was cut off
    by a history window) is dropped. A well-formed history is returned unchanged.
    """
    out: list[Message] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        i += 1
        if isinstance(message, ToolResultMessage):
            continue  # answers no open call
        out.append(message)
        if not isinstance(message, AssistantMessage) or not message.tool_calls:
            continue
        pending = {call.id: call for call in message.tool_calls}
        while i < len(messages) and isinstance(messages[i], ToolResultMessage):
            result = messages[i]
            i += 1
            assert isinstance(result, ToolResultMessage)
            if result.tool_call_id in pending:
                out.append(result)
                del pending[result.tool_call_id]
        out.extend(ToolResultMessage(tool_call_id=call.id, name=call.name, content=note, is_error=True)
                   for call in pending.values())
    return out


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
    #: True when no model answered: the response was served from a recording (resume, replay).
    from_tape: bool = False


class TextDelta(BaseModel):
    """A piece of visible answer text, streamed as it arrives."""

    kind: Literal["text_delta"] = "text_delta"
    text: str


class ResponseDone(BaseModel):
    kind: Literal["response_done"] = "response_done"
    response: ModelResponse


StreamEvent = Annotated[TextDelta | ResponseDone, Field(discriminator="kind")]
