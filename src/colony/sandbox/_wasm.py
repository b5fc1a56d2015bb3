"""The WASM tier: wasmtime with fuel, a memory cap, a wall clock, and no capabilities by default.

One `WasmRuntime` per process holds the engine (fuel metering and epoch interruption switched
on), a timer thread that advances the epoch every `EPOCH_TICK_S`, and a two-level module cache:
compiled modules in memory, serialized modules on disk under ``$COLONY_HOME/cache/wasm`` keyed by
the SHA-256 of the module, the wasmtime version and the engine settings — so a warm call never
compiles, and a new process only deserializes.

Each run gets a fresh `Store` (fresh memory, fresh fuel): instances are never reused between
calls, so one call cannot leave state for the next. WASI is linked only when a run asks for it,
and then with nothing but argv, stdin and captured stdout/stderr; directories are preopened only
when explicitly granted.

How the limits hold whatever the guest does:

- **Wall clock.** Epoch interruption stops WebAssembly code, but not a guest blocked in a host
  call: wasmtime's ``poll_oneoff`` (behind ``time.sleep``, ``select``, ``poll``) sleeps in native
  code where no epoch check runs, so a guest asleep for an hour would hold its caller for an hour.
  Each WASI run therefore shadows ``poll_oneoff`` with `WallClock.poll_oneoff`, which sleeps at
  most until the run's own deadline and then traps (``stop="timeout"``); ``clock_time_get`` is
  shadowed too, so an absolute wake-up time the guest computed from its monotonic clock means the
  same instant on the host. The other blocking calls cannot outlast the run: stdin is a pipe the
  host keeps fed and closes, stdout and stderr are pipes the host keeps draining, and no sockets
  exist (a granted directory is trusted not to hold FIFOs or devices, which could block an open
  or a read). The epoch timer catches up after a late wake-up, so a busy host stretches no
  deadline.
- **Output.** Guest output never touches the disk. stdout and stderr are pipes (wasmtime opens
  ``/dev/fd/N``) drained by one thread per run into memory: the first ``max_output_bytes`` are
  kept, and past ``max_file_bytes`` the thread closes its end, so the guest's next write fails
  with EPIPE instead of filling anything. Such a run is reported as ``denied`` with a detail
  saying which stream went over, like the process tier's RLIMIT_FSIZE. After a run, the store
  (holding wasmtime's ends) is closed and the thread has ended: no file, descriptor or thread is
  left behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from colony.errors import SandboxError
from colony.sandbox._result import Limits, SandboxResult, StopReason
from colony.sandbox._wasi_clock import OutOfTime, WallClock
from colony.sandbox._wasi_stdio import Stdio

__all__ = ["EPOCH_TICK_S", "WasiGrants", "WasmRuntime", "classify_trap", "runtime"]

#: Epoch timer period: the wall-clock limit is enforced to within about this much.
EPOCH_TICK_S = 0.005
_WASMTIME_VERSION = getattr(wasmtime, "__version__", "50")


@dataclass(frozen=True)
class WasiGrants:
    """What a WASI program may touch. Empty by default; directories only when named here."""

    argv: tuple[str, ...] = ("program",)
    env: tuple[tuple[str, str], ...] = ()
    #: (host path, guest path, writable)
    dirs: tuple[tuple[str, str, bool], ...] = ()


@dataclass
class WasmRuntime:
    """Engine, epoch timer and module cache shared by every WASM run in this process."""

    engine: wasmtime.Engine = field(init=False)
    _modules: dict[str, wasmtime.Module] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _ticker: threading.Thread | None = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)

    # -- the wall clock -----------------------------------------------------------------------
    def _ensure_ticker(self) -> None:
        if self._ticker is not None and self._ticker.is_alive():
            return
        with self._lock:
            if self._ticker is not None and self._ticker.is_alive():
                return
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="colony-wasm-epoch", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        # The epoch follows the real clock, not the number of wake-ups: a tick thread woken late
        # (GIL contention, a loaded host) catches up, so deadlines are not stretched by load.
        origin, ticks = time.monotonic(), 0
        while not self._stop.wait(EPOCH_TICK_S):
            due = int((time.monotonic() - origin) / EPOCH_TICK_S)
            while ticks < due:
                self.engine.increment_epoch()
                ticks += 1

    def close(self) -> None:
        """Stop the epoch thread (runs started afterwards restart it)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(1.0)
            self._ticker = None

    # -- modules --------------------------------------------------------------------------------
    def module(self, wasm: bytes | str, *, cache_dir: Path | None = None, key: str | None = None) -> wasmtime.Module:
        """A compiled module for WASM bytes or WAT text, from memory, then disk, then compiling.

        Raises:
            SandboxError: the module does not validate or compile; the message says where.
        """
        data = wasm.encode() if isinstance(wasm, str) else wasm
        digest = key or hashlib.sha256(data).hexdigest()
        path = _disk_path(cache_dir, digest)
        cached = self._modules.get(digest)
        if cached is not None:
            return _kept_on_disk(cached, path)
        module: wasmtime.Module | None = None
        if path is not None and path.exists():
            try:
                module = wasmtime.Module.deserialize_file(self.engine, str(path))
            except wasmtime.WasmtimeError:
                path.unlink(missing_ok=True)  # stale or corrupt: recompile below
        if module is None:
            try:
                module = wasmtime.Module(self.engine, wasm)
            except wasmtime.WasmtimeError as exc:
                raise SandboxError(f"The WASM module does not compile: {_first_line(exc)}") from exc
            if path is not None:
                _atomic_write(path, module.serialize())
        self._modules[digest] = module
        return module

    def module_from_file(self, path: Path, *, cache_dir: Path | None = None) -> wasmtime.Module:
        """A compiled module for a large ``.wasm`` file, keyed by its size and mtime (not re-hashed)."""
        st = path.stat()
        key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
        cached = self._modules.get(key)
        if cached is not None:  # found without reading (or hashing) the large file again
            return _kept_on_disk(cached, _disk_path(cache_dir, key))
        return self.module(path.read_bytes(), cache_dir=cache_dir, key=key)

    # -- running --------------------------------------------------------------------------------
    def store(self, limits: Limits) -> wasmtime.Store:
        """A fresh store with the run's fuel, memory cap and wall-clock deadline."""
        self._ensure_ticker()
        store = wasmtime.Store(self.engine)
        store.set_fuel(limits.fuel)
        store.set_limits(memory_size=limits.memory_bytes, instances=4, tables=4, memories=1)
        store.set_epoch_deadline(max(1, round(limits.timeout_s / EPOCH_TICK_S)))
        return store

    def run_wasi(
        self, module: wasmtime.Module, *, stdin: bytes = b"", limits: Limits | None = None,
        grants: WasiGrants | None = None,
    ) -> SandboxResult:
        """Run a WASI command module's ``_start`` with only the given grants.

        stdin, stdout and stderr are pipes served from memory (`Stdio`), and the guest's clocks
        and sleeps go through `WallClock`, so the run ends at its deadline even while blocked.
        """
        limits = limits or Limits()
        grants = grants or WasiGrants()
        wasi = wasmtime.WasiConfig()
        stdio = Stdio(stdin, keep=limits.max_output_bytes, cap=limits.max_file_bytes)
        try:
            wasi.argv = list(grants.argv)
            wasi.env = [list(pair) for pair in grants.env]
            stdio.attach(wasi)
            for host, guest, writable in grants.dirs:
                wasi.preopen_dir(host, guest, fs_mutable=writable)
            store = self.store(limits)
            clock = WallClock(limits.timeout_s)  # the same instant as the store's epoch deadline
            try:
                store.set_wasi(wasi)
                linker = wasmtime.Linker(self.engine)
                linker.define_wasi()
                clock.shadow(linker)
                stdio.start()
                instance: list[wasmtime.Instance] = []
                result = self.call(store, lambda: _start(linker, store, module, instance), limits,
                                   memory=lambda: _memory_size(store, instance))
            finally:
                store.close()  # now, not at garbage collection: it holds wasmtime's ends of the pipes
        finally:
            wasi.close()  # a no-op once the store took it; frees its descriptors if it never did
            stdio.finish()
        if clock.expired and result.stop != "timeout":
            # wasmtime-py keeps a host function's exception in one process-wide slot until a call
            # returns, so a concurrent run's trap can take its place; the run's own flag says
            # whether its deadline stopped it.
            result.stop, result.detail = "timeout", clock.reason
        result.stdout, result.stdout_truncated = stdio.stdout.text()
        result.stderr, result.stderr_truncated = stdio.stderr.text()
        over = [sink.name for sink in (stdio.stdout, stdio.stderr) if sink.over]
        if over:
            note = f"tried to write more than {limits.max_file_bytes} bytes to {' and '.join(over)}"
            if result.stop in ("ok", "crashed"):  # a crash here is the guest meeting its EPIPE
                result.stop, result.detail = "denied", note
            else:
                result.detail = f"{result.detail}; {note}"
        return result

    def call(self, store: wasmtime.Store, fn: Callable[[], int | None], limits: Limits,
             memory: Callable[[], int] | None = None) -> SandboxResult:
        """Run ``fn`` (which calls into ``store``) and turn how it ended into a `SandboxResult`."""
        started = time.perf_counter()
        exit_code: int | None = 0
        stop: StopReason = "ok"
        detail = ""
        try:
            returned = fn()
            if isinstance(returned, int):
                exit_code = returned
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
            stop = "ok" if exc.code == 0 else "crashed"
            detail = "" if exc.code == 0 else f"exit status {exc.code}"
        except OutOfTime as exc:
            exit_code = None
            stop, detail = "timeout", str(exc)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            exit_code = None
            stop, detail = classify_trap(exc, limits)
        wall_ms = (time.perf_counter() - started) * 1000
        used = limits.fuel - store.get_fuel()
        peak = memory() if memory is not None else None
        if stop == "crashed" and peak is not None and peak + (64 << 10) > limits.memory_bytes:
            stop, detail = "out_of_memory", f"reached its {limits.memory_bytes >> 20} MiB memory cap ({detail})"
        return SandboxResult(tier="wasm", stop=stop, exit_code=exit_code, fuel_used=used,
                             peak_memory_bytes=peak, wall_ms=round(wall_ms, 3), detail=detail)


def _start(linker: wasmtime.Linker, store: wasmtime.Store, module: wasmtime.Module,
           out: list[wasmtime.Instance]) -> None:
    instance = linker.instantiate(store, module)
    out.append(instance)
    start = instance.exports(store).get("_start")
    if not isinstance(start, wasmtime.Func):
        raise SandboxError("The module is not a WASI command: it exports no _start function.")
    start(store)


def _memory_size(store: wasmtime.Store, instance: list[wasmtime.Instance]) -> int:
    """Linear memory only grows, so its size after the run is the run's peak."""
    if not instance:
        return 0
    memory = instance[0].exports(store).get("memory")
    return memory.data_len(store) if isinstance(memory, wasmtime.Memory) else 0


def classify_trap(exc: Exception, limits: Limits) -> tuple[StopReason, str]:
    """Name why a call into WASM stopped, from wasmtime's trap code or message."""
    code = exc.trap_code if isinstance(exc, wasmtime.Trap) else None
    text = str(exc)
    if code == wasmtime.TrapCode.OUT_OF_FUEL or "all fuel consumed" in text:
        return "out_of_fuel", f"used its budget of {limits.fuel} fuel"
    if code == wasmtime.TrapCode.INTERRUPT or "interrupt" in text:
        return "timeout", f"stopped after the wall-clock limit of {limits.timeout_s:g} s"
    if "unknown import" in text or "incompatible import" in text:
        return "denied", f"asked for a capability that was not granted: {_first_line(exc)}"
    if code == wasmtime.TrapCode.STACK_OVERFLOW:
        return "crashed", "stack overflow"
    if "memory" in text and ("limit" in text or "grow" in text or "resource" in text):
        return "out_of_memory", _first_line(exc)
    return "crashed", _first_line(exc)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _atomic_write(path: Path, data: bytes | bytearray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".cwasm")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _kept_on_disk(module: wasmtime.Module, path: Path | None) -> wasmtime.Module:
    """A module compiled earlier for another cache directory: this one gets its copy too, so a
    later process using it starts warm."""
    if path is not None and not path.exists():
        _atomic_write(path, module.serialize())
    return module


def _disk_path(cache_dir: Path | None, digest: str) -> Path | None:
    if cache_dir is None:
        return None
    fingerprint = hashlib.sha256(f"{digest}:{_WASMTIME_VERSION}:fuel:epoch".encode()).hexdigest()[:40]
    return cache_dir / f"{fingerprint}.cwasm"


_RUNTIME: WasmRuntime | None = None
_RUNTIME_LOCK = threading.Lock()


def runtime() -> WasmRuntime:
    """The process's runtime: one engine (modules are tied to it) and one epoch thread."""
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            _RUNTIME = WasmRuntime()
        return _RUNTIME
