"""What every sandbox run takes (`Limits`) and gives back (`SandboxResult`), for both tiers.

One result shape for both tiers keeps the callers (cartridges, the coding benchmark, tools)
ignorant of how code was confined: they read ``stop`` and the captured output, nothing else.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, model_validator

__all__ = ["TRUNCATION_MARKER", "Limits", "SandboxResult", "StopReason", "Tier", "capability_refusal", "clip"]

#: Why a run ended. ``denied`` means the guard refused an operation (network, processes,
#: native code, introspection) or the code asked for a capability that was not granted.
StopReason = Literal["ok", "timeout", "out_of_fuel", "out_of_memory", "crashed", "denied"]
Tier = Literal["wasm", "process"]

TRUNCATION_MARKER = "\n…[truncated by the sandbox: {dropped} more bytes]"


class Limits(BaseModel):
    """Budgets for one run. Defaults suit a short function call, not a build."""

    #: Wall-clock limit: epoch interruption plus deadline-bound WASI clocks in WASM (it holds while
    #: the guest sleeps or polls), the supervisor's kill in the process tier.
    timeout_s: float = Field(default=5.0, gt=0, le=3600)
    #: Linear-memory cap (WASM) or address-space rlimit (process tier).
    memory_bytes: int = Field(default=256 << 20, ge=1 << 20)
    #: WASM instructions budget; deterministic, so it doubles as a cost unit.
    fuel: int = Field(default=50_000_000_000, ge=1)
    #: CPU seconds (RLIMIT_CPU) in the process tier.
    cpu_s: int = Field(default=5, ge=1)
    #: Processes the sandboxed user may have at once (RLIMIT_NPROC) in the process tier.
    max_processes: int = Field(default=16, ge=1)
    #: Largest file a sandboxed program may write (RLIMIT_FSIZE); also bounds what a WASI program
    #: writes to stdout and to stderr.
    max_file_bytes: int = Field(default=16 << 20, ge=0)
    #: Bytes of stdout and of stderr kept; the rest is dropped and marked.
    max_output_bytes: int = Field(default=256 << 10, ge=256)
    #: Size of the process tier's private ``/tmp``. It lives in RAM, so it is part of
    #: ``memory_bytes``: the program's address space is capped at ``memory_bytes - tmp_bytes``.
    tmp_bytes: int = Field(default=16 << 20, ge=64 << 10)

    @model_validator(mode="after")
    def _tmp_fits(self) -> Limits:
        if "tmp_bytes" not in self.model_fields_set:  # the default shrinks with a small budget
            self.tmp_bytes = max(64 << 10, min(self.tmp_bytes, self.memory_bytes // 4))
        if self.tmp_bytes > self.memory_bytes // 2:
            raise ValueError(f"tmp_bytes ({self.tmp_bytes}) must be at most half of memory_bytes ({self.memory_bytes})")
        return self


class SandboxResult(BaseModel):
    """The outcome of one sandboxed run."""

    tier: Tier
    stop: StopReason
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    #: Fuel consumed (WASM tier).
    fuel_used: int | None = None
    #: CPU seconds, user + system (process tier).
    cpu_s: float | None = None
    #: Peak linear memory (WASM) or peak resident set size (process tier), in bytes.
    peak_memory_bytes: int | None = None
    wall_ms: float = 0.0
    #: Set when the run did not happen the way it was asked, e.g. Python fell back to the process tier.
    notice: str | None = None
    #: A one-line explanation of ``stop`` (the trap, the signal, the denied operation).
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.stop == "ok"


def clip(data: bytes, limit: int, total: int | None = None) -> tuple[str, bool]:
    """Decode at most ``limit`` bytes; if more existed, append the truncation marker."""
    total = len(data) if total is None else total
    text = data[:limit].decode("utf-8", errors="replace")
    if total <= limit:
        return text, False
    return text + TRUNCATION_MARKER.format(dropped=total - limit), True


#: The last line of a Python traceback when the sandbox (not the program's logic) refused: no such
#: capability in WASI, a read-only or hidden file, no network.
_REFUSED = re.compile(
    r"^(PermissionError|OSError: \[Errno (30|44|58|76)\]|FileNotFoundError: \[Errno 44\]"
    r"|AttributeError: module '(os|_socket|socket|signal)' has no attribute"
    r"|ModuleNotFoundError: No module named '(_posixsubprocess|_ctypes|_socket|select|fcntl|_multiprocessing)'"
    r"|(ConnectionRefusedError|OSError): \[Errno (101|111|113|99)\])"
)


def capability_refusal(stderr: str) -> str | None:
    """The refused operation when a Python traceback ends in a sandbox refusal, else None."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if lines and _REFUSED.match(lines[-1]):
        return lines[-1][:300]
    return None
