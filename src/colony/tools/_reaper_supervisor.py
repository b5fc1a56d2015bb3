"""The supervisor between Colony and one program it runs for a tool: the program dies with Colony.

Colony cannot clean up after a program from inside its own process: a SIGKILL, an out-of-memory
kill or a crash ends Colony without running another line of it, and everything the program had
started would keep running, reparented to init. So `colony.tools._reaper` starts the program
through this script instead (``python -I -S _reaper_supervisor.py STATUS_FD PARENT_PID PROGRAM
[ARG...]``), as the leader of a new session and process group. In order, it:

1. blocks SIGCHLD and the stop signals (SIGTERM, SIGINT, SIGHUP) before anything else, so none of
   them is lost between the checks below and the wait that consumes them;
2. arms ``PR_SET_PDEATHSIG`` with SIGTERM, then compares ``getppid()`` with the pid Colony passed:
   a Colony that died before the signal was armed is noticed there and nothing is started;
3. becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``), so a descendant whose parent exits — a
   daemon that double-forks and calls ``setsid`` to leave the process group — is reparented here
   rather than to init, and stays within reach;
4. starts the program with ``posix_spawn``: same process group (so Colony's ``killpg`` of the
   supervisor still reaches it), stdin/stdout/stderr passed straight through, and the signal mask
   and SIGPIPE/SIGXFSZ dispositions the program would have had from ``subprocess`` directly;
5. waits, reaping orphans as they come, until the program exits, Colony asks it to stop (a stop
   signal: Colony sends SIGTERM on a timeout or a cancelled call) or Colony dies (the death signal,
   or ``getppid()`` changing, which is also polled);
6. SIGKILLs every descendant it can find in ``/proc`` and reaps until it has no child left. Being
   a subreaper, having no child means having no descendant at all: nothing survives and nothing
   is left a zombie;
7. exits the way the program did — its exit code, or the same signal raised on itself — so what
   Colony reports about the run does not change.

A program that cannot be started (``posix_spawn`` failed) is reported on the status pipe as
``"<errno> <message>"`` and the supervisor exits 127; Colony reads the pipe after the exit and
raises the error it would have raised had it started the program itself.

The death signal belongs to the *thread* that created this process, not to Colony as a whole.
That thread is the event-loop thread that awaited ``create_subprocess_exec`` (asyncio and uvloop
both fork from the loop's thread). It outlives every program it starts while the loop runs: the
tool awaits the supervisor's exit, and a cancelled call stops it. So the signal fires early only
when the loop's thread is gone with a program still running, which leaves nobody to read its
output or reap it — killing it then is what should happen anyway.

It runs in its own interpreter with ``-I -S``, so it may import only the standard library. It is
Linux-specific (``prctl``, ``/proc``, ``sigtimedwait``), like the process tier of the sandbox.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
_WATCHED = _STOP_SIGNALS | {signal.SIGCHLD}
#: Python ignores these at startup; ``subprocess`` would have reset them to default for the program.
_RESTORED = (signal.SIGPIPE, signal.SIGXFSZ)
#: How often the wait also checks that Colony is still the parent (a death signal that could not
#: be armed must not leave the program running for ever).
_PARENT_POLL_S = 0.5
#: A descendant that cannot be killed (uninterruptible sleep, a set-uid program) is given up on
#: after this long, so the supervisor itself always exits.
_KILL_DEADLINE_S = 10.0
_NOT_STARTED = 127
_STAT_STATE, _STAT_PPID, _STAT_STARTTIME = 0, 1, 19  # fields of /proc/<pid>/stat after the ")"


def _prctl(option: int, value: int) -> bool:
    """Call ``prctl``; False where the C library has none, so the poll of ``getppid()`` remains."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except AttributeError:
        return False
    return int(prctl(option, value, 0, 0, 0)) == 0


def _stat(pid: int | str) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces and ')')."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) > _STAT_STARTTIME else None


def _descendants(me: int) -> dict[int, bytes]:
    """Every live process below ``me``, each with its start time, which tells it apart from a later
    process that reuses its pid."""
    children: dict[int, list[tuple[int, bytes]]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _stat(entry)
        if fields is None or fields[_STAT_STATE] == b"Z":  # a zombie is only waiting to be reaped
            continue
        children.setdefault(int(fields[_STAT_PPID]), []).append((int(entry), fields[_STAT_STARTTIME]))
    found: dict[int, bytes] = {}
    todo = [me]
    while todo:
        for pid, started in children.get(todo.pop(), []):
            if pid not in found:
                found[pid] = started
                todo.append(pid)
    return found


def _kill(pid: int, started: bytes) -> None:
    """SIGKILL ``pid`` if it is still the process found in the scan.

    A grandchild can exit, be reaped by its own parent and have its pid reused between the scan
    and the kill; a pidfd pins the process, so checking its start time through the pidfd's pid
    and then signalling the pidfd cannot hit a stranger.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd_open (Linux before 5.3): the same check, then a plain kill
        fd = -1
    try:
        fields = _stat(pid)
        if fields is None or fields[_STAT_STARTTIME] != started:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if fd >= 0:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    finally:
        if fd >= 0:
            os.close(fd)


def _reap(command: int) -> tuple[bool, int | None]:
    """Reap every child that has exited: (any child left, the command's wait status if reaped now)."""
    status = None
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False, status
        if pid == 0:
            return True, status
        if pid == command:
            status = code


def _wait(command: int, parent: int) -> int | None:
    """Wait for the command's wait status; None when it is to be stopped (asked to, or Colony died)."""
    while True:
        info = signal.sigtimedwait(_WATCHED, _PARENT_POLL_S)
        if info is not None and info.si_signo in _STOP_SIGNALS:
            return None
        left, status = _reap(command)
        if status is not None:
            return status
        if not left or os.getppid() != parent:
            return None


def _kill_tree(command: int, status: int | None) -> int | None:
    """Kill and reap every descendant; return the command's wait status if it is known by then."""
    me = os.getpid()
    deadline = time.monotonic() + _KILL_DEADLINE_S
    while time.monotonic() < deadline:
        if status is None:  # not reaped yet, so its pid is still ours even without /proc
            with contextlib.suppress(ProcessLookupError):
                os.kill(command, signal.SIGKILL)
        for pid, started in _descendants(me).items():
            _kill(pid, started)
        left, reaped = _reap(command)
        status = reaped if reaped is not None else status
        if not left:
            break
        signal.sigtimedwait({signal.SIGCHLD}, 0.05)
    return status


def _exit_like(status: int | None) -> int:
    """Exit as the command did: its exit code, or end by the signal that ended it."""
    if status is None:  # it could not be reaped before the deadline: report it as killed
        return 128 + signal.SIGKILL
    if not os.WIFSIGNALED(status):
        return os.waitstatus_to_exitcode(status)
    number = os.WTERMSIG(status)
    # The signal is the command's; a core dump of the supervisor would only be noise.
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _prctl(_PR_SET_DUMPABLE, 0)
    with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP cannot be changed (or need not)
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {number})
    os.kill(os.getpid(), number)
    return 128 + number  # only reached for a signal whose default action does not end a process


def main(argv: list[str]) -> int:
    """Run ``argv[2:]`` for the Colony process ``argv[1]``, reporting a failed start on fd ``argv[0]``."""
    inherited_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
    status_fd, parent, program = int(argv[0]), int(argv[1]), argv[2:]
    os.set_inheritable(status_fd, False)  # the program must not hold it
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # Colony died before the death signal was armed
        return _NOT_STARTED
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    try:
        command = os.posix_spawn(
            program[0], program, os.environ, setsigmask=inherited_mask, setsigdef=_RESTORED
        )
    except OSError as exc:
        os.write(status_fd, f"{exc.errno or 0} {exc.strerror or exc}".encode(errors="replace"))
        return _NOT_STARTED
    os.close(status_fd)
    return _exit_like(_kill_tree(command, _wait(command, parent)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
