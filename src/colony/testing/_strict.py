"""Request validation for the scripted server, as strict as OpenAI's chat-completions endpoint.

A test double that accepts what the real API refuses hides the bugs real endpoints find: a
session whose history holds an assistant message with ``tool_calls`` and no ``tool`` answer is
dead on OpenAI (every later request is a 400) but looked healthy against a lenient server. So the
scripted server checks every request the way the API does and answers 400 with OpenAI's error
shape (``{"error": {"message", "type": "invalid_request_error", "param", "code"}}``) otherwise.

What is checked (the rules the API enforces on the request body, with its own wording where it
has one): ``model`` and a non-empty ``messages`` list are present; each message has a known role
and the content types that role allows (``null`` content only for an assistant message that
carries tool calls); ``tool_calls`` is a non-empty list of ``function`` calls with an id, a name
and string arguments; every tool call is answered by exactly one ``tool`` message, and those
answers come right after the assistant message, before any other role; no ``tool`` message
without a preceding call of that id; ``tools`` entries are functions with valid names and object
parameters.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["RequestRejected", "validate_chat_request"]

_ROLES = {"system", "developer", "user", "assistant", "tool"}
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_USER_PARTS = {"text", "image_url", "input_audio", "file"}


class RequestRejected(ValueError):
    """A request the real API would answer with 400; ``param`` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def validate_chat_request(body: dict[str, Any]) -> None:
    """Raise `RequestRejected` for a request body OpenAI's chat-completions API would refuse."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise RequestRejected("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise RequestRejected("Missing required parameter: 'messages'.", "messages")
    if not messages:
        raise RequestRejected("Invalid 'messages': empty array. Expected an array with minimum length 1, "
                              "but got an empty array instead.", "messages")
    for i, message in enumerate(messages):
        _check_message(i, message)
    _check_tool_sequence(messages)
    if "tools" in body:
        _check_tools(body["tools"])


def _check_message(i: int, message: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise RequestRejected(f"Invalid type for '{where}': expected an object, but got {_kind(message)} instead.", where)
    role = message.get("role")
    if role not in _ROLES:
        raise RequestRejected(f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                              "'tool', and 'developer'.", f"{where}.role")
    content = message.get("content")
    if role == "assistant":
        calls = message.get("tool_calls")
        if calls is not None:
            _check_tool_calls(where, calls)
        if content is None and not calls:
            raise RequestRejected(f"Invalid value for '{where}.content': expected a string, got null.",
                                  f"{where}.content")
        if content is not None:
            _check_content(where, content, {"text", "refusal"})
    elif role == "tool":
        if not isinstance(message.get("tool_call_id"), str):
            raise RequestRejected(f"Missing required parameter: '{where}.tool_call_id'.", f"{where}.tool_call_id")
        _check_content(where, content, {"text"})
    else:
        _check_content(where, content, _USER_PARTS if role == "user" else {"text"})


def _check_content(where: str, content: Any, parts: set[str]) -> None:
    if isinstance(content, str):
        return
    if content is None:
        raise RequestRejected(f"Invalid value for '{where}.content': expected a string, got null.", f"{where}.content")
    if not isinstance(content, list) or not content:
        raise RequestRejected(f"Invalid type for '{where}.content': expected one of a string or array of objects, "
                              f"but got {_kind(content)} instead.", f"{where}.content")
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in parts:
            raise RequestRejected(f"Invalid value for '{where}.content[{j}].type': expected one of "
                                  f"{', '.join(sorted(parts))}.", f"{where}.content[{j}].type")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise RequestRejected(f"Missing required parameter: '{where}.content[{j}].text'.", f"{where}.content[{j}].text")


def _check_tool_calls(where: str, calls: Any) -> None:
    if not isinstance(calls, list):
        raise RequestRejected(f"Invalid type for '{where}.tool_calls': expected an array, but got {_kind(calls)} "
                              "instead.", f"{where}.tool_calls")
    if not calls:
        raise RequestRejected(f"Invalid '{where}.tool_calls': empty array. Expected an array with minimum length 1, "
                              "but got an empty array instead.", f"{where}.tool_calls")
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not call["id"]:
            raise RequestRejected(f"Missing required parameter: '{at}.id'.", f"{at}.id")
        if call.get("type") != "function":
            raise RequestRejected(f"Invalid value for '{at}.type': expected 'function'.", f"{at}.type")
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RequestRejected(f"Missing required parameter: '{at}.function.name'.", f"{at}.function.name")
        if not isinstance(function.get("arguments"), str):
            raise RequestRejected(f"Invalid type for '{at}.function.arguments': expected a string, but got "
                                  f"{_kind(function.get('arguments'))} instead.", f"{at}.function.arguments")


def _check_tool_sequence(messages: list[dict[str, Any]]) -> None:
    """Each call answered exactly once, right after its assistant message; no answer without a call."""
    i = 0
    while i < len(messages):
        message = messages[i]
        if message["role"] == "tool":
            raise RequestRejected("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                                  "message with 'tool_calls'.", f"messages[{i}].role")
        i += 1
        if message["role"] != "assistant" or not message.get("tool_calls"):
            continue
        open_ids = [call["id"] for call in message["tool_calls"]]
        if len(set(open_ids)) != len(open_ids):
            raise RequestRejected(f"Duplicate tool call id in 'messages[{i - 1}].tool_calls'.",
                                  f"messages[{i - 1}].tool_calls")
        pending = set(open_ids)
        while i < len(messages) and messages[i]["role"] == "tool":
            answered = messages[i]["tool_call_id"]
            if answered not in pending:
                raise RequestRejected("Invalid parameter: messages with role 'tool' must be a response to a "
                                      "preceeding message with 'tool_calls'.", f"messages[{i}].role")
            pending.discard(answered)
            i += 1
        if pending:
            missing = ", ".join(sorted(pending))
            raise RequestRejected("An assistant message with 'tool_calls' must be followed by tool messages responding "
                                  f"to each 'tool_call_id'. The following tool_call_ids did not have response "
                                  f"messages: {missing}", f"messages[{i}].role" if i < len(messages) else "messages")


def _check_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise RequestRejected(f"Invalid type for 'tools': expected an array, but got {_kind(tools)} instead.", "tools")
    for k, tool in enumerate(tools):
        at = f"tools[{k}]"
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise RequestRejected(f"Invalid value for '{at}': expected a function tool.", at)
        name = tool["function"].get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise RequestRejected(f"Invalid '{at}.function.name': string does not match pattern. Expected a string "
                                  "that matches the pattern '^[a-zA-Z0-9_-]+$'.", f"{at}.function.name")
        params = tool["function"].get("parameters")
        if params is not None and (not isinstance(params, dict) or params.get("type", "object") != "object"):
            raise RequestRejected(f"Invalid schema for function '{name}': schema must be a JSON Schema of "
                                  "'type: \"object\"'.", f"{at}.function.parameters")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)
