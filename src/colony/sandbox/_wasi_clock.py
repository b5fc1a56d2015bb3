"""The clocks a WASI guest reads and sleeps on, bound to its run's deadline.

Epoch interruption stops WebAssembly code, not a guest blocked in a host call: wasmtime's own
``poll_oneoff`` (behind ``time.sleep``, ``select``, ``poll``) sleeps in native code where no epoch
check runs. `WallClock` shadows ``poll_oneoff`` and ``clock_time_get`` for one run, so a sleep lasts
at most until the run's deadline and then traps (`OutOfTime`), and an absolute wake-up time the
guest computed from its monotonic clock means the same instant on the host.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

import wasmtime

__all__ = ["OutOfTime", "WallClock"]

_WASI = "wasi_snapshot_preview1"
_I32, _I64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
_ERRNO_BADF, _ERRNO_INVAL = 8, 28
_CLOCK_REALTIME, _CLOCK_MONOTONIC = 0, 1
_EVENT_CLOCK, _EVENT_FD_READ, _EVENT_FD_WRITE = 0, 1, 2
_ABSTIME = 1
_SUBSCRIPTION_SIZE, _EVENT_SIZE = 48, 32


class OutOfTime(Exception):
    """Raised in a host function when the run's deadline has passed; wasmtime unwinds the guest."""


@dataclass
class WallClock:
    """The clocks a WASI guest reads and sleeps on, bound to its run's deadline.

    ``poll_oneoff`` follows WASI preview1 (as wasmtime implements it) except that it never sleeps
    past the deadline: there it traps. Descriptor subscriptions are reported ready at once, as
    wasmtime does for stdio — a run has no sockets, and its pipes and files never block for long.
    (A host function cannot call wasmtime's own WASI functions, so an unknown descriptor is
    reported ready too, where wasmtime answers EBADF; the read or write that follows gets it.)
    ``clock_time_get`` is taken over as well because wasmtime's monotonic clock counts from an
    origin the host cannot read, and an absolute wake-up time (CPython's ``time.sleep`` uses one)
    must mean the same instant to both sides; here the guest's monotonic clock starts with the run.
    """

    timeout_s: float
    start_ns: int = field(default_factory=time.monotonic_ns)
    #: Set when a host function stopped the run at its deadline.
    expired: bool = False

    @property
    def deadline_ns(self) -> int:
        return self.start_ns + round(self.timeout_s * 1e9)

    @property
    def reason(self) -> str:
        return f"stopped after the wall-clock limit of {self.timeout_s:g} s"

    def shadow(self, linker: wasmtime.Linker) -> None:
        """Replace the WASI definitions of ``clock_time_get`` and ``poll_oneoff`` in ``linker``."""
        linker.allow_shadowing = True
        linker.define_func(_WASI, "clock_time_get", wasmtime.FuncType([_I32, _I64, _I32], [_I32]),
                           self.clock_time_get, access_caller=True)
        linker.define_func(_WASI, "poll_oneoff", wasmtime.FuncType([_I32] * 4, [_I32]),
                           self.poll_oneoff, access_caller=True)

    def _now(self, clock_id: int) -> int | None:
        if clock_id == _CLOCK_REALTIME:
            return time.time_ns()
        if clock_id == _CLOCK_MONOTONIC:
            return time.monotonic_ns() - self.start_ns
        return None  # the CPU-time clocks, which wasmtime does not provide either

    def _expire(self) -> OutOfTime:
        self.expired = True
        return OutOfTime(self.reason)

    def clock_time_get(self, caller: wasmtime.Caller, clock_id: int, _precision: int, out_ptr: int) -> int:
        if not 0 <= clock_id <= 3:
            raise wasmtime.WasmtimeError(f"clock_time_get: invalid clock id {clock_id}")  # wasmtime traps too
        now = self._now(clock_id)
        if now is None:
            return _ERRNO_BADF
        memory = _guest_memory(caller)
        memory.write(caller, struct.pack("<Q", now), _region(caller, memory, out_ptr, 8, 8))
        return 0

    def poll_oneoff(self, caller: wasmtime.Caller, in_ptr: int, out_ptr: int, count: int, nevents_ptr: int) -> int:
        count &= 0xFFFFFFFF
        if count == 0:
            return _ERRNO_INVAL
        memory = _guest_memory(caller)
        start = _region(caller, memory, in_ptr, count * _SUBSCRIPTION_SIZE, 8)
        subs = bytes(memory.read(caller, start, start + count * _SUBSCRIPTION_SIZE))
        out = _region(caller, memory, out_ptr, count * _EVENT_SIZE, 8)
        nevents = _region(caller, memory, nevents_ptr, 4, 4)
        entered = time.monotonic_ns()
        if entered >= self.deadline_ns:
            raise self._expire()
        clocks: list[tuple[int, int, int]] = []  # (subscription index, userdata, host monotonic ns it fires at)
        events: list[tuple[int, bytes]] = []
        for i in range(count):
            base = i * _SUBSCRIPTION_SIZE
            userdata, tag = struct.unpack_from("<QB", subs, base)
            if tag == _EVENT_CLOCK:
                (clock_id,) = struct.unpack_from("<I", subs, base + 16)
                (timeout,) = struct.unpack_from("<Q", subs, base + 24)
                (flags,) = struct.unpack_from("<H", subs, base + 40)
                now = self._now(clock_id)
                if now is None or flags & ~_ABSTIME:
                    return _ERRNO_INVAL
                clocks.append((i, userdata, entered + (timeout - now if flags & _ABSTIME else timeout)))
            elif tag in (_EVENT_FD_READ, _EVENT_FD_WRITE):
                events.append((i, _event(userdata, tag, nbytes=1)))
            else:
                return _ERRNO_INVAL
        if not events:  # only clocks: sleep until the first fires, or until the deadline and stop
            wake = min(at for _, _, at in clocks)
            _sleep_until(min(wake, self.deadline_ns))
            if wake > self.deadline_ns:
                raise self._expire()
        now = time.monotonic_ns()
        events += [(i, _event(userdata, _EVENT_CLOCK)) for i, userdata, at in clocks if at <= now]
        events.sort()
        memory.write(caller, b"".join(event for _, event in events), out)
        memory.write(caller, struct.pack("<I", len(events)), nevents)
        return 0


def _event(userdata: int, kind: int, nbytes: int = 0) -> bytes:
    """A preview1 ``event``: userdata u64, error u16, type u8, then fd_readwrite {nbytes u64, flags u16}."""
    return struct.pack("<QHBxxxxxQH6x", userdata, 0, kind, nbytes, 0)


def _sleep_until(deadline_ns: int) -> None:
    while (left := deadline_ns - time.monotonic_ns()) > 0:
        time.sleep(left / 1e9)


def _guest_memory(caller: wasmtime.Caller) -> wasmtime.Memory:
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        raise wasmtime.WasmtimeError("missing required memory export")
    return memory


def _region(caller: wasmtime.Caller, memory: wasmtime.Memory, ptr: int, length: int, align: int) -> int:
    """``ptr`` as an unsigned offset, after the checks wasmtime makes (it traps on either failure)."""
    ptr &= 0xFFFFFFFF
    if ptr % align:
        raise wasmtime.WasmtimeError(f"Pointer not aligned to {align}: {ptr}")
    if ptr + length > memory.data_len(caller):
        raise wasmtime.WasmtimeError(f"Pointer out of bounds: {ptr} + {length}")
    return ptr
