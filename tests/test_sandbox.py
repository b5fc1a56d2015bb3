"""The sandbox: both tiers, the structured result, and the hostile-program suite.

Every hostile program must be stopped and reported (a stop reason other than ``ok``, or an ``ok``
run that demonstrably got nothing), and must leave the host untouched.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from colony.errors import SandboxError
from colony.sandbox import (
    TRUNCATION_MARKER,
    Limits,
    SandboxResult,
    WasiGrants,
    run_process,
    run_python,
    run_wasm,
    runtime,
)

#: Every run here ends with the host-side check: no sandbox process, zombie or temp file left.
pytestmark = pytest.mark.usefixtures("host_check")

TIERS = ["wasm", "process"]
FAST = Limits(timeout_s=3, cpu_s=3)


def py(code: str, tier: str, cache: Path, limits: Limits = FAST, **kw: object) -> SandboxResult:
    return run_python(code, tier=tier, cache_dir=cache, limits=limits, **kw)  # type: ignore[arg-type]


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server on the host's loopback; records whether anything connected."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    hits: list[int] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            hits.append(1)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join(2)
    srv.close()
    assert hits == [], "a sandboxed program reached a host loopback service"


# -- the structured result -------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
def test_python_runs_and_reports(tier: str, wasm_cache: Path) -> None:
    r = py("import sys\ndata = sys.stdin.read()\nprint(data.upper())\nprint('warn', file=sys.stderr)", tier,
           wasm_cache, stdin=b"hello")
    assert (r.tier, r.stop, r.exit_code, r.stdout, r.stderr) == (tier, "ok", 0, "HELLO\n", "warn\n")
    assert r.peak_memory_bytes and r.peak_memory_bytes > 1 << 20
    assert r.wall_ms > 0
    if tier == "wasm":
        assert r.fuel_used and r.fuel_used > 0
    else:
        assert r.cpu_s is not None


@pytest.mark.parametrize("tier", TIERS)
def test_nonzero_exit_is_a_crash_with_the_traceback(tier: str, wasm_cache: Path) -> None:
    r = py("def f():\n    raise ValueError('boom')\nf()", tier, wasm_cache)
    assert r.stop == "crashed" and r.exit_code == 1
    assert "ValueError: boom" in r.stderr and '"<program>", line 2' in r.stderr


@pytest.mark.parametrize("tier", TIERS)
def test_output_is_truncated_with_a_marker(tier: str, wasm_cache: Path) -> None:
    r = py("print('x' * 100_000)", tier, wasm_cache, limits=Limits(max_output_bytes=1000))
    assert r.stop == "ok" and r.stdout_truncated
    assert r.stdout.startswith("x" * 1000)
    assert TRUNCATION_MARKER.format(dropped=100_001 - 1000) in r.stdout


def test_fuel_is_deterministic(wasm_cache: Path) -> None:
    code = "print(sum(i * i for i in range(20000)))"
    a, b = py(code, "wasm", wasm_cache), py(code, "wasm", wasm_cache)
    assert a.stdout == b.stdout == f"{sum(i * i for i in range(20000))}\n"
    assert a.fuel_used == b.fuel_used


def test_serialized_module_is_reused(wasm_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: when another test had compiled python.wasm first (into its own cache
    # directory), this directory never got the serialized copy.
    assert list(wasm_cache.glob("*.cwasm")), "python.wasm was not serialized to the cache"
    rt = runtime()
    monkeypatch.setattr(rt, "_modules", {})  # a fresh process: nothing compiled in memory

    def no_compile(*args: object, **kwargs: object) -> None:
        raise AssertionError("python.wasm was compiled again instead of loaded from the cache")

    monkeypatch.setattr(wasmtime, "Module", type("NoCompile", (), {
        "__new__": no_compile, "deserialize_file": staticmethod(wasmtime.Module.deserialize_file)}))
    assert py("print(2)", "wasm", wasm_cache).stdout == "2\n"


def test_wasm_wat_module_with_and_without_grants(tmp_path: Path) -> None:
    wat = """(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "hi from wasm\\n")
      (func (export "_start") (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 13))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""
    r = run_wasm(wat, cache_dir=tmp_path)
    assert (r.stop, r.stdout, r.peak_memory_bytes) == ("ok", "hi from wasm\n", 65536)
    assert list(tmp_path.glob("*.cwasm"))
    with pytest.raises(SandboxError, match="does not compile"):
        run_wasm("(module (func (export \"_start\") (i32.add)))")


def test_granted_directory_is_the_only_one_visible(wasm_cache: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("granted")
    module = __import__("colony.sandbox", fromlist=["python_wasm_module"]).python_wasm_module(wasm_cache)
    code = "print(open('/data/in.txt').read())\nimport os\nprint(os.path.exists('/etc/passwd'))"
    from colony.sandbox._python import python_program

    r = runtime().run_wasi(module, limits=FAST, grants=WasiGrants(
        argv=("python", "-I", "-S", "-c", python_program(code)), dirs=((str(shared), "/data", False),)))
    assert (r.stop, r.stdout) == ("ok", "granted\nFalse\n")


# -- hostile programs ----------------------------------------------------------------------------


@pytest.mark.parametrize("tier", TIERS)
def test_infinite_loop_times_out(tier: str, wasm_cache: Path) -> None:
    started = time.perf_counter()
    r = py("while True:\n    pass", tier, wasm_cache, limits=Limits(timeout_s=1.0, cpu_s=10))
    assert r.stop == "timeout", r
    assert time.perf_counter() - started < 4.0


def test_cpu_rlimit_stops_a_busy_process() -> None:
    r = run_python("while True:\n    pass", tier="process", limits=Limits(timeout_s=20, cpu_s=1))
    assert r.stop == "timeout" and "CPU limit" in r.detail


def test_wasm_out_of_fuel(wasm_cache: Path) -> None:
    r = py("while True:\n    pass", "wasm", wasm_cache, limits=Limits(timeout_s=30, fuel=2_000_000_000))
    assert r.stop == "out_of_fuel" and r.fuel_used == 2_000_000_000


def test_raw_wasm_exceeding_memory_and_fuel() -> None:
    grow = """(module (memory (export "memory") 1)
      (func (export "_start") (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        unreachable))"""
    r = run_wasm(grow, limits=Limits(memory_bytes=4 << 20))
    assert r.stop == "out_of_memory" and r.peak_memory_bytes is not None and r.peak_memory_bytes <= 4 << 20
    spin = '(module (func (export "_start") (loop $l (br $l))))'
    r = run_wasm(spin, limits=Limits(fuel=1_000_000, timeout_s=30))
    assert r.stop == "out_of_fuel"
    r = run_wasm(spin, limits=Limits(timeout_s=0.3))
    assert r.stop == "timeout"


def test_wasm_asking_for_an_ungranted_capability_is_denied() -> None:
    wat = """(module (import "env" "open_socket" (func (result i32)))
      (func (export "_start")))"""
    assert run_wasm(wat).stop == "denied"


@pytest.mark.parametrize("tier", TIERS)
def test_fork_bomb(tier: str, wasm_cache: Path) -> None:
    r = py("import os\nwhile True:\n    os.fork()", tier, wasm_cache)
    assert r.stop == "denied"


def test_shell_fork_bomb_is_contained() -> None:
    r = run_process(["/bin/bash", "-c", ":(){ :|:& };:; sleep 30"], limits=Limits(timeout_s=2, max_processes=32))
    assert r.stop == "timeout"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the namespace's processes die with its init, not instantly
        left = [e.name for e in os.scandir("/proc") if e.name.isdigit() and _uid(e) in range(420_000, 470_000)]
        if not left:
            break
        time.sleep(0.1)
    assert left == []


def _uid(entry: os.DirEntry[str]) -> int:
    try:
        return entry.stat().st_uid
    except OSError:  # the process exited while we looked
        return -1


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("code", [
    "x = bytearray(10 * 1024 ** 3)",
    "chunks = []\nwhile True:\n    chunks.append(bytearray(100 << 20))",
])
def test_allocating_10_gb(tier: str, code: str, wasm_cache: Path) -> None:
    r = py(code, tier, wasm_cache)
    assert r.stop == "out_of_memory"
    assert r.peak_memory_bytes is not None and r.peak_memory_bytes <= FAST.memory_bytes + (16 << 20)


@pytest.mark.parametrize("tier", TIERS)
def test_writing_outside_the_sandbox(tier: str, wasm_cache: Path, tmp_path: Path) -> None:
    for target in (Path(__file__).with_name("pwned.txt"), tmp_path / "pwned.txt"):
        r = py(f"open({str(target)!r}, 'w').write('pwned')", tier, wasm_cache)
        assert r.stop in ("denied", "crashed") and not target.exists()
    assert r.stop == "denied" or "No such file" in r.stderr  # /tmp is private: the host's is not there


def test_private_tmp_is_writable_but_private() -> None:
    marker = f"/tmp/colony-sandbox-{os.getpid()}"
    r = run_process(["/bin/sh", "-c", f"echo inside > {marker} && cat {marker}"])
    assert (r.stop, r.stdout) == ("ok", "inside\n")
    assert not Path(marker).exists()


@pytest.mark.parametrize("tier", TIERS)
def test_reading_secrets(tier: str, wasm_cache: Path, settings: object, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(os.environ["COLONY_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "token").write_text("colony-secret-token")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    for code in ["print(open('/etc/shadow').read())", f"print(open({str(home / 'token')!r}).read())",
                 "import os\nprint(os.environ)"]:
        r = py(code, tier, wasm_cache, colony_home=home)
        assert "colony-secret-token" not in r.stdout and "sk-very-secret" not in r.stdout
        assert "root:" not in r.stdout
        if "environ" not in code:
            assert r.stop in ("denied", "crashed") and r.stop != "ok"


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("host", ["127.0.0.1", "93.184.216.34"])
def test_sockets_are_refused(tier: str, host: str, wasm_cache: Path, listener: int) -> None:
    port = listener if host == "127.0.0.1" else 80
    r = py(f"import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(({host!r}, {port}))\nprint('connected')",
           tier, wasm_cache)
    assert r.stop == "denied" and "connected" not in r.stdout


def test_native_program_cannot_reach_host_loopback(listener: int) -> None:
    r = run_process(["/bin/bash", "-c", f"echo hi > /dev/tcp/127.0.0.1/{listener} && echo connected"])
    assert "connected" not in r.stdout and r.stop == "crashed"


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("code", [
    "import os\nos.system('sh -c id')",
    "import subprocess\nsubprocess.run(['/bin/sh', '-c', 'id'])",
    "import os\nos.execv('/bin/sh', ['sh'])",
    "import ctypes\nctypes.CDLL(None).system(b'id')",
    "__import__('_ctypes')",
])
def test_shells_and_native_code_are_denied(tier: str, code: str, wasm_cache: Path) -> None:
    r = py(code, tier, wasm_cache)
    assert r.stop == "denied", r
    assert "uid=" not in r.stdout


def test_guard_denial_cannot_be_caught(wasm_cache: Path) -> None:
    code = "try:\n    import ctypes\nexcept BaseException:\n    print('caught')\nprint('after')"
    for tier in TIERS:
        r = py(code, tier, wasm_cache)
        assert r.stop == "denied" and r.stdout == ""


def test_strict_frames_refuses_introspection(wasm_cache: Path) -> None:
    r = py("import sys\nprint(sys._getframe(0).f_back)", "process", wasm_cache, strict_frames=True)
    assert r.stop == "denied" and "sys._getframe" in r.detail
    r = py("try:\n    1/0\nexcept ZeroDivisionError as e:\n    print(e.__traceback__.tb_frame)", "process",
           wasm_cache, strict_frames=True)
    assert r.stop == "denied" and "tb_frame" in r.detail


def test_auto_falls_back_to_the_process_tier_with_a_notice(tmp_path: Path) -> None:
    missing = tmp_path / "python.wasm"
    r = run_python("print('native')", tier="auto", limits=FAST, interpreter=missing)
    assert (r.tier, r.stop, r.stdout) == ("process", "ok", "native\n")
    assert r.notice and str(missing) in r.notice
    with pytest.raises(SandboxError, match="unavailable"):
        run_python("print(1)", tier="wasm", interpreter=missing)


@pytest.mark.parametrize("module", ["colony.sandbox", "colony.cartridges", "colony.bench"])
def test_public_api_names_exist(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    assert mod.__all__
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{module}.{name}"
