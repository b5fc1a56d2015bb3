"""One OpenAI-compatible chat endpoint (Ollama, llama.cpp, vLLM, hosted services) as a `Model`.

The official ``openai`` client does the HTTP; this module does the two mappings around it: our
messages to the chat-completions wire format, and the answer back to a cleaned `ModelResponse`
(thinking stripped, tool arguments parsed, text tool calls recovered). Answers are read as plain
dicts rather than the client's typed objects because local servers omit or misspell fields the
types call required; reading with ``.get`` keeps a sloppy server usable.

Retries are not done here (``max_retries=0``): the cascade owns retries, backoff and fall-over,
so it needs each failure at once, mapped to a `ModelResponseError` that says whether it is
transient and how to fix it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import openai
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)

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
from colony.llm.textcalls import recover_tool_calls
from colony.llm.thinking import ThinkingFilter, strip_thinking

__all__ = ["OpenAIChatModel", "parse_arguments", "to_wire_messages", "to_wire_tools"]

#: Known local servers by port, to say "start Ollama" rather than "start the server".
_START_HINTS = {
    ":11434": "start Ollama (ollama serve)",
    ":8080": "start the llama.cpp server (llama-server)",
    ":8000": "start vLLM (vllm serve)",
}


class OpenAIChatModel:
    """A `Model` that talks to one OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.base_url = config.base_url.rstrip("/")
        key = config.api_key.get_secret_value() if config.api_key else ""
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=key or "not-needed",
            max_retries=0,
            timeout=config.timeout_s,
        )
        # Flipped off after a server rejects ``stream_options`` once, so we do not pay a 400 per call.
        self._stream_usage = True

    @property
    def name(self) -> str:
        return f"{self.config.name}:{self.config.model}"

    async def aclose(self) -> None:
        await self._client.close()

    async def list_models(self) -> list[str]:
        """The model ids the endpoint serves (``GET /models``), for ``colony doctor``."""
        try:
            page = await self._client.models.list()
            return [str(m.id) async for m in page]
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        except ValueError as exc:  # a body that is not JSON
            raise self._bad_body(f"GET /models returned something that is not JSON ({exc})") from exc

    async def request(
        self,
        messages: Sequence[Message],
        settings: ModelSettings,
        tools: Sequence[ToolDefinition],
    ) -> ModelResponse:
        try:
            completion: object = await self._client.chat.completions.create(
                model=self.config.model,
                messages=to_wire_messages(messages),
                tools=to_wire_tools(tools) if tools else openai.omit,
                temperature=_given(settings.temperature),
                max_tokens=_given(settings.max_tokens),
                timeout=settings.timeout_s or openai.NOT_GIVEN,
            )
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        except ValueError as exc:  # json.JSONDecodeError on a body labelled application/json
            raise self._bad_body(f"the body is not valid JSON ({exc})") from exc
        if not isinstance(completion, openai.BaseModel):  # the client hands back text it cannot parse
            raise self._bad_body(f"the body is not JSON: {str(completion)[:200]!r}")
        data = completion.to_dict(warnings=False)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self._bad_body("the JSON has no choices")
        choice: dict[str, Any] = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        assert isinstance(message, dict)
        calls = [_native_call(i, raw) for i, raw in enumerate(message.get("tool_calls") or [])]
        return self._finish(
            text=str(message.get("content") or ""),
            calls=calls,
            tools=tools,
            usage=_usage(data.get("usage")),
            finish_reason=choice.get("finish_reason"),
            model_name=data.get("model"),
        )

    async def request_stream(
        self,
        messages: Sequence[Message],
        settings: ModelSettings,
        tools: Sequence[ToolDefinition],
    ) -> AsyncIterator[StreamEvent]:
        stream = await self._open_stream(messages, settings, tools)
        thinking = ThinkingFilter()
        raw_text: list[str] = []
        partial_calls: dict[int, dict[str, str]] = {}
        usage = Usage()
        finish_reason: str | None = None
        model_name: str | None = None
        try:
            async with stream:
                async for chunk in stream:
                    data = chunk.to_dict(warnings=False)
                    model_name = data.get("model") or model_name
                    if isinstance(data.get("usage"), dict):
                        usage = _usage(data["usage"])
                    for choice in data.get("choices") or []:
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            raw_text.append(delta["content"])
                            visible = thinking.feed(delta["content"])
                            if visible:
                                yield TextDelta(text=visible)
                        for raw in delta.get("tool_calls") or []:
                            _accumulate_call(partial_calls, raw)
                        finish_reason = choice.get("finish_reason") or finish_reason
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from exc
        except ValueError as exc:  # an SSE data line that is not JSON
            raise self._bad_body(f"the stream carried data that is not JSON ({exc})") from exc
        if finish_reason is None:
            raise ModelResponseError(
                f"The stream from {self.name} at {self.base_url} ended before the answer finished "
                f"(no finish_reason) — the server may have crashed or dropped the connection; retrying.",
                provider=self.name,
                transient=True,
            )
        tail = thinking.flush()
        if tail:
            yield TextDelta(text=tail)
        calls = [_native_call(i, partial_calls[i]) for i in sorted(partial_calls)]
        yield ResponseDone(
            response=self._finish(
                text="".join(raw_text),
                calls=calls,
                tools=tools,
                usage=usage,
                finish_reason=finish_reason,
                model_name=model_name,
            )
        )

    async def _open_stream(
        self, messages: Sequence[Message], settings: ModelSettings, tools: Sequence[ToolDefinition]
    ) -> openai.AsyncStream[Any]:
        for with_usage in (True, False) if self._stream_usage else (False,):
            try:
                return await self._client.chat.completions.create(
                    model=self.config.model,
                    messages=to_wire_messages(messages),
                    tools=to_wire_tools(tools) if tools else openai.omit,
                    temperature=_given(settings.temperature),
                    max_tokens=_given(settings.max_tokens),
                    timeout=settings.timeout_s or openai.NOT_GIVEN,
                    stream=True,
                    stream_options={"include_usage": True} if with_usage else openai.omit,
                )
            except openai.BadRequestError as exc:
                if with_usage and "stream_options" in str(exc):
                    self._stream_usage = False  # an older server: ask again without it
                    continue
                raise self._map_error(exc) from exc
            except openai.OpenAIError as exc:
                raise self._map_error(exc) from exc
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _finish(
        self,
        *,
        text: str,
        calls: list[ToolCall],
        tools: Sequence[ToolDefinition],
        usage: Usage,
        finish_reason: object,
        model_name: object,
    ) -> ModelResponse:
        """The post-processing shared by `request` and `request_stream`."""
        # Thinking goes first so a tool call merely considered inside <think> is never run.
        content = strip_thinking(text)
        recovered = False
        if not calls and tools:
            found = recover_tool_calls(content, [t.name for t in tools])
            if found.calls:
                calls, content, recovered = list(found.calls), found.text, True
        return ModelResponse(
            message=AssistantMessage(content=content, tool_calls=calls),
            usage=usage,
            model_name=str(model_name or self.config.model),
            provider=self.config.name,
            finish_reason=str(finish_reason) if finish_reason else None,
            recovered_tool_calls=recovered,
        )

    def _bad_body(self, what: str) -> ModelResponseError:
        return ModelResponseError(
            f"{self.name} at {self.base_url} answered with something that is not a chat completion: "
            f"{what}. Check that COLONY_MODEL_BASE_URL points at an OpenAI-compatible /v1 endpoint.",
            provider=self.name,
            transient=True,
        )

    def _map_error(self, exc: openai.OpenAIError) -> ModelResponseError:
        """Translate a client error into ours: transient or not, and what to do about it."""
        url, who = self.base_url, self.name
        if isinstance(exc, openai.APITimeoutError):
            return ModelResponseError(
                f"{who} at {url} did not answer in time — the model may still be loading; raise the "
                f"timeout (COLONY_MODEL_TIMEOUT_S or the provider's timeout_s) or use a smaller model.",
                provider=who,
                transient=True,
            )
        if isinstance(exc, openai.APIConnectionError):
            # Matched by name so both httpx and httpx2 (the client's transport) are recognised.
            if type(exc.__cause__).__name__ not in ("ConnectError", "ConnectTimeout"):
                return ModelResponseError(
                    f"The connection to {who} at {url} broke before the answer was complete "
                    f"({exc.__cause__ or exc}) — the server may have crashed or restarted.",
                    provider=who,
                    transient=True,
                )
            hint = next((h for port, h in _START_HINTS.items() if port in url), "start the model server")
            return ModelResponseError(
                f"No model endpoint reachable at {url} — {hint} or set COLONY_MODEL_BASE_URL.",
                provider=who,
                transient=True,
            )
        if not isinstance(exc, openai.APIStatusError):
            return ModelResponseError(
                f"{who} at {url} reported an error: {exc}", provider=who, transient=True
            )
        status, detail = exc.status_code, _detail(exc)
        if status == 429:
            after = _retry_after(exc.response.headers)
            wait = f" (it asks to wait {after:g}s)" if after is not None else ""
            return ModelResponseError(
                f"{who} at {url} is rate limiting requests (HTTP 429){wait}: {detail} — lower this "
                f"provider's requests_per_minute or add another provider.",
                provider=who,
                status=status,
                transient=True,
                retry_after=after,
            )
        if status >= 500:
            message = f"{who} at {url} failed with HTTP {status}: {detail}"
            return ModelResponseError(message, provider=who, status=status, transient=True)
        if status in (401, 403):
            message = (
                f"{url} refused the request (HTTP {status}): {detail} — check COLONY_MODEL_API_KEY "
                f"(or this provider's api_key)."
            )
        elif status == 404:
            # Either the model is unknown or the URL is not the API root (Ollama's is .../v1).
            root = "" if url.endswith("/v1") else " Also check the base URL: it usually ends in /v1."
            message = (
                f"{url} answered HTTP 404 for model '{self.config.model}': {detail} — the model name "
                f"may be wrong. See the served models with `colony doctor` or `curl {url}/models` "
                f"(for Ollama: `ollama list`), then set COLONY_MODEL_NAME.{root}"
            )
        else:
            message = f"{url} rejected the request for {who} (HTTP {status}): {detail}"
        return ModelResponseError(message, provider=who, status=status, transient=False)


def to_wire_messages(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    """Our messages as chat-completions message dicts."""
    wire: list[ChatCompletionMessageParam] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            wire.append({"role": "system", "content": m.content})
        elif isinstance(m, UserMessage):
            wire.append({"role": "user", "content": m.content})
        elif isinstance(m, AssistantMessage):
            calls: list[ChatCompletionMessageFunctionToolCallParam] = [
                {
                    "id": c.id,
                    "type": "function",
                    # Always valid JSON: some servers re-parse history and reject the raw text.
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for c in m.tool_calls
            ]
            if calls:
                wire.append({"role": "assistant", "content": m.content, "tool_calls": calls})
            else:
                wire.append({"role": "assistant", "content": m.content})
        elif isinstance(m, ToolResultMessage):
            wire.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
    return wire


def to_wire_tools(tools: Sequence[ToolDefinition]) -> list[ChatCompletionFunctionToolParam]:
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


def parse_arguments(raw: object) -> tuple[dict[str, Any], str | None]:
    """Arguments as a dict, or ``({}, raw text)`` when they are not a JSON object.

    Empty arguments mean "no arguments" (several servers send ``""`` for a parameterless tool).
    """
    if isinstance(raw, dict):
        return raw, None
    text = "" if raw is None else str(raw)
    if not text.strip():
        return {}, None
    try:
        value = json.loads(text)
    except ValueError:
        return {}, text
    return (value, None) if isinstance(value, dict) else ({}, text)


def _native_call(position: int, raw: object) -> ToolCall:
    raw = raw if isinstance(raw, dict) else {}
    function = raw.get("function") if isinstance(raw.get("function"), dict) else raw
    assert isinstance(function, dict)
    arguments, raw_arguments = parse_arguments(function.get("arguments"))
    return ToolCall(
        id=str(raw.get("id") or f"call_{position}_{uuid.uuid4().hex[:8]}"),
        name=str(function.get("name") or ""),
        arguments=arguments,
        raw_arguments=raw_arguments,
    )


def _accumulate_call(partial: dict[int, dict[str, str]], raw: dict[str, Any]) -> None:
    """Merge one streamed tool-call fragment: the id and name come once, arguments in pieces."""
    index = raw.get("index")
    if not isinstance(index, int):
        index = len(partial)  # a server that sends whole calls without an index
    slot = partial.setdefault(index, {"id": "", "name": "", "arguments": ""})
    if raw.get("id"):
        slot["id"] = str(raw["id"])
    function = raw.get("function") or {}
    if function.get("name") and not slot["name"]:
        slot["name"] = str(function["name"])
    if function.get("arguments"):
        slot["arguments"] += str(function["arguments"])


def _usage(raw: object) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
    )


def _given(value: float | int | None) -> Any:
    """``None`` means "server default": leave the field out rather than send ``null``."""
    return openai.omit if value is None else value


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return str(message)[:300]
    return str(exc.message)[:300]


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (a number or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
