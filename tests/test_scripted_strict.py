"""The scripted model server refuses what OpenAI's chat-completions API refuses, with its error shape."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from colony.testing import Reply, ScriptedModelServer
from colony.testing._strict import RequestRejected, validate_chat_request

CALL = {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}


def req(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": list(messages), **extra}


GOOD = [
    req({"role": "user", "content": "hi"}),
    req({"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "x"}]}),
    req({"role": "user", "content": "hi"}, {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"}, {"role": "user", "content": "more"}),
    req({"role": "user", "content": "hi"},
        {"role": "assistant", "content": "two", "tool_calls": [CALL, {**CALL, "id": "call_2"}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "b"}, {"role": "tool", "tool_call_id": "call_1", "content": "a"}),
    req({"role": "user", "content": "hi"}, tools=[{"type": "function", "function": {
        "name": "read_file", "parameters": {"type": "object", "properties": {}}}}]),
]

BAD = {
    "no model": ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    "no messages": ({"model": "m"}, "messages"),
    "empty messages": (req(), "empty array"),
    "unknown role": (req({"role": "robot", "content": "x"}), "Supported values"),
    "user content null": (req({"role": "user", "content": None}), "got null"),
    "assistant without content or calls": (req({"role": "user", "content": "x"}, {"role": "assistant"}), "got null"),
    "empty tool_calls": (req({"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "tool_calls": []}),
                         "empty array"),
    "call never answered": (req({"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": [CALL]},
                                {"role": "user", "content": "again"}), "did not have response messages: call_1"),
    "call answered at the end only": (req({"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": [CALL]}),
                                      "did not have response messages"),
    "tool without a call": (req({"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_9", "content": "r"}),
                            "preceeding message with 'tool_calls'"),
    "answered twice": (req({"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": [CALL]},
                           {"role": "tool", "tool_call_id": "call_1", "content": "a"},
                           {"role": "tool", "tool_call_id": "call_1", "content": "b"}), "preceeding"),
    "answer after another message": (req({"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": [CALL]},
                                         {"role": "user", "content": "wait"},
                                         {"role": "tool", "tool_call_id": "call_1", "content": "a"}), "did not have response"),
    "arguments not a string": (req({"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": [
        {**CALL, "function": {"name": "f", "arguments": {"a": 1}}}]}, {"role": "tool", "tool_call_id": "call_1", "content": "a"}),
        "arguments"),
    "tool message without id": (req({"role": "user", "content": "x"}, {"role": "tool", "content": "a"}), "tool_call_id"),
    "bad tool name": (req({"role": "user", "content": "x"}, tools=[{"type": "function", "function": {"name": "a b"}}]),
                      "pattern"),
    "parameters not an object schema": (req({"role": "user", "content": "x"}, tools=[
        {"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]), "type: \"object\""),
    "content part of a wrong type": (req({"role": "system", "content": [{"type": "image_url", "image_url": {}}]}), "type"),
}


@pytest.mark.parametrize("body", GOOD)
def test_valid_requests_pass(body: dict[str, Any]) -> None:
    validate_chat_request(body)


@pytest.mark.parametrize("name", list(BAD))
def test_invalid_requests_are_refused(name: str) -> None:
    body, words = BAD[name]
    with pytest.raises(RequestRejected, match=words.replace("(", r"\(")):
        validate_chat_request(body)


def test_server_answers_400_in_openai_shape_and_consumes_no_reply() -> None:
    with ScriptedModelServer([Reply.text("fine")]) as server:
        server.rejections_expected = True
        body = BAD["call never answered"][0]
        r = httpx.post(f"{server.base_url}/chat/completions", json=body)
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and "call_1" in error["message"]
        assert error["param"] == "messages[2].role" and error["code"] is None
        assert len(server.rejected) == 1 and server.requests == []
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="tool_call_id"):
            client.chat.completions.create(model="m", messages=body["messages"])
        ok = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert ok.choices[0].message.content == "fine"


def test_lenient_mode_still_exists_for_tests_of_400_handling() -> None:
    with ScriptedModelServer([Reply.text("fine")], strict=False) as server:
        r = httpx.post(f"{server.base_url}/chat/completions", json=BAD["call never answered"][0])
        assert r.status_code == 200 and server.rejected == []
