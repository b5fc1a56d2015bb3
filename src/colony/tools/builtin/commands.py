"""run_command: one allow-listed program, no shell, confined to the workspace, bounded in time and output.

There is no shell between the model and the program: the command is split with `shlex.split`
and the program executed directly. Shell syntax (pipes, ``;``, ``&&``, redirections,
backticks, ``$(…)``, ``$VAR``) would silently mean something else without a shell, so it is
refused with advice to split the work into several calls. The program must be on the allowlist
and the command must not match the blocklist; `classify_command` gives the approval layer the
same verdict without running anything.

The program runs under a small supervisor (`colony.tools._reaper`) in a new session. A timeout
or a cancelled turn has the supervisor kill everything the program started — grandchildren, and
daemons that left the process group with ``setsid`` — as does the program's own exit; and because
the supervisor dies with Colony, a SIGKILLed or crashed Colony leaves nothing running either.
Environment variables whose names look secret are removed, and only the head and tail of a long
output are kept.

Path arguments are checked against the workspace as a guard against accidents, not as a
sandbox: an allow-listed interpreter can still reach anything the Colony process can. Real
isolation is the sandbox's job (capability S).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from colony.config import Settings
from colony.errors import ToolArgumentsError, ToolDeniedError, ToolError, ToolTimeoutError
from colony.tools._reaper import start_reaped
from colony.tools.backends import current_backends
from colony.tools.output import keep_head_tail
from colony.tools.registry import ToolContext, tool
from colony.tools.workspace import Workspace

__all__ = [
    "CommandVerdict",
    "RunCommandArgs",
    "blocklist_match",
    "classify_command",
    "find_shell_syntax",
    "parse_command",
    "run_command",
    "scrubbed_env",
]

_NAME = "run_command"
CommandVerdict = Literal["blocked", "allowed", "unknown"]
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
_VARIABLE = re.compile(r"[A-Za-z_]\w*")
_TWO_CHAR_OPS = ("&&", "||", ">>", "<<", "$(", "${")
_DRAIN_GRACE_S = 2.0


class RunCommandArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(
        description=(
            "One program and its arguments, e.g. `pytest -q tests/test_x.py`. There is no shell: no pipes, "
            "';', '&&', redirections or $VARIABLES. Quote arguments that contain spaces."
        ),
        min_length=1,
        max_length=10_000,
    )
    cwd: str = Field(default=".", description="Working directory relative to the workspace root.", max_length=4096)
    timeout_s: float | None = Field(
        default=None, gt=0, le=3600, description="Seconds before the command is killed; omit for the default."
    )


def parse_command(command: str) -> list[str]:
    """Split a command line into argv the way a POSIX shell would, without running a shell."""
    if "\x00" in command:
        raise ToolArgumentsError(_NAME, "The command contains a NUL byte; remove it.")
    try:
        tokens = shlex.split(command)
    except ValueError as exc:
        raise ToolArgumentsError(_NAME, f"Cannot parse the command ({exc}); check its quotes.") from exc
    if not tokens:
        raise ToolArgumentsError(_NAME, "The command is empty; give a program and its arguments.")
    return tokens


def find_shell_syntax(command: str) -> str | None:
    """Return the first shell operator that a shell would interpret in ``command``, if any.

    Quotes are respected, so ``grep "a|b" file`` is fine; backticks, ``$(`` and ``$VAR`` count
    inside double quotes too, because a shell would expand them there.
    """
    quote: str | None = None
    i = 0
    while i < len(command):
        c = command[i]
        if quote == "'":
            if c == "'":
                quote = None
        elif c == "\\":
            i += 2
            continue
        elif c == "`" or (c == "$" and command[i + 1 : i + 2] in ("(", "{")):
            return command[i : i + 2] if c == "$" else c
        elif c == "$" and (var := _VARIABLE.match(command, i + 1)):
            return "$" + var.group(0)
        elif quote == '"':
            if c == '"':
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "|;&<>\n":
            pair = command[i : i + 2]
            return pair if pair in _TWO_CHAR_OPS else ("newline" if c == "\n" else c)
        i += 1
    return None


def _entry_tokens(entry: str) -> list[str]:
    try:
        return shlex.split(entry) or entry.split()
    except ValueError:
        return entry.split()


def _token_is(token: str, word: str) -> bool:
    return token == word or os.path.basename(token) == word


def blocklist_match(tokens: list[str], blocklist: list[str]) -> str | None:
    """The first blocklist entry whose tokens occur, in order, in ``tokens``.

    A one-word entry (``sudo``) matches that word anywhere, which also catches wrappers like
    ``env sudo …``; a longer entry (``git push --force``) matches its words in order even with
    other arguments between them (``git push origin main --force``).
    """
    for entry in blocklist:
        words = _entry_tokens(entry)
        if not words:
            continue
        position = 0
        for token in tokens:
            if _token_is(token, words[position]):
                position += 1
                if position == len(words):
                    return entry
    return None


def _allowlist_match(tokens: list[str], allowlist: list[str]) -> bool:
    for entry in allowlist:
        words = _entry_tokens(entry)
        if words and tokens[: len(words)] == words:
            return True
    return False


def classify_command(command: str, settings: Settings) -> CommandVerdict:
    """Blocked (refused whatever the approval), allowed (on the allowlist), or unknown."""
    try:
        tokens = parse_command(command)
    except ToolError:
        return "blocked"
    if find_shell_syntax(command) is not None or blocklist_match(tokens, settings.command_blocklist):
        return "blocked"
    return "allowed" if _allowlist_match(tokens, settings.command_allowlist) else "unknown"


def scrubbed_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without secret-looking variables and without relative PATH entries."""
    source = dict(os.environ if environ is None else environ)
    env = {k: v for k, v in source.items() if not _SECRET_NAME.search(k)}
    path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and os.path.isabs(p)]
    env["PATH"] = os.pathsep.join(path)
    return env


def _check_path_arguments(tokens: list[str], workspace: Workspace, cwd: Path) -> None:
    for token in tokens[1:]:
        values = [token]
        if token.startswith("-") and "=" in token:
            values.append(token.split("=", 1)[1])
        for value in values:
            looks_like_path = value.startswith(("/", "~")) or value == ".." or value.startswith("../") or "/../" in value
            if not looks_like_path:
                continue
            try:
                resolved = (cwd / Path(value).expanduser()).resolve()
            except (OSError, RuntimeError):  # symlink loop, unknown ~user
                resolved = None
            if resolved is None or (resolved != workspace.root and not resolved.is_relative_to(workspace.root)):
                raise ToolDeniedError(
                    _NAME,
                    f"Argument {value!r} points outside the workspace ({workspace.root}); "
                    "commands may only touch files inside it.",
                )


class _Capture:
    """Keep the first and last ``keep`` bytes of a stream and count what fell between them."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            room = self.keep - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            self.tail += chunk
            if len(self.tail) > self.keep:
                cut = len(self.tail) - self.keep
                del self.tail[:cut]
                self.dropped += cut

    def render(self, limit: int) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        return keep_head_tail(head, tail, max(limit, 0), self.dropped)

    def size(self) -> int:
        return len(self.head) + len(self.tail) + self.dropped


def _format(code: int | str, out: _Capture, err: _Capture, limit: int) -> str:
    budget = max(200, limit - 60)
    err_budget = min(err.size(), max(budget // 3, budget - out.size()))
    stdout, stderr = out.render(budget - err_budget), err.render(err_budget)
    return f"exit_code: {code}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"


async def _settle(readers: list[asyncio.Task[None]]) -> None:
    """Give the readers a moment to reach EOF, then stop them."""
    _, pending = await asyncio.wait(readers, timeout=_DRAIN_GRACE_S)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _exit_code(code: int) -> str:
    if code >= 0:
        return str(code)
    try:
        return f"{code} (killed by {signal.Signals(-code).name})"
    except ValueError:
        return str(code)


def _resolve_program(program: str, env: dict[str, str], workspace: Workspace) -> str:
    exe = shutil.which(program, path=env["PATH"])
    if exe is None:
        raise ToolError(_NAME, f"Program {program!r} is allowed but not installed (not found on PATH).")
    if Path(exe).resolve().is_relative_to(workspace.root):
        raise ToolDeniedError(_NAME, f"{program!r} resolves to {exe}, inside the workspace; only system programs run.")
    return exe


@tool(effect="execute")
async def run_command(ctx: ToolContext, args: RunCommandArgs) -> str:
    """Run one allow-listed program (no shell) in the workspace and return its exit code, stdout and stderr.

    A non-zero exit code is reported, not raised. Pipes, ';', '&&', redirections and $VARIABLES are
    not supported: make separate calls instead. Long output keeps its beginning and end.
    """
    settings = ctx.settings
    operator = find_shell_syntax(args.command)
    if operator is not None:
        raise ToolArgumentsError(
            _NAME,
            f"run_command runs a single program without a shell, so {operator!r} would not do what a shell does. "
            "Split pipelines and chains into separate run_command calls, use write_file instead of '>' "
            "redirection, and write values literally instead of $VARIABLES; stdout and stderr are both captured.",
        )
    tokens = parse_command(args.command)
    entry = blocklist_match(tokens, settings.command_blocklist)
    if entry is not None:
        raise ToolDeniedError(_NAME, f"The command matches the blocklist entry {entry!r} and will not be run.")
    if "/" in tokens[0]:
        raise ToolDeniedError(
            _NAME, f"Give the bare program name instead of the path {tokens[0]!r}; allowed programs are looked up on PATH."
        )
    if not _allowlist_match(tokens, settings.command_allowlist):
        allowed = ", ".join(settings.command_allowlist)
        raise ToolDeniedError(
            _NAME,
            f"Program {tokens[0]!r} is not on the command allowlist ({allowed}). Use one of those, or ask the "
            "operator to add it to COLONY_COMMAND_ALLOWLIST.",
        )
    cwd = ctx.workspace.resolve(args.cwd, tool=_NAME)
    if not cwd.is_dir():
        raise ToolError(_NAME, f"Working directory {args.cwd} is not a directory in the workspace.")
    _check_path_arguments(tokens, ctx.workspace, cwd)
    env = scrubbed_env()
    exe = _resolve_program(tokens[0], env, ctx.workspace)
    timeout = args.timeout_s or settings.tool_timeout_s
    limit = settings.tool_output_limit
    terminal = current_backends().commands
    if terminal is not None:  # an editor runs it in a terminal the user can watch
        return await terminal.run([exe, *tokens[1:]], cwd=cwd, env=env, timeout_s=timeout, output_limit=limit)
    try:
        child = await start_reaped(
            [exe, *tokens[1:]], cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise ToolError(_NAME, f"Cannot start {tokens[0]!r}: {exc.strerror or exc}") from exc
    with child:
        proc = child.process
        out, err = _Capture(limit * 2), _Capture(limit * 2)
        readers = [asyncio.create_task(out.drain(proc.stdout)), asyncio.create_task(err.drain(proc.stderr))]
        try:
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                await child.stop()
                await _settle(readers)
                raise ToolTimeoutError(
                    _NAME,
                    f"{args.command!r} did not finish within {timeout:g}s and was killed with its child processes. "
                    f"Pass a larger timeout_s if it needs longer. Output so far:\n{_format('killed', out, err, limit)}",
                ) from None
            # The supervisor has already killed and reaped whatever the program left behind.
            await _settle(readers)
            failure = child.start_error()
            if failure is not None:
                raise ToolError(_NAME, f"Cannot start {tokens[0]!r}: {failure}")
        finally:
            if proc.returncode is None:  # cancelled from outside: never leave the program running
                with contextlib.suppress(BaseException):
                    await asyncio.shield(child.stop())
            for task in readers:
                task.cancel()
    return _format(_exit_code(proc.returncode or 0), out, err, limit)
