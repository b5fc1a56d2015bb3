"""The scripted server, driven by the real ``openai`` client so the wire format is what it parses."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import ValidationError

from colony.testing import Reply, ScriptedModelServer
from colony.testing.scripted_server import load_script

USER = [{"role": "user", "content": "hi"}]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
]


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start servers for a test and stop them all afterwards, whatever happened."""
    started: list[ScriptedModelServer] = []

    def start(script: Any, **kwargs: Any) -> ScriptedModelServer:
        server = ScriptedModelServer(script, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    assert [server.errors for server in started] == [[] for _ in started]


@pytest.fixture
async def make_client() -> AsyncIterator[Any]:
    clients: list[openai.AsyncOpenAI] = []

    def make(server: ScriptedModelServer, **kwargs: Any) -> openai.AsyncOpenAI:
        kwargs.setdefault("max_retries", 0)
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test-key", **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


# -- text --------------------------------------------------------------------------------------


async def test_text_reply_non_streaming(serve: Any, make_client: Any) -> None:
    server = serve([Reply.text("hello world", usage=(11, 3))], model_name="tiny")
    client = make_client(server)

    result = await client.chat.completions.create(model="tiny", messages=USER, temperature=0.5)

    assert result.choices[0].message.content == "hello world"
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].finish_reason == "stop"
    assert result.model == "tiny"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (
        11,
        3,
        14,
    )
    assert server.requests == [{"model": "tiny", "messages": USER, "temperature": 0.5}]


async def test_usage_is_estimated_when_not_given(serve: Any, make_client: Any) -> None:
    server = serve([Reply.text("x" * 40)])
    result = await make_client(server).chat.completions.create(model="scripted", messages=USER)

    assert result.usage is not None
    assert result.usage.completion_tokens == 10
    assert result.usage.prompt_tokens == (len(json.dumps(USER)) + 3) // 4


async def test_text_reply_streams_in_chunks_with_usage(serve: Any, make_client: Any) -> None:
    server = serve([Reply.text("streamed text here", stream_chunk_size=5, usage=(7, 4))])
    stream = await make_client(server).chat.completions.create(
        model="scripted", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = await collect(stream)

    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert deltas == ["strea", "med t", "ext h", "ere"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 4)
    assert server.requests[0]["stream"] is True


async def test_stream_without_include_usage_has_no_usage_chunk(serve: Any, make_client: Any) -> None:
    server = serve([Reply.text("hi")])
    chunks = await collect(
        await make_client(server).chat.completions.create(model="scripted", messages=USER, stream=True)
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


# -- tool calls --------------------------------------------------------------------------------


async def test_tool_calls_non_streaming_are_parsed(serve: Any, make_client: Any) -> None:
    server = serve(
        [Reply.tool_calls([("read_file", {"path": "a.txt"}), ("write_file", '{"path": ')], "let me look")]
    )
    result = await make_client(server).chat.completions.create(model="scripted", messages=USER, tools=TOOLS)

    message = result.choices[0].message
    assert result.choices[0].finish_reason == "tool_calls"
    assert message.content == "let me look"
    assert message.tool_calls is not None
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls]
    assert calls == [("call_1_0", "read_file", '{"path": "a.txt"}'), ("call_1_1", "write_file", '{"path": ')]


async def test_tool_call_without_text_has_null_content(serve: Any, make_client: Any) -> None:
    server = serve([Reply.tool_calls([("read_file", {"path": "a.txt"})])])
    result = await make_client(server).chat.completions.create(model="scripted", messages=USER, tools=TOOLS)
    assert result.choices[0].message.content is None


async def test_tool_call_stream_deltas_follow_openai_shape(serve: Any, make_client: Any) -> None:
    args = {"path": "some/long/directory/name.txt"}
    server = serve([Reply.tool_calls([("read_file", args), ("list_dir", {})], stream_chunk_size=6)])
    chunks = await collect(
        await make_client(server).chat.completions.create(
            model="scripted", messages=USER, tools=TOOLS, stream=True
        )
    )

    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    openings = [d for d in deltas if d.id is not None]
    assert [(d.index, d.id, d.function.name) for d in openings] == [
        (0, "call_1_0", "read_file"),
        (1, "call_1_1", "list_dir"),
    ]
    fragments = [d for d in deltas if d.id is None]
    assert all(d.function.name is None for d in fragments)
    assert len([d for d in fragments if d.index == 0]) > 2  # the arguments really are split
    rebuilt: dict[int, str] = {}
    for d in deltas:
        rebuilt[d.index] = rebuilt.get(d.index, "") + (d.function.arguments or "")
    assert json.loads(rebuilt[0]) == args
    assert json.loads(rebuilt[1]) == {}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_openai_stream_helper_reassembles_tool_calls(serve: Any, make_client: Any) -> None:
    server = serve([Reply.tool_calls([("read_file", {"path": "a.txt"})], "checking", stream_chunk_size=3)])
    client = make_client(server)

    async with client.chat.completions.stream(model="scripted", messages=USER, tools=TOOLS) as stream:
        final = await stream.get_final_completion()

    message = final.choices[0].message
    assert message.content == "checking"
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.name == "read_file"
    assert json.loads(message.tool_calls[0].function.arguments) == {"path": "a.txt"}


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_invalid_json_makes_the_client_raise(serve: Any, make_client: Any, stream: bool) -> None:
    server = serve([Reply.invalid_json()])
    client = make_client(server)

    async def ask() -> Any:
        result = await client.chat.completions.create(model="scripted", messages=USER, stream=stream)
        return await collect(result) if stream else result

    with pytest.raises(json.JSONDecodeError):
        await ask()


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_error_status_maps_to_openai_exception(
    serve: Any, make_client: Any, status: int, exception: type[openai.APIStatusError], stream: bool
) -> None:
    server = serve([Reply.error(status, f"boom {status}")])
    with pytest.raises(exception) as caught:
        await make_client(server).chat.completions.create(model="scripted", messages=USER, stream=stream)
    assert caught.value.status_code == status
    assert caught.value.message == f"Error code: {status} - boom {status}"
    assert caught.value.body == {
        "message": f"boom {status}",
        "type": caught.value.body["type"],  # type: ignore[index]
        "param": None,
        "code": None,
    }


async def test_rate_limit_sends_retry_after_and_the_client_honours_it(serve: Any, make_client: Any) -> None:
    server = serve([Reply.error(429, "slow down", retry_after=0.3), Reply.text("ok now")])
    with pytest.raises(openai.RateLimitError) as caught:
        await make_client(server).chat.completions.create(model="scripted", messages=USER)
    assert caught.value.response.headers["retry-after"] == "0.3"

    server = serve([Reply.error(429, "slow down", retry_after=0.3), Reply.text("ok now")])
    started = time.monotonic()
    result = await make_client(server, max_retries=1).chat.completions.create(model="scripted", messages=USER)
    assert result.choices[0].message.content == "ok now"
    assert time.monotonic() - started >= 0.3
    assert len(server.requests) == 2


async def test_truncated_stream_breaks_the_connection(serve: Any, make_client: Any) -> None:
    server = serve([Reply.truncated_stream("partial text", stream_chunk_size=4)])
    stream = await make_client(server).chat.completions.create(model="scripted", messages=USER, stream=True)
    received: list[str] = []

    async def read() -> None:
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIConnectionError):
        await read()
    assert "".join(received) == "partial text"


async def test_truncated_stream_with_clean_eof_ends_without_finish(serve: Any, make_client: Any) -> None:
    server = serve([Reply.truncated_stream("partial", clean_eof=True)])
    chunks = await collect(
        await make_client(server).chat.completions.create(model="scripted", messages=USER, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "partial"
    assert all(c.choices[0].finish_reason is None for c in chunks)


async def test_truncated_reply_to_non_streaming_request_raises(serve: Any, make_client: Any) -> None:
    server = serve([Reply.truncated_stream("partial")])
    with pytest.raises(openai.APIConnectionError):
        await make_client(server).chat.completions.create(model="scripted", messages=USER)


async def test_hang_meets_client_timeout(serve: Any, make_client: Any) -> None:
    server = serve([Reply.hang(), Reply.text("after")])
    client = make_client(server)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="scripted", messages=USER, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    # The hung handler does not stop other requests being served.
    result = await client.chat.completions.create(model="scripted", messages=USER)
    assert result.choices[0].message.content == "after"


async def test_delay_postpones_the_answer(serve: Any, make_client: Any) -> None:
    server = serve([Reply.text("late", delay_s=0.3)])
    started = time.monotonic()
    result = await make_client(server).chat.completions.create(model="scripted", messages=USER)
    assert time.monotonic() - started >= 0.3
    assert result.choices[0].message.content == "late"


async def test_exhausted_script_answers_500_with_clear_message(serve: Any, make_client: Any) -> None:
    server = serve([Reply.text("only one")])
    client = make_client(server)
    await client.chat.completions.create(model="scripted", messages=USER)
    with pytest.raises(openai.InternalServerError, match="script exhausted after 1 replies"):
        await client.chat.completions.create(model="scripted", messages=USER)


@pytest.mark.parametrize(
    ("on_exhausted", "expected"), [("repeat_last", ["a", "b", "b", "b"]), ("loop", ["a", "b", "a", "b"])]
)
async def test_on_exhausted_repeats_or_loops(
    serve: Any, make_client: Any, on_exhausted: str, expected: list[str]
) -> None:
    server = serve([Reply.text("a"), Reply.text("b")], on_exhausted=on_exhausted)
    client = make_client(server)
    answers = [
        (await client.chat.completions.create(model="scripted", messages=USER)).choices[0].message.content
        for _ in expected
    ]
    assert answers == expected


# -- callable scripts --------------------------------------------------------------------------


async def test_callable_script_branches_on_the_conversation(serve: Any, make_client: Any) -> None:
    def script(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["role"] == "tool":
            return Reply.text(f"the file says {body['messages'][-1]['content']}")
        return Reply.tool_calls([("read_file", {"path": "a.txt"})])

    server = serve(script)
    client = make_client(server)
    first = await client.chat.completions.create(model="scripted", messages=USER, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    messages: Any = [
        *USER,
        {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "hello"},
    ]
    second = await client.chat.completions.create(model="scripted", messages=messages, tools=TOOLS)

    assert second.choices[0].message.content == "the file says hello"
    assert [len(r["messages"]) for r in server.requests] == [1, 3]


async def test_callable_script_failure_is_a_500_and_recorded(make_client: Any) -> None:
    def script(body: dict[str, Any]) -> Any:
        if body["messages"][0]["content"] == "raise":
            raise KeyError("nope")
        return "not a reply"

    with ScriptedModelServer(script) as server:
        client = make_client(server)
        with pytest.raises(openai.InternalServerError, match="script callable raised KeyError"):
            await client.chat.completions.create(
                model="scripted", messages=[{"role": "user", "content": "raise"}]
            )
        with pytest.raises(openai.InternalServerError, match="returned str, expected a Reply"):
            await client.chat.completions.create(model="scripted", messages=USER)
    assert server.errors == [
        "the script callable raised KeyError: 'nope'",
        "the script callable returned str, expected a Reply",
    ]


# -- concurrency and lifecycle -----------------------------------------------------------------


def test_concurrent_requests_from_threads_each_get_one_reply(serve: Any) -> None:
    replies = [Reply.text(f"answer {i}", delay_s=0.05) for i in range(12)]
    server = serve(replies)

    def ask(i: int) -> str:
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client:
            messages: Any = [{"role": "user", "content": f"q{i}"}]
            result = client.chat.completions.create(model="scripted", messages=messages)
            return result.choices[0].message.content or ""

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(ask, range(12)))

    assert sorted(answers) == sorted(f"answer {i}" for i in range(12))
    assert sorted(r["messages"][0]["content"] for r in server.requests) == sorted(f"q{i}" for i in range(12))


def test_stop_is_prompt_with_a_hanging_request_and_frees_the_port() -> None:
    server = ScriptedModelServer([Reply.hang()]).start()
    port = server.port
    outcome: list[BaseException] = []

    def ask() -> None:
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=30) as client:
            try:
                client.chat.completions.create(model="scripted", messages=USER)  # type: ignore[arg-type]
            except openai.APIError as exc:
                outcome.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.requests, "the request never reached the server"

    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.5
    asker.join(timeout=5)
    assert not asker.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], openai.APIConnectionError)

    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    again = ScriptedModelServer([Reply.text("again")], port=port).start()
    try:
        assert again.port == port
    finally:
        again.stop()


async def test_stop_is_prompt_with_idle_keep_alive_connections(make_client: Any) -> None:
    server = ScriptedModelServer([Reply.text("one"), Reply.text("two")]).start()
    client = make_client(server)
    await client.chat.completions.create(model="scripted", messages=USER)
    await client.chat.completions.create(model="scripted", messages=USER)
    started = time.monotonic()
    server.stop()  # the client still holds its pooled connection open
    assert time.monotonic() - started < 1.5
    server.stop()  # idempotent


def test_context_manager_and_errors_before_start() -> None:
    server = ScriptedModelServer([Reply.text("x")])
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    with server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port


# -- other routes ------------------------------------------------------------------------------


async def test_models_health_and_unknown_routes(serve: Any, make_client: Any) -> None:
    server = serve([], model_name="qwen-tiny")
    models = await make_client(server).models.list()
    assert [m.id for m in models.data] == ["qwen-tiny"]

    root = server.base_url.removesuffix("/v1")
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{root}/health")).json() == {"status": "ok"}
        missing = await http.get(f"{root}/v1/nothing")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found_error"
        bad = await http.post(f"{root}/v1/chat/completions", content=b"not json")
        assert bad.status_code == 400
        assert "JSON object" in bad.json()["error"]["message"]
    assert server.requests == []


# -- script format and CLI ---------------------------------------------------------------------


def test_reply_from_dict_covers_every_kind() -> None:
    assert Reply.from_dict({"text": "hi", "usage": [3, 1]}) == Reply.text("hi", usage=(3, 1))
    assert Reply.from_dict(
        {"tool_calls": [{"name": "read_file", "arguments": {"path": "a"}}], "text": "hmm"}
    ) == Reply.tool_calls([("read_file", {"path": "a"})], "hmm")
    assert Reply.from_dict({"error": 429, "retry_after": 2}) == Reply.error(
        429, "scripted error", retry_after=2
    )
    assert Reply.from_dict({"invalid_json": True}) == Reply.invalid_json()
    assert Reply.from_dict({"truncated_stream": "par"}) == Reply.truncated_stream("par")
    assert Reply.from_dict({"hang": True}) == Reply.hang()
    assert Reply.from_dict({"text": "slow", "delay_s": 0.5}).delay_s == 0.5


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"text": "a", "error": 500},
        {"error": 500, "hang": True},
        {"txt": "typo"},
        {"tool_calls": [{"n": 1}]},
    ],
)
def test_reply_from_dict_rejects_ambiguous_or_unknown_entries(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Reply.from_dict(bad)


def test_reply_constructors_validate() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        Reply.error(200)
    with pytest.raises(ValueError, match="at least one"):
        Reply.tool_calls([])
    with pytest.raises(ValueError, match="stream_chunk_size"):
        Reply.text("x", stream_chunk_size=0)
    with pytest.raises(ValueError, match="needs at least one reply"):
        ScriptedModelServer([], on_exhausted="loop")


def test_load_script_reads_a_json_list(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps([{"tool_calls": [{"name": "ls", "arguments": {}}]}, {"text": "done"}]))
    assert load_script(path) == [Reply.tool_calls([("ls", {})]), Reply.text("done")]
    path.write_text(json.dumps({"text": "not a list"}))
    with pytest.raises(ValueError, match="JSON list"):
        load_script(path)


def test_cli_serves_a_script_until_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps([{"text": "from the demo"}]))
    errors = (tmp_path / "stderr.txt").open("w")  # a file, not a pipe nobody reads: it cannot fill up

    def as_from_a_shell() -> None:
        """Ctrl-C as a shell delivers it: whatever signal state the test runner's process carries
        (an ignored or blocked SIGINT survives exec) is not the child's."""
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(
        [sys.executable, "-m", "colony.testing", "--script", str(path), "--repeat-last"],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        preexec_fn=as_from_a_shell,  # the test itself starts no thread that could fork meanwhile
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as client:
            for _ in range(2):
                result = client.chat.completions.create(model="scripted", messages=USER)  # type: ignore[arg-type]
                assert result.choices[0].message.content == "from the demo"
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            signals = [line for line in status.splitlines() if line.startswith(("Sig", "State"))]
            raise AssertionError(f"no exit 30 s after SIGINT: {signals}; stderr: "
                                 f"{(tmp_path / 'stderr.txt').read_text()[-2000:]}") from None
        assert code == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        errors.close()
