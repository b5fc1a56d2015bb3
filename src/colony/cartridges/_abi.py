"""The host ABI of WASM cartridges, and the runners for both authoring languages.

A WASM cartridge (WAT text or a ``.wasm`` binary from any language) exports:

- ``memory``
- ``alloc(len: i32) -> i32`` — room for the request; the host writes the request JSON there
- ``handle(ptr: i32, len: i32) -> i64`` — returns ``(body_ptr << 32) | body_len``, the response body

and may import, from module ``colony``, only:

- ``kv_get(key_ptr, key_len, out_ptr, out_cap) -> i32``: the value's full length (copies at most
  ``out_cap`` bytes), or -1 when the key is absent
- ``kv_set(key_ptr, key_len, val_ptr, val_len) -> i32``: 0, or -1 over the KV quota
- ``log(ptr, len)``
- ``call(slug_ptr, slug_len, body_ptr, body_len, out_ptr, out_cap) -> i32``: call another
  cartridge with a POST of that body; the response body's full length, -2 past the depth limit,
  -3 when the callee failed or does not exist
- ``set_status(code)`` and ``set_header(name_ptr, name_len, val_ptr, val_len)``

The request JSON is ``{"method", "path", "headers", "body"}``. Nothing else is linked: no WASI, so a
cartridge has no files, clock, randomness or network. Host functions find the current call
through a per-thread stack, so one `Linker` serves every call and nested calls (`call`) work.

A Python cartridge defines ``handle(request, kv, log)`` returning a string body, or a dict with
``status``, ``headers`` and ``body``; ``kv`` is a dict of strings whose changes are kept. It runs
in CPython for WASI (or the process tier), so it has no ``call``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime

from colony.errors import CartridgeError, SandboxError
from colony.sandbox import Limits, SandboxResult, runtime

__all__ = ["ABI_IMPORTS", "PY_SENTINEL", "CallState", "python_cartridge_program", "run_wasm_cartridge", "validate_wasm"]

PY_SENTINEL = "\x1ecolony-cartridge-result\x1e"

_I32 = wasmtime.ValType.i32()
ABI_IMPORTS: dict[str, wasmtime.FuncType] = {
    "kv_get": wasmtime.FuncType([_I32] * 4, [_I32]),
    "kv_set": wasmtime.FuncType([_I32] * 4, [_I32]),
    "log": wasmtime.FuncType([_I32] * 2, []),
    "call": wasmtime.FuncType([_I32] * 6, [_I32]),
    "set_status": wasmtime.FuncType([_I32], []),
    "set_header": wasmtime.FuncType([_I32] * 4, []),
}


@dataclass
class CallState:
    """What one cartridge call may read and change; host functions act on the innermost one."""

    slug: str
    kv: dict[str, bytes]
    kv_quota: int
    call_other: Callable[[str, bytes], tuple[int, bytes]]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    logs: list[tuple[str, str]] = field(default_factory=list)
    sets: dict[str, bytes] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)


_local = threading.local()


def _state() -> CallState:
    stack: list[CallState] = _local.__dict__.setdefault("stack", [])
    if not stack:
        raise wasmtime.WasmtimeError("colony host function called outside a cartridge call")
    return stack[-1]


def _mem(caller: wasmtime.Caller) -> wasmtime.Memory:
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        raise wasmtime.WasmtimeError("the cartridge exports no memory")
    return memory


def _read(caller: wasmtime.Caller, ptr: int, length: int) -> bytes:
    if length < 0 or length > 16 << 20:
        raise wasmtime.WasmtimeError(f"bad length {length}")
    return bytes(_mem(caller).read(caller, ptr, ptr + length))


def _write(caller: wasmtime.Caller, ptr: int, cap: int, data: bytes) -> int:
    if cap > 0:
        _mem(caller).write(caller, data[:cap], ptr)
    return len(data)


def _kv_get(caller: wasmtime.Caller, kp: int, kl: int, op: int, cap: int) -> int:
    value = _state().kv.get(_read(caller, kp, kl).decode("utf-8", "replace"))
    return -1 if value is None else _write(caller, op, cap, value)


def _kv_set(caller: wasmtime.Caller, kp: int, kl: int, vp: int, vl: int) -> int:
    st = _state()
    key, value = _read(caller, kp, kl).decode("utf-8", "replace"), _read(caller, vp, vl)
    if sum(len(k) + len(v) for k, v in st.kv.items() if k != key) + len(key) + len(value) > st.kv_quota:
        return -1
    st.kv[key] = st.sets[key] = value
    st.deletes.discard(key)
    return 0


def _log(caller: wasmtime.Caller, ptr: int, length: int) -> None:
    st = _state()
    if len(st.logs) < 100:
        st.logs.append(("info", _read(caller, ptr, length).decode("utf-8", "replace")))


def _call(caller: wasmtime.Caller, sp: int, sl: int, bp: int, bl: int, op: int, cap: int) -> int:
    code, body = _state().call_other(_read(caller, sp, sl).decode("utf-8", "replace"), _read(caller, bp, bl))
    return code if code < 0 else _write(caller, op, cap, body)


def _set_status(caller: wasmtime.Caller, code: int) -> None:
    _state().status = code if 100 <= code <= 599 else 500


def _set_header(caller: wasmtime.Caller, np: int, nl: int, vp: int, vl: int) -> None:
    st = _state()
    if len(st.headers) < 32:
        st.headers[_read(caller, np, nl).decode("latin-1")[:128]] = _read(caller, vp, vl).decode("latin-1")[:1024]


_HOST: dict[str, Callable[..., Any]] = {
    "kv_get": _kv_get, "kv_set": _kv_set, "log": _log, "call": _call, "set_status": _set_status,
    "set_header": _set_header,
}
_linker: wasmtime.Linker | None = None
_linker_lock = threading.Lock()


def _shared_linker() -> wasmtime.Linker:
    global _linker
    with _linker_lock:
        if _linker is None:
            linker = wasmtime.Linker(runtime().engine)
            for name, ty in ABI_IMPORTS.items():
                linker.define_func("colony", name, ty, _HOST[name], access_caller=True)
            _linker = linker
        return _linker


def validate_wasm(module: wasmtime.Module) -> None:
    """Refuse a module that does not implement the ABI or imports anything outside it."""
    for imp in module.imports:
        if imp.module != "colony" or imp.name not in ABI_IMPORTS:
            raise CartridgeError(
                f"The cartridge imports {imp.module}.{imp.name}, which the host does not provide; "
                f"cartridges may import only colony.{{{', '.join(ABI_IMPORTS)}}}.", status=422)
    exports = {e.name for e in module.exports}
    missing = {"memory", "alloc", "handle"} - exports
    if missing:
        raise CartridgeError(f"The cartridge must export memory, alloc and handle; missing: {', '.join(sorted(missing))}.",
                             status=422)


def run_wasm_cartridge(
    module: wasmtime.Module, request: bytes, state: CallState, limits: Limits, max_body: int,
) -> tuple[SandboxResult, bytes]:
    """Instantiate a fresh store, pass the request, run ``handle``; return the result and body."""
    rt = runtime()
    store = rt.store(limits)
    body = b""
    instances: list[wasmtime.Instance] = []

    def run() -> None:
        nonlocal body
        instance = _shared_linker().instantiate(store, module)
        instances.append(instance)
        exports = instance.exports(store)
        alloc, handle, memory = exports["alloc"], exports["handle"], exports["memory"]
        if not (isinstance(alloc, wasmtime.Func) and isinstance(handle, wasmtime.Func)
                and isinstance(memory, wasmtime.Memory)):
            raise SandboxError("alloc and handle must be functions and memory a memory")
        ptr = alloc(store, len(request))
        memory.write(store, request, ptr)
        packed = handle(store, ptr, len(request))
        out_ptr, out_len = (packed >> 32) & 0xFFFFFFFF, packed & 0xFFFFFFFF
        if out_len > max_body:
            raise _TooLarge(out_len)
        body = bytes(memory.read(store, out_ptr, out_ptr + out_len))

    stack: list[CallState] = _local.__dict__.setdefault("stack", [])
    stack.append(state)
    try:
        result = rt.call(store, _guard_too_large(run), limits, memory=lambda: _peak(store, instances))
    finally:
        stack.pop()
    if result.exit_code == -413:
        result.stop, result.detail = "denied", f"response body over the {max_body}-byte limit"
    return result, body


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


def _guard_too_large(fn: Callable[[], None]) -> Callable[[], int | None]:
    def wrapped() -> int | None:
        try:
            fn()
        except _TooLarge:
            return -413
        return None

    return wrapped


def _peak(store: wasmtime.Store, instances: list[wasmtime.Instance]) -> int:
    if not instances:
        return 0
    memory = instances[0].exports(store).get("memory")
    return memory.data_len(store) if isinstance(memory, wasmtime.Memory) else 0


_PY_RUNNER = r'''
def __colony_run():
    import io, json, sys
    payload = json.loads(sys.stdin.read())
    kv = dict(payload["kv"])
    before = dict(kv)
    logs = []

    def log(message):
        if len(logs) < 100:
            logs.append(str(message)[:4000])

    real, sys.stdout = sys.stdout, io.StringIO()
    try:
        result = handle(payload["request"], kv, log)
    finally:
        printed, sys.stdout = sys.stdout.getvalue(), real
    if printed:
        log(printed.rstrip())
    if isinstance(result, dict):
        response = {"status": int(result.get("status", 200)), "headers": dict(result.get("headers", {})),
                    "body": result.get("body", "")}
    else:
        response = {"status": 200, "headers": {}, "body": result}
    if not isinstance(response["body"], str):
        response["body"] = json.dumps(response["body"])
        response["headers"].setdefault("content-type", "application/json")
    out = {"response": response, "logs": logs,
           "set": {k: str(v) for k, v in kv.items() if before.get(k) != v},
           "delete": [k for k in before if k not in kv]}
    sys.stdout.write(SENTINEL + json.dumps(out))
__colony_run()
'''


def python_cartridge_program(source: str) -> str:
    """The cartridge's source followed by the runner that speaks the JSON protocol on stdio."""
    return source + "\n\nSENTINEL = " + repr(PY_SENTINEL) + "\n" + _PY_RUNNER


def parse_python_output(stdout: str) -> dict[str, Any]:
    """The runner's JSON (after the sentinel), or `CartridgeError` if the cartridge broke the protocol."""
    if PY_SENTINEL not in stdout:
        raise CartridgeError("The Python cartridge produced no result (did handle() return?).", status=502)
    try:
        data: dict[str, Any] = json.loads(stdout.rsplit(PY_SENTINEL, 1)[1])
    except ValueError as exc:
        raise CartridgeError(f"The Python cartridge's result is not JSON: {exc}", status=502) from exc
    return data
