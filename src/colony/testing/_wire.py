"""The OpenAI chat-completions wire format, as the scripted server writes it.

Kept apart from the HTTP plumbing so the shapes are easy to compare with what the official
``openai`` client parses: a ``chat.completion`` object, the ``chat.completion.chunk`` sequence of a
stream (role, text deltas, tool calls opened with id and name then fed argument fragments, a
finish chunk, an optional usage chunk), and the ``{"error": {...}}`` body.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from colony.testing.scripted_server import Reply

__all__ = ["chunks", "completion", "error_body", "estimate_tokens", "models_list"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def estimate_tokens(text: str) -> int:
    """The usual rough rule, four characters a token, rounded up."""
    return (len(text) + 3) // 4


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def models_list(model_name: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "colony-testing"}],
    }


def _tool_calls(reply: Reply, number: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{number}_{i}",
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        for i, (name, args) in enumerate(reply.calls)
    ]


def _usage(reply: Reply, body: dict[str, Any], calls: list[dict[str, Any]]) -> dict[str, int]:
    if reply.usage is not None:
        prompt, completion_ = reply.usage
    else:
        prompt = estimate_tokens(json.dumps(body.get("messages", [])))
        produced = reply.content + "".join(c["function"]["name"] + c["function"]["arguments"] for c in calls)
        completion_ = estimate_tokens(produced)
    return {"prompt_tokens": prompt, "completion_tokens": completion_, "total_tokens": prompt + completion_}


def completion(reply: Reply, body: dict[str, Any], model_name: str, number: int) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` for a text or tool-call reply."""
    calls = _tool_calls(reply, number)
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": f"chatcmpl-scripted-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [
            {"index": 0, "message": message, "finish_reason": reply.finish_reason or "stop", "logprobs": None}
        ],
        "usage": _usage(reply, body, calls),
    }


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def chunks(reply: Reply, body: dict[str, Any], model_name: str, number: int) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a stream, without the closing ``[DONE]``.

    A truncated-stream reply stops after its text deltas: no finish chunk, no usage.
    """
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base = {
        "id": f"chatcmpl-scripted-{number}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model_name,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        out = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        if include_usage:
            out["usage"] = None
        return out

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in _pieces(reply.content, reply.stream_chunk_size)]
    if reply.kind == "truncated_stream":
        return out
    calls = _tool_calls(reply, number)
    for i, call in enumerate(calls):
        opening = {
            "index": i,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        out.append(chunk({"tool_calls": [opening]}))
        for piece in _pieces(call["function"]["arguments"], reply.stream_chunk_size):
            out.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    out.append(chunk({}, reply.finish_reason or "stop"))
    if include_usage:
        out.append({**base, "choices": [], "usage": _usage(reply, body, calls)})
    return out
