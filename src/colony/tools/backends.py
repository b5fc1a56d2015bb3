"""Where file and command tools do their I/O: the local machine, or a surface that offers it.

An editor connected over ACP can read and write files through its own buffers (so unsaved
edits are seen and writes show up in the editor) and run commands in terminals the user
can watch. The tools keep every check they make (workspace boundary, allow/block lists,
approval) and only hand the final I/O to the backend set for the running task. No backend
set means the local disk and a local subprocess, which is what every other surface uses.

A backend is set per task (a `ContextVar`), so one process can serve several editor
sessions at once without a session id threaded through every tool signature.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["CommandBackend", "FileBackend", "IoBackends", "current_backends", "use_backends"]


class FileBackend(Protocol):
    """Text file I/O done by someone else (an editor). Paths are already confined and absolute."""

    async def read_text(self, path: Path) -> str: ...

    async def write_text(self, path: Path, content: str) -> None: ...


class CommandBackend(Protocol):
    """Runs one already-vetted program and returns the text the model sees.

    ``argv[0]`` is the resolved executable; the backend enforces ``timeout_s`` (raising
    `ToolTimeoutError`) and keeps at most about ``output_limit`` characters of output.
    """

    async def run(
        self, argv: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float, output_limit: int
    ) -> str: ...


@dataclass(frozen=True)
class IoBackends:
    files: FileBackend | None = None
    commands: CommandBackend | None = None


_backends: ContextVar[IoBackends | None] = ContextVar("colony_io_backends", default=None)


def current_backends() -> IoBackends:
    """The backends of the running task (empty: local disk and subprocesses)."""
    return _backends.get() or IoBackends()


@contextlib.contextmanager
def use_backends(backends: IoBackends) -> Iterator[None]:
    """Route file and command I/O of tools started in this context through ``backends``."""
    token = _backends.set(backends)
    try:
        yield
    finally:
        _backends.reset(token)
