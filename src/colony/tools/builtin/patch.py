"""patch_file: apply a unified diff to one workspace file, all hunks or none.

Models write diffs imperfectly: wrong hunk counts, shifted line numbers, blank context lines
whose leading space was stripped, ``a/``/``b/`` prefixes, no ``---``/``+++`` headers at all, a
forgotten ``\\ No newline at end of file`` marker, a Markdown fence around the whole thing. So
the diff is first read leniently into hunks here (lengths are recounted from the body like
``git apply --recount``; a hunk whose context moved is found at the nearest offset like GNU
patch does), then a normalised diff is parsed and applied by whatthepatch, which checks every
context and removed line. Whatever does not apply exactly becomes a `ToolError` naming the hunk
and the line that disagreed, and the file is left untouched.

whatthepatch splits its input with ``str.splitlines`` and spots headers by regex, so content is
escaped at that boundary: characters splitlines treats as line breaks (form feed, U+2028, …)
become private-use placeholders, and every content line gets a sentinel prefix so that, say, a
removed SQL comment (``--- x``) is never taken for a file header.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import whatthepatch
from pydantic import BaseModel, ConfigDict, Field
from whatthepatch.exceptions import HunkApplyException, WhatThePatchException

from colony.errors import PostconditionError, ToolError
from colony.tools.backends import current_backends
from colony.tools.builtin.files import atomic_write_bytes
from colony.tools.registry import ToolContext, tool

__all__ = ["PatchFileArgs", "PatchResult", "apply_unified_diff", "patch_file"]

_NAME = "patch_file"
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_BARE_HUNK = re.compile(r"^@@(?:\s*@@)?\s*$")
_DIGEST = re.compile(r"sha256 ([0-9a-f]{16})")
# str.splitlines breaks on these; whatthepatch must never see them inside a line.
_LINE_BREAKS = "\x0b\x0c\r\x1c\x1d\x1e\x85\u2028\u2029"
_ESCAPE = {ord(c): chr(0xF0000 + ord(c)) for c in _LINE_BREAKS}
_UNESCAPE = {ord(v): k for k, v in _ESCAPE.items()}
_SENTINEL = "\U000f0000"
_PRIVATE = re.compile("[\U000f0000-\U000f2fff]")


class PatchFileArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="File to patch, relative to the workspace root.", min_length=1, max_length=4096)
    diff: str = Field(
        description=(
            "A unified diff for this one file: optional ---/+++ header lines, then hunks that start "
            "with '@@ -start,count +start,count @@' followed by lines beginning with ' ' (unchanged "
            "context), '-' (removed) or '+' (added). Include 2-3 context lines around each change."
        ),
        min_length=1,
        max_length=2_000_000,
    )


@dataclass(frozen=True)
class PatchResult:
    """The patched text and what happened, for the message the model reads."""

    text: str
    hunks: int
    added: int
    removed: int
    notes: list[str]


@dataclass
class _Hunk:
    number: int
    header: str
    old_start: int | None
    old_count: int | None = None
    new_count: int | None = None
    body: list[tuple[str, str]] = field(default_factory=list)
    synthetic: set[int] = field(default_factory=set)  # blank lines read as empty context
    old_no_eol: bool = False
    new_no_eol: bool = False

    def old(self) -> list[str]:
        return [text for kind, text in self.body if kind in " -"]

    def new(self) -> list[str]:
        return [text for kind, text in self.body if kind in " +"]

    def counts_match(self) -> bool:
        return (self.old_count, self.new_count) == (len(self.old()), len(self.new()))

    def complete(self) -> bool:
        if self.old_count is None or self.new_count is None:
            return False
        return len(self.old()) >= self.old_count and len(self.new()) >= self.new_count

    def finish(self) -> None:
        """Drop trailing blank lines that were probably just the end of the diff text."""
        while self.body and len(self.body) - 1 in self.synthetic and not self.counts_match():
            self.synthetic.discard(len(self.body) - 1)
            self.body.pop()


@dataclass
class _Diff:
    old_path: str | None = None
    new_path: str | None = None
    hunks: list[_Hunk] = field(default_factory=list)


def _fail(message: str) -> ToolError:
    return ToolError(_NAME, message)


def _show(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _header_path(raw: str, prefix: str) -> str:
    path = raw.split("\t", 1)[0].strip().strip('"')
    return path[len(prefix) :] if path.startswith(prefix) else path


def _parse(lines: list[str]) -> _Diff:
    diff = _Diff()
    current: _Hunk | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        is_git = line.startswith("diff --git ")
        if is_git or (line.startswith("--- ") and nxt.startswith("+++ ") and (current is None or current.complete())):
            if diff.hunks:
                raise _fail("The diff changes more than one file; patch_file takes one file per call, so split it.")
            if is_git:
                parts = line[len("diff --git ") :].split(" b/", 1)
                diff.old_path = _header_path(parts[0], "a/")
                diff.new_path = _header_path(parts[1], "") if len(parts) == 2 else diff.old_path
                i += 1
            else:
                diff.old_path, diff.new_path = _header_path(line[4:], "a/"), _header_path(nxt[4:], "b/")
                i += 2
            continue
        if line.startswith("@@"):
            if current is not None:
                current.finish()
            match = _HUNK.match(line)
            number = len(diff.hunks) + 1
            if match:
                old_start, old_count, _, new_count = match.groups()
                current = _Hunk(number, line, int(old_start), int(old_count or 1), int(new_count or 1))
            elif _BARE_HUNK.match(line):
                current = _Hunk(number, line, None)
            else:
                raise _fail(
                    f"Hunk header {_show(line)} is malformed; it must look like '@@ -12,4 +12,5 @@' "
                    "(old start,count and new start,count)."
                )
            diff.hunks.append(current)
        elif current is None:
            if line.startswith(("Binary files ", "GIT binary patch")):
                raise _fail("This is a binary diff; patch_file only patches text files.")
            # Anything before the first hunk (commit message, index line, a ``` fence) is ignored.
        elif line.startswith("```"):
            current.finish()
            current = None
        elif line[:1] in (" ", "+", "-"):
            current.body.append((line[0], line[1:]))
        elif line.startswith("\\"):
            if current.body:
                kind = current.body[-1][0]
                current.old_no_eol |= kind in " -"
                current.new_no_eol |= kind in " +"
        elif line == "":
            current.synthetic.add(len(current.body))
            current.body.append((" ", ""))
        elif current.complete():
            current.finish()
            current = None  # trailing prose after a complete hunk
        else:
            raise _fail(
                f"Hunk #{current.number}: line {_show(line)} does not start with ' ', '+' or '-'. "
                "Every line of a hunk body needs one of these; an unchanged line keeps a leading space."
            )
        i += 1
    if current is not None:
        current.finish()
    return diff


def _same_file(header: str, targets: list[str]) -> bool:
    parts = [p for p in PurePosixPath(header).parts if p not in ("/", ".")]
    for target in targets:
        mine = list(PurePosixPath(target).parts)
        if parts and mine and (parts[-len(mine) :] == mine or mine[-len(parts) :] == parts):
            return True
    return False


def _mismatch(hunk: _Hunk, old: list[str], lines: list[str], expected: int | None, floor: int) -> str:
    reason = f"its unchanged and removed lines (starting {_show(old[0])}) do not appear in the file"
    if expected is not None and expected >= len(lines):
        reason = f"it starts at line {expected + 1}, but the file has only {len(lines)} lines"
    elif expected is not None and expected >= 0:
        for k, want in enumerate(old):
            at = expected + k
            if at >= len(lines):
                reason = f"it expects line {at + 1} to be {_show(want)}, but the file has only {len(lines)} lines"
                break
            if lines[at] != want:
                reason = f"line {at + 1} should be {_show(want)} but the file has {_show(lines[at])}"
                if lines[at].split() == want.split():
                    reason += " (they differ only in whitespace)"
                break
        else:
            if expected < floor:
                reason = "it overlaps the previous hunk; hunks must be in file order and must not overlap"
    return (
        f"Hunk #{hunk.number} ({hunk.header.strip()}) does not apply: {reason}. The file was not changed; "
        "read_file the current content and make the diff against it."
    )


def _locate(hunks: list[_Hunk], lines: list[str]) -> list[int]:
    """Where each hunk's old side starts (0-based; for pure insertions, the line it goes after)."""
    placed: list[int] = []
    floor = offset = 0
    for hunk in hunks:
        old = hunk.old()
        if not hunk.body:
            raise _fail(f"Hunk #{hunk.number} ({hunk.header.strip()}) has no lines.")
        if not old:
            if hunk.old_start is None:
                if lines:
                    raise _fail(
                        f"Hunk #{hunk.number} has neither line numbers nor unchanged context lines, so there is "
                        "no telling where it goes; add a '@@ -start,0 +start,count @@' header or context lines."
                    )
                at = 0
            else:
                at = hunk.old_start + offset
                if not floor <= at <= len(lines):
                    raise _fail(
                        f"Hunk #{hunk.number} ({hunk.header.strip()}) inserts after line {hunk.old_start}, but the "
                        f"file has {len(lines)} lines; fix the line number or add context lines."
                    )
        else:
            first, size = old[0], len(old)
            found = [
                i for i in range(floor, len(lines) - size + 1) if lines[i] == first and lines[i : i + size] == old
            ]
            expected = None if hunk.old_start is None else max(hunk.old_start, 1) - 1 + offset
            if not found:
                raise _fail(_mismatch(hunk, old, lines, expected, floor))
            if expected is None:
                if len(found) > 1:
                    where = ", ".join(str(i + 1) for i in found[:5])
                    raise _fail(
                        f"Hunk #{hunk.number} matches the file at lines {where}; add line numbers to its "
                        "@@ header or more context lines so it matches only once."
                    )
                at = found[0]
            else:
                at = min(found, key=lambda i: (abs(i - expected), i))
                offset = at - (max(hunk.old_start or 0, 1) - 1)
            floor = at + size
        if not old:
            floor = at
        placed.append(at)
    return placed


def apply_unified_diff(content: str, diff_text: str) -> PatchResult:
    """Apply ``diff_text`` to ``content``; return the new content and notes on relocated hunks.

    Raises `ToolError` for anything that does not apply exactly; never anything else.
    """
    if "\x00" in diff_text:
        raise _fail("The diff contains NUL bytes; patch_file only patches text files.")
    if _PRIVATE.search(content) or _PRIVATE.search(diff_text):
        raise _fail("The file or diff contains private-use characters patch_file cannot process; use write_file.")
    newline = "\r\n" if "\r\n" in content[: content.find("\n") + 1] else "\n"
    lines = content.split(newline)
    had_eol = lines[-1] == ""
    if had_eol:
        lines.pop()
    raw = diff_text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    if newline == "\r\n" or (raw and all(r.endswith("\r") for r in raw if r)):
        raw = [r[:-1] if r.endswith("\r") else r for r in raw]
    parsed = _parse(raw)
    if not parsed.hunks:
        raise _fail(
            "No hunks found in the diff. patch_file needs a unified diff: '@@ -start,count +start,count @@' "
            "hunk headers, each followed by lines starting with ' ' (unchanged), '-' (removed) or '+' (added)."
        )
    placed = _locate(parsed.hunks, lines)

    normalised: list[str] = []
    notes: list[str] = []
    delta = 0
    for hunk, at in zip(parsed.hunks, placed, strict=True):
        old_n, new_n = len(hunk.old()), len(hunk.new())
        old_start = at + 1 if old_n else at
        normalised.append(f"@@ -{old_start},{old_n} +{old_start + delta + (0 if old_n else 1)},{new_n} @@")
        normalised.extend(kind + _SENTINEL + text.translate(_ESCAPE) for kind, text in hunk.body)
        delta += new_n - old_n
        if hunk.old_start is not None and old_n and old_start != max(hunk.old_start, 1):
            notes.append(f"hunk #{hunk.number} applied at line {old_start} (offset {old_start - hunk.old_start:+d})")
    escaped = [_SENTINEL + line.translate(_ESCAPE) for line in lines]
    try:
        diffs = list(whatthepatch.parse_patch(normalised))
        if len(diffs) != 1 or not diffs[0].changes:
            raise _fail("The diff could not be parsed into hunks; check its @@ headers and line prefixes.")
        result = whatthepatch.apply_diff(diffs[0], escaped)
    except HunkApplyException as exc:
        number = (exc.hunk or 0) + 1
        raise _fail(f"Hunk #{number} does not apply: {exc}. The file was not changed.") from exc
    except (WhatThePatchException, ValueError, IndexError) as exc:
        raise _fail(f"The diff could not be applied ({exc}); the file was not changed.") from exc
    if any(not line.startswith(_SENTINEL) for line in result):
        raise _fail("The diff produced an inconsistent result; the file was not changed. Regenerate the diff.")
    new_lines = [line[1:].translate(_UNESCAPE) for line in result]
    if any(h.new_no_eol for h in parsed.hunks):
        eol = False
    elif any(h.old_no_eol for h in parsed.hunks):
        eol = True
    else:
        eol = had_eol
    text = newline.join(new_lines) + (newline if eol and new_lines else "")
    bodies = [kind for h in parsed.hunks for kind, _ in h.body]
    return PatchResult(text, len(parsed.hunks), bodies.count("+"), bodies.count("-"), notes)


#: Marks a result written through the editor, so the postcondition reads it back the same way.
_VIA_EDITOR = "(through the editor) "


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes from a file that is not UTF-8
        return False
    return True


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


async def _verify_patch(ctx: ToolContext, args: PatchFileArgs, result: str) -> None:
    """Re-read the patched file and compare its checksum with the one computed before writing."""
    match = _DIGEST.search(result)
    if match is None:
        raise PostconditionError(_NAME, "The patch result carries no checksum, so the write cannot be verified.")
    path = ctx.workspace.resolve(args.path, tool=_NAME)
    editor = current_backends().files
    try:
        if editor is not None and result.startswith(_VIA_EDITOR):
            actual = _digest((await editor.read_text(path)).encode("utf-8"))
        else:
            actual = _digest(await asyncio.to_thread(path.read_bytes))
    except OSError as exc:
        raise PostconditionError(_NAME, f"{args.path} cannot be read back after patching: {exc}") from exc
    if actual != match.group(1):
        raise PostconditionError(
            _NAME, f"{args.path} reads back differently from the patched content; read_file it and try again."
        )


def _read_target(path: Path, shown: str, parsed_creates: bool) -> str:
    if not path.exists():
        if parsed_creates:
            return ""
        raise _fail(f"File {shown} does not exist; use write_file to create it (list_dir shows what is there).")
    if not path.is_file():
        raise _fail(f"{shown} is not a regular file; patch_file only patches text files.")
    data = path.read_bytes()
    if b"\x00" in data[:1024]:
        raise _fail(f"{shown} looks like a binary file (it contains NUL bytes); patch_file only patches text.")
    # surrogateescape keeps bytes that are not UTF-8 exactly as they were on the lines the diff does not touch.
    return data.decode("utf-8", errors="surrogateescape")


@tool(effect="write", postcondition=_verify_patch)
async def patch_file(ctx: ToolContext, args: PatchFileArgs) -> str:
    """Apply a unified diff to one text file in the workspace; all hunks apply or none do.

    Prefer this to write_file for small edits to a large file. On failure the error names the hunk
    and the line that did not match.
    """
    path = ctx.workspace.resolve(args.path, tool=_NAME)
    shown = ctx.workspace.relative(path)
    probe = _parse([line.rstrip("\r") for line in args.diff.split("\n")])
    if probe.new_path == "/dev/null":
        raise _fail("The diff deletes the file; patch_file only edits files.")
    for header in (probe.old_path, probe.new_path):
        if header and header != "/dev/null" and not _same_file(header, [args.path, shown]):
            raise _fail(f"The diff is for {header}, not {args.path}; pass path={header!r} or a diff for {args.path}.")
    creates = bool(probe.hunks) and all(not h.old() for h in probe.hunks)
    content = await asyncio.to_thread(_read_target, path, shown, creates)
    # An editor (ACP) sees its unsaved buffer and shows the change; only valid UTF-8 can travel to it.
    editor = current_backends().files
    if editor is not None and path.exists() and _is_utf8(content):
        content = await editor.read_text(path)
    outcome = apply_unified_diff(content, args.diff)
    data = outcome.text.encode("utf-8", errors="surrogateescape")
    via_editor = editor is not None and _is_utf8(outcome.text)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if editor is not None and via_editor:
            await editor.write_text(path, outcome.text)
        else:
            await asyncio.to_thread(atomic_write_bytes, path, data)
    except OSError as exc:
        raise _fail(f"Cannot write {shown}: {exc.strerror or exc}") from exc
    extra = f"; {'; '.join(outcome.notes)}" if outcome.notes else ""
    return (
        f"{_VIA_EDITOR if via_editor else ''}Patched {shown}: {outcome.hunks} hunk(s) applied, +{outcome.added} -{outcome.removed} lines{extra}. "
        f"Now {len(data)} bytes (sha256 {_digest(data)})."
    )
