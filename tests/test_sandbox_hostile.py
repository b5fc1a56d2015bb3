"""Hostile programs against the process tier: what a sandboxed program can see, keep and leave.

Every test here ends with the host-side check (`host_check` in conftest): no process of a
sandbox uid and no new zombie left, no temporary file of Colony's left. The canaries are a secret
in Colony's environment and a world-readable file outside the sandbox's few binds: neither may
appear in anything a program prints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from colony.errors import SandboxError
from colony.sandbox import Limits, run_process, run_python, sandbox_python

pytestmark = pytest.mark.usefixtures("host_check")

SECRET = "sk-canary-3f9a1c77e0d24b5e"
FAST = Limits(timeout_s=5, cpu_s=5)


@pytest.fixture
def canaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A secret in Colony's environment and a world-readable file in a host directory."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("COLONY_CANARY", SECRET)
    secret_file = tmp_path / "world-readable-secret.txt"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o644)
    for parent in (tmp_path, *tmp_path.parents):
        if parent != Path("/"):
            parent.chmod(parent.stat().st_mode | 0o055)  # world-readable path, so only the binds protect it
    return secret_file


def sh(script: str, **kw: object) -> str:
    r = run_process(["/bin/sh", "-c", script], limits=FAST, **kw)  # type: ignore[arg-type]
    return r.stdout + r.stderr


def test_no_secret_in_any_proc_entry_the_program_can_read(canaries: Path) -> None:
    home = Path(os.environ["COLONY_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    out = sh("for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline /proc/self/mountinfo; do cat $f; echo; done",
             colony_home=home)
    assert SECRET not in out
    assert str(home) not in out and "bwrap" not in out and "colony-sandbox" not in out
    # a Python program, in the tier Python cartridges use
    code = ("import os\nfor p in os.listdir('/proc'):\n    if p.isdigit():\n"
            "        for f in ('environ', 'cmdline'):\n            print(open(f'/proc/{p}/{f}', 'rb').read())\n")
    r = run_python(code, tier="process", limits=FAST, colony_home=home)
    assert r.stop == "ok", r
    assert SECRET not in r.stdout and str(home) not in r.stdout and "bwrap" not in r.stdout


def test_the_program_is_the_only_process_tree_it_sees() -> None:
    r = run_python("import os, json\nprint(json.dumps(sorted(int(p) for p in os.listdir('/proc') if p.isdigit())))\n"
                   "print(os.getpid(), os.getppid())", tier="process", limits=FAST)
    pids_line, ids_line = r.stdout.splitlines()
    assert json.loads(pids_line) == [1]
    assert ids_line == "1 0"


@pytest.mark.parametrize("tier", ["wasm", "process"])
def test_environment_is_minimal(tier: str, canaries: Path, wasm_cache: Path) -> None:
    r = run_python("import os, json\nprint(json.dumps(dict(os.environ)))", tier=tier,  # type: ignore[arg-type]
                   limits=FAST, cache_dir=wasm_cache)
    env = json.loads(r.stdout)
    assert set(env) <= {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "PWD", "PYTHONHASHSEED"}
    assert SECRET not in r.stdout


@pytest.mark.parametrize("path", ["/", "/proc", "/proc/self/environ", "/tmp", "/etc", "."])
def test_wasm_sees_no_host_path(path: str, canaries: Path, wasm_cache: Path) -> None:
    code = (f"import os\np = {path!r}\n"
            "print(os.listdir(p) if not p.endswith('environ') else open(p).read())")
    r = run_python(code, tier="wasm", limits=FAST, cache_dir=wasm_cache)
    assert r.stop == "denied" and r.stdout == "", r
    r = run_python(f"print(open({str(canaries)!r}).read())", tier="wasm", limits=FAST, cache_dir=wasm_cache)
    assert r.stop == "denied" and SECRET not in r.stdout


def test_host_files_are_not_there(canaries: Path) -> None:
    listing = ("import os, json\nout = {}\n"
               "for d in ('/', '/home', '/work', '/srv', '/root', '/var', '/opt', '/mnt', '/etc', '/run'):\n"
               "    try:\n        out[d] = sorted(os.listdir(d))\n    except OSError as e:\n        out[d] = e.errno\n"
               "print(json.dumps(out))")
    r = run_python(listing, tier="process", limits=FAST)
    seen = json.loads(r.stdout)
    assert set(seen["/"]) <= {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "dev", "proc", "tmp"}
    for d in ("/home", "/work", "/srv", "/root", "/var", "/opt", "/mnt", "/run"):
        assert isinstance(seen[d], int), f"{d} is visible: {seen[d]}"
    assert set(seen["/etc"]) <= {"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives"}
    for target in (canaries, Path(__file__), Path("/etc/passwd"), Path("/etc/hostname")):
        r = run_python(f"print(open({str(target)!r}).read())", tier="process", limits=FAST)
        assert r.stop != "ok" and SECRET not in r.stdout, target


def test_only_tmp_is_writable_and_it_is_capped() -> None:
    probe = ("import os\n"
             "for p in ('/x', '/dev/x', '/dev/shm/x', '/etc/x', '/usr/x', '/proc/x'):\n"
             "    try:\n        open(p, 'w').write('x')\n        print('WROTE', p)\n"
             "    except OSError as e:\n        print('refused', p, e.errno)\n")
    r = run_python(probe, tier="process", limits=FAST)
    assert "WROTE" not in r.stdout and r.stdout.count("refused") == 6


def test_tmpfs_cannot_take_more_than_the_budget() -> None:
    """Filling /tmp (RAM-backed) under a 256 MiB budget: stopped at its cap, far below 1.5 GiB."""
    limits = Limits(timeout_s=20, cpu_s=20, memory_bytes=256 << 20, max_file_bytes=2 << 30)
    fill = ("import os\nn = 0\nchunk = b'x' * (1 << 20)\n"
            "for i in range(1536):\n    try:\n"
            "        with open(f'/tmp/f{i % 64}-{i}', 'wb') as fh:\n            fh.write(chunk)\n        n += 1\n"
            "    except OSError as e:\n        print('stopped', e.errno)\n        break\n"
            "st = os.statvfs('/tmp')\nprint(n, st.f_blocks * st.f_frsize)\n")
    r = run_python(fill, tier="process", limits=limits)
    lines = r.stdout.split()
    assert lines[0] == "stopped" and int(lines[1]) == 28  # ENOSPC
    written, size = int(lines[2]), int(lines[3])
    assert size == limits.tmp_bytes
    assert written * (1 << 20) <= limits.tmp_bytes


def test_address_space_and_tmp_share_the_budget() -> None:
    limits = Limits(memory_bytes=256 << 20, tmp_bytes=64 << 20, timeout_s=10, cpu_s=10)
    r = run_process(["/bin/sh", "-c", "ulimit -v"], limits=limits)
    assert int(r.stdout) == (256 - 64) << 10  # KiB


def test_only_the_passed_descriptors_reach_the_program() -> None:
    r_fd, w_fd = os.pipe()
    stray_r, stray_w = os.pipe()
    try:
        r = run_process(["/bin/sh", "-c", "ls /proc/self/fd; echo hello >&7"], limits=FAST, fds={7: w_fd})
        assert sorted(int(x) for x in r.stdout.split()) == [0, 1, 2, 3, 7]  # 3: ls's own directory
        assert os.read(r_fd, 100) == b"hello\n"
    finally:
        for fd in (r_fd, stray_r, stray_w):
            os.close(fd)


def test_work_dir_is_the_only_host_directory_writable(tmp_path: Path) -> None:
    for parent in (tmp_path, *tmp_path.parents):
        parent.chmod(parent.stat().st_mode | 0o001)  # searchable by the sandbox's uid
    work = tmp_path / "task"
    work.mkdir()
    (work / "input.txt").write_text("data")
    owner = work.stat().st_uid
    out = sh("cat input.txt && echo result > output.txt && pwd", work_dir=work)
    assert out == "data/work\n"
    assert (work / "output.txt").read_text() == "result\n"
    assert (work / "output.txt").stat().st_uid == owner and work.stat().st_uid == owner


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root Colony runs the sandbox as another uid")
def test_unreachable_work_dir_is_a_clear_error(tmp_path: Path) -> None:
    private = tmp_path / "private"
    (private / "task").mkdir(parents=True)
    private.chmod(0o700)
    with pytest.raises(SandboxError, match="not searchable by others"):
        run_process(["/bin/true"], work_dir=private / "task")


def test_background_children_do_not_outlive_the_run() -> None:
    r = run_process(["/bin/sh", "-c", "sleep 300 & sleep 300 & echo started"], limits=FAST)
    assert r.stdout == "started\n"
    # host_check: no process of the sandbox's uid is left


def test_killing_colony_mid_run_leaves_nothing(tmp_path: Path) -> None:
    """SIGKILL the process that started a sandboxed run: the sandbox dies with it."""
    marker = "31.41592"
    script = textwrap.dedent(f"""
        from colony.sandbox import Limits, run_process
        run_process(["/bin/sh", "-c", "sleep {marker} & sleep {marker}"], limits=Limits(timeout_s=60, cpu_s=60))
    """)
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _running(marker):
            time.sleep(0.05)
        assert _running(marker), "the sandboxed program never started"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _running(marker):
            time.sleep(0.05)
        assert not _running(marker)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def _running(marker: str) -> bool:
    for entry in list(os.scandir("/proc")):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
                state = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if marker.encode() in cmdline and state != b"Z":
                return True
    return False


def test_sandbox_python_is_bindable() -> None:
    assert sandbox_python().startswith(("/usr/", "/opt/"))


def test_runs_leave_no_zombie_for_the_hosts_init() -> None:
    """Checked the moment each run returns: whatever bubblewrap forked has been reaped already."""
    before = _zombies()
    for _ in range(5):
        run_process(["/bin/true"], limits=FAST)
        assert _zombies() - before == set()


def _zombies() -> set[int]:
    found = set()
    for entry in list(os.scandir("/proc")):
        if entry.name.isdigit():
            try:
                fields = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == b"Z":
                found.add(int(entry.name))
    return found
