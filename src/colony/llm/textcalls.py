"""Recover tool calls that a model wrote as text instead of sending them natively.

Small local models (Qwen, Llama 3.x, Mistral, Phi, Gemma, DeepSeek distills) often print their
chat template's call syntax, or a JSON object of their own invention, into the answer text; the
server then passes it on as content. `recover_tool_calls` turns that text back into `ToolCall`s
and returns the remaining prose. Recognised, in the order they claim text:

1. DeepSeek ``<｜tool▁call▁begin｜>…<｜tool▁call▁end｜>`` markers;
2. ``<tool_call>`` (Qwen/Hermes), ``<tools>`` (Qwen2.5-Coder), ``<|tool_call|>`` (Phi-4) tags;
3. ``<function=name>{…}</function>`` (Llama 3.x) and ``<parameter=k>v</parameter>`` (Qwen3-Coder);
4. ``[TOOL_CALLS]`` (Mistral: a JSON list, or ``name[ARGS]{…}``), ``<|python_tag|>`` (Llama),
   ``functools[…]`` (Phi-4-mini);
5. ReAct ``Action: name`` / ``Action Input: {…}``, and a line holding only a tool name followed
   by a JSON object (GLM-4; Functionary's ``>>>name``);
6. fenced blocks: JSON, or nothing but Python-style calls (Gemma's ``tool_code``);
7. bare JSON objects, or lists of them;
8. a line that is only a Python-style call, ``read_file(path="a.txt")`` or ``[a(), b()]``.

JSON is repaired with ``json_repair`` (trailing commas, single quotes, bare keys, Python literals,
comments, missing closing braces). A JSON object is a call only when a name key holds an offered
tool's name; its other keys must be arguments or harmless metadata, and a JSON schema among them
marks a tool *definition*. Flattened arguments (``{"tool": "list_dir", "path": "src"}``) count
only inside call syntax or when the object is the whole answer, so ``{"tool": "read_file",
"calls": 12}`` inside a sentence stays data. Strip thinking first (`colony.llm.thinking`): a call
sketched inside ``<think>`` is not a call.

`looks_like_narrated_call` spots answers that announce a call without making one, so the agent
loop can nudge the model instead of ending the turn.

Cost: prose with no bracket, or naming no offered tool, returns after a scan or two in C
(about a microsecond); otherwise every stage runs, in time linear in the text except for
``json_repair``, which only sees bracketed spans that contain both a tool name and a name-like
key. ``bench/bench_recovery.py`` measures both paths.

Imports `colony.llm.messages`, the standard library and ``json_repair`` only.
"""

from __future__ import annotations

import ast
import bisect
import difflib
import json
import re
import secrets
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
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


_Call = tuple[str, dict[str, Any], str | None]  # name, arguments, raw_arguments
_Span = tuple[int, int, list[_Call]]  # an empty call list marks text that holds no call

_NAME_KEYS = ("name", "tool", "tool_name", "function", "function_name", "action", "recipient_name")
_ARG_KEYS = ("arguments", "args", "parameters", "params", "input", "action_input", "tool_input", "kwargs")
_META_KEYS = frozenset({"id", "type", "call_id", "index", "thought", "thoughts", "reasoning", "reason"})
_DEFINITION_KEYS = frozenset({"description", "properties", "required", "returns", "strict"})
_WRAPPER_KEYS = ("tool_calls", "calls", "function_calls", "tool_uses", "function_call", "tool_call")
_CALL_FENCES = frozenset({"tool_call", "tool_calls", "tool_code", "function_call", "functioncall"})
_CODE_FENCES = _CALL_FENCES | {"", "python", "py"}
_NAMESPACES = ("functions.", "default_api.", "tools.", "tool.")
_RESULT_KEYS = frozenset(
    {"status", "result", "output", "error", "exit_code", "returncode", "stdout", "success"}
)
_JSON_START = re.compile(r"[{\[]")
_CALL_KEY = re.compile(r"(?:name|tool|function|action|calls?)\w*['\"]?\s*:", re.I)
_BRACKET = re.compile(r"[{}\[\]\"']|//")
_STRING_END = {q: re.compile(rf"(?:[^{q}\\]|\\.)*{q}", re.S) for q in "\"'"}
_SQUASH = str.maketrans("", "", "".join(c for c in map(chr, range(128)) if not c.isalnum()))
_CONSTANTS = {"true": True, "false": False, "null": None, "none": None}


def _key(name: str) -> str:
    """Normalise a tool name for matching: ``functions.Read-File`` -> ``readfile``."""
    lowered = name.strip().lower()
    for prefix in _NAMESPACES:
        lowered = lowered.removeprefix(prefix)
    lowered = lowered.removesuffix(".call")  # Llama 3.1 built-ins: brave_search.call(...)
    return re.sub(r"[^a-z0-9]", "", lowered)


class _Names:
    """Resolves what a model wrote to one offered tool name, or to nothing."""

    def __init__(self, names: frozenset[str]) -> None:
        self.exact = names
        by_key: dict[str, list[str]] = {}
        for name in names:
            by_key.setdefault(_key(name), []).append(name)
        self.by_key = {k: v[0] for k, v in by_key.items() if len(v) == 1 and k}
        # Every recoverable call spells a tool name somewhere, give or take case and separators:
        # that cheap test lets prose and JSON data skip parsing.
        self.keys = sorted({key for key in map(_key, names) if key})
        self.mention = re.compile("|".join("[-_ .]?".join(k) for k in self.keys) or "(?!)", re.I)

    def mentioned_in(self, text: str) -> bool:
        """The fast pre-check; str.translate keeps it near 5 µs per kilobyte of prose."""
        squashed = text.lower().translate(_SQUASH)
        return any(key in squashed for key in self.keys)

    @lru_cache(maxsize=1024)  # noqa: B019 - instances are few and cached themselves
    def resolve(self, written: str) -> str | None:
        if written in self.exact:
            return written
        key = _key(written)
        if not key or len(written) > 80:
            return None
        if key in self.by_key:
            return self.by_key[key]
        close = difflib.get_close_matches(key, list(self.by_key), n=2, cutoff=0.85)
        return self.by_key[close[0]] if len(close) == 1 else None  # unique typo: read_files


@lru_cache(maxsize=32)
def _names(tool_names: frozenset[str]) -> _Names:
    return _Names(tool_names)


# --------------------------------------------------------------------------- JSON shapes


def _load(text: str) -> Any:
    """Parse JSON, repairing it when strict parsing fails; None when no object or list results."""
    try:
        return json.loads(text, strict=False)  # strict=False: raw newlines inside strings
    except (ValueError, RecursionError):
        pass
    try:
        value = json_repair.loads(text)
    except Exception:  # a repair library must never take the agent loop down
        return None
    return value if isinstance(value, dict | list) else None


def _arguments(value: Any) -> tuple[dict[str, Any], str | None] | None:
    """Arguments as a dict; text that is no JSON object is kept raw for schema validation."""
    if value is None:
        return {}, None
    if isinstance(value, dict):  # a JSON schema here means a tool definition, not a call
        return None if "properties" in value and ("type" in value or "required" in value) else (value, None)
    if not isinstance(value, str):
        return {}, json.dumps(value)
    if not value.strip():
        return {}, None
    decoded = _load(value)
    if isinstance(decoded, dict) and (decoded or value.strip().startswith("{")):
        return decoded, None
    return {}, value


def _from_object(obj: dict[str, Any], names: _Names, flat_ok: bool) -> list[_Call] | None:
    for wrapper in _WRAPPER_KEYS:  # {"tool_calls": [...]}, {"function_call": {...}}
        if isinstance(obj.get(wrapper), list | dict) and len(obj) <= 2:
            return _from_json(obj[wrapper], names, strong=True, flat_ok=flat_ok)
    if isinstance(obj.get("function"), dict):  # OpenAI: {"type": "function", "function": {...}}
        return _from_object(obj["function"], names, flat_ok)
    name_key = next((k for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
    name = names.resolve(obj[name_key]) if name_key else None
    if name is None:
        return None
    arg_key = next((k for k in _ARG_KEYS if k in obj), None)
    rest = set(obj) - {name_key, arg_key} - _META_KEYS
    if rest & _DEFINITION_KEYS:
        return None
    if arg_key is not None:
        parsed = _arguments(obj[arg_key])
    elif not rest or (flat_ok and not rest & _RESULT_KEYS):  # a result echoed back is no call
        parsed = ({k: v for k, v in obj.items() if k in rest}, None)
    else:
        return None
    return None if parsed is None else [(name, *parsed)]


def _from_json(value: Any, names: _Names, *, strong: bool, flat_ok: bool) -> list[_Call] | None:
    """Calls in parsed JSON. Outside call syntax, a list must consist of calls only."""
    if isinstance(value, dict):
        return _from_object(value, names, flat_ok)
    if not isinstance(value, list):
        return None
    found: list[_Call] = []
    for item in value:
        calls = _from_object(item, names, flat_ok) if isinstance(item, dict) else None
        if calls is None and not strong:
            return None
        found.extend(calls or [])
    return found or None


def _bracket_ends(text: str, start: int, *, first_only: bool = False) -> dict[int, int]:
    """Map each opening bracket from ``start`` on to the index just past its closing one.

    One pass with a stack, so nested and repeated brackets cost O(n) in all. Quotes (either
    kind, as repaired JSON may use) and ``//`` comments count only inside brackets: outside,
    a quote is an apostrophe in prose. Brackets never closed map to len(text), since
    ``json_repair`` closes them.
    """
    ends: dict[int, int] = {}
    stack: list[int] = []
    n, i = len(text), start
    while (m := _BRACKET.search(text, i)) is not None:
        i, ch = m.start(), m.group()
        if not stack and ch not in "{[":
            pass
        elif ch in "\"'":
            string_end = _STRING_END[ch].match(text, i + 1)
            i = string_end.end() - 1 if string_end else n
        elif ch == "//":
            i = text.find("\n", i) % (n + 1)  # -1 (no newline) becomes n
        elif ch in "{[":
            stack.append(i)
        else:
            ends[stack.pop()] = i + 1
            if first_only and not stack:
                return ends
        i += 1
    ends.update(dict.fromkeys(stack, n))
    return ends


def _balanced_end(text: str, start: int) -> int:
    """Index just past the bracket that closes ``text[start]``; len(text) if it never closes."""
    return _bracket_ends(text, start, first_only=True).get(start, len(text))


def _json_values(text: str) -> Iterator[Any]:
    """Successive top-level JSON values: models put several objects in one tag."""
    pos = 0
    while (start := _JSON_START.search(text, pos)) is not None:
        pos = _balanced_end(text, start.start())
        yield _load(text[start.start() : pos])


# --------------------------------------------------------------------------- Python-call style


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := _dotted(node.value)) is not None:
        return f"{base}.{node.attr}"
    return None


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id.lower() in _CONSTANTS:  # JSON-minded: true, null
        return _CONSTANTS[node.id.lower()]
    return ast.literal_eval(node)  # raises ValueError for anything that is not a literal


def _py_call(node: ast.expr, names: _Names, source: str) -> _Call | None:
    if isinstance(node, ast.Call) and _dotted(node.func) == "print" and len(node.args) == 1:
        node = node.args[0]  # Gemma: print(default_api.read_file(path=...))
    if not isinstance(node, ast.Call) or (dotted := _dotted(node.func)) is None:
        return None
    name = names.resolve(dotted)
    if name is None or any(kw.arg is None for kw in node.keywords):
        return None
    try:
        kwargs = {str(kw.arg): _literal(kw.value) for kw in node.keywords}
        positional = [_literal(arg) for arg in node.args]
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return None  # read_file(path) describes a signature; it is not a call
    if len(positional) == 1 and not kwargs and isinstance(positional[0], dict):
        return name, positional[0], None  # read_file({"path": "a"})
    if positional:  # parameter names are unknown here: schema validation will report it
        return name, {}, ast.get_source_segment(source, node) or json.dumps(positional)
    return name, kwargs, None


def _py_calls(source: str, names: _Names, *, statements: bool) -> list[_Call] | None:
    """Calls when ``source`` is nothing but calls to offered tools (or one list of them)."""
    try:
        if statements:
            body = ast.parse(source, mode="exec").body
            if not all(isinstance(stmt, ast.Expr) for stmt in body):
                return None
            exprs = [stmt.value for stmt in body if isinstance(stmt, ast.Expr)]
        else:
            expr = ast.parse(source, mode="eval").body
            exprs = expr.elts if isinstance(expr, ast.List) else [expr]
        calls = [_py_call(e, names, source) for e in exprs]
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return [c for c in calls if c is not None] if calls and None not in calls else None


_PY_LINE = re.compile(
    r"^[ \t]*(?:[-*>][ \t]+)?`*[ \t]*(\[?[ \t]*(?:print\([ \t]*)?([A-Za-z_][\w.]*)[ \t]*\()", re.M
)
_LINE_REST = re.compile(r"[ \t`;]*(?=\n|\Z|<\|eo[mt]_id\|>|</s>)")


def _py_call_at(text: str, start: int, names: _Names) -> tuple[list[_Call], int] | None:
    """Python-style call(s) from ``start`` to the end of a line, whatever the line count."""
    for attempt, close in enumerate(re.finditer(r"[)\]]", text[start : start + 20_000])):
        end = start + close.end()
        if attempt > 64:
            break
        if (calls := _py_calls(text[start:end], names, statements=False)) is not None:
            rest = _LINE_REST.match(text, end)
            return (calls, rest.end()) if rest else None
    return None


# --------------------------------------------------------------------------- scanning the text


@dataclass
class _Scan:
    text: str
    names: _Names
    spans: list[_Span] = field(default_factory=list)  # sorted, never overlapping

    def free(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self.spans, (start,))
        before_ok = i == 0 or self.spans[i - 1][1] <= start
        return before_ok and (i == len(self.spans) or self.spans[i][0] >= end)

    def add(self, start: int, end: int, calls: list[_Call] | None, *, claim: bool = False) -> bool:
        """Record calls found in [start, end); ``claim`` marks it searched even without calls."""
        if (calls or claim) and self.free(start, end):
            bisect.insort(self.spans, (start, end, calls or []), key=lambda span: span[0])
            return bool(calls)
        return False

    def whole(self, start: int, end: int) -> bool:
        """Whether [start, end) is all the answer holds, apart from whitespace."""
        return not (self.text[:start].strip() or self.text[end:].strip())

    def payload(self, body: str) -> list[_Call] | None:
        """Calls inside unambiguous call syntax (a tag), where flattened arguments are fine."""
        body = body.strip()
        if "<function=" in body or "<function/" in body:
            return [c for _, _, cs in _function_tags(body, self.names) for c in cs] or None
        if body.startswith(("{", "[", "```")):
            body = re.sub(r"^```\w*\s*|\s*```$", "", body)
            values = (_from_json(v, self.names, strong=True, flat_ok=True) for v in _json_values(body))
            if found := [call for calls in values for call in calls or ()]:
                return found
        return _py_calls(body, self.names, statements=True) if body else None

    def parse_at(self, pos: int) -> tuple[list[_Call], int] | None:
        """Calls right after a marker that has no closing tag: JSON, Mistral v3 or Python."""
        text = self.text
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if text.startswith(("{", "["), pos):
            end = _balanced_end(text, pos)
            if found := _from_json(_load(text[pos:end]), self.names, strong=True, flat_ok=True):
                return found, end
        mistral = _MISTRAL_V3.match(text, pos)
        if mistral and (name := self.names.resolve(mistral.group(1))):
            at = mistral.end()
            end = _balanced_end(text, at) if text.startswith("{", at) else at
            return [(name, *(_arguments(text[at:end]) or ({}, text[at:end])))], end
        return _py_call_at(text, pos, self.names)


_DS_CALL = re.compile(r"<[｜|]tool[▁_]call[▁_]begin[｜|]>(.*?)(?:<[｜|]tool[▁_]call[▁_]end[｜|]>|\Z)", re.S)
_DS_SEP = re.compile(r"<[｜|]tool[▁_]sep[｜|]>")
_DS_OUTER = re.compile(r"<[｜|]tool[▁_]calls[▁_](?:begin|end)[｜|]>")
_TAG = re.compile(
    r"<\|?(tool_calls?|tools|function_calls?|functioncall)\|?>(.*?)"
    r"(?:<\|?/\1\|?>|(?=<\|?(?:tool_calls?|function_calls?)\|?>)|\Z)",
    re.S | re.I,
)
_FUNCTION = re.compile(r"<function[=/]([\w.-]+)>(.*?)(?:</function>|(?=<function[=/])|\Z)", re.S)
_PARAM = re.compile(r"<parameter=([\w.-]+)>\n?(.*?)\n?</parameter>", re.S)
_MARKER = re.compile(r"\[TOOL_CALLS\]|<\|python_tag\|>|functools(?=\[)")  # functools: Phi-4-mini
_MISTRAL_V3 = re.compile(r"([\w.-]+)(?:\[CALL_ID\]\w+)?\[ARGS\]\s*")
_END_TOKEN = re.compile(r"[ \t]*(?:<\|eom_id\|>|<\|eot_id\|>|</s>)")
_REACT = re.compile(r"^[ \t]*Action:[ \t]*`?([\w.-]+)`?[ \t]*\n[ \t]*Action[ _]Input:[ \t]*", re.M | re.I)
_NAME_LINE = re.compile(r"^[ \t]*(?:>>>[ \t]*)?([A-Za-z_][\w.-]*)[ \t]*\n[ \t]*(?=\{)", re.M)
_SPECIAL_TOKEN = re.compile(r"<\|[\w/]+\|>")
_OBSERVATION = re.compile(r"\s*Observation:[ \t]*(?=\n|\Z)")
_FENCE = re.compile(
    r"^[ \t]*(?:Action:[ \t]*)?```[ \t]*([\w-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.S | re.M
)


def _function_tags(text: str, names: _Names) -> Iterator[_Span]:
    for m in _FUNCTION.finditer(text):
        name, body = names.resolve(m.group(1)), m.group(2)
        if name is None:
            continue
        if params := _PARAM.findall(body):  # Qwen3-Coder: raw text values, JSON where it parses
            args = {k: _load(v) if v.strip().startswith(("{", "[")) else v for k, v in params}
            yield m.start(), m.end(), [(name, args, None)]
        elif (parsed := _arguments(body)) is not None:
            yield m.start(), m.end(), [(name, *parsed)]


def _deepseek(scan: _Scan) -> None:
    for m in _DS_CALL.finditer(scan.text):
        parts = _DS_SEP.split(m.group(1), maxsplit=1)
        if len(parts) != 2:
            continue
        head, tail = parts[0].strip(), parts[1].strip()
        if head in ("", "function"):  # V3: function<sep>name\n```json\n{...}\n```
            head, _, tail = tail.partition("\n")
        name = scan.names.resolve(head.strip())
        parsed = _arguments(re.sub(r"^```\w*\s*|\s*```$", "", tail.strip()))
        if name and parsed is not None:
            scan.add(m.start(), m.end(), [(name, *parsed)])


def _scan_markup(scan: _Scan) -> None:
    """Stages 1-5: syntax that says "this is a call" by itself."""
    text, names = scan.text, scan.names
    if "tool" in text and ("▁" in text or "_call_begin" in text):
        _deepseek(scan)
    if "<" in text:
        for m in _TAG.finditer(text):
            scan.add(m.start(), m.end(), scan.payload(m.group(2)))
        for start, end, calls in _function_tags(text, names):
            scan.add(start, end, calls)
    for m in _MARKER.finditer(text):
        if scan.free(m.start(), m.end()) and (found := scan.parse_at(m.end())):
            end = e.end() if (e := _END_TOKEN.match(text, found[1])) else found[1]
            scan.add(m.start(), end, found[0])
    for m in _REACT.finditer(text):
        if (name := names.resolve(m.group(1))) is None:
            continue
        at = m.end()
        end = _balanced_end(text, at) if text.startswith("{", at) else text.find("\n", at) % (len(text) + 1)
        parsed = _arguments(text[at:end]) or ({}, text[at:end])
        end = e.end() if (e := _OBSERVATION.match(text, end)) else end
        scan.add(m.start(), end, [(name, *parsed)])
    for m in _NAME_LINE.finditer(text):  # GLM-4 and Functionary v2 (">>>name"): name, then args
        if (name := names.resolve(m.group(1))) and scan.free(m.start(), m.end()):
            end = _balanced_end(text, m.end())
            if isinstance(args := _load(text[m.end() : end]), dict) and _arguments(args):
                scan.add(m.start(), end, [(name, args, None)])


def _scan_code(scan: _Scan) -> None:
    """Stages 6-8: fences, bare JSON and Python-style lines, which prose may surround."""
    text, names = scan.text, scan.names
    for m in _FENCE.finditer(text) if "```" in text else ():
        label, body = m.group(1).lower(), m.group(2).strip()
        found = None
        if body.startswith(("{", "[")):
            strong = label in _CALL_FENCES
            flat = strong or scan.whole(m.start(), m.end())
            found = _from_json(_load(body), names, strong=strong, flat_ok=flat)
        if not found and label in _CODE_FENCES:
            found = _py_calls(body, names, statements=True)
        scan.add(m.start(), m.end(), found, claim=True)  # calls, or code or data to leave be
    ends: dict[int, int] = {}
    mentions = [m.start() for m in names.mention.finditer(text)]
    for m in re.finditer(r"\{|\[(?=\s*\{)", text):
        start = m.start()
        if not scan.free(start, start + 1):
            continue
        if start not in ends:  # inside a string of an earlier scan, or not reached yet
            ends.update(_bracket_ends(text, start))
        end = ends[start]
        nearest = bisect.bisect_left(mentions, start)
        if nearest == len(mentions) or mentions[nearest] >= end:
            continue  # no tool name inside: cannot be a call
        if not _CALL_KEY.search(text, start, end):
            continue  # no name-like key (code, say): spare the slow repair
        value = _load(text[start:end])
        found = _from_json(value, names, strong=False, flat_ok=scan.whole(start, end))
        closed = text[end - 1] in "}]"
        if text[start - 1 : start] == "`" == text[end : end + 1]:  # `{"name": ...}` inline
            start, end = start - 1, end + 1
        scan.add(start, end, found, claim=value is not None and closed)  # data: not looked into again
    for m in _PY_LINE.finditer(text) if "(" in text else ():
        wanted = scan.free(m.start(1), m.end(1)) and names.resolve(m.group(2))
        if wanted and (hit := _py_call_at(text, m.start(1), names)):
            scan.add(m.start(), hit[1], hit[0])


def recover_tool_calls(text: str, tool_names: Collection[str]) -> RecoveredCalls:
    """Find tool calls written as text in a model answer.

    Args:
        text: The visible answer, thinking already stripped.
        tool_names: The tools offered to the model; no other name is ever recovered.

    Returns:
        The calls in order of appearance, each with a fresh ``call_<hex>`` id, and the text
        without the call syntax. When no call is found the text comes back unchanged.
    """
    if not tool_names or not any(ch in text for ch in "{[<(`"):
        return RecoveredCalls([], text)  # the common case: prose cannot hold a call
    names = _names(frozenset(tool_names))
    if not names.mentioned_in(text):
        return RecoveredCalls([], text)
    scan = _Scan(text, names)
    try:
        _scan_markup(scan)
        _scan_code(scan)
    except RecursionError:  # JSON nested a thousand deep: nothing sensible to recover
        return RecoveredCalls([], text)
    found = [span for span in scan.spans if span[2]]
    if not found:
        return RecoveredCalls([], text)
    calls = [
        ToolCall(id=f"call_{secrets.token_hex(8)}", name=name, arguments=args, raw_arguments=raw)
        for _, _, span_calls in found
        for name, args, raw in span_calls
    ]
    bounds = [0, *(i for start, end, _ in found for i in (start, end)), len(text)]
    visible = "".join(text[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2))
    visible = re.sub(r"[ \t]+\n", "\n", _SPECIAL_TOKEN.sub("", _DS_OUTER.sub("", visible)))
    return RecoveredCalls(calls, re.sub(r"\n{3,}", "\n\n", visible).strip())


from colony.llm.narration import looks_like_narrated_call  # noqa: E402  (re-exported: public API)
