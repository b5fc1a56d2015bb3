"""The process tier: a subprocess under bubblewrap, for code that needs native speed or libraries.

The confinement, layer by layer:

- **namespaces** (``bwrap --unshare-all``): a network namespace with nothing but its own loopback,
  so neither the host's loopback services nor the outside world are reachable; its own PID, IPC,
  UTS and cgroup namespaces; ``--die-with-parent`` so nothing outlives the run.
- **filesystem**: the host root bound read-only; a private ``/tmp``; the home directories, the
  node's data directory (``COLONY_HOME``) and ``/run`` hidden behind empty tmpfs mounts; ``/dev``
  minimal; the environment cleared, so secrets in variables never arrive.
- **identity**: when Colony runs as root, the sandbox first drops to an unprivileged uid through
  ``setpriv`` — root ignores ``RLIMIT_NPROC``, so a fork bomb would otherwise be unbounded.
- **rlimits**, set by a small supervisor inside the sandbox: CPU seconds, address space, processes, file size, no core dumps.
- **time**: the whole process group is killed (SIGKILL) at the wall-clock limit.

Peak memory and CPU come from ``wait4``'s rusage, which covers the child and its waited-for
descendants.
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
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from colony.errors import SandboxUnavailableError
from colony.sandbox._guard import DENIED_EXIT, DENIED_MARKER
from colony.sandbox._result import Limits, SandboxResult, StopReason, clip

__all__ = ["BWRAP", "process_tier_available", "run_process", "sandbox_python"]

BWRAP = "/usr/bin/bwrap"
_SETPRIV = "/usr/bin/setpriv"
#: Unprivileged uids used when Colony runs as root (one per run, so runs never share a process budget).
_UID_BASE, _UID_SPAN = 420_000, 50_000


def process_tier_available() -> str | None:
    """None when the process tier can run here; otherwise what is missing and how to fix it."""
    for tool, pkg in ((BWRAP, "bubblewrap"), (_SETPRIV, "util-linux")):
        if not os.access(tool, os.X_OK):
            return f"{tool} is missing; install it with: sudo apt-get install -y {pkg}"
    return None


def supervisor_python() -> str:
    """The interpreter for the in-sandbox supervisor (the same one untrusted Python gets)."""
    return sandbox_python()


def sandbox_python() -> str:
    """A native interpreter the sandboxed user can reach; the sandbox runs it with ``-I -S``.

    The interpreter behind this virtual environment first, unless it lives under a directory the
    sandbox hides (pyenv under ``/root`` does), then the system's ``/usr/bin/python3``.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    hidden = _hidden_dirs(None)
    for candidate in (Path(sys.base_prefix) / "bin" / version, Path("/usr/bin") / version, Path("/usr/bin/python3")):
        if candidate.exists() and not _under(candidate.resolve(), hidden):
            return str(candidate.resolve())
    return "/usr/bin/python3"


def _under(path: Path, dirs: list[str]) -> bool:
    return any(str(path).startswith(d.rstrip("/") + "/") for d in dirs)


def _hidden_dirs(colony_home: Path | None) -> list[str]:
    hidden = {"/root", "/home", "/run", "/var/tmp", "/var/lib", "/var/log", "/mnt", "/media", "/srv"}
    home = os.environ.get("HOME")
    if home:
        hidden.add(home)
    if colony_home is not None:
        hidden.add(str(colony_home.resolve()))
    return sorted(d for d in hidden if os.path.isdir(d))


def _bwrap_argv(argv: Sequence[str], limits: Limits, colony_home: Path | None, report_fd: int) -> list[str]:
    cmd: list[str] = []
    nproc = limits.max_processes
    if os.geteuid() == 0:
        uid = str(_UID_BASE + secrets.randbelow(_UID_SPAN))
        cmd += [_SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
    else:
        # RLIMIT_NPROC counts every process of the real user, so leave room for the ones it has.
        nproc += _processes_of(os.getuid())
    cmd += [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for hidden in _hidden_dirs(colony_home):
        cmd += ["--tmpfs", hidden]
    cmd += ["--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp",
            "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            "--chdir", "/tmp", "--", supervisor_python(), "-I", "-S", "-c", _SUPERVISOR,
            str(limits.cpu_s), str(limits.memory_bytes), str(nproc), str(limits.max_file_bytes),
            str(report_fd), *argv]
    return cmd


# Runs inside the sandbox as the program's parent: applies the rlimits in the child (so the
# supervisor itself is not bound by RLIMIT_NPROC), waits, and reports the child tree's rusage on
# an inherited pipe. Measuring here matters: ``wait4`` on the host would report the host process's own peak,
# because Linux carries a parent's RSS high-water mark across fork and exec.
_SUPERVISOR = r"""
import json, os, resource, sys
cpu, mem, nproc, fsize, report = (int(v) for v in sys.argv[1:6])
argv = sys.argv[6:]
pid = os.fork()
if pid == 0:
    os.close(report)
    # CPU: SIGXCPU at the soft limit (reported as a timeout), SIGKILL a second later if ignored.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    for res, val in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_NPROC, nproc),
                     (resource.RLIMIT_FSIZE, fsize), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(res, (val, val))
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        os.write(2, ("cannot start %s: %s\n" % (argv[0], exc)).encode())
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
code = os.waitstatus_to_exitcode(status)
os.write(report, json.dumps({"maxrss_kb": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime, "code": code}).encode())
os._exit(code if code >= 0 else 128 - code)
"""


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
) -> SandboxResult:
    """Run ``argv`` under bubblewrap with the given limits and return what happened.

    Raises:
        SandboxUnavailableError: bubblewrap (or util-linux) is not installed.
    """
    limits = limits or Limits()
    missing = process_tier_available()
    if missing:
        raise SandboxUnavailableError(missing)
    started = time.perf_counter()
    report_r, report_w = os.pipe()
    cmd = _bwrap_argv(argv, limits, colony_home, report_w)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, close_fds=True, pass_fds=(report_w,))
    finally:
        os.close(report_w)
    report = _Drain(os.fdopen(report_r, "rb"), 4096)
    report.start()
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = _Drain(proc.stdout, limits.max_output_bytes), _Drain(proc.stderr, limits.max_output_bytes)
    out.start()
    err.start()
    feeder = threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True)
    feeder.start()
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        _killpg(proc.pid)

    timer = threading.Timer(limits.timeout_s, kill)
    timer.start()
    try:
        _, status, _ = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    _killpg(proc.pid)  # anything the program left behind in its group
    out.join(2.0)
    err.join(2.0)
    report.join(2.0)
    for stream in (proc.stdout, proc.stderr, report.stream):
        stream.close()
    peak, cpu, code = _usage(bytes(report.kept))
    if code is not None:  # the program's own status, not bubblewrap's rendering of it
        proc.returncode = code
    wall_ms = (time.perf_counter() - started) * 1000
    stdout, stdout_cut = clip(bytes(out.kept), limits.max_output_bytes, out.total)
    stderr, stderr_cut = clip(bytes(err.kept), limits.max_output_bytes, err.total)
    stop, detail = _classify(proc.returncode, stderr, timed_out.is_set(), limits)
    if stop == "crashed" and proc.returncode == -signal.SIGKILL and cpu is not None and cpu >= limits.cpu_s:
        stop, detail = "timeout", f"killed at the CPU limit of {limits.cpu_s} s"
    return SandboxResult(
        tier="process", stop=stop, exit_code=proc.returncode, stdout=stdout, stderr=stderr,
        stdout_truncated=stdout_cut, stderr_truncated=stderr_cut, cpu_s=cpu, peak_memory_bytes=peak, wall_ms=round(wall_ms, 3), detail=detail,
    )


def _usage(report: bytes) -> tuple[int | None, float | None, int | None]:
    """(peak RSS bytes, CPU seconds, exit status) from the supervisor; Nones when it was killed first."""
    try:
        data = json.loads(report)
        return int(data["maxrss_kb"]) * 1024, round(float(data["cpu_s"]), 4), int(data["code"])
    except (ValueError, KeyError, TypeError):
        return None, None, None


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

