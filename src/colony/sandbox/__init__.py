"""Sandboxed execution: one result shape, two tiers.

- **WASM** (`run_wasm`, `run_python` with ``tier="wasm"``): wasmtime with deterministic fuel, a
  linear-memory cap, a wall clock that holds even while the guest blocks in WASI, output bounded as
  it is written, and no filesystem, network or process access unless a run grants it. Python runs
  here inside a pinned CPython for WASI.
- **Process** (`run_process`, `run_python` with ``tier="process"``): a native subprocess under
  bubblewrap as pid 1 of its own namespaces — no network, only ``/usr`` and a few ``/etc`` files
  bound, a size-capped private ``/tmp``, an empty environment, rlimits, and a supervisor outside
  the sandbox that enforces the wall clock and reaps everything.

Both return a `SandboxResult` whose ``stop`` says why the run ended (ok, timeout, out_of_fuel,
out_of_memory, crashed, denied). This package imports only `colony.errors`; callers (cartridges,
the coding benchmark, tools) pass it the paths it needs.
"""

from __future__ import annotations

from pathlib import Path

from colony.sandbox._guard import DENIED_EXIT, DENIED_MARKER
from colony.sandbox._process import process_tier_available, run_process, sandbox_python
from colony.sandbox._python import (
    PythonTier,
    check_python_source,
    python_wasm_error,
    python_wasm_module,
    run_python,
)
from colony.sandbox._result import TRUNCATION_MARKER, Limits, SandboxResult, StopReason, Tier
from colony.sandbox._wasm import WasiGrants, WasmRuntime, classify_trap, runtime

__all__ = [
    "DENIED_EXIT",
    "DENIED_MARKER",
    "TRUNCATION_MARKER",
    "Limits",
    "PythonTier",
    "SandboxResult",
    "StopReason",
    "Tier",
    "WasiGrants",
    "WasmRuntime",
    "check_python_source",
    "classify_trap",
    "process_tier_available",
    "python_wasm_error",
    "python_wasm_module",
    "run_process",
    "run_python",
    "run_wasm",
    "runtime",
    "sandbox_python",
]


def run_wasm(
    wasm: bytes | str, *, stdin: bytes = b"", limits: Limits | None = None, grants: WasiGrants | None = None,
    cache_dir: Path | None = None,
) -> SandboxResult:
    """Compile (or fetch from cache) a WASI command module, WASM bytes or WAT text, and run it."""
    rt = runtime()
    return rt.run_wasi(rt.module(wasm, cache_dir=cache_dir), stdin=stdin, limits=limits, grants=grants)
