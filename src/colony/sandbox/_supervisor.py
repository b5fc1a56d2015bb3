"""The supervisor between Colony and bubblewrap: limits, the wall clock, reaping, and the report.

It runs *outside* the sandbox, as the run's unprivileged user, started by the host with an empty
environment. Keeping it outside matters: a program inside the sandbox can read every entry of the
``/proc`` it sees, so anything that sits in its PID namespace (a supervisor, bubblewrap's own
init) would show its command line and environment. With the supervisor outside and
``bwrap --as-pid-1``, the program is pid 1 of its namespace and its own tree is all it can see.

What it does, in order:

1. arms ``PR_SET_PDEATHSIG`` (it dies with the host; a host that died before the signal was armed
   is noticed through ``getppid``) and ``PR_SET_CHILD_SUBREAPER`` (anything bubblewrap leaves
   behind is reparented to it and reaped here, not left as a zombie for the host's init);
2. forks; the child arms its own death signal, moves the passed descriptors to the numbers the
   program expects, applies the rlimits (so they bind bubblewrap and everything under it, but not
   the supervisor) and executes bubblewrap;
3. waits with ``wait4`` — its rusage covers bubblewrap and the program, which bubblewrap waited for
   — killing bubblewrap at the wall-clock limit (bubblewrap's ``--die-with-parent`` then takes the
   whole PID namespace down);
4. kills and reaps whatever is still its child, and writes one JSON report on an inherited pipe.

The source is kept as text because it runs in another interpreter (``python -I -S``): it may use
only the standard library.
"""

from __future__ import annotations

__all__ = ["SUPERVISOR_SOURCE"]

SUPERVISOR_SOURCE = r"""
import ctypes, fcntl, json, os, resource, signal, sys, time
cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
if os.getppid() != cfg["parent"]:
    os._exit(70)  # the host is already gone
libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
report = cfg["report"]
me = os.getpid()
pid = os.fork()
if pid == 0:
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != me:
            os._exit(70)
        os.close(report)
        # Move the passed descriptors to their numbers in two steps, so that a target number
        # that is also a source is not overwritten before it is read.
        staged = [(int(target), fcntl.fcntl(int(source), fcntl.F_DUPFD_CLOEXEC, 1000))
                  for target, source in cfg["fds"].items()]
        for _, source in cfg["fds"].items():
            if int(source) not in (0, 1, 2):
                os.close(int(source))
        for target, tmp in staged:
            os.dup2(tmp, target)  # dup2 clears close-on-exec on the target
            os.close(tmp)
        for name, value in cfg["rlimits"].items():
            resource.setrlimit(getattr(resource, name), tuple(value))
        os.execv(cfg["argv"][0], cfg["argv"])
    except BaseException as exc:
        os.write(2, ("colony-sandbox: cannot start the sandbox: %s\n" % exc).encode())
    os._exit(127)

for source in cfg["fds"].values():  # the program holds them now; keeping them would delay EOF
    if int(source) not in (0, 1, 2):
        os.close(int(source))
timed_out = False

def on_alarm(signum, frame):
    global timed_out
    timed_out = True
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

signal.signal(signal.SIGALRM, on_alarm)
signal.signal(signal.SIGTERM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, cfg["timeout"])
_, status, ru = os.wait4(pid, 0)
signal.setitimer(signal.ITIMER_REAL, 0)

def children():
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found.append(int(entry))
    return found

# Reparented leftovers: kill them and reap everything, for at most a few seconds.
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        break
    left = children()
    if not left:
        break
    for child in left:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.005)
os.write(report, json.dumps({"maxrss_kb": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime,
                             "status": status, "timed_out": timed_out}).encode())
os._exit(0)
"""
