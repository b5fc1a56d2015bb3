"""A scripted OpenAI-compatible chat server on loopback, for tests and demos.

The server speaks just enough of the chat-completions protocol (JSON and SSE streaming, native tool
calls, OpenAI-style errors) that the real ``openai`` client and Colony's own provider code run
unchanged against it. Each request consumes the next `Reply` of a script, so a test states the
conversation it expects and the failures it wants to provoke (errors, bad JSON, cut streams,
hangs) without a real model.

It is a test double: nothing in Colony falls back to it. It binds 127.0.0.1 only and uses the
stdlib ``http.server`` so it adds no dependency. ``python -m colony.testing.scripted_server
--script script.json`` serves a JSON script for demos.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from colony.testing._http import ScriptedHTTPServer

__all__ = ["OnExhausted", "Reply", "ReplyKind", "Script", "ScriptedModelServer", "load_script", "main"]

ReplyKind = Literal["text", "tool_calls", "error", "invalid_json", "truncated_stream", "hang"]
OnExhausted = Literal["error", "repeat_last", "loop"]
ToolArguments = dict[str, Any] | str


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with the class methods, not the constructor.

    ``delay_s`` sleeps before answering (woken early by `ScriptedModelServer.stop`);
    ``stream_chunk_size`` is how many characters each streamed text or argument delta carries.
    """

    kind: ReplyKind
    content: str = ""
    calls: tuple[tuple[str, ToolArguments], ...] = ()
    status: int = 200
    message: str = ""
    retry_after: float | None = None
    usage: tuple[int, int] | None = None
    finish_reason: str | None = None
    clean_eof: bool = False
    delay_s: float = 0.0
    stream_chunk_size: int = 8

    def __post_init__(self) -> None:
        if self.delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, got {self.delay_s}")
        if self.stream_chunk_size < 1:
            raise ValueError(f"stream_chunk_size must be >= 1, got {self.stream_chunk_size}")
        if self.kind == "error" and not 400 <= self.status <= 599:
            raise ValueError(f"an error reply needs a 4xx or 5xx status, got {self.status}")

    @classmethod
    def text(
        cls,
        text: str,
        *,
        usage: tuple[int, int] | None = None,
        finish_reason: str = "stop",
        delay_s: float = 0.0,
        stream_chunk_size: int = 8,
    ) -> Reply:
        """A plain answer. ``usage`` is ``(prompt_tokens, completion_tokens)``; estimated if None."""
        return cls(
            "text",
            content=text,
            usage=usage,
            finish_reason=finish_reason,
            delay_s=delay_s,
            stream_chunk_size=stream_chunk_size,
        )

    @classmethod
    def tool_calls(
        cls,
        calls: Sequence[tuple[str, ToolArguments]],
        text: str = "",
        *,
        usage: tuple[int, int] | None = None,
        delay_s: float = 0.0,
        stream_chunk_size: int = 8,
    ) -> Reply:
        """Native tool calls. Arguments given as a str are sent verbatim (to test malformed JSON)."""
        if not calls:
            raise ValueError("Reply.tool_calls needs at least one (name, arguments) pair")
        return cls(
            "tool_calls",
            content=text,
            calls=tuple((name, args) for name, args in calls),
            usage=usage,
            finish_reason="tool_calls",
            delay_s=delay_s,
            stream_chunk_size=stream_chunk_size,
        )

    @classmethod
    def error(
        cls,
        status: int = 500,
        message: str = "scripted error",
        *,
        retry_after: float | None = None,
        delay_s: float = 0.0,
    ) -> Reply:
        """An OpenAI-style error body with ``status``; ``retry_after`` sets the Retry-After header."""
        return cls("error", status=status, message=message, retry_after=retry_after, delay_s=delay_s)

    @classmethod
    def invalid_json(cls, *, delay_s: float = 0.0) -> Reply:
        """A 200 whose body (or, when streaming, whose first event) is not JSON."""
        return cls("invalid_json", delay_s=delay_s)

    @classmethod
    def truncated_stream(
        cls, text: str, *, clean_eof: bool = False, delay_s: float = 0.0, stream_chunk_size: int = 8
    ) -> Reply:
        """Send ``text`` as deltas, then drop the connection: no finish chunk, no ``[DONE]``.

        By default the HTTP body is cut mid-transfer, so the client sees a protocol error.
        With ``clean_eof`` the body ends properly and only the SSE-level end is missing, as when
        a proxy closes the stream. A non-streaming request gets half a JSON body.
        """
        return cls(
            "truncated_stream",
            content=text,
            clean_eof=clean_eof,
            delay_s=delay_s,
            stream_chunk_size=stream_chunk_size,
        )

    @classmethod
    def hang(cls) -> Reply:
        """Never answer; the connection is dropped when the server stops. For client timeouts."""
        return cls("hang")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        """Build a reply from the JSON script format (``{"text": ...}``, ``{"error": 500}``, ...)."""
        return _ScriptEntry.model_validate(data).to_reply()


Script = Sequence[Reply] | Callable[[dict[str, Any]], Reply]


class _ToolCallEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class _ScriptEntry(BaseModel):
    """One reply of a JSON script; exactly one of the kind keys must be present."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    tool_calls: list[_ToolCallEntry] | None = None
    error: int | None = None
    message: str = "scripted error"
    retry_after: float | None = None
    invalid_json: bool = False
    truncated_stream: str | None = None
    hang: bool = False
    usage: tuple[int, int] | None = None
    delay_s: float = 0.0
    stream_chunk_size: int = 8

    @model_validator(mode="after")
    def _one_kind(self) -> _ScriptEntry:
        kinds = [
            k
            for k, on in [
                ("tool_calls", self.tool_calls is not None),
                ("error", self.error is not None),
                ("invalid_json", self.invalid_json),
                ("truncated_stream", self.truncated_stream is not None),
                ("hang", self.hang),
            ]
            if on
        ]
        if len(kinds) > 1 or (kinds and kinds != ["tool_calls"] and self.text is not None):
            raise ValueError(f"a script entry must have one kind, got {kinds + ['text'] * bool(self.text)}")
        if not kinds and self.text is None:
            raise ValueError(
                'a script entry needs one of "text", "tool_calls", "error", "invalid_json", '
                '"truncated_stream" or "hang"'
            )
        return self

    def to_reply(self) -> Reply:
        delay_s, size = self.delay_s, self.stream_chunk_size
        if self.tool_calls is not None:
            calls = [(c.name, c.arguments) for c in self.tool_calls]
            return Reply.tool_calls(
                calls, self.text or "", usage=self.usage, delay_s=delay_s, stream_chunk_size=size
            )
        if self.error is not None:
            return Reply.error(self.error, self.message, retry_after=self.retry_after, delay_s=delay_s)
        if self.invalid_json:
            return Reply.invalid_json(delay_s=delay_s)
        if self.truncated_stream is not None:
            return Reply.truncated_stream(self.truncated_stream, delay_s=delay_s, stream_chunk_size=size)
        if self.hang:
            return Reply.hang()
        return Reply.text(self.text or "", usage=self.usage, delay_s=delay_s, stream_chunk_size=size)


def load_script(path: str | Path) -> list[Reply]:
    """Read a JSON script: a list of reply objects in the `Reply.from_dict` format."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: a script must be a JSON list of reply objects, got {type(data).__name__}")
    return [Reply.from_dict(item) for item in data]


class ScriptedModelServer:
    """An OpenAI-compatible server on 127.0.0.1 that answers from a script.

    Every server created is listed in `instances` (weakly), so a test suite can check after each
    test that no request was rejected by the strict validation.

    Args:
        script: replies consumed one per chat request, in order; or a callable from the request
            body to the reply, for tests that branch on the conversation.
        model_name: the name listed by ``GET /v1/models`` and echoed in completions.
        port: 0 (the default) picks a free ephemeral port.
        on_exhausted: what a list script does when it runs out: answer 500 ("error", so a test
            fails loudly instead of hanging), repeat its last reply, or start over ("loop").
        strict: validate every request as OpenAI's API does and answer 400 with its error shape
            (`colony.testing._strict`); rejected requests consume no reply and are listed in
            `rejected`. Off only for tests of how a client handles a 400 it provoked on purpose.
    """

    instances: ClassVar[weakref.WeakSet[ScriptedModelServer]] = weakref.WeakSet()

    def __init__(
        self,
        script: Script,
        *,
        model_name: str = "scripted",
        port: int = 0,
        on_exhausted: OnExhausted = "error",
        strict: bool = True,
    ) -> None:
        self.strict = strict
        #: Set by a test that provokes rejections on purpose; the suite's check then ignores them.
        self.rejections_expected = False
        ScriptedModelServer.instances.add(self)
        if not callable(script):
            script = list(script)
            if on_exhausted != "error" and not script:
                raise ValueError(f"on_exhausted={on_exhausted!r} needs at least one reply in the script")
        self._script = script
        self.model_name = model_name
        self._port = port
        self._on_exhausted = on_exhausted
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._errors: list[str] = []
        self._rejected: list[tuple[dict[str, Any], str]] = []
        self._served = 0
        self._stopping = threading.Event()
        self._httpd: ScriptedHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ScriptedModelServer:
        """Bind and serve in a daemon thread. Returns self for chaining."""
        if self._httpd is not None:
            raise RuntimeError("ScriptedModelServer is already running")
        self._stopping.clear()
        self._httpd = ScriptedHTTPServer(("127.0.0.1", self._port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"scripted-model-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections (waking hung and delayed replies), free the port."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        handlers = httpd.abort_connections()
        httpd.server_close()
        thread.join()
        for handler in handlers:
            handler.join(timeout=2.0)
        self._httpd = self._thread = None

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what tests look at ------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("ScriptedModelServer is not running: call start() or use `with server:`")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client, ending in ``/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of every chat request body received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        """Unexpected failures inside the server (a script callable raising, ...). Empty when healthy."""
        with self._lock:
            return list(self._errors)

    @property
    def rejected(self) -> list[tuple[dict[str, Any], str]]:
        """Every request the strict validation refused, with the 400's message, in arrival order."""
        with self._lock:
            return list(self._rejected)

    def set_script(self, script: Script) -> None:
        """Replace the script of a running server; list scripts start again from their first reply."""
        with self._lock:
            self._script = script if callable(script) else list(script)
            self._served = 0

    # -- used by the handler -----------------------------------------------------------------

    def _next_reply(self, body: dict[str, Any]) -> tuple[int, Reply]:
        """Record the request and choose its reply; returns the request's 1-based number."""
        with self._lock:
            self._requests.append(body)
            number = len(self._requests)
            script = self._script
            if callable(script):
                chosen: Reply | None = None
            else:
                chosen = self._from_list(script)
        if chosen is not None:
            return number, chosen
        assert callable(script)
        try:
            reply = script(body)
        except Exception as exc:
            self._record_error(f"the script callable raised {type(exc).__name__}: {exc}")
            return number, Reply.error(500, f"the script callable raised {type(exc).__name__}: {exc}")
        if not isinstance(reply, Reply):
            message = f"the script callable returned {type(reply).__name__}, expected a Reply"
            self._record_error(message)
            return number, Reply.error(500, message)
        return number, reply

    def _from_list(self, script: list[Reply]) -> Reply:
        index = self._served
        self._served += 1
        if index < len(script):
            return script[index]
        if self._on_exhausted == "repeat_last":
            return script[-1]
        if self._on_exhausted == "loop":
            return script[index % len(script)]
        return Reply.error(500, f"script exhausted after {len(script)} replies")

    def _reject(self, body: dict[str, Any], message: str) -> None:
        with self._lock:
            self._rejected.append((body, message))

    def _record_error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a JSON script until Ctrl-C: ``python -m colony.testing --script s.json``."""
    parser = argparse.ArgumentParser(description="Serve a scripted OpenAI-compatible model on 127.0.0.1.")
    parser.add_argument("--script", required=True, help="JSON list of replies: {'text': ...}, ...")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--model-name", default="scripted")
    ends = parser.add_mutually_exclusive_group()
    ends.add_argument("--repeat-last", action="store_true", help="repeat the last reply once exhausted")
    ends.add_argument("--loop", action="store_true", help="start the script over once exhausted")
    args = parser.parse_args(argv)
    on_exhausted: OnExhausted = "repeat_last" if args.repeat_last else "loop" if args.loop else "error"
    server = ScriptedModelServer(
        load_script(args.script), model_name=args.model_name, port=args.port, on_exhausted=on_exhausted
    )
    with server:
        print(server.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
