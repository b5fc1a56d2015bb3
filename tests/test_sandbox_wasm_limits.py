"""The WASM tier's limits hold whatever the guest does.

- The wall clock holds while the guest is blocked in WASI (``time.sleep``, ``select``, a raw
  ``poll_oneoff``), per run, and across nested cartridge calls.
- Output is bounded where it is written: nothing reaches the disk, a guest writing past
  ``max_file_bytes`` is cut off, and a run leaves no file, descriptor or thread behind.

The clock tests bound how long a call takes with a loose margin: they check behaviour (a 20 s
sleep under a 2 s limit must not take 20 s), not speed. ``wasm_cache`` is the suite's
session-wide serialized python.wasm (tests/conftest.py).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from colony.cartridges import CartridgeRequest, Cartridges
from colony.config import Settings
from colony.sandbox import TRUNCATION_MARKER, Limits, SandboxResult, run_python, run_wasm
from colony.store import Database, open_database

#: Every run here ends with the host-side check: no sandbox process, zombie or temp file left.
pytestmark = pytest.mark.usefixtures("host_check")


T = TypeVar("T")
#: How much later than its limit a stopped run may return (instantiation, a loaded CI machine).
SLACK_S = 3.0
MARKER = TRUNCATION_MARKER.split("{", 1)[0]


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    value = fn()
    return value, time.monotonic() - started


def py(code: str, cache: Path, limits: Limits, stdin: bytes = b"") -> SandboxResult:
    return run_python(code, tier="wasm", cache_dir=cache, limits=limits, stdin=stdin)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process's temp directory, emptied and private, so what appears there is this test's."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


class TempWatch:
    """Records every entry that appears in ``path`` (the temp directory) while it runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.before = self._entries()
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _entries(self) -> set[str]:
        return set(os.listdir(self.path))

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.seen |= self._entries() - self.before

    def __enter__(self) -> TempWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seen |= self._entries() - self.before


def pipes() -> int:
    """How many pipe descriptors this process holds (a run's stdio are pipes)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
        except OSError:  # the directory's own descriptor, closed by now
            continue
    return count


# -- the wall clock while the guest blocks ------------------------------------------------------------
@pytest.mark.parametrize("code", [
    "import time\ntime.sleep(20)",
    "import select\nselect.select([], [], [], 20)",
    "import time\nwhile True:\n    time.sleep(0.05)",
], ids=["sleep", "select", "many-short-sleeps"])
def test_a_sleeping_python_guest_stops_at_its_limit(code: str, wasm_cache: Path) -> None:
    r, elapsed = timed(lambda: py(code, wasm_cache, Limits(timeout_s=2)))
    assert r.stop == "timeout", (r.stop, r.detail, r.stderr[-500:])
    assert "2 s" in r.detail
    assert elapsed < 2 + SLACK_S
    assert 1900 <= r.wall_ms <= elapsed * 1000 + 50  # the run's own accounting agrees


def test_a_short_sleep_lasts_as_long_as_asked(wasm_cache: Path) -> None:
    # CPython sleeps until an absolute monotonic time: the guest's clock and the host's must agree.
    code = "import time\nt = time.monotonic()\ntime.sleep(0.3)\nprint(time.monotonic() - t)"
    r, elapsed = timed(lambda: py(code, wasm_cache, Limits(timeout_s=10)))
    assert r.stop == "ok", r.stderr
    assert 0.29 <= float(r.stdout) < 2 and elapsed >= 0.3


def test_each_run_keeps_its_own_deadline(wasm_cache: Path) -> None:
    results: dict[str, tuple[SandboxResult, float]] = {}

    def run(name: str, code: str, timeout_s: float) -> None:
        results[name] = timed(lambda: py(code, wasm_cache, Limits(timeout_s=timeout_s)))

    threads = [
        threading.Thread(target=run, args=("short", "import time\ntime.sleep(20)", 1.0)),
        threading.Thread(target=run, args=("long", "import time\ntime.sleep(2)\nprint('woke')", 6.0)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    short, short_s = results["short"]
    long, long_s = results["long"]
    assert short.stop == "timeout" and short_s < 1 + SLACK_S
    assert long.stop == "ok" and long.stdout == "woke\n" and 2 <= long_s < 6


# -- poll_oneoff itself, without CPython --------------------------------------------------------------
MAGIC = 0x1122334455667788


def poll_module(setup: str, nsubs: int, expect_type: int = 0) -> str:
    """A WASI command that fills subscriptions (``setup``), calls ``poll_oneoff`` once and exits 0
    when exactly one event came back for the subscription with userdata `MAGIC`, of
    ``expect_type``, without error; 50 + errno when the call failed; 2-5 for a wrong event."""
    return f"""(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  ;; subscriptions at 0 (48 bytes each), events at 256, nevents at 512, clock scratch at 520
  (func $now (param $id i32) (result i64)
    (drop (call $clock (local.get $id) (i64.const 1) (i32.const 520)))
    (i64.load (i32.const 520)))
  (func $sub (param $at i32) (param $userdata i64) (param $tag i32) (param $id_or_fd i32)
             (param $timeout i64) (param $flags i32)
    (i64.store (local.get $at) (local.get $userdata))
    (i32.store8 (i32.add (local.get $at) (i32.const 8)) (local.get $tag))
    (i32.store (i32.add (local.get $at) (i32.const 16)) (local.get $id_or_fd))
    (i64.store (i32.add (local.get $at) (i32.const 24)) (local.get $timeout))
    (i32.store16 (i32.add (local.get $at) (i32.const 40)) (local.get $flags)))
  (func $check (param $errno i32) (result i32)
    (if (local.get $errno) (then (return (i32.add (i32.const 50) (local.get $errno)))))
    (if (i32.ne (i32.load (i32.const 512)) (i32.const 1)) (then (return (i32.const 2))))
    (if (i64.ne (i64.load (i32.const 256)) (i64.const {MAGIC})) (then (return (i32.const 3))))
    (if (i32.load16_u (i32.const 264)) (then (return (i32.const 4))))
    (if (i32.ne (i32.load8_u (i32.const 266)) (i32.const {expect_type})) (then (return (i32.const 5))))
    (i32.const 0))
  (func (export "_start")
    {setup}
    (call $exit (call $check (call $poll (i32.const 0) (i32.const 256) (i32.const {nsubs}) (i32.const 512))))))
"""


SECOND = 1_000_000_000
MONOTONIC, REALTIME, ABSTIME = 1, 0, 1


@pytest.mark.parametrize("setup", [
    f"(call $sub (i32.const 0) (i64.const {MAGIC}) (i32.const 0) (i32.const {MONOTONIC}) (i64.const {20 * SECOND}) (i32.const 0))",
    f"(call $sub (i32.const 0) (i64.const {MAGIC}) (i32.const 0) (i32.const {MONOTONIC})"
    f" (i64.add (call $now (i32.const {MONOTONIC})) (i64.const {20 * SECOND})) (i32.const {ABSTIME}))",
    f"(call $sub (i32.const 0) (i64.const {MAGIC}) (i32.const 0) (i32.const {REALTIME})"
    f" (i64.add (call $now (i32.const {REALTIME})) (i64.const {20 * SECOND})) (i32.const {ABSTIME}))",
    f"(call $sub (i32.const 0) (i64.const {MAGIC}) (i32.const 0) (i32.const {MONOTONIC}) (i64.const -1) (i32.const 0))",
], ids=["relative", "absolute-monotonic", "absolute-realtime", "forever"])
def test_poll_oneoff_with_a_long_clock_stops_at_the_limit(setup: str) -> None:
    r, elapsed = timed(lambda: run_wasm(poll_module(setup, 1), limits=Limits(timeout_s=1)))
    assert r.stop == "timeout", (r.stop, r.exit_code, r.detail)
    assert elapsed < 1 + SLACK_S


@pytest.mark.parametrize(("setup", "nsubs", "expect_type", "at_least_s"), [
    (f"(call $sub (i32.const 0) (i64.const {MAGIC}) (i32.const 0) (i32.const {MONOTONIC})"
     f" (i64.const {SECOND // 20}) (i32.const 0))", 1, 0, 0.05),
    (f"(call $sub (i32.const 0) (i64.const {MAGIC}) (i32.const 0) (i32.const {MONOTONIC})"
     f" (i64.add (call $now (i32.const {MONOTONIC})) (i64.const {SECOND // 20})) (i32.const {ABSTIME}))", 1, 0, 0.05),
    # the earlier of two clocks fires, alone
    (f"(call $sub (i32.const 0) (i64.const 7) (i32.const 0) (i32.const {MONOTONIC}) (i64.const {20 * SECOND}) (i32.const 0))"
     f" (call $sub (i32.const 48) (i64.const {MAGIC}) (i32.const 0) (i32.const {MONOTONIC})"
     f" (i64.const {SECOND // 20}) (i32.const 0))", 2, 0, 0.05),
    # a descriptor is ready at once, before a long clock
    (f"(call $sub (i32.const 0) (i64.const 7) (i32.const 0) (i32.const {MONOTONIC}) (i64.const {20 * SECOND}) (i32.const 0))"
     f" (call $sub (i32.const 48) (i64.const {MAGIC}) (i32.const 1) (i32.const 0) (i64.const 0) (i32.const 0))", 2, 1, 0.0),
], ids=["relative-50ms", "absolute-50ms", "earliest-of-two", "fd-before-clock"])
def test_poll_oneoff_returns_the_event_that_fired(setup: str, nsubs: int, expect_type: int, at_least_s: float) -> None:
    r, elapsed = timed(lambda: run_wasm(poll_module(setup, nsubs, expect_type), limits=Limits(timeout_s=10)))
    assert (r.stop, r.exit_code) == ("ok", 0), (r.stop, r.exit_code, r.detail)
    assert at_least_s <= elapsed < 5


@pytest.mark.parametrize(("setup", "nsubs"), [
    ("", 0),
    (f"(call $sub (i32.const 0) (i64.const {MAGIC}) (i32.const 7) (i32.const 0) (i64.const 0) (i32.const 0))", 1),
    (f"(call $sub (i32.const 0) (i64.const {MAGIC}) (i32.const 0) (i32.const 2) (i64.const {SECOND}) (i32.const 0))", 1),
], ids=["no-subscriptions", "unknown-tag", "cpu-time-clock"])
def test_poll_oneoff_refuses_what_wasi_refuses(setup: str, nsubs: int) -> None:
    r = run_wasm(poll_module(setup, nsubs), limits=Limits(timeout_s=5))
    assert r.exit_code == 50 + 28, (r.stop, r.exit_code, r.detail)  # EINVAL, as wasmtime answers


# -- output is bounded where it is written ------------------------------------------------------------
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_flood_of_output_is_cut_off_at_max_file_bytes(stream: str, wasm_cache: Path, private_tmp: Path) -> None:
    cap = 1 << 20
    limits = Limits(timeout_s=5, max_file_bytes=cap, max_output_bytes=64 << 10)
    code = f"import sys\nwhile True:\n    sys.{stream}.write('x' * 65536)"
    with TempWatch(private_tmp) as watch:
        r, elapsed = timed(lambda: py(code, wasm_cache, limits))
    assert watch.seen == set(), "guest output went to the temp directory"
    assert r.stop == "denied" and r.detail == f"tried to write more than {cap} bytes to {stream}", r.detail
    assert elapsed < 5  # the guest's writes failed (EPIPE) and it stopped; it did not run out the clock
    text, truncated = getattr(r, stream), getattr(r, f"{stream}_truncated")
    assert truncated and MARKER in text
    assert text.startswith("x" * 1000) and len(text) < (64 << 10) + 200
    if stream == "stdout":
        assert "BrokenPipeError" in r.stderr  # the guest saw its writes refused


def test_output_under_the_cap_is_whole_and_a_cap_below_the_kept_size_still_cuts(wasm_cache: Path) -> None:
    r = py("print('a' * 5000)", wasm_cache, Limits(max_file_bytes=10_000))
    assert (r.stop, r.stdout, r.stdout_truncated) == ("ok", "a" * 5000 + "\n", False)
    r = py("print('a' * 5000)", wasm_cache, Limits(max_file_bytes=1000))
    assert r.stop == "denied" and r.stdout_truncated and r.stdout.startswith("a" * 1000)
    assert not r.stdout.startswith("a" * 1001)


def test_runs_leave_no_file_descriptor_or_thread(wasm_cache: Path, private_tmp: Path) -> None:
    fd_dir = "/proc/self/fd"  # Linux, as the sandbox itself requires
    big = bytes(range(256)) * (12 << 10)  # 3 MiB: more than a pipe holds
    py("print(1)", wasm_cache, Limits())  # the first run in a process may open wasmtime's own descriptors
    fds_before, pipes_before = len(os.listdir(fd_dir)), pipes()
    with TempWatch(private_tmp) as watch:
        read_all = py("import sys, zlib\ndata = sys.stdin.buffer.read()\nprint(len(data), zlib.crc32(data))",
                      wasm_cache, Limits(), stdin=big)
        never_read = py("print('ignored')", wasm_cache, Limits(), stdin=big)
        flood = py("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", wasm_cache,
                   Limits(timeout_s=5, max_file_bytes=1 << 20))
        asleep = py("import sys, time\nprint('before', flush=True)\ntime.sleep(20)", wasm_cache, Limits(timeout_s=1), stdin=big)
        crashed = py("raise SystemExit(3)", wasm_cache, Limits())
    assert read_all.stdout == f"{len(big)} {zlib.crc32(big)}\n"
    assert never_read.stop == "ok" and never_read.stdout == "ignored\n"
    assert flood.stop == "denied"
    assert asleep.stop == "timeout" and asleep.stdout == "before\n"
    assert crashed.stop == "crashed" and crashed.exit_code == 3
    assert watch.seen == set(), f"runs created temporary files: {watch.seen}"
    assert pipes() == pipes_before
    assert len(os.listdir(fd_dir)) == fds_before
    assert not [t.name for t in threading.enumerate() if t.name.startswith("colony-wasi")]


# -- nested cartridge calls share their caller's deadline ---------------------------------------------
def relay(first: str, then: str) -> str:
    """A WAT cartridge that calls ``first``, then ``then``, then spins until its own deadline."""
    return f"""(module
  (import "colony" "call" (func $call (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{first}")
  (data (i32.const 64) "{then}")
  (func (export "alloc") (param i32) (result i32) (i32.const 4096))
  (func (export "handle") (param i32 i32) (result i64)
    (drop (call $call (i32.const 0) (i32.const {len(first)}) (i32.const 0) (i32.const 0) (i32.const 128) (i32.const 64)))
    (drop (call $call (i32.const 64) (i32.const {len(then)}) (i32.const 0) (i32.const 0) (i32.const 128) (i32.const 64)))
    (loop $spin (br $spin))
    (i64.const 0)))
"""


SPIN = ('(module (memory (export "memory") 1) (func (export "alloc") (param i32) (result i32) (i32.const 0))'
        ' (func (export "handle") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0)))')
SLEEPY = "def handle(request, kv, log):\n    import time\n    time.sleep(30)\n    return 'late'\n"


@pytest.fixture
def db(wasm_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("COLONY_SANDBOX_CACHE_DIR", str(wasm_cache))
    database = open_database(Settings().db_path)
    yield database
    database.close()


def test_a_chain_of_nested_calls_ends_within_the_first_callers_limit(db: Database) -> None:
    limit = 1.5
    svc = Cartridges(db, Settings(cartridge_timeout_s=limit, sandbox_python_tier="wasm"))
    svc.deploy("sleepy", SLEEPY, lang="python")
    svc.deploy("spin", SPIN, lang="wat")
    svc.deploy("relay-b", relay("sleepy", "spin"), lang="wat")
    svc.deploy("relay-a", relay("sleepy", "relay-b"), lang="wat")
    svc.call("sleepy", CartridgeRequest())  # warm: the first Python call in a process loads the interpreter
    outcome, elapsed = timed(lambda: svc.call("relay-a", CartridgeRequest()))
    # Each level sleeps or spins until it is stopped: with a full limit per level this took 3 limits.
    assert outcome.stop == "timeout" and outcome.response.status == 504
    assert elapsed < limit + 1.0, f"the chain took {elapsed:.1f} s under a {limit} s limit"
    callee = db.one("SELECT calls FROM cartridge_versions WHERE slug = 'sleepy' AND version = 1")
    assert callee is not None and callee["calls"] >= 2  # the nested call did run (and was stopped)
