"""The process tier: a subprocess under bubblewrap, for code that needs native speed or libraries.

The confinement, layer by layer:

- **namespaces** (``bwrap --unshare-all``): a network namespace with nothing but its own loopback,
  so neither the host's loopback services nor the outside world are reachable; its own PID, IPC,
  UTS and cgroup namespaces. With ``--as-pid-1`` the program is pid 1 of its PID namespace and the
  ``/proc`` mounted for it is fresh, so its own process tree is all it can see: neither bubblewrap
  nor the supervisor (`colony.sandbox._supervisor`, which runs outside) has an entry there.
- **filesystem**: nothing of the host but what an interpreter needs — ``/usr`` (and the
  ``/bin``, ``/lib*`` links into it), the loader's and the time zone's few ``/etc`` files, and the
  interpreter's own prefix when it lives outside ``/usr`` — all read-only; a fresh ``/dev`` and
  ``/proc``; a private, size-capped ``/tmp``; optionally the task's own work directory read-write at
  ``/work``. The sandbox's root and ``/dev`` are remounted read-only, so ``/tmp`` (and ``/work``)
  are the only writable places, and ``/tmp``'s RAM counts against the run's memory budget.
- **environment**: bubblewrap (and the supervisor) start with an empty environment and the program
  gets a fixed minimal one, so no secret in Colony's variables can be read anywhere in the sandbox.
- **identity**: when Colony runs as root, the supervisor and everything under it run as an
  unprivileged uid chosen for the run (``setpriv``) — root ignores ``RLIMIT_NPROC``, so a fork bomb
  would otherwise be unbounded, and separate runs never share a process budget.
- **rlimits**, applied by the supervisor to bubblewrap and so to the program: CPU seconds, address
  space (``memory_bytes`` less the ``/tmp`` size), processes, file size, no core dumps.
- **time**: the supervisor kills bubblewrap at the wall-clock limit, which takes the PID namespace
  down; the host kills the supervisor's whole process group a few seconds later if it did not.
- **leftovers**: the supervisor is a child subreaper and dies with the host (``PR_SET_PDEATHSIG``),
  so no process or zombie outlives a run.

Peak memory and CPU come from the supervisor's ``wait4`` rusage, which covers bubblewrap and the
program it waited for. Because the program is pid 1 of its namespace, signals it sends itself with
the default action are ignored (Linux protects a namespace's init), and the CPU soft limit's
SIGXCPU too: the CPU limit ends a run with SIGKILL at the hard limit, reported as a timeout.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from colony.errors import SandboxError, SandboxUnavailableError
from colony.sandbox._guard import DENIED_EXIT, DENIED_MARKER
from colony.sandbox._result import Limits, SandboxResult, StopReason, clip
from colony.sandbox._supervisor import SUPERVISOR_SOURCE

__all__ = ["BWRAP", "process_tier_available", "run_process", "sandbox_python"]

BWRAP = "/usr/bin/bwrap"
_SETPRIV = "/usr/bin/setpriv"
#: Unprivileged uids used when Colony runs as root (one per run, so runs never share a process budget).
_UID_BASE, _UID_SPAN = 420_000, 50_000
#: The host's own deadline is the run's plus this: the supervisor normally ends the run first.
_BACKSTOP_S = 5.0
#: Read-only files and directories of /etc that the loader and interpreters need.
_ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives")
#: Top-level names that merged-/usr systems keep as links into /usr (directories on older ones).
_ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
#: Prefixes an interpreter may live under to be bound into the sandbox (never a home directory).
_SHAREABLE = ("/usr/", "/opt/")
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


def process_tier_available() -> str | None:
    """None when the process tier can run here; otherwise what is missing and how to fix it."""
    for tool, pkg in ((BWRAP, "bubblewrap"), (_SETPRIV, "util-linux")):
        if not os.access(tool, os.X_OK):
            return f"{tool} is missing; install it with: sudo apt-get install -y {pkg}"
    return None


def sandbox_python() -> str:
    """A native interpreter the sandbox can bind and the sandbox user can run; used with ``-I -S``.

    The interpreter behind this virtual environment when it lives under ``/usr`` or ``/opt``
    (its prefix is then bound read-only), else the system's ``/usr/bin/pythonX.Y`` or ``python3``.
    A home directory is never bound, so pyenv's interpreters under ``/root`` are not used.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path(sys.base_prefix) / "bin" / version, Path("/usr/bin") / version, Path("/usr/bin/python3")):
        if candidate.exists() and str(candidate.resolve()).startswith(_SHAREABLE):
            return str(candidate.resolve())
    return "/usr/bin/python3"


def _interpreter_prefix(python: str) -> str | None:
    """The directory to bind for an interpreter outside /usr (``/opt/python3.11`` for
    ``/opt/python3.11/bin/python3.11``), or None when /usr already holds it."""
    path = Path(python)
    if str(path).startswith("/usr/"):
        return None
    prefix = path.parent.parent
    return str(prefix) if str(prefix).startswith("/opt/") and prefix != Path("/opt") else None


def _bwrap_argv(argv: Sequence[str], limits: Limits, colony_home: Path | None, work_dir: Path | None) -> list[str]:
    cmd = [BWRAP, "--unshare-all", "--die-with-parent", "--new-session", "--as-pid-1",
           "--ro-bind", "/usr", "/usr"]
    for name in _ROOT_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            cmd += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            cmd += ["--ro-bind", str(path), str(path)]
    for item in _ETC:
        cmd += ["--ro-bind-try", item, item]
    prefix = _interpreter_prefix(sandbox_python())
    if prefix:
        cmd += ["--ro-bind", prefix, prefix]
    if colony_home is not None and str(colony_home.resolve()).startswith(("/usr/", prefix or "/usr/")):
        home = str(colony_home.resolve())  # bound with /usr or the prefix: cover it with nothing
        cmd += ["--tmpfs", home, "--remount-ro", home]
    cmd += ["--dev", "/dev", "--remount-ro", "/dev", "--proc", "/proc",
            "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    chdir = "/tmp"
    if work_dir is not None:
        cmd += ["--bind", str(work_dir.resolve()), "/work"]
        chdir = "/work"
    cmd += ["--remount-ro", "/", "--clearenv"]
    for key, value in _ENV.items():
        cmd += ["--setenv", key, value]
    return [*cmd, "--chdir", chdir, "--", *argv]


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                continue
    return count


class _Drain(threading.Thread):
    """Read a pipe to its end, keeping the first ``limit`` bytes and counting the rest."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__(daemon=True)
        self.stream, self.limit = stream, limit
        self.kept = bytearray()
        self.total = 0

    def run(self) -> None:
        while chunk := self.stream.read1(65536):  # type: ignore[attr-defined]
            self.total += len(chunk)
            room = self.limit - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]


def run_process(
    argv: Sequence[str],
    *,
    stdin: bytes = b"",
    limits: Limits | None = None,
    colony_home: Path | None = None,
    work_dir: Path | None = None,
    fds: Mapping[int, int] | None = None,
) -> SandboxResult:
    """Run ``argv`` under bubblewrap with the given limits and return what happened.

    Args:
        colony_home: the node's data directory; never visible (it is not bound), and covered
            should it lie under a bound prefix.
        work_dir: bound read-write at ``/work`` (the working directory); when Colony runs as root
            the run's uid owns it for the duration of the run.
        fds: descriptors handed to the program, ``{number in the program: host descriptor}``
            (numbers from 3). They are closed in this process once the program holds them.

    Raises:
        SandboxUnavailableError: bubblewrap (or util-linux) is not installed.
        SandboxError: a passed descriptor number is below 3.
    """
    limits = limits or Limits()
    passed = dict(fds or {})
    missing = process_tier_available()
    problem = ("Descriptors 0-2 are the program's stdio; pass others from 3 up."
               if any(target < 3 for target in passed) else _unreachable(work_dir))
    if missing or problem:
        for fd in passed.values():
            os.close(fd)
        if missing:
            raise SandboxUnavailableError(missing)
        raise SandboxError(problem or "")
    started = time.perf_counter()
    report_r, report_w = os.pipe()
    cmd, uid = _command(argv, limits, colony_home, work_dir, report_w, passed)
    restore = _lend(work_dir, uid)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, close_fds=True, pass_fds=(report_w, *passed.values()),
                                env={"PATH": "/usr/bin:/bin"})
    finally:
        os.close(report_w)
        for fd in passed.values():
            os.close(fd)
    report = _Drain(os.fdopen(report_r, "rb"), 4096)
    report.start()
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = _Drain(proc.stdout, limits.max_output_bytes), _Drain(proc.stderr, limits.max_output_bytes)
    out.start()
    err.start()
    feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
    feeder.start()
    backstop = threading.Timer(limits.timeout_s + _BACKSTOP_S, _killpg, args=(proc.pid,))
    backstop.start()
    try:
        _, status, _ = os.wait4(proc.pid, 0)
    finally:
        backstop.cancel()
        _killpg(proc.pid)  # anything left in the supervisor's group
        restore()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.join(2.0)
    err.join(2.0)
    report.join(2.0)
    feeder.join(2.0)
    for stream in (proc.stdout, proc.stderr, report.stream):
        stream.close()
    peak, cpu, code, timed_out = _usage(bytes(report.kept))
    if code is None:  # the supervisor was killed (the backstop) before it could report
        code, timed_out = proc.returncode, True
    wall_ms = (time.perf_counter() - started) * 1000
    stdout, stdout_cut = clip(bytes(out.kept), limits.max_output_bytes, out.total)
    stderr, stderr_cut = clip(bytes(err.kept), limits.max_output_bytes, err.total)
    stop, detail = _classify(code, stderr, timed_out, limits)
    if stop == "crashed" and code == -signal.SIGKILL and cpu is not None and cpu >= limits.cpu_s:
        stop, detail = "timeout", f"killed at the CPU limit of {limits.cpu_s} s"
    return SandboxResult(
        tier="process", stop=stop, exit_code=code, stdout=stdout, stderr=stderr,
        stdout_truncated=stdout_cut, stderr_truncated=stderr_cut, cpu_s=cpu, peak_memory_bytes=peak,
        wall_ms=round(wall_ms, 3), detail=detail,
    )


def _command(argv: Sequence[str], limits: Limits, colony_home: Path | None, work_dir: Path | None,
             report_fd: int, fds: Mapping[int, int]) -> tuple[list[str], int]:
    """The host's command line (setpriv when root, then the supervisor) and the run's uid."""
    cmd: list[str] = []
    # RLIMIT_NPROC counts every process of the uid: the supervisor and bubblewrap's monitor too.
    nproc = limits.max_processes + 2
    if os.geteuid() == 0:
        uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
        cmd += [_SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
    else:
        uid = os.getuid()
        nproc += _processes_of(uid)  # a real user's other processes count as well
    config = {
        "parent": os.getpid(), "report": report_fd, "timeout": limits.timeout_s,
        "fds": {str(target): source for target, source in fds.items()},
        "rlimits": {"RLIMIT_CPU": [limits.cpu_s, limits.cpu_s + 1],
                    "RLIMIT_AS": [limits.memory_bytes - limits.tmp_bytes] * 2,
                    "RLIMIT_NPROC": [nproc, nproc], "RLIMIT_FSIZE": [limits.max_file_bytes] * 2,
                    "RLIMIT_CORE": [0, 0]},
        "argv": _bwrap_argv(argv, limits, colony_home, work_dir),
    }
    return [*cmd, sandbox_python(), "-I", "-S", "-c", SUPERVISOR_SOURCE, json.dumps(config)], uid


def _unreachable(work_dir: Path | None) -> str | None:
    """Why bubblewrap could not bind ``work_dir`` for the sandbox's uid, or None.

    bubblewrap resolves a bind's source as the sandbox's user, so when Colony runs as root (and the
    sandbox as an unprivileged uid) every parent must be searchable by others.
    """
    if work_dir is None:
        return None
    if not work_dir.is_dir():
        return f"The work directory {work_dir} does not exist or is not a directory."
    if os.geteuid() != 0:
        return None
    for parent in work_dir.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            return (f"The sandbox's user cannot reach the work directory {work_dir}: {parent} is not searchable "
                    f"by others. Put work directories under a directory with mode o+x (e.g. chmod o+x {parent}).")
    return None


def _lend(work_dir: Path | None, uid: int) -> Callable[[], None]:
    """Give the run's uid the work directory (root only) and return how to give it back."""
    if work_dir is None or os.geteuid() != 0:
        return lambda: None
    st = work_dir.stat()
    _chown_tree(work_dir, uid, uid)
    return lambda: _chown_tree(work_dir, st.st_uid, st.st_gid)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid, follow_symlinks=False)
    for base, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.chown(os.path.join(base, name), uid, gid, follow_symlinks=False)


def _usage(report: bytes) -> tuple[int | None, float | None, int | None, bool]:
    """(peak RSS bytes, CPU seconds, the program's exit status, timed out) from the supervisor.

    bubblewrap exits with the program's status, or 128 + N when signal N killed it; a status of
    that shape is reported as the signal (negative, like `subprocess`).
    """
    try:
        data = json.loads(report)
        code = os.waitstatus_to_exitcode(int(data["status"]))
        if 128 < code < 128 + signal.NSIG:
            code = -(code - 128)
        return int(data["maxrss_kb"]) * 1024, round(float(data["cpu_s"]), 4), code, bool(data["timed_out"])
    except (ValueError, KeyError, TypeError):
        return None, None, None, False


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        pipe.write(data)
        pipe.close()
    except (BrokenPipeError, OSError):
        return


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return


def _classify(code: int, stderr: str, timed_out: bool, limits: Limits) -> tuple[StopReason, str]:
    if timed_out:
        return "timeout", f"killed after the wall-clock limit of {limits.timeout_s:g} s"
    if code == -signal.SIGXCPU:
        return "timeout", f"stopped by the CPU limit of {limits.cpu_s} s"
    if code == -signal.SIGXFSZ:
        return "denied", f"tried to write a file over {limits.max_file_bytes} bytes"
    if code == DENIED_EXIT and DENIED_MARKER in stderr:
        return "denied", stderr.rsplit(DENIED_MARKER, 1)[1].strip().splitlines()[0]
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr or "std::bad_alloc" in stderr:
        return "out_of_memory", f"ran out of its {limits.memory_bytes >> 20} MiB address space"
    if code == 0:
        return "ok", ""
    if code < 0:
        return "crashed", f"killed by signal {signal.Signals(-code).name}"
    if "bwrap:" in stderr and code == 1:
        return "denied", stderr.split("bwrap:", 1)[1].strip().splitlines()[0]
    return "crashed", f"exit status {code}"

