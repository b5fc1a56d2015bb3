"""Start a program for a tool so that it, and everything it starts, dies with Colony and is reaped.

A program started directly by Colony outlives it: when Colony is SIGKILLed or crashes, nothing of
Colony runs to kill the program's process group, and even a clean kill of the group misses a
daemon that called ``setsid`` to leave it. `start_reaped` therefore starts the program under a
small supervisor (`colony.tools._reaper_supervisor`, run with ``python -I -S``) that dies with
Colony and, whenever it ends — the program exited, Colony asked it to stop, or Colony died — kills
and reaps the whole tree first. Read that module for how; this one is Colony's side:

- the supervisor is a session and process-group leader and the program stays in its group, so
  `kill_group` (SIGKILL to the group) still reaches both as before; it is now the fallback, because
  it also kills the supervisor before the supervisor can reach a ``setsid`` daemon;
- `ReapedProcess.stop` is the normal way to end a run early: SIGTERM to the supervisor only, which
  kills the tree (daemons included) and exits; the group kill follows only if it has not exited
  within `STOP_GRACE_S`;
- the supervisor exits with the program's exit code, or ends by the program's signal, so
  ``process.returncode`` means what it meant when the program was Colony's own child, and
  stdin/stdout/stderr are the program's;
- a program that cannot be started is reported by the supervisor on a status pipe and read back by
  `ReapedProcess.start_error` once it has exited, so callers can raise what they raised before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["STOP_GRACE_S", "ReapedProcess", "kill_group", "start_reaped"]

#: How long `ReapedProcess.stop` lets the supervisor kill and reap the tree before it kills the group.
#: Killing takes milliseconds; the bound matters because a timed-out run_command spends it plus its
#: drain grace inside the 5 s the tool-call timeout (`colony.tools.middleware`) allows on top.
STOP_GRACE_S = 2.0
_SUPERVISOR = str(Path(__file__).with_name("_reaper_supervisor.py"))


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid``; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class ReapedProcess:
    """A program running under its supervisor.

    ``process`` is the supervisor's asyncio process: its pid leads the group, its pipes are the
    program's, and its return code is the program's. Use it as a context manager so the status
    pipe is closed on every path.
    """

    def __init__(self, process: asyncio.subprocess.Process, status_fd: int) -> None:
        self.process = process
        self._status_fd = status_fd

    async def stop(self) -> None:
        """End the run now: the supervisor kills and reaps the whole tree, then exits.

        If it has not exited within `STOP_GRACE_S` (it cannot be stuck for long, but a run must
        end), the process group is killed instead, which misses only daemons that left it.
        """
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_GRACE_S)
        except TimeoutError:
            kill_group(self.process.pid)
            await self.process.wait()

    def start_error(self) -> str | None:
        """Why the program could not be started (``strerror``), or None if it was started.

        Only meaningful once the supervisor has exited: it writes the reason just before exiting.
        The pipe is non-blocking, so a copy of its write end held by some stray fork cannot hang
        the read.
        """
        if self.process.returncode is None:
            return None
        try:
            data = os.read(self._status_fd, 4096)
        except OSError:  # BlockingIOError: no data, and the write end is still open somewhere
            return None
        if not data:
            return None
        _, _, message = data.decode("utf-8", errors="replace").partition(" ")
        return message or "cannot start the program"

    def close(self) -> None:
        """Close the status pipe (idempotent)."""
        if self._status_fd >= 0:
            os.close(self._status_fd)
            self._status_fd = -1

    def __enter__(self) -> ReapedProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def start_reaped(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdin: int | None,
    stdout: int | None,
    stderr: int | None,
) -> ReapedProcess:
    """Start ``argv`` (``argv[0]`` an absolute path) under a supervisor in a new session.

    ``stdin``/``stdout``/``stderr`` take what ``asyncio.create_subprocess_exec`` takes
    (``asyncio.subprocess.PIPE``, ``DEVNULL``, a descriptor or None) and reach the program
    unchanged. An OSError means the supervisor itself could not be started; a program that could
    not be started shows up in `ReapedProcess.start_error` once the run has ended.
    """
    status_r, status_w = os.pipe()
    try:
        os.set_blocking(status_r, False)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", _SUPERVISOR, str(status_w), str(os.getpid()), *argv,
            cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
            start_new_session=True, pass_fds=(status_w,),
        )
    except BaseException:
        os.close(status_r)
        raise
    finally:
        os.close(status_w)  # the supervisor holds the only copy now, so its exit ends the pipe
    return ReapedProcess(process, status_r)
