"""OpenAIChatModel against the scripted server on loopback: the real ``openai`` client runs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from colony.config import ProviderConfig
from colony.errors import ModelResponseError
from colony.llm.messages import (
    AssistantMessage,
    Message,
    ModelResponse,
    ModelSettings,
    ResponseDone,
    StreamEvent,
    SystemMessage,
    TextDelta,
    ToolCall,
    ToolDefinition,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from colony.llm.model import Model
from colony.llm.openai_model import OpenAIChatModel, parse_arguments
from colony.testing import Reply, ScriptedModelServer

HI: list[Message] = [UserMessage(content="hi")]
READ_FILE = ToolDefinition(
    name="read_file",
    description="Read a file",
    parameters={"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)
NO_SETTINGS = ModelSettings()

Serve = Callable[..., ScriptedModelServer]
MakeModel = Callable[..., OpenAIChatModel]


@pytest.fixture
def serve() -> Iterator[Serve]:
    started: list[ScriptedModelServer] = []

    def start(script: Any, **kwargs: Any) -> ScriptedModelServer:
        server = ScriptedModelServer(script, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    assert [s.errors for s in started] == [[] for _ in started]


@pytest.fixture
async def make_model() -> AsyncIterator[MakeModel]:
    models: list[OpenAIChatModel] = []

    def make(base_url: str, **config: Any) -> OpenAIChatModel:
        fields: dict[str, Any] = {"name": "local", "model": "scripted", "base_url": base_url, **config}
        model = OpenAIChatModel(ProviderConfig(**fields))
        models.append(model)
        return model

    yield make
    for model in models:
        await model.aclose()


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connection refused, at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def collect(events: AsyncIterator[StreamEvent]) -> tuple[list[str], ModelResponse]:
    deltas: list[str] = []
    done: list[ModelResponse] = []
    async for event in events:
        if isinstance(event, TextDelta):
            assert not done, "no text may follow ResponseDone"
            deltas.append(event.text)
        else:
            assert isinstance(event, ResponseDone)
            done.append(event.response)
    assert len(done) == 1
    return deltas, done[0]


async def failure(
    model: OpenAIChatModel, *, stream: bool = False, tools: Sequence[ToolDefinition] = ()
) -> ModelResponseError:
    call: Awaitable[Any] = (
        collect(model.request_stream(HI, NO_SETTINGS, tools))
        if stream
        else model.request(HI, NO_SETTINGS, tools)
    )
    with pytest.raises(ModelResponseError) as caught:
        await call
    return caught.value


# -- answers ----------------------------------------------------------------------------------


async def test_text_answer_maps_the_whole_conversation_to_the_wire(
    serve: Serve, make_model: MakeModel
) -> None:
    server = serve([Reply.text("Hello there", usage=(12, 3))])
    model = make_model(server.base_url, api_key=SecretStr("sk-test"))
    conversation: list[Message] = [
        SystemMessage(content="be brief"),
        UserMessage(content="read a.txt"),
        AssistantMessage(
            content="",
            tool_calls=[ToolCall(id="c1", name="read_file", arguments={"path": "a.txt"})],
        ),
        ToolResultMessage(tool_call_id="c1", name="read_file", content="contents"),
        AssistantMessage(content="It says contents."),
        UserMessage(content="thanks"),
    ]

    response = await model.request(conversation, ModelSettings(temperature=0.2, max_tokens=50), [READ_FILE])

    assert response == ModelResponse(
        message=AssistantMessage(content="Hello there"),
        usage=Usage(prompt_tokens=12, completion_tokens=3),
        model_name="scripted",
        provider="local",
        finish_reason="stop",
        recovered_tool_calls=False,
    )
    assert model.name == "local:scripted"
    assert isinstance(model, Model)
    [body] = server.requests
    assert body == {
        "model": "scripted",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "read a.txt"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path": "a.txt"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "contents"},
            {"role": "assistant", "content": "It says contents."},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "read_file",
                    "description": "Read a file",
                    "parameters": READ_FILE.parameters,
                },
            }
        ],
        "temperature": 0.2,
        "max_tokens": 50,
    }


async def test_unset_settings_and_no_tools_are_left_off_the_wire(serve: Serve, make_model: MakeModel) -> None:
    server = serve([Reply.text("ok")])
    await make_model(server.base_url).request(HI, NO_SETTINGS, [])
    assert server.requests == [{"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}]


async def test_native_tool_calls_are_parsed(serve: Serve, make_model: MakeModel) -> None:
    server = serve([Reply.tool_calls([("read_file", {"path": "a.txt"}), ("read_file", {"path": "b.txt"})])])
    response = await make_model(server.base_url).request(HI, NO_SETTINGS, [READ_FILE])
    assert response.message.tool_calls == [
        ToolCall(id="call_1_0", name="read_file", arguments={"path": "a.txt"}),
        ToolCall(id="call_1_1", name="read_file", arguments={"path": "b.txt"}),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.recovered_tool_calls is False


async def test_malformed_native_arguments_keep_the_raw_text(serve: Serve, make_model: MakeModel) -> None:
    server = serve([Reply.tool_calls([("read_file", '{"path": "a.txt"')])])
    response = await make_model(server.base_url).request(HI, NO_SETTINGS, [READ_FILE])
    assert response.message.tool_calls == [
        ToolCall(id="call_1_0", name="read_file", arguments={}, raw_arguments='{"path": "a.txt"')
    ]


def test_parse_arguments_edge_cases() -> None:
    assert parse_arguments('{"a": 1}') == ({"a": 1}, None)
    assert parse_arguments("") == ({}, None)  # a parameterless call, as several servers send it
    assert parse_arguments(None) == ({}, None)
    assert parse_arguments("[1, 2]") == ({}, "[1, 2]")  # JSON, but not an object
    assert parse_arguments("{oops") == ({}, "{oops")


async def test_text_tool_calls_are_recovered_only_when_tools_were_offered(
    serve: Serve, make_model: MakeModel
) -> None:
    text = 'Reading it now.\n<tool_call>{"name": "read_file", "arguments": {"path": "a.txt"}}</tool_call>'
    server = serve([Reply.text(text), Reply.text(text)])
    model = make_model(server.base_url)

    recovered = await model.request(HI, NO_SETTINGS, [READ_FILE])
    assert recovered.recovered_tool_calls is True
    assert [(c.name, c.arguments) for c in recovered.message.tool_calls] == [("read_file", {"path": "a.txt"})]
    assert recovered.message.content == "Reading it now."

    plain = await model.request(HI, NO_SETTINGS, [])
    assert plain.recovered_tool_calls is False
    assert plain.message.tool_calls == []
    assert plain.message.content == text


async def test_thinking_is_stripped_and_calls_sketched_in_it_are_not_recovered(
    serve: Serve, make_model: MakeModel
) -> None:
    sketch = '<think>maybe {"name": "read_file", "arguments": {"path": "x"}}</think>\n\nNo file needed.'
    server = serve([Reply.text(sketch)])
    response = await make_model(server.base_url).request(HI, NO_SETTINGS, [READ_FILE])
    assert response.message == AssistantMessage(content="No file needed.")
    assert response.recovered_tool_calls is False


async def test_list_models(serve: Serve, make_model: MakeModel) -> None:
    server = serve([], model_name="qwen3:4b")
    assert await make_model(server.base_url).list_models() == ["qwen3:4b"]


# -- streaming --------------------------------------------------------------------------------


async def test_stream_yields_visible_deltas_then_one_done_with_usage(
    serve: Serve, make_model: MakeModel
) -> None:
    server = serve([Reply.text("Hello streaming world", usage=(7, 4), stream_chunk_size=5)])
    deltas, done = await collect(make_model(server.base_url).request_stream(HI, NO_SETTINGS, []))
    assert "".join(deltas) == "Hello streaming world"
    assert len(deltas) > 1
    assert done.message.content == "Hello streaming world"
    assert done.usage == Usage(prompt_tokens=7, completion_tokens=4)
    assert done.finish_reason == "stop"
    assert server.requests[0]["stream"] is True
    assert server.requests[0]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("chunk_size", [1, 3, 7])
async def test_stream_hides_thinking_split_across_chunks(
    serve: Serve, make_model: MakeModel, chunk_size: int
) -> None:
    server = serve([Reply.text("<think>secret plan</think>The answer is 4.", stream_chunk_size=chunk_size)])
    deltas, done = await collect(make_model(server.base_url).request_stream(HI, NO_SETTINGS, []))
    assert "".join(deltas) == "The answer is 4."
    assert not any("<" in d or "secret" in d for d in deltas)
    assert done.message.content == "The answer is 4."


async def test_stream_accumulates_tool_call_fragments(serve: Serve, make_model: MakeModel) -> None:
    server = serve([Reply.tool_calls([("read_file", {"path": "some/long/path.txt"})], stream_chunk_size=4)])
    deltas, done = await collect(make_model(server.base_url).request_stream(HI, NO_SETTINGS, [READ_FILE]))
    assert deltas == []
    assert done.message.tool_calls == [
        ToolCall(id="call_1_0", name="read_file", arguments={"path": "some/long/path.txt"})
    ]
    assert done.finish_reason == "tool_calls"


async def test_stream_recovers_text_tool_calls_in_the_final_response(
    serve: Serve, make_model: MakeModel
) -> None:
    text = '{"name": "read_file", "arguments": {"path": "a.txt"}}'
    server = serve([Reply.text(text)])
    _, done = await collect(make_model(server.base_url).request_stream(HI, NO_SETTINGS, [READ_FILE]))
    assert done.recovered_tool_calls is True
    assert [(c.name, c.arguments) for c in done.message.tool_calls] == [("read_file", {"path": "a.txt"})]


async def test_stream_options_rejected_once_then_left_off(serve: Serve, make_model: MakeModel) -> None:
    def script(body: dict[str, Any]) -> Reply:
        if "stream_options" in body:
            return Reply.error(400, "Unrecognized request argument supplied: stream_options")
        return Reply.text("fine")

    server = serve(script)
    model = make_model(server.base_url)
    first, _ = await collect(model.request_stream(HI, NO_SETTINGS, []))
    second, _ = await collect(model.request_stream(HI, NO_SETTINGS, []))
    assert "".join(first) == "".join(second) == "fine"
    assert ["stream_options" in body for body in server.requests] == [True, False, False]


async def test_other_400s_while_streaming_are_not_retried(serve: Serve, make_model: MakeModel) -> None:
    server = serve([Reply.error(400, "context length exceeded")])
    error = await failure(make_model(server.base_url), stream=True)
    assert (error.status, error.transient) == (400, False)
    assert len(server.requests) == 1


@pytest.mark.parametrize("clean_eof", [False, True])
async def test_truncated_stream_is_a_transient_error(
    serve: Serve, make_model: MakeModel, clean_eof: bool
) -> None:
    server = serve([Reply.truncated_stream("partial answer", clean_eof=clean_eof)])
    error = await failure(make_model(server.base_url), stream=True)
    assert error.transient is True
    assert error.provider == "local:scripted"
    assert server.base_url in str(error)


async def test_truncated_body_without_streaming_is_transient(serve: Serve, make_model: MakeModel) -> None:
    server = serve([Reply.truncated_stream("partial answer")])
    error = await failure(make_model(server.base_url))
    assert error.transient is True
    assert "broke before the answer was complete" in str(error)


@pytest.mark.parametrize("stream", [False, True])
async def test_invalid_json_is_a_transient_error(serve: Serve, make_model: MakeModel, stream: bool) -> None:
    server = serve([Reply.invalid_json()])
    error = await failure(make_model(server.base_url), stream=stream)
    assert error.transient is True
    assert "not a chat completion" in str(error)


@contextmanager
def fixed_answer_server(body: bytes) -> Iterator[str]:
    """A loopback server that answers every POST with 200 and ``body``: shapes the script cannot make."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.mark.parametrize(
    "body", [b'{"id": "x", "object": "chat.completion"}', b'{"choices": []}', b'{"choices": ["nope"]}']
)
async def test_a_json_body_without_choices_is_transient(make_model: MakeModel, body: bytes) -> None:
    with fixed_answer_server(body) as url:
        error = await failure(make_model(url))
    assert error.transient is True
    assert "has no choices" in str(error)


async def test_a_sloppy_server_missing_optional_fields_still_works(make_model: MakeModel) -> None:
    body = (
        b'{"choices": [{"message": {"content": "hi", "tool_calls": [{"function": {"name": "read_file"}}]}}]}'
    )
    with fixed_answer_server(body) as url:
        response = await make_model(url).request(HI, NO_SETTINGS, [READ_FILE])
    assert response.usage == Usage()
    assert response.model_name == "scripted"  # the configured name, since the server sent none
    assert response.finish_reason is None
    [call] = response.message.tool_calls
    assert (call.name, call.arguments, call.raw_arguments) == ("read_file", {}, None)
    assert call.id.startswith("call_0_")


# -- errors -----------------------------------------------------------------------------------


async def test_server_errors_are_transient(serve: Serve, make_model: MakeModel) -> None:
    server = serve([Reply.error(503, "loading model")])
    error = await failure(make_model(server.base_url))
    assert (error.status, error.transient, error.retry_after) == (503, True, None)
    assert "loading model" in str(error)


async def test_429_keeps_retry_after(serve: Serve, make_model: MakeModel) -> None:
    server = serve([Reply.error(429, "slow down", retry_after=7)])
    error = await failure(make_model(server.base_url))
    assert (error.status, error.transient, error.retry_after) == (429, True, 7.0)


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_say_to_check_the_key(serve: Serve, make_model: MakeModel, status: int) -> None:
    server = serve([Reply.error(status, "invalid api key")])
    error = await failure(make_model(server.base_url))
    assert (error.status, error.transient) == (status, False)
    assert "COLONY_MODEL_API_KEY" in str(error)
    assert server.base_url in str(error)


async def test_404_says_the_model_name_may_be_wrong(serve: Serve, make_model: MakeModel) -> None:
    server = serve([Reply.error(404, "model 'nope' not found")])
    error = await failure(make_model(server.base_url, model="nope"))
    assert (error.status, error.transient) == (404, False)
    assert "model name may be wrong" in str(error)
    assert f"{server.base_url}/models" in str(error)


async def test_404_on_a_url_without_v1_also_points_at_the_url(serve: Serve, make_model: MakeModel) -> None:
    server = serve([Reply.error(404, "no route")])
    error = await failure(make_model(server.base_url.removesuffix("/v1") + "/v1/"))  # trailing slash is fine
    assert "ends in /v1" not in str(error)
    root = f"http://127.0.0.1:{server.port}"
    error = await failure(make_model(root))
    assert "Also check the base URL: it usually ends in /v1." in str(error)


async def test_other_4xx_are_not_transient(serve: Serve, make_model: MakeModel) -> None:
    server = serve([Reply.error(422, "bad schema")])
    error = await failure(make_model(server.base_url))
    assert (error.status, error.transient) == (422, False)
    assert "bad schema" in str(error)


async def test_connection_refused_names_the_url_and_the_fix(make_model: MakeModel) -> None:
    url = closed_port_url()
    error = await failure(make_model(url))
    assert error.transient is True
    assert (
        str(error)
        == f"No model endpoint reachable at {url} — start the model server or set COLONY_MODEL_BASE_URL."
    )


async def test_connection_refused_on_the_ollama_port_says_start_ollama(make_model: MakeModel) -> None:
    model = make_model("http://127.0.0.1:11434/v1")
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 11434)) == 0:
            pytest.fail("something listens on 127.0.0.1:11434; this test needs the port free")
    error = await failure(model)
    assert "start Ollama (ollama serve) or set COLONY_MODEL_BASE_URL" in str(error)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_hung_server_times_out(serve: Serve, make_model: MakeModel, stream: bool) -> None:
    server = serve([Reply.hang()])
    model = make_model(server.base_url, timeout_s=0.2)
    started = time.monotonic()
    error = await failure(model, stream=stream)
    assert time.monotonic() - started < 2.0
    assert error.transient is True
    assert "did not answer in time" in str(error)


async def test_per_request_timeout_overrides_the_provider_timeout(
    serve: Serve, make_model: MakeModel
) -> None:
    server = serve([Reply.hang()])
    model = make_model(server.base_url, timeout_s=60)
    started = time.monotonic()
    with pytest.raises(ModelResponseError, match="did not answer in time"):
        await model.request(HI, ModelSettings(timeout_s=0.2), [])
    assert time.monotonic() - started < 2.0
