"""Recover tool calls that a model wrote as text instead of sending them natively.

Small local models (Qwen, Llama 3.x, Mistral, Phi, Gemma, DeepSeek distills) often print their
chat template's call syntax, or a JSON object of their own invention, into the answer text; the
server then passes it on as content. `recover_tool_calls` turns that text back into `ToolCall`s
and returns the remaining prose. Recognised, in the order they claim text:

1. DeepSeek ``<｜tool▁call▁begin｜>…<｜tool▁call▁end｜>`` markers;
2. ``<tool_call>…</tool_call>`` (Qwen/Hermes), ``<|tool_call|>`` (Phi-4), ``<function_call>``;
3. ``<function=name>{…}</function>`` (Llama 3.x) and ``<parameter=k>v</parameter>`` (Qwen3-Coder);
4. ``[TOOL_CALLS]`` (Mistral, both the JSON list and ``name[ARGS]{…}``) and ``<|python_tag|>``;
5. ReAct ``Action: name`` / ``Action Input: {…}``;
6. fenced blocks (JSON, or Python calls as in Gemma's ``tool_code``);
7. bare JSON objects or lists of them;
8. a line that is only a Python-style call, ``read_file(path="a.txt")`` or ``[a(), b()]``.

JSON is repaired with ``json_repair`` (trailing commas, single quotes, bare keys, Python literals,
comments, missing closing braces). A JSON object counts as a call only when a name key holds a
known tool name; other keys must be arguments or harmless metadata, and a JSON schema in the
arguments marks a tool *definition*, not a call. Flattened arguments (``{"tool": "x", "path":
…}``) are accepted only where intent is unambiguous: inside call syntax or when the object is
the whole answer. Strip thinking blocks first (`colony.llm.thinking`): a sketched call inside
``<think>`` is not a call.

`looks_like_narrated_call` spots answers that *describe* a call without making one, so the agent
loop can nudge the model instead of ending the turn.

Imports only `colony.llm.messages` and the standard library (plus ``json_repair``).
"""

from __future__ import annotations

import ast
import difflib
import json
import re
import secrets
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import json_repair

from colony.llm.messages import ToolCall

__all__ = ["RecoveredCalls", "looks_like_narrated_call", "recover_tool_calls"]


@dataclass(frozen=True, slots=True)
class RecoveredCalls:
    """Calls found in an answer, and the answer's text with the call syntax removed."""

    calls: list[ToolCall]
    text: str


# (name, arguments, raw_arguments) before ids are assigned.
_Call = tuple[str, dict[str, Any], str | None]

_NAME_KEYS = ("name", "tool", "tool_name", "function", "function_name", "action", "recipient_name")
_ARG_KEYS = ("arguments", "args", "parameters", "params", "input", "action_input", "tool_input", "kwargs")
_META_KEYS = frozenset({"id", "type", "call_id", "index", "thought", "thoughts", "reasoning", "reason"})
_DEFINITION_KEYS = frozenset({"description", "properties", "required", "returns", "strict"})
_WRAPPER_KEYS = ("tool_calls", "calls", "function_calls", "tool_uses", "function_call", "tool_call")
_STRONG_LABELS = frozenset({"tool_call", "tool_calls", "tool_code", "function_call", "functioncall"})
_NAMESPACES = ("functions.", "default_api.", "tools.", "tool.")
_PY_CONSTANTS = {"true": True, "false": False, "null": None, "none": None}


def _key(name: str) -> str:
    """Normalise a tool name for matching: ``functions.Read-File`` -> ``readfile``."""
    lowered = name.strip().lower()
    for prefix in _NAMESPACES:
        if lowered.startswith(prefix):
            lowered = lowered[len(prefix) :]
    lowered = lowered.removesuffix(".call")  # Llama 3.1 built-ins: brave_search.call(...)
    return re.sub(r"[^a-z0-9]", "", lowered)


class _Names:
    """Resolves what a model wrote to one canonical tool name, or to nothing."""

    def __init__(self, names: frozenset[str]) -> None:
        self.exact = names
        by_key: dict[str, list[str]] = {}
        for name in names:
            by_key.setdefault(_key(name), []).append(name)
        self.by_key = {k: v[0] for k, v in by_key.items() if len(v) == 1 and k}

    @lru_cache(maxsize=512)  # noqa: B019 - one small instance per tool set, itself cached
    def resolve(self, written: str) -> str | None:
        if written in self.exact:
            return written
        key = _key(written)
        if not key or len(written) > 80:
            return None
        if key in self.by_key:
            return self.by_key[key]
        close = difflib.get_close_matches(key, list(self.by_key), n=2, cutoff=0.85)
        return self.by_key[close[0]] if len(close) == 1 else None


@lru_cache(maxsize=32)
def _names(tool_names: frozenset[str]) -> _Names:
    return _Names(tool_names)


# --------------------------------------------------------------------------- JSON shapes


def _load(text: str) -> Any:
    """Parse JSON, repairing it when strict parsing fails; None when nothing usable comes out."""
    try:
        return json.loads(text, strict=False)  # strict=False: raw newlines inside strings
    except ValueError:
        pass
    try:
        value = json_repair.loads(text)
    except Exception:  # a repair library must never take the agent loop down
        return None
    return value if isinstance(value, dict | list) else None


def _is_schema(value: dict[str, Any]) -> bool:
    return "properties" in value and ("type" in value or "required" in value)


def _arguments(value: Any) -> tuple[dict[str, Any], str | None] | None:
    """Normalise an arguments value: a dict, a JSON string of one, or raw text for validation."""
    if value is None:
        return {}, None
    if isinstance(value, dict):
        return (None if _is_schema(value) else (value, None))
    if isinstance(value, str):
        if not value.strip():
            return {}, None
        decoded = _load(value)
        if isinstance(decoded, dict) and (decoded or value.strip().startswith("{")):
            return decoded, None
        return {}, value
    return {}, json.dumps(value)


def _call_from_obj(obj: dict[str, Any], names: _Names, flat_ok: bool) -> list[_Call] | None:
    for wrapper in _WRAPPER_KEYS:
        inner = obj.get(wrapper)
        if isinstance(inner, list | dict) and len(obj) <= 2:
            return _calls_from_json(inner, names, strong=True, flat_ok=flat_ok)
    function = obj.get("function")
    if isinstance(function, dict):  # OpenAI shape: {"type": "function", "function": {...}}
        return _call_from_obj(function, names, flat_ok)
    name_key = next((k for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
    if name_key is None:
        return None
    name = names.resolve(obj[name_key])
    if name is None:
        return None
    arg_key = next((k for k in _ARG_KEYS if k in obj), None)
    rest = set(obj) - {name_key, arg_key} - _META_KEYS
    if rest & _DEFINITION_KEYS:
        return None
    if arg_key is not None:
        parsed = _arguments(obj[arg_key])
    elif not rest:
        parsed = ({}, None)
    elif flat_ok:
        parsed = ({k: v for k, v in obj.items() if k in rest}, None)
    else:
        return None
    return None if parsed is None else [(name, *parsed)]


def _calls_from_json(value: Any, names: _Names, *, strong: bool, flat_ok: bool) -> list[_Call] | None:
    """Calls in a parsed JSON value. Outside call syntax a list must be calls throughout."""
    if isinstance(value, dict):
        return _call_from_obj(value, names, flat_ok)
    if not isinstance(value, list) or not value:
        return None
    found: list[_Call] = []
    for item in value:
        calls = _call_from_obj(item, names, flat_ok) if isinstance(item, dict) else None
        if calls is None and not strong:
            return None
        found.extend(calls or [])
    return found or None


def _balanced_end(text: str, start: int) -> int:
    """Index just past the bracket closing ``text[start]``, or len(text) when it never closes."""
    depth, i, n = 0, start, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            i += 1
            while i < n and text[i] != ch:
                i += 2 if text[i] == "\\" else 1
        elif ch == "/" and text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


# --------------------------------------------------------------------------- Python-call style


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id.lower() in _PY_CONSTANTS:
        return _PY_CONSTANTS[node.id.lower()]
    return ast.literal_eval(node)  # raises ValueError for anything that is not a literal


def _py_call(node: ast.expr, names: _Names, source: str) -> _Call | None:
    if isinstance(node, ast.Call) and _dotted(node.func) == "print" and len(node.args) == 1:
        node = node.args[0]  # Gemma's tool_code: print(default_api.read_file(path=...))
    if not isinstance(node, ast.Call) or (dotted := _dotted(node.func)) is None:
        return None
    name = names.resolve(dotted)
    if name is None:
        return None
    try:
        kwargs = {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}
        positional = [_literal(arg) for arg in node.args]
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None  # read_file(path) explains a signature; it is not a call
    if len(kwargs) != len(node.keywords):
        return None
    if positional:  # parameter names are unknown here: let schema validation report it
        return name, {}, ast.get_source_segment(source, node) or json.dumps(positional)
    return name, kwargs, None


def _py_calls(source: str, names: _Names, mode: str) -> list[_Call] | None:
    """Calls when ``source`` is nothing but calls (or a list of them) to known tools."""
    try:
        tree = ast.parse(source, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if isinstance(tree, ast.Expression):
        exprs = tree.body.elts if isinstance(tree.body, ast.List) else [tree.body]
    else:
        if not all(isinstance(stmt, ast.Expr) for stmt in tree.body):
            return None
        exprs = [stmt.value for stmt in tree.body if isinstance(stmt, ast.Expr)]
    calls = [_py_call(expr, names, source) for expr in exprs]
    return [c for c in calls if c is not None] if calls and None not in calls else None


_PY_LINE = re.compile(r"^[ \t]*(?:[-*>][ \t]+)?`*[ \t]*(\[?[ \t]*(?:print\()?[A-Za-z_][\w.]*[ \t]*\()", re.M)


def _py_call_at(text: str, start: int, names: _Names) -> tuple[list[_Call], int] | None:
    """A Python-style call (or list of calls) starting at ``start`` and ending its line."""
    for attempt, match in enumerate(re.finditer(r"[)\]]", text[start : start + 20_000])):
        if attempt > 64:
            break
        end = start + match.end()
        calls = _py_calls(text[start:end], names, "eval")
        if calls:
            tail = re.match(r"[ \t`;]*(?:\n|\Z)", text[end:])
            return (calls, end + len(tail.group(0).rstrip("\n"))) if tail else None
    return None


# --------------------------------------------------------------------------- scanning the text


@dataclass
class _Scan:
    text: str
    names: _Names
    spans: list[tuple[int, int, list[_Call]]]

    def free(self, start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b, _ in self.spans)

    def add(self, start: int, end: int, calls: list[_Call] | None) -> bool:
        if calls and self.free(start, end):
            self.spans.append((start, end, calls))
            return True
        return False

    def whole(self, start: int, end: int) -> bool:
        """Whether [start, end) is all the answer holds, apart from whitespace."""
        return not (self.text[:start].strip() or self.text[end:].strip())

    def payload(self, body: str) -> list[_Call] | None:
        """Calls in the content of unambiguous call syntax (a tag, a marker)."""
        body = body.strip()
        if "<function=" in body or "<function/" in body:
            return [c for _, _, cs in _function_tags(body, self.names) for c in cs] or None
        if body[:1] in "{[":
            found = _calls_from_json(_load(body), self.names, strong=True, flat_ok=True)
            if found:
                return found
        return _py_calls(body, self.names, "exec") if body else None

    def parse_at(self, pos: int) -> tuple[list[_Call], int] | None:
        """Calls starting at ``pos`` after a marker with no closing tag: JSON, Python, Mistral v3."""
        text = self.text
        pos += len(text[pos:]) - len(text[pos:].lstrip())
        if text[pos : pos + 1] in ("{", "["):
            end = _balanced_end(text, pos)
            found = _calls_from_json(_load(text[pos:end]), self.names, strong=True, flat_ok=True)
            if found:
                return found, end
        mistral = re.match(r"([\w.-]+)(?:\[CALL_ID\]\w+)?\[ARGS\]\s*", text[pos:])
        if mistral and (name := self.names.resolve(mistral.group(1))):
            args_at = pos + mistral.end()
            end = _balanced_end(text, args_at) if text[args_at : args_at + 1] == "{" else args_at
            parsed = _arguments(text[args_at:end]) or ({}, text[args_at:end])
            return [(name, *parsed)], end
        return _py_call_at(text, pos, self.names)


_DS_CALL = re.compile(r"<[｜|]tool[▁_]call[▁_]begin[｜|]>(.*?)(?:<[｜|]tool[▁_]call[▁_]end[｜|]>|\Z)", re.S)
_DS_SEP = re.compile(r"<[｜|]tool[▁_]sep[｜|]>")
_DS_OUTER = re.compile(r"<[｜|]tool[▁_]calls[▁_](?:begin|end)[｜|]>")
_TAG = re.compile(
    r"<(\|?)(tool_calls?|tools|function_calls?|functioncall)\|?>(.*?)(?:<\|?/\2\|?>|(?=<\|?(?:tool_calls?|function_calls?)\|?>)|\Z)",
    re.S | re.I,
)
_FUNCTION = re.compile(r"<function[=/]([\w.-]+)>(.*?)(?:</function>|(?=<function[=/])|\Z)", re.S)
_PARAM = re.compile(r"<parameter=([\w.-]+)>\n?(.*?)\n?</parameter>", re.S)
_MARKER = re.compile(r"\[TOOL_CALLS\]|<\|python_tag\|>")
_END_TOKENS = re.compile(r"[ \t]*(?:<\|eom_id\|>|<\|eot_id\|>|</s>|\[/TOOL_CALLS\])")
_REACT = re.compile(r"^[ \t]*Action:[ \t]*`?([\w.-]+)`?[ \t]*\n[ \t]*Action[ _]Input:[ \t]*", re.M | re.I)
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.S | re.M)


def _function_tags(text: str, names: _Names) -> Iterator[tuple[int, int, list[_Call]]]:
    for m in _FUNCTION.finditer(text):
        name, body = names.resolve(m.group(1)), m.group(2)
        if name is None:
            continue
        params = _PARAM.findall(body)
        if params:  # Qwen3-Coder: values are raw text, JSON only where it parses
            args = {k: _load(v) if v.strip()[:1] in "{[" else v for k, v in params}
            yield m.start(), m.end(), [(name, args, None)]
        elif (parsed := _arguments(body)) is not None:
            yield m.start(), m.end(), [(name, *parsed)]


def _scan_markup(scan: _Scan) -> None:
    """Stages 1-5: syntax that says "this is a call" by itself."""
    text, names = scan.text, scan.names
    if "tool" in text and ("▁" in text or "_call_begin" in text):
        for m in _DS_CALL.finditer(text):
            parts = _DS_SEP.split(m.group(1), maxsplit=1)
            if len(parts) != 2:
                continue
            head, tail = parts[0].strip(), parts[1].strip()
            if head in ("", "function"):  # V3: function<sep>name\n```json\n{...}\n```
                head, _, tail = tail.partition("\n")
            args_text = re.sub(r"^```\w*\s*|\s*```$", "", tail.strip())
            name, parsed = names.resolve(head.strip()), _arguments(args_text)
            if name and parsed is not None:
                scan.add(m.start(), m.end(), [(name, *parsed)])
    for m in _TAG.finditer(text):
        scan.add(m.start(), m.end(), scan.payload(m.group(3)))
    for start, end, calls in _function_tags(text, names):
        scan.add(start, end, calls)
    for m in _MARKER.finditer(text):
        if scan.free(m.start(), m.end()) and (found := scan.parse_at(m.end())):
            calls, end = found
            end = end + (e.end() if (e := _END_TOKENS.match(text, end)) else 0) - (end if e else 0)
            scan.add(m.start(), end, calls)
    for m in _REACT.finditer(text):
        name = names.resolve(m.group(1))
        if not name or not scan.free(m.start(), m.end()):
            continue
        start = m.end()
        end = _balanced_end(text, start) if text[start : start + 1] == "{" else text.find("\n", start)
        end = len(text) if end < 0 else end
        parsed = _arguments(text[start:end]) or ({}, text[start:end])
        observation = re.match(r"\s*Observation:[ \t]*(?=\n|\Z)", text[end:])
        scan.add(m.start(), end + (observation.end() if observation else 0), [(name, *parsed)])


def _scan_code(scan: _Scan) -> None:
    """Stages 6-8: fences, bare JSON and Python-style lines, where prose is all around."""
    text, names = scan.text, scan.names
    if "```" in text:
        for m in _FENCE.finditer(text):
            label, body = m.group(1).lower(), m.group(2)
            strong = label in _STRONG_LABELS
            found = None
            if body.strip()[:1] in ("{", "["):
                flat = strong or scan.whole(m.start(), m.end())
                found = _calls_from_json(_load(body), names, strong=strong, flat_ok=flat)
            if not found and label in ("", "python", "py", "tool_code", "tool_call"):
                found = _py_calls(body.strip(), names, "exec")
            if not scan.add(m.start(), m.end(), found) and scan.free(m.start(), m.end()):
                scan.spans.append((m.start(), m.end(), []))  # code the model wrote: leave it be
    for m in re.finditer(r"\{|\[(?=\s*\{)", text):
        start = m.start()
        if not scan.free(start, start + 1):
            continue
        end = _balanced_end(text, start)
        value = _load(text[start:end])
        found = _calls_from_json(value, names, strong=False, flat_ok=scan.whole(start, end))
        if not scan.add(start, end, found) and value is not None and scan.free(start, end):
            scan.spans.append((start, end, []))  # JSON data: do not look inside it again
    if "(" in text:
        for m in _PY_LINE.finditer(text):
            start = m.start(1)
            if scan.free(start, start + 1) and (hit := _py_call_at(text, start, names)):
                scan.add(m.start(), hit[1], hit[0])


def recover_tool_calls(text: str, tool_names: Collection[str]) -> RecoveredCalls:
    """Find tool calls written as text in a model answer.

    Args:
        text: The visible answer (thinking already stripped).
        tool_names: The tools offered to the model; nothing else is ever recovered.

    Returns:
        The calls in order of appearance, each with a fresh ``call_<hex>`` id, and the text
        without the call syntax. When no call is found the text is returned unchanged.
    """
    if not tool_names or not any(ch in text for ch in "{[<(`"):
        return RecoveredCalls([], text)  # fast path: ordinary prose cannot hold a call
    scan = _Scan(text, _names(frozenset(tool_names)), [])
    _scan_markup(scan)
    _scan_code(scan)
    found = sorted((s for s in scan.spans if s[2]), key=lambda s: s[0])
    if not found:
        return RecoveredCalls([], text)
    calls = [
        ToolCall(id=f"call_{secrets.token_hex(8)}", name=name, arguments=args, raw_arguments=raw)
        for _, _, span_calls in found
        for name, args, raw in span_calls
    ]
    pieces, last = [], 0
    for start, end, _ in found:
        pieces.append(text[last:start])
        last = end
    pieces.append(text[last:])
    visible = _DS_OUTER.sub("", "".join(pieces))
    visible = re.sub(r"[ \t]+\n", "\n", visible)
    return RecoveredCalls(calls, re.sub(r"\n{3,}", "\n\n", visible).strip())


# --------------------------------------------------------------------------- narration

_INTENT = re.compile(
    r"\b(?:i['’]ll|i will|i['’]m going to|i am going to|i['’]m gonna|let me|let['’]s|i need to|i must|"
    r"i should|i['’]m about to|i am about to|i shall|we['’]ll|we will|i would like to|i['’]d like to|"
    r"i['’]ll now|i will now|now i['’]ll|next,? i['’]ll|first,? i['’]ll)\b"
    r"|^\s*(?:calling|using|invoking|running|executing|now calling|next,? calling)\b",
    re.I,
)
_NOT_INTENT = re.compile(r"\b(?:you can|you could|you should|i used|i called|i ran|i['’]ve|i have|won['’]t|will not|don['’]t|do not|cannot|can['’]t|instead of)\b", re.I)


def looks_like_narrated_call(text: str, tool_names: Collection[str]) -> bool:
    """True when the answer announces a call to a known tool but contains no call.

    Rule-based on purpose: a sentence that names a tool (as ``read_file``, ``read-file`` or
    ``readFile``) after an intent phrase ("I'll", "let me", "Calling …") and is neither a
    question nor past/hypothetical ("I used", "you can use", "I won't").
    """
    if not tool_names:
        return False
    mentions = _mention_pattern(frozenset(tool_names))
    if not mentions.search(text):
        return False
    if recover_tool_calls(text, tool_names).calls:
        return False
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
        mention = mentions.search(sentence)
        if mention is None or sentence.rstrip().endswith("?"):
            continue
        before = sentence[: mention.start()]
        if _INTENT.search(before) and not _NOT_INTENT.search(before):
            return True
    return False


@lru_cache(maxsize=32)
def _mention_pattern(tool_names: frozenset[str]) -> re.Pattern[str]:
    """A tool name as written in prose: any case, with ``_``, ``-`` or nothing between its words.

    A space is not allowed between words: "read file" is ordinary English.
    """
    words = [re.split(r"[-_.\s]+", name.strip()) for name in tool_names]
    parts = sorted(("[-_]?".join(re.escape(w) for w in ws if w) for ws in words), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(p for p in parts if p) + r")(?![\w-])", re.I)

