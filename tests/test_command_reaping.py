"""run_command's programs die with the Colony process that ran them, and nothing is left a zombie.

A SIGKILLed Colony runs no cleanup, so these tests run the Colony side in a separate process and
kill it for real: a Python process calling the tool, and the `colony chat` CLI driven by the
scripted model server. That process is started under a small *harness* that is a child
subreaper and reaps whatever is reparented to it. Without it, orphans would go to this
machine's init, which may never reap them, and a zombie left by init could not be told from one
left by Colony. Through the harness, a leftover zombie can only mean that nobody in the command's
tree reaped it.

The tree a command builds is found by a marker argument unique to each test, and what was seen
is remembered as (pid, start time) so a zombie — whose command line is empty — still counts.
The same guarantees are checked in-process for the tool's own exits: normal exit, timeout and
cancellation each take a daemon that left the process group (``setsid``) with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from colony.config import Settings
from colony.errors import ToolTimeoutError
from colony.testing import Reply, ScriptedModelServer
from colony.tools.builtin import run_command
from colony.tools.registry import ToolContext
from colony.tools.workspace import Workspace

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and prctl")

#: Becomes a child subreaper, starts argv with stdout on /dev/null, prints its pid, reaps for ever.
HARNESS = r"""
import ctypes, os, sys, time
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("cannot become a subreaper")
pid = os.fork()
if pid == 0:
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.execv(sys.argv[1], sys.argv[1:])
print(pid, flush=True)
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.05)
"""

#: Colony's side in a process of its own: the real tool, with the command taken from the
#: environment so that the marker appears in no command line but the command tree's.
HOST = r"""
import asyncio, os
from colony.config import Settings
from colony.tools.builtin import run_command
from colony.tools.registry import ToolContext
from colony.tools.workspace import Workspace

async def main() -> None:
    settings = Settings()
    ctx = ToolContext(workspace=Workspace(settings.workspace), settings=settings)
    await run_command.fn(ctx, run_command.args_model(command=os.environ["REAPING_COMMAND"], timeout_s=600))

asyncio.run(main())
"""

#: A child that starts a grandchild; both stay until killed.
TREE = """\
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.run(['sleep', sys.argv[1]])", sys.argv[1]])
time.sleep(600)
"""

#: A daemon the usual way: fork, setsid (a new session, out of the process group), fork again,
#: stdio on /dev/null. Prints the daemon's pid; with "stay" the program itself keeps running.
DAEMON = """\
import os, sys, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.execvp("sleep", ["sleep", sys.argv[1]])
    os.write(w, str(pid).encode())
    os._exit(0)
os.close(w)
os.wait()
print("daemon", os.read(r, 32).decode(), flush=True)
if sys.argv[2:] == ["stay"]:
    time.sleep(600)
"""


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of ``pid``, or None if there is no such process (not even a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def with_marker(marker: str) -> dict[int, str]:
    """Processes with ``marker`` as one of their arguments, by pid, with their start times."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        stat = _stat(int(entry.name))
        if marker.encode() in argv and stat is not None:
            found[int(entry.name)] = stat[1]
    return found


def remaining(seen: dict[int, str], marker: str) -> list[str]:
    """What is left of a command tree: anything seen before that still exists (zombies included),
    and anything alive that carries the marker."""
    left = []
    for pid, started in seen.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            left.append(f"{pid} (state {stat[0]})")
    left += [f"{pid} (new)" for pid in with_marker(marker) if pid not in seen]
    return left


def poll(check: Callable[[], bool], within_s: float) -> bool:
    """Poll ``check`` until it holds or time runs out (process state has no event to wait on)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def sleepers(marker: str) -> list[int]:
    """The running ``sleep <marker>``: the tree's leaf, so once it runs the whole tree is built."""
    found = []
    for pid in with_marker(marker):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"sleep":
            found.append(pid)
    return found


def kill_leftovers(marker: str) -> None:
    """Do not let a failing test leave its sleeps behind for the rest of the suite."""
    for pid in with_marker(marker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def harness() -> Iterator[Callable[[list[str], dict[str, str]], int]]:
    """Start argv under the subreaper harness; returns the pid of argv's process."""
    started: list[subprocess.Popen[str]] = []

    def start(argv: list[str], env: dict[str, str]) -> int:
        proc = subprocess.Popen(
            [sys.executable, "-c", HARNESS, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            text=True, env=env,
        )
        started.append(proc)
        assert proc.stdout is not None
        return int(proc.stdout.readline())

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def kill_colony_and_check(pid: int, marker: str, within_s: float) -> None:
    """Wait for the command tree, SIGKILL Colony's process, and require the tree to be gone."""
    try:
        assert poll(lambda: bool(sleepers(marker)), within_s), "the command never started"
        seen = with_marker(marker)
        os.kill(pid, signal.SIGKILL)
        poll(lambda: not remaining(seen, marker), 5)
        assert remaining(seen, marker) == []
    finally:
        kill_leftovers(marker)


# --- Colony killed -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "marker"),
    [("sleep {m}", "31.4159"), ("python3 tree.py {m}", "32.71828"), ("python3 daemon.py {m} stay", "33.1414")],
    ids=["program", "grandchildren", "setsid-daemon"],
)
def test_sigkilled_colony_takes_the_command_tree_down(
    harness: Callable[[list[str], dict[str, str]], int], workspace: Path, shape: str, marker: str
) -> None:
    (workspace / "tree.py").write_text(TREE)
    (workspace / "daemon.py").write_text(DAEMON)
    env = dict(os.environ, REAPING_COMMAND=shape.format(m=marker))
    host = harness([sys.executable, "-c", HOST], env)
    kill_colony_and_check(host, marker, within_s=30)


def test_sigkilled_colony_chat_takes_its_sleep_down(
    harness: Callable[[list[str], dict[str, str]], int], model: ScriptedModelServer
) -> None:
    """The review's case: `colony chat` killed while the model's run_command sleeps."""
    model.set_script([Reply.tool_calls([("run_command", {"command": "sleep 34.5678"})]), Reply.hang()])
    chat = harness([sys.executable, "-m", "colony", "chat", "--approve-all", "sleep a while"], dict(os.environ))
    kill_colony_and_check(chat, "34.5678", within_s=60)


# --- the tool's own exits ------------------------------------------------------------------------


@pytest.fixture
def ctx(settings: Settings, workspace: Path) -> ToolContext:
    (workspace / "daemon.py").write_text(DAEMON)
    return ToolContext(workspace=Workspace(workspace), settings=settings)


async def run(ctx: ToolContext, command: str, **kwargs: object) -> str:
    return await run_command.fn(ctx, run_command.args_model(command=command, **kwargs))


async def gone(pid: int, within_s: float = 3.0) -> bool:
    """Whether ``pid`` (a daemon that execed ``sleep``) no longer exists, not even as a zombie."""
    def check() -> bool:
        try:  # a zombie keeps its name, so it still counts as there
            return b"sleep" not in Path(f"/proc/{pid}/comm").read_bytes()
        except OSError:
            return True

    for _ in range(int(within_s / 0.05)):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


def daemon_pid(output: str) -> int:
    found = re.search(r"daemon (\d+)", output)
    assert found, output
    return int(found.group(1))


async def test_a_daemon_left_behind_is_killed_and_reaped_when_the_program_exits(ctx: ToolContext) -> None:
    out = await run(ctx, "python3 daemon.py 35.0612")
    try:
        assert out.startswith("exit_code: 0\n")
        assert await gone(daemon_pid(out)), "the setsid daemon outlived the program"
    finally:
        kill_leftovers("35.0612")


async def test_a_timeout_kills_a_daemon_that_left_the_process_group(ctx: ToolContext) -> None:
    try:
        with pytest.raises(ToolTimeoutError, match="killed") as info:
            await run(ctx, "python3 daemon.py 36.0612 stay", timeout_s=3)
        assert await gone(daemon_pid(str(info.value))), "the setsid daemon outlived the timeout"
    finally:
        kill_leftovers("36.0612")


async def test_cancelling_the_call_kills_a_daemon_that_left_the_process_group(ctx: ToolContext) -> None:
    task = asyncio.create_task(run(ctx, "python3 daemon.py 37.0612 stay"))
    try:
        for _ in range(200):
            if sleepers("37.0612"):
                break
            await asyncio.sleep(0.05)
        [pid] = sleepers("37.0612")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await gone(pid), "the setsid daemon outlived the cancelled call"
    finally:
        kill_leftovers("37.0612")
