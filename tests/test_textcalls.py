"""Recovery of tool calls written as text, against a corpus of real-world styles."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colony.llm.textcalls import RecoveredCalls, looks_like_narrated_call, recover_tool_calls

TOOLS = [
    "read_file", "write_file", "patch_file", "list_dir",
    "search_files", "run_command", "http_get", "memory_recall",
]  # fmt: skip
CORPUS_PATH = Path(__file__).parent / "data" / "malformed_tool_calls.jsonl"
CORPUS: list[dict[str, Any]] = [
    json.loads(line) for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines() if line.strip()
]
POSITIVE = [case for case in CORPUS if case["expected"]]
NEGATIVE = [case for case in CORPUS if not case["expected"]]


def recovered(text: str, tools: list[str] = TOOLS) -> list[dict[str, Any]]:
    return [{"name": c.name, "arguments": c.arguments} for c in recover_tool_calls(text, tools).calls]


# --------------------------------------------------------------------------- the corpus


def test_corpus_is_large_varied_and_uses_the_agreed_tools() -> None:
    assert len(POSITIVE) >= 70
    assert len(NEGATIVE) >= 10
    assert len({case["id"] for case in CORPUS}) == len(CORPUS)
    assert len({case["style"] for case in POSITIVE}) >= 12
    for case in CORPUS:
        assert set(case["tools"]) <= set(TOOLS)
        assert all(call["name"] in case["tools"] for call in case["expected"])


@pytest.mark.parametrize(
    "case", [c for c in CORPUS if "xfail_reason" not in c], ids=lambda c: f"{c['style']}-{c['id']}"
)
def test_corpus_case(case: dict[str, Any]) -> None:
    assert recovered(case["text"], case["tools"]) == case["expected"]


def test_corpus_recovery_rate_and_no_false_positives() -> None:
    hits = {c["id"] for c in POSITIVE if recovered(c["text"], c["tools"]) == c["expected"]}
    assert len(hits) / len(POSITIVE) >= 0.95
    assert [c["id"] for c in NEGATIVE if recovered(c["text"], c["tools"])] == []
    # A case marked unrecoverable that now passes should lose its marker.
    assert [c["id"] for c in CORPUS if "xfail_reason" in c and c["id"] in hits] == []


def test_unrecoverable_cases_still_yield_no_wrong_call() -> None:
    for case in (c for c in CORPUS if "xfail_reason" in c):
        for call in recover_tool_calls(case["text"], case["tools"]).calls:
            assert (call.arguments, call.raw_arguments is not None) == ({}, True)


# --------------------------------------------------------------------------- result shape


def test_calls_get_fresh_ids_and_text_loses_the_call_syntax() -> None:
    text = (
        'Checking.\n<tool_call>\n{"name": "list_dir", "arguments": {"path": "."}}\n</tool_call>\nDone soon.'
    )
    first, second = recover_tool_calls(text, TOOLS), recover_tool_calls(text, TOOLS)
    assert first.text == "Checking.\n\nDone soon."
    assert re.fullmatch(r"call_[0-9a-f]{16}", first.calls[0].id)
    assert first.calls[0].id != second.calls[0].id


def test_result_is_frozen() -> None:
    result = recover_tool_calls("hello", TOOLS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = "changed"  # type: ignore[misc]


def test_plain_prose_comes_back_unchanged() -> None:
    text = "  Paris is the capital of France.\n"
    assert recover_tool_calls(text, TOOLS) == RecoveredCalls([], text)


def test_no_tools_offered_means_no_calls() -> None:
    assert recover_tool_calls('{"name": "read_file", "arguments": {}}', []).calls == []


def test_calls_keep_their_order_across_styles() -> None:
    text = (
        'list_dir(path="a")\n'
        '<tool_call>{"name": "read_file", "arguments": {"path": "b"}}</tool_call>\n'
        '{"name": "http_get", "arguments": {"url": "c"}}'
    )
    assert [c["name"] for c in recovered(text)] == ["list_dir", "read_file", "http_get"]


# --------------------------------------------------------------------------- styles and shapes


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "read_file", "arguments": {"path": "a"}}</tool_call>',
        '<function=read_file>{"path": "a"}</function>',
        '[TOOL_CALLS] [{"name": "read_file", "arguments": {"path": "a"}}]',
        '[TOOL_CALLS]read_file[ARGS]{"path": "a"}',
        '<|python_tag|>{"name": "read_file", "parameters": {"path": "a"}}',
        '<|tool_call|>[{"name": "read_file", "arguments": {"path": "a"}}]<|/tool_call|>',
        '```json\n{"name": "read_file", "arguments": {"path": "a"}}\n```',
        '```\n{"name": "read_file", "arguments": {"path": "a"}}\n```',
        '```tool_code\nprint(default_api.read_file(path="a"))\n```',
        '{"type": "function", "function": {"name": "read_file", "arguments": "{\\"path\\": \\"a\\"}"}}',
        "<tool_call>\n<function=read_file>\n<parameter=path>\na\n</parameter>\n</function>\n</tool_call>",
        '<｜tool▁call▁begin｜>read_file<｜tool▁sep｜>{"path": "a"}<｜tool▁call▁end｜>',
        'Action: read_file\nAction Input: {"path": "a"}',
        'read_file(path="a")',
        '[read_file(path="a")]',
        "{'name': 'read_file', 'arguments': {'path': 'a',},}",
        '{name: read_file, arguments: {path: "a"}}',
        '{"name": "read_file", "arguments": {"path": "a"}',
        '{"name": "read_file", // why\n "arguments": {"path": "a"}}',
    ],
)
def test_each_style_recovers_the_same_call(text: str) -> None:
    assert recovered(text) == [{"name": "read_file", "arguments": {"path": "a"}}]


@pytest.mark.parametrize("name_key", ["name", "tool", "function", "tool_name", "action"])
@pytest.mark.parametrize(
    "args_key", ["arguments", "args", "parameters", "params", "input", "action_input", "tool_input"]
)
def test_every_name_and_arguments_key_is_understood(name_key: str, args_key: str) -> None:
    text = json.dumps({name_key: "run_command", args_key: {"command": "ls"}})
    assert recovered(text) == [{"name": "run_command", "arguments": {"command": "ls"}}]


@pytest.mark.parametrize("written", ["READ_FILE", "readfile", "read-file", "readFile", "functions.read_file"])
def test_tool_names_resolve_to_the_canonical_name(written: str) -> None:
    text = json.dumps({"name": written, "arguments": {"path": "a"}})
    assert recovered(text) == [{"name": "read_file", "arguments": {"path": "a"}}]


def test_ambiguous_close_match_is_refused() -> None:
    assert recovered('{"name": "file_x", "arguments": {}}', ["file_a", "file_b"]) == []


def test_python_literals_become_json_values() -> None:
    text = '{"name": "search_files", "arguments": {"regex": True, "limit": None, "hidden": False}}'
    assert recovered(text)[0]["arguments"] == {"regex": True, "limit": None, "hidden": False}


def test_unparseable_argument_string_is_kept_raw_for_validation() -> None:
    call = recover_tool_calls('{"name": "read_file", "arguments": "config.toml"}', TOOLS).calls[0]
    assert (call.arguments, call.raw_arguments) == ({}, "config.toml")


def test_positional_python_call_is_kept_raw_for_validation() -> None:
    call = recover_tool_calls('read_file("config.toml")', TOOLS).calls[0]
    assert (call.name, call.arguments, call.raw_arguments) == ("read_file", {}, 'read_file("config.toml")')


def test_llama_builtin_dotted_call() -> None:
    assert recovered('<|python_tag|>http_get.call(url="http://x")<|eom_id|>') == [
        {"name": "http_get", "arguments": {"url": "http://x"}}
    ]


# --------------------------------------------------------------------------- false positives


@pytest.mark.parametrize(
    "text",
    [
        "I read the file and the answer is 42 (as expected).",
        '{"name": "Alice", "arguments": {"x": 1}}',
        '{"name": "drop_table", "arguments": {"table": "users"}}',
        '{"name": "read_file", "description": "Reads", "parameters": {"type": "object", "properties": {}}}',
        'The stats are {"tool": "read_file", "calls": 12} for today.',
        "Use read_file(path) for that.",
        "```python\nfrom x import read_file\nread_file('a')\n```",
        "```js\nread_file({path: 'a'})\n```",
        "Qwen wraps calls in <tool_call> tags and Mistral uses [TOOL_CALLS].",
        'Answer with {"name": "<tool>", "arguments": {...}} when you need read_file.',
        "```bash\nrun_command --help\n```",
    ],
)
def test_ordinary_text_and_data_are_not_calls(text: str) -> None:
    assert recovered(text) == []


# --------------------------------------------------------------------------- robustness

_CALL_BITS = st.sampled_from(
    [
        "{", "}", "[", "]", "(", ")", '"', "'", ":", ",", "\\", "\n", "```", "```json\n", "//", "/*",
        "<tool_call>", "</tool_call>", "<function=read_file>", "</function>", "[TOOL_CALLS]", "[ARGS]",
        "<|python_tag|>", "Action: read_file\nAction Input: ", "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>",
        '"name"', '"arguments"', '"read_file"', "read_file", "print(", "path=", "True", "None", "1e999",
        "x", " ",
    ]
)  # fmt: skip


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=300), st.lists(_CALL_BITS, max_size=40).map("".join)))
def test_recovery_never_raises(text: str) -> None:
    result = recover_tool_calls(text, TOOLS)
    assert all(call.name in TOOLS for call in result.calls)
    assert len(result.text) <= len(text)


def test_deeply_nested_input_does_not_raise() -> None:
    assert recovered("read_file " + "[" * 5000 + "{" * 5000) == []
    assert recovered("read_file(" * 3000) == []
    wrapped = '{"function": ' * 950 + '{"name": "read_file"}' + "}" * 950
    assert recovered(wrapped) in ([], [{"name": "read_file", "arguments": {}}])


# --------------------------------------------------------------------------- narration


@pytest.mark.parametrize(
    "text",
    [
        "I'll use the read_file tool to open config.toml",
        "Let me call `run_command` with ls",
        "Sure! I will now run list_dir on the src folder.",
        "Next, I'm going to use http-get to fetch the page.",
        "Calling search_files with pattern TODO.",
        "Let's check the memory first with memoryRecall.",
        "The file is missing. I need to call write_file to create it.",
        "I'll help you by calling list_dir on the project root.",
    ],
)
def test_narrated_calls_are_detected(text: str) -> None:
    assert looks_like_narrated_call(text, TOOLS)


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 42.",
        "I used read_file earlier and the port is 8080.",
        "You can use run_command to execute shell commands.",
        "Should I call read_file on config.toml?",
        "I won't use run_command for this; here is the answer: 4.",
        "read_file returns the file's text; write_file replaces it.",
        "I'll read the file and tell you what it says.",
        "I've already called list_dir, and it shows three folders.",
        "Now I know why read_file failed: the path was wrong.",
        "If the file exists, I'll use read_file next time.",
        'I\'ll read it.\n{"name": "read_file", "arguments": {"path": "a"}}',
    ],
)
def test_other_answers_are_not_narrated_calls(text: str) -> None:
    assert not looks_like_narrated_call(text, TOOLS)
