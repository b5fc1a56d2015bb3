"""File tools: read, write, list and search text files inside the workspace.

Every path goes through `Workspace.resolve`, so ``..``, absolute paths elsewhere and symlinks
pointing out are refused before any byte is read. Blocking file work runs in a worker thread
so one large file never stalls the event loop that other tool calls share. Writes are atomic
(temporary file in the same directory, fsync, ``os.replace``): a crash or a concurrent reader
sees the old content or the new one, never half of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from colony.errors import PostconditionError, ToolError
from colony.tools.backends import current_backends
from colony.tools.output import truncate, truncation_marker
from colony.tools.registry import ToolContext, tool

__all__ = [
    "ListDirArgs",
    "ReadFileArgs",
    "SearchFilesArgs",
    "WriteFileArgs",
    "atomic_write_bytes",
    "is_binary",
    "list_dir",
    "read_file",
    "search_files",
    "write_file",
]

#: Bytes inspected for NUL when deciding whether a file is binary (what git and grep do, too).
BINARY_SNIFF_BYTES = 1024
#: search_files skips larger files: they are data, logs or bundles, not something to grep by line.
SEARCH_MAX_FILE_BYTES = 2 * 1024 * 1024
_SEARCH_LINE_CHARS = 300


def is_binary(path: Path) -> bool:
    """True when the first KB holds a NUL byte."""
    with path.open("rb") as fh:
        return b"\x00" in fh.read(BINARY_SNIFF_BYTES)


def _link_target(path: Path, root: Path) -> Path | None:
    """Where a symlink leads, or None when that is outside ``root``, looping or unresolvable."""
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: symlink loop on Python 3.11
        return None
    return target if target.is_relative_to(root) else None


def _existing_file(ctx: ToolContext, raw: str, tool_name: str) -> Path:
    """Resolve ``raw`` to a regular file or raise an error that says what to do instead."""
    path = ctx.workspace.resolve(raw, tool=tool_name)
    if not path.exists():
        raise ToolError(tool_name, f"File {raw} does not exist; list_dir shows what is there.")
    if path.is_dir():
        raise ToolError(tool_name, f"{raw} is a directory, not a file; use list_dir to see its entries.")
    if not stat.S_ISREG(path.stat().st_mode):
        raise ToolError(tool_name, f"{raw} is not a regular file (a device, socket or pipe); it cannot be read.")
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, keeping the permission bits of an existing file."""
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Make the rename itself durable; not every filesystem lets a directory be opened.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# --- read_file ---------------------------------------------------------------------------------


class ReadFileArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="File path relative to the workspace root.", min_length=1, max_length=4096)
    offset_line: int = Field(default=1, ge=1, description="First line to return (1-based).")
    max_lines: int | None = Field(
        default=None, ge=1, le=100_000, description="How many lines to return at most; omit for the rest of the file."
    )


def _read_lines(path: Path, args: ReadFileArgs, limit: int) -> str:
    with path.open("r", encoding="utf-8", errors="replace", newline="\n") as fh:
        return _take_lines(fh, args, limit)


def _take_lines(lines: Iterable[str], args: ReadFileArgs, limit: int) -> str:
    end = args.offset_line + args.max_lines if args.max_lines is not None else None
    shown: list[str] = []
    used = omitted = seen = 0
    last_shown = args.offset_line - 1
    more_lines = False
    for number, line in enumerate(lines, start=1):
        seen = number
        if number < args.offset_line:
            continue
        if end is not None and number >= end:
            more_lines = True
            break
        if omitted or used + len(line) > limit:
            if not shown and not omitted:  # one huge line: show its start rather than nothing
                shown.append(line[:limit])
                omitted += len(line) - limit
                last_shown = number
            else:
                omitted += len(line)
            continue
        shown.append(line)
        used += len(line)
        last_shown = number
    if seen < args.offset_line and not (seen == 0 and args.offset_line == 1):
        raise ToolError(
            "read_file", f"{args.path} has {seen} lines; offset_line {args.offset_line} is past the end."
        )
    text = "".join(shown)
    if omitted:
        return (
            f"{text}\n{truncation_marker(omitted)} Lines {args.offset_line}-{last_shown} shown; "
            f"continue with offset_line={last_shown + 1}."
        )
    if more_lines:
        return f"{text}\n[lines {args.offset_line}-{last_shown} shown; the file continues at offset_line={last_shown + 1}]"
    if not text:
        return f"({args.path} is empty)"
    return text


@tool()
async def read_file(ctx: ToolContext, args: ReadFileArgs) -> str:
    """Read a UTF-8 text file from the workspace, optionally a range of lines.

    Long files are cut at the output limit with a marker saying which offset_line to continue from.
    Binary files are refused.
    """
    path = _existing_file(ctx, args.path, "read_file")
    try:
        binary = await asyncio.to_thread(is_binary, path)
    except OSError as exc:
        raise ToolError("read_file", f"Cannot read {args.path}: {exc.strerror or exc}") from exc
    if binary:
        raise ToolError(
            "read_file",
            f"{args.path} looks like a binary file (it contains NUL bytes); read_file only reads text. "
            "Use run_command with a suitable program (e.g. `stat`) to inspect it.",
        )
    budget = max(64, ctx.settings.tool_output_limit - 160)
    editor = current_backends().files
    try:
        if editor is not None:  # an editor's buffer may be newer than the disk
            return _take_lines((await editor.read_text(path)).splitlines(keepends=True), args, budget)
        return await asyncio.to_thread(_read_lines, path, args, budget)
    except OSError as exc:
        raise ToolError("read_file", f"Cannot read {args.path}: {exc.strerror or exc}") from exc


# --- write_file --------------------------------------------------------------------------------


class WriteFileArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="File path relative to the workspace root.", min_length=1, max_length=4096)
    content: str = Field(description="The complete new content of the file (it replaces what is there).")
    create_dirs: bool = Field(default=True, description="Create missing parent directories.")


async def _verify_write(ctx: ToolContext, args: WriteFileArgs, result: str) -> None:
    """Re-read the written file and fail if it differs from what was asked for."""
    path = ctx.workspace.resolve(args.path, tool="write_file")
    editor = current_backends().files
    try:
        if editor is not None:  # read back where it was written
            actual = (await editor.read_text(path)).encode("utf-8")
        else:
            actual = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise PostconditionError("write_file", f"{args.path} cannot be read back after writing: {exc}") from exc
    if actual != args.content.encode("utf-8"):
        raise PostconditionError(
            "write_file",
            f"{args.path} was written but reads back differently ({len(actual)} bytes on disk); "
            "something else changed it. read_file it and write again.",
        )


@tool(effect="write", postcondition=_verify_write)
async def write_file(ctx: ToolContext, args: WriteFileArgs) -> str:
    """Create or overwrite a text file in the workspace with the given content (UTF-8); prefer patch_file for small edits.

    Parent directories are created unless create_dirs is false. The write is atomic.
    """
    path = ctx.workspace.resolve(args.path, tool="write_file")
    if path.is_dir():
        raise ToolError("write_file", f"{args.path} is a directory; give a file path inside it.")
    if not path.parent.is_dir():
        if path.parent.exists():
            raise ToolError("write_file", f"The parent of {args.path} is a file, not a directory.")
        if not args.create_dirs:
            raise ToolError(
                "write_file", f"The directory of {args.path} does not exist; pass create_dirs=true to create it."
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ToolError("write_file", f"Cannot create the directory of {args.path}: {exc.strerror or exc}") from exc
    try:
        data = args.content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(
            "write_file", f"The content cannot be encoded as UTF-8 ({exc.reason} at {exc.start}); remove that character."
        ) from exc
    existed = path.exists()
    editor = current_backends().files
    try:
        if editor is not None:  # the editor writes, so its open buffer shows the change
            await editor.write_text(path, args.content)
        else:
            await asyncio.to_thread(atomic_write_bytes, path, data)
    except OSError as exc:
        raise ToolError("write_file", f"Cannot write {args.path}: {exc.strerror or exc}") from exc
    return f"Wrote {len(data)} bytes to {ctx.workspace.relative(path)} ({'overwritten' if existed else 'created'})."


# --- list_dir ----------------------------------------------------------------------------------


class ListDirArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(default=".", description="Directory relative to the workspace root.", max_length=4096)
    recursive: bool = Field(default=False, description="Also list subdirectories (skips .git).")
    max_entries: int = Field(default=500, ge=1, le=10_000, description="Stop after this many entries.")


def _walk(root: Path, recursive: bool) -> Iterator[tuple[os.DirEntry[str], str]]:
    """Yield (entry, path relative to root) in sorted order; never follows directory symlinks."""
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs: list[tuple[Path, str]] = []
        for entry in entries:
            if recursive and entry.name == ".git":
                continue
            rel = f"{prefix}{entry.name}"
            yield entry, rel
            if recursive and entry.is_dir(follow_symlinks=False):
                subdirs.append((Path(entry.path), f"{rel}/"))
        stack.extend(reversed(subdirs))


def _describe(ctx: ToolContext, entry: os.DirEntry[str], rel: str) -> str:
    if entry.is_symlink():
        target = _link_target(Path(entry.path), ctx.workspace.root)
        shown = ctx.workspace.relative(target) if target else "(outside the workspace, looping or broken)"
        return f"link  {'-':>10}  {rel} -> {shown}"
    if entry.is_dir(follow_symlinks=False):
        return f"dir   {'-':>10}  {rel}/"
    try:
        size = str(entry.stat(follow_symlinks=False).st_size)
    except OSError:
        size = "?"
    kind = "file" if entry.is_file(follow_symlinks=False) else "other"
    return f"{kind:<5} {size:>10}  {rel}"


def _list(ctx: ToolContext, root: Path, args: ListDirArgs) -> str:
    lines: list[str] = []
    stopped = False
    for entry, rel in _walk(root, args.recursive):
        if len(lines) >= args.max_entries:
            stopped = True
            break
        lines.append(_describe(ctx, entry, rel))
    shown = ctx.workspace.relative(root)
    if not lines:
        return f"{shown}/ is empty."
    header = f"{shown}/ ({len(lines)} entries; type, size in bytes, name)"
    text = "\n".join([header, *lines])
    if stopped:
        text += f"\n[stopped at max_entries={args.max_entries}; list a subdirectory or raise max_entries]"
    return truncate(text, ctx.settings.tool_output_limit)


@tool()
async def list_dir(ctx: ToolContext, args: ListDirArgs) -> str:
    """List a workspace directory: each entry's type, size in bytes and name (directories end with /)."""
    root = ctx.workspace.resolve(args.path, tool="list_dir")
    if not root.exists():
        raise ToolError("list_dir", f"Directory {args.path} does not exist; list_dir on its parent shows what is there.")
    if not root.is_dir():
        raise ToolError("list_dir", f"{args.path} is a file, not a directory; use read_file to read it.")
    return await asyncio.to_thread(_list, ctx, root, args)


# --- search_files ------------------------------------------------------------------------------


class SearchFilesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(description="Text to look for (or a Python regular expression if regex is true).",
                         min_length=1, max_length=1000)
    path: str = Field(default=".", description="File or directory to search, relative to the workspace root.",
                      max_length=4096)
    regex: bool = Field(default=False, description="Treat pattern as a regular expression.")
    glob: str = Field(default="*", max_length=200,
                      description="Only search files whose name matches this glob, e.g. *.py; a glob containing / is matched against the path below the searched directory.")
    ignore_case: bool = Field(default=False, description="Match regardless of letter case.")
    max_results: int = Field(default=100, ge=1, le=2000, description="Stop after this many matching lines.")


def _candidate_files(ctx: ToolContext, root: Path, glob: str) -> Iterator[tuple[Path, str]]:
    if root.is_file():
        yield root, ctx.workspace.relative(root)
        return
    base = ctx.workspace.relative(root)
    for entry, rel in _walk(root, recursive=True):
        if entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if entry.is_symlink():
            target = _link_target(path, ctx.workspace.root)  # followed only when it stays inside
            if target is None or not target.is_file():
                continue
            path = target
        elif not entry.is_file(follow_symlinks=False):
            continue
        if fnmatch.fnmatchcase(rel if "/" in glob else entry.name, glob):
            yield path, rel if base == "." else f"{base}/{rel}"


def _search(ctx: ToolContext, root: Path, matcher: re.Pattern[str], args: SearchFilesArgs) -> str:
    hits: list[str] = []
    searched = 0
    stopped = False
    for path, rel in _candidate_files(ctx, root, args.glob):
        try:
            if path.stat().st_size > SEARCH_MAX_FILE_BYTES or is_binary(path):
                continue
            searched += 1
            with path.open("r", encoding="utf-8", errors="replace", newline="\n") as fh:
                for number, line in enumerate(fh, start=1):
                    if matcher.search(line):
                        if len(hits) >= args.max_results:
                            stopped = True
                            break
                        text = line.rstrip("\r\n")
                        if len(text) > _SEARCH_LINE_CHARS:
                            text = text[:_SEARCH_LINE_CHARS] + "…"
                        hits.append(f"{rel}:{number}: {text}")
        except OSError:
            continue
        if stopped:
            break
    if not hits:
        return f"No matches for {args.pattern!r} in {searched} text files under {args.path}."
    text = "\n".join(hits)
    if stopped:
        text += f"\n[stopped at max_results={args.max_results}; narrow path, glob or pattern to see the rest]"
    return truncate(text, ctx.settings.tool_output_limit)


@tool()
async def search_files(ctx: ToolContext, args: SearchFilesArgs) -> str:
    """Search text files in the workspace for a string or regex; returns `path:line: text` lines.

    Skips binary files, files over 2 MB and the .git directory.
    """
    root = ctx.workspace.resolve(args.path, tool="search_files")
    if not root.exists():
        raise ToolError("search_files", f"{args.path} does not exist; list_dir shows what is there.")
    flags = re.IGNORECASE if args.ignore_case else 0
    try:
        matcher = re.compile(args.pattern if args.regex else re.escape(args.pattern), flags)
    except re.error as exc:
        raise ToolError(
            "search_files",
            f"Invalid regular expression {args.pattern!r}: {exc}. Fix it, or pass regex=false to search literally.",
        ) from exc
    return await asyncio.to_thread(_search, ctx, root, matcher, args)
