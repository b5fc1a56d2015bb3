"""File and command I/O through the editor, for clients that declare the capability.

`EditorFiles` reads and writes through ``fs/read_text_file`` / ``fs/write_text_file`` (the
editor sees its unsaved buffers and shows the change); a direction the client did not
declare uses the local disk. `EditorTerminal` runs the already-vetted command in an editor
terminal: create → wait for exit (killed at the deadline) → output → release, the release
happening whatever went wrong so no terminal is leaked. Editor errors become `ToolError`s
the model can read, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from acp.interfaces import Client
from acp.schema import EnvVariable

from colony.errors import ToolError, ToolTimeoutError
from colony.tools.backends import IoBackends
from colony.tools.builtin.files import atomic_write_bytes
from colony.tools.output import truncate_middle

__all__ = ["EditorFiles", "EditorTerminal", "editor_backends"]


class EditorFiles:
    def __init__(self, client: Client, session_id: str, *, read: bool, write: bool) -> None:
        self.client, self.session_id, self.read, self.write = client, session_id, read, write

    async def read_text(self, path: Path) -> str:
        if not self.read:
            return await asyncio.to_thread(path.read_text, encoding="utf-8", errors="replace")
        try:
            response = await self.client.read_text_file(session_id=self.session_id, path=str(path))
        except Exception as exc:
            raise ToolError("read_file", f"The editor could not read {path}: {exc}") from exc
        return response.content

    async def write_text(self, path: Path, content: str) -> None:
        if not self.write:
            await asyncio.to_thread(atomic_write_bytes, path, content.encode("utf-8"))
            return
        try:
            await self.client.write_text_file(session_id=self.session_id, path=str(path), content=content)
        except Exception as exc:
            raise ToolError("write_file", f"The editor could not write {path}: {exc}") from exc


class EditorTerminal:
    def __init__(self, client: Client, session_id: str) -> None:
        self.client, self.session_id = client, session_id

    async def run(
        self, argv: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float, output_limit: int
    ) -> str:
        sid = self.session_id
        try:
            created = await self.client.create_terminal(
                session_id=sid, command=argv[0], args=argv[1:], cwd=str(cwd),
                env=[EnvVariable(name=k, value=v) for k, v in env.items()], output_byte_limit=output_limit * 2,
            )
        except Exception as exc:
            raise ToolError("run_command", f"The editor could not start a terminal for {argv[0]}: {exc}") from exc
        tid = created.terminal_id
        try:
            try:
                async with asyncio.timeout(timeout_s):
                    exited = await self.client.wait_for_terminal_exit(session_id=sid, terminal_id=tid)
            except TimeoutError:
                await self.client.kill_terminal(session_id=sid, terminal_id=tid)
                output = await self.client.terminal_output(session_id=sid, terminal_id=tid)
                raise ToolTimeoutError(
                    "run_command",
                    f"The command did not finish within {timeout_s:g}s and was killed. Pass a larger timeout_s "
                    f"if it needs longer. Output so far:\n{truncate_middle(output.output, output_limit)}",
                ) from None
            output = await self.client.terminal_output(session_id=sid, terminal_id=tid)
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError("run_command", f"The editor's terminal failed: {exc}") from exc
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.client.release_terminal(session_id=sid, terminal_id=tid))
        code: str = str(exited.exit_code) if exited.exit_code is not None else f"killed by {exited.signal}"
        note = "\n[the editor truncated the output]" if output.truncated else ""
        return f"exit_code: {code}\n--- output ---\n{truncate_middle(output.output, output_limit)}{note}"


def editor_backends(client: Client, session_id: str, *, read: bool, write: bool, terminal: bool) -> IoBackends:
    """The I/O backends a client's declared capabilities allow (none: local I/O)."""
    return IoBackends(
        files=EditorFiles(client, session_id, read=read, write=write) if read or write else None,
        commands=EditorTerminal(client, session_id) if terminal else None,
    )
