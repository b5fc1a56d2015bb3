"""In-process models for fast unit tests: `FunctionModel` and `TestModel`.

`FunctionModel` lets a test write the model as a function from the conversation so far to the next
answer. Branch on what happened ("is the last message a tool result?"), not on how many messages
there are: the function then keeps working when the loop adds a system prompt or a retry.

`TestModel` calls every tool it is offered once, with arguments generated from the tool's JSON
schema, then answers with the JSON of the results: a cheap check that tools register and that
their schemas accept the simplest valid call.

Both implement `colony.llm.model.Model`; neither is ever used unless a test asks for it.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from colony.llm.messages import (
    AssistantMessage,
    Message,
    ModelResponse,
    ModelSettings,
    ResponseDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    Usage,
)

__all__ = ["AgentInfo", "FunctionModel", "ModelFunction", "StreamFunction", "TestModel", "arguments_for"]


@dataclass(frozen=True)
class AgentInfo:
    """What the model is told besides the messages: the tools on offer and the settings."""

    tools: list[ToolDefinition]
    settings: ModelSettings


Answer = AssistantMessage | str
ModelFunction = Callable[[list[Message], AgentInfo], Answer | Awaitable[Answer]]
#: Yields text chunks; a `ToolCall` item adds a tool call to the final message.
StreamFunction = Callable[
    [list[Message], AgentInfo], Iterable[str | ToolCall] | AsyncIterable[str | ToolCall]
]


def _estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _message_text(message: Message) -> str:
    if isinstance(message, AssistantMessage):
        return message.content + "".join(c.name + json.dumps(c.arguments) for c in message.tool_calls)
    return message.content


def _response(messages: Sequence[Message], answer: AssistantMessage, name: str) -> ModelResponse:
    usage = Usage(
        prompt_tokens=_estimate_tokens("".join(_message_text(m) for m in messages)),
        completion_tokens=_estimate_tokens(_message_text(answer)),
    )
    return ModelResponse(
        message=answer,
        usage=usage,
        model_name=name,
        provider="function",
        finish_reason="tool_calls" if answer.tool_calls else "stop",
    )


class FunctionModel:
    """A model whose answers come from a Python function (sync or async).

    Args:
        fn: ``fn(messages, info) -> AssistantMessage | str``. Optional when ``stream_fn`` is
            given: `request` then joins the streamed chunks.
        stream_fn: ``stream_fn(messages, info)`` yields text chunks (sync or async). Without it,
            `request_stream` streams the text of ``fn``'s answer word by word.
        name: recorded as ``model_name`` on every response.
    """

    def __init__(
        self,
        fn: ModelFunction | None = None,
        *,
        stream_fn: StreamFunction | None = None,
        name: str = "function",
    ) -> None:
        if fn is None and stream_fn is None:
            raise ValueError("FunctionModel needs fn, stream_fn, or both")
        self._fn = fn
        self._stream_fn = stream_fn
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings, tools: Sequence[ToolDefinition]
    ) -> ModelResponse:
        if self._fn is None:
            async for event in self.request_stream(messages, settings, tools):
                if isinstance(event, ResponseDone):
                    return event.response
            raise AssertionError("request_stream ended without ResponseDone")  # pragma: no cover
        answer = await self._call(messages, settings, tools)
        return _response(messages, answer, self._name)

    async def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings, tools: Sequence[ToolDefinition]
    ) -> AsyncIterator[StreamEvent]:
        if self._stream_fn is None:
            answer = await self._call(messages, settings, tools)
            for word in re.findall(r"\s*\S+\s*", answer.content) or [answer.content]:
                if word:
                    yield TextDelta(text=word)
            yield ResponseDone(response=_response(messages, answer, self._name))
            return
        text: list[str] = []
        calls: list[ToolCall] = []
        async for item in _aiter(self._stream_fn(list(messages), _info(settings, tools))):
            if isinstance(item, ToolCall):
                calls.append(item)
            elif isinstance(item, str):
                if item:
                    text.append(item)
                    yield TextDelta(text=item)
            else:
                raise TypeError(f"stream_fn yielded {type(item).__name__}; yield str or ToolCall")
        answer = AssistantMessage(content="".join(text), tool_calls=calls)
        yield ResponseDone(response=_response(messages, answer, self._name))

    async def _call(
        self, messages: Sequence[Message], settings: ModelSettings, tools: Sequence[ToolDefinition]
    ) -> AssistantMessage:
        assert self._fn is not None
        result = self._fn(list(messages), _info(settings, tools))
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            return AssistantMessage(content=result)
        if isinstance(result, AssistantMessage):
            return result
        raise TypeError(
            f"the model function returned {type(result).__name__}; return AssistantMessage or str"
        )


def _info(settings: ModelSettings, tools: Sequence[ToolDefinition]) -> AgentInfo:
    return AgentInfo(tools=list(tools), settings=settings)


async def _aiter(
    items: Iterable[str | ToolCall] | AsyncIterable[str | ToolCall],
) -> AsyncIterator[str | ToolCall]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class TestModel:
    """Calls each offered tool once with schema-generated arguments, then reports the results.

    Args:
        call_tools: the names of the tools to call, or "all".
        name: recorded as ``model_name`` on every response.

    The first request after a user message answers with the tool calls; a request whose last
    message is a tool result answers with ``{tool name: result content}`` as JSON.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, *, call_tools: Sequence[str] | Literal["all"] = "all", name: str = "test") -> None:
        self._call_tools = call_tools
        self._model = FunctionModel(self._answer, name=name)

    @property
    def name(self) -> str:
        return self._model.name

    async def request(
        self, messages: Sequence[Message], settings: ModelSettings, tools: Sequence[ToolDefinition]
    ) -> ModelResponse:
        return await self._model.request(messages, settings, tools)

    def request_stream(
        self, messages: Sequence[Message], settings: ModelSettings, tools: Sequence[ToolDefinition]
    ) -> AsyncIterator[StreamEvent]:
        return self._model.request_stream(messages, settings, tools)

    def _answer(self, messages: list[Message], info: AgentInfo) -> Answer:
        if messages and isinstance(messages[-1], ToolResultMessage):
            results: list[ToolResultMessage] = []
            for message in reversed(messages):
                if not isinstance(message, ToolResultMessage):
                    break
                results.insert(0, message)
            return json.dumps({r.name: r.content for r in results})
        chosen = [t for t in info.tools if self._call_tools == "all" or t.name in self._call_tools]
        if not chosen:
            return json.dumps({})
        calls = [
            ToolCall(id=f"test_call_{i}", name=tool.name, arguments=arguments_for(tool.parameters))
            for i, tool in enumerate(chosen)
        ]
        return AssistantMessage(tool_calls=calls)


def arguments_for(schema: dict[str, Any]) -> dict[str, Any]:
    """The simplest arguments a tool's JSON schema accepts: required fields only.

    Strings become "a", numbers 0, booleans False, arrays [] (each within any declared bounds),
    enums their first value; ``$ref``, ``anyOf`` and nullable types are followed.
    """
    value = _example(schema, schema)
    if not isinstance(value, dict):
        raise ValueError(f"a tool's parameters schema must describe an object, got {schema!r}")
    return value


def _example(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    if "$ref" in schema:
        return _example(_resolve(schema["$ref"], root), root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return _example(options[0], root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _example(properties.get(name, {}), root) for name in schema.get("required", [])}
    if kind == "array":
        return [_example(schema.get("items", {}), root) for _ in range(schema.get("minItems", 0))]
    if kind in ("integer", "number"):
        return _number(schema)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return "a" * max(1, schema.get("minLength", 1))


def _number(schema: dict[str, Any]) -> int:
    value = 0
    if "minimum" in schema:
        value = max(value, math.ceil(schema["minimum"]))
    if "exclusiveMinimum" in schema:
        value = max(value, math.floor(schema["exclusiveMinimum"]) + 1)
    if "maximum" in schema:
        value = min(value, math.floor(schema["maximum"]))
    if "exclusiveMaximum" in schema:
        value = min(value, math.ceil(schema["exclusiveMaximum"]) - 1)
    return value


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    if not isinstance(node, dict):
        raise ValueError(f"$ref {ref!r} does not point at a schema")
    return node
