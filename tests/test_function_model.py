"""FunctionModel and TestModel: in-process models that implement the Model protocol."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from colony.llm.messages import (
    AssistantMessage,
    Message,
    ModelSettings,
    ResponseDone,
    StreamEvent,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    UserMessage,
)
from colony.llm.model import Model
from colony.testing import AgentInfo, FunctionModel, TestModel
from colony.testing.function_model import arguments_for

SETTINGS = ModelSettings(temperature=0.2)
READ = ToolDefinition(
    name="read_file",
    description="Read a file",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)


def read_then_answer(messages: list[Message], info: AgentInfo) -> AssistantMessage | str:
    """The style tests should use: branch on what happened, not on how many messages there are."""
    last = messages[-1]
    if isinstance(last, ToolResultMessage):
        return f"the file says {last.content}"
    return AssistantMessage(
        tool_calls=[ToolCall(id="c1", name=info.tools[0].name, arguments={"path": "a.txt"})]
    )


async def stream_events(model: Model, messages: list[Message]) -> list[StreamEvent]:
    return [event async for event in model.request_stream(messages, SETTINGS, [READ])]


def test_models_satisfy_the_protocol() -> None:
    assert isinstance(FunctionModel(read_then_answer), Model)
    assert isinstance(TestModel(), Model)


async def test_request_branches_on_the_conversation() -> None:
    model = FunctionModel(read_then_answer, name="scripted-fn")
    conversation: list[Message] = [SystemMessage(content="be brief"), UserMessage(content="read a.txt")]

    first = await model.request(conversation, SETTINGS, [READ])
    assert first.message.tool_calls == [ToolCall(id="c1", name="read_file", arguments={"path": "a.txt"})]
    assert first.finish_reason == "tool_calls"

    conversation += [first.message, ToolResultMessage(tool_call_id="c1", name="read_file", content="hello")]
    second = await model.request(conversation, SETTINGS, [READ])
    assert second.message == AssistantMessage(content="the file says hello")
    assert (second.model_name, second.provider, second.finish_reason) == ("scripted-fn", "function", "stop")


async def test_function_sees_messages_tools_and_settings() -> None:
    seen: list[tuple[list[Message], AgentInfo]] = []

    def fn(messages: list[Message], info: AgentInfo) -> str:
        seen.append((messages, info))
        return "ok"

    messages: list[Message] = [UserMessage(content="hi")]
    await FunctionModel(fn).request(messages, SETTINGS, [READ])
    assert seen == [(messages, AgentInfo(tools=[READ], settings=SETTINGS))]


async def test_usage_is_estimated_from_lengths() -> None:
    model = FunctionModel(lambda messages, info: "x" * 20)
    response = await model.request([UserMessage(content="y" * 41)], SETTINGS, [])
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (11, 5)


async def test_async_function_is_awaited() -> None:
    async def fn(messages: list[Message], info: AgentInfo) -> str:
        return "from async"

    response = await FunctionModel(fn).request([UserMessage(content="hi")], SETTINGS, [])
    assert response.message.content == "from async"


async def test_wrong_return_type_is_a_clear_error() -> None:
    model = FunctionModel(lambda messages, info: 42)  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="returned int; return AssistantMessage or str"):
        await model.request([UserMessage(content="hi")], SETTINGS, [])


async def test_default_stream_yields_words_then_done() -> None:
    model = FunctionModel(lambda messages, info: "three little words")
    events = await stream_events(model, [UserMessage(content="hi")])

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["three ", "little ", "words"]
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].response.message.content == "three little words"
    assert sum(isinstance(e, ResponseDone) for e in events) == 1


async def test_default_stream_carries_tool_calls_in_done() -> None:
    events = await stream_events(FunctionModel(read_then_answer), [UserMessage(content="read")])
    assert len(events) == 1
    assert isinstance(events[0], ResponseDone)
    assert events[0].response.message.tool_calls[0].name == "read_file"


async def test_stream_fn_sync_and_async() -> None:
    def sync_chunks(messages: list[Message], info: AgentInfo) -> Iterator[str]:
        yield from ["Hel", "", "lo"]

    async def async_chunks(messages: list[Message], info: AgentInfo) -> AsyncIterator[str | ToolCall]:
        yield "Look"
        yield ToolCall(id="c9", name="read_file", arguments={"path": "b"})

    sync_events = await stream_events(FunctionModel(stream_fn=sync_chunks), [UserMessage(content="hi")])
    assert [e.text for e in sync_events if isinstance(e, TextDelta)] == ["Hel", "lo"]
    assert isinstance(sync_events[-1], ResponseDone)
    assert sync_events[-1].response.message.content == "Hello"

    async_events = await stream_events(FunctionModel(stream_fn=async_chunks), [UserMessage(content="hi")])
    done = async_events[-1]
    assert isinstance(done, ResponseDone)
    assert done.response.message == AssistantMessage(
        content="Look", tool_calls=[ToolCall(id="c9", name="read_file", arguments={"path": "b"})]
    )
    assert done.response.finish_reason == "tool_calls"


async def test_request_without_fn_joins_the_stream() -> None:
    model = FunctionModel(stream_fn=lambda messages, info: iter(["a", "b", "c"]))
    response = await model.request([UserMessage(content="hi")], SETTINGS, [])
    assert response.message.content == "abc"


async def test_stream_fn_is_preferred_for_streaming_and_fn_for_request() -> None:
    model = FunctionModel(lambda messages, info: "whole", stream_fn=lambda messages, info: ["pie", "ces"])
    assert (await model.request([UserMessage(content="hi")], SETTINGS, [])).message.content == "whole"
    events = await stream_events(model, [UserMessage(content="hi")])
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["pie", "ces"]


async def test_stream_fn_yielding_junk_is_a_clear_error() -> None:
    model = FunctionModel(stream_fn=lambda messages, info: [1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="yield str or ToolCall"):
        await stream_events(model, [UserMessage(content="hi")])


def test_function_model_needs_a_function() -> None:
    with pytest.raises(ValueError, match="needs fn, stream_fn, or both"):
        FunctionModel()


# -- TestModel ---------------------------------------------------------------------------------


class Options(BaseModel):
    verbose: bool
    depth: int = Field(ge=1)


class Search(BaseModel):
    query: str
    mode: str = Field(json_schema_extra={"enum": ["fast", "deep"]})
    limit: int
    ratio: float
    tags: list[str]
    options: Options
    maybe: int | None
    optional_note: str = "not required"


def tool(name: str, parameters: dict[str, Any]) -> ToolDefinition:
    return ToolDefinition(name=name, description=name, parameters=parameters)


def test_arguments_follow_the_schema_rules() -> None:
    schema = Search.model_json_schema()
    arguments = arguments_for(schema)
    assert arguments == {
        "query": "a",
        "mode": "fast",
        "limit": 0,
        "ratio": 0,
        "tags": [],
        "options": {"verbose": False, "depth": 1},
        "maybe": 0,
    }
    # The generated arguments are valid for the model the schema came from.
    Search.model_validate(arguments)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "object", "properties": {"x": {"const": 3}}, "required": ["x"]}, {"x": 3}),
        (
            {"type": "object", "properties": {"x": {"type": ["null", "string"]}}, "required": ["x"]},
            {"x": "a"},
        ),
        (
            {"type": "object", "properties": {"x": {"type": "string", "minLength": 3}}, "required": ["x"]},
            {"x": "aaa"},
        ),
        (
            {"type": "object", "properties": {"x": {"type": "integer", "maximum": -2}}, "required": ["x"]},
            {"x": -2},
        ),
        (
            {
                "type": "object",
                "properties": {"x": {"type": "array", "items": {"type": "boolean"}, "minItems": 2}},
                "required": ["x"],
            },
            {"x": [False, False]},
        ),
        ({"type": "object", "properties": {}}, {}),
    ],
)
def test_arguments_for_edge_cases(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    assert arguments_for(schema) == expected


def test_arguments_for_rejects_non_object_schema() -> None:
    with pytest.raises(ValueError, match="must describe an object"):
        arguments_for({"type": "string"})


async def test_test_model_calls_every_tool_then_reports_results() -> None:
    tools = [
        READ,
        tool("search", Search.model_json_schema()),
        tool("ping", {"type": "object", "properties": {}}),
    ]
    model = TestModel()
    conversation: list[Message] = [UserMessage(content="go")]

    first = await model.request(conversation, SETTINGS, tools)
    calls = first.message.tool_calls
    assert [c.name for c in calls] == ["read_file", "search", "ping"]
    assert len({c.id for c in calls}) == 3
    assert calls[0].arguments == {"path": "a"}
    assert calls[2].arguments == {}

    conversation.append(first.message)
    conversation += [ToolResultMessage(tool_call_id=c.id, name=c.name, content=f"{c.name} ok") for c in calls]
    second = await model.request(conversation, SETTINGS, tools)
    assert json.loads(second.message.content) == {
        "read_file": "read_file ok",
        "search": "search ok",
        "ping": "ping ok",
    }
    assert second.message.tool_calls == []
    assert second.model_name == "test"


async def test_test_model_can_limit_tools_and_handles_none() -> None:
    tools = [READ, tool("ping", {"type": "object", "properties": {}})]
    limited = await TestModel(call_tools=["ping"]).request([UserMessage(content="go")], SETTINGS, tools)
    assert [c.name for c in limited.message.tool_calls] == ["ping"]

    nothing = await TestModel().request([UserMessage(content="go")], SETTINGS, [])
    assert nothing.message == AssistantMessage(content="{}")


async def test_test_model_streams() -> None:
    events = [e async for e in TestModel().request_stream([UserMessage(content="go")], SETTINGS, [READ])]
    assert isinstance(events[-1], ResponseDone)
    assert events[-1].response.message.tool_calls[0].name == "read_file"


def test_public_api_of_colony_testing() -> None:
    import colony.testing

    assert sorted(colony.testing.__all__) == [
        "AgentInfo",
        "FunctionModel",
        "NodeServer",
        "Reply",
        "ScriptedModelServer",
        "TestModel",
    ]
    assert all(hasattr(colony.testing, name) for name in colony.testing.__all__)
