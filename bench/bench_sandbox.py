"""Sandbox, cartridges and the coding harness: latency and throughput.

Run: .venv/bin/python bench/bench_sandbox.py [--calls 500] [--skip-humaneval]

  1. Warm call of a trivial WAT cartridge through HTTP GET /c/{slug} (uvicorn on loopback, a
     keep-alive client, the node token): p50 / p99. Target: p50 < 2 ms. Also the same call
     in process (no HTTP), to show where the time goes.
  2. Warm call of a trivial Python cartridge (CPython for WASI) through /c/{slug}: p50 / p99, and
     the design choices for it: deserializing python.wasm per call vs keeping the compiled
     module in memory (instances are never reused: a reused instance would carry one call's
     state into the next).
  3. Sandbox start overhead per tier: an empty WASM module, `pass` in Python for WASI, /bin/true
     under bubblewrap, `pass` in Python under bubblewrap.
  4. HumanEval: the 164 canonical solutions through the harness, 2 sandboxes at a time: wall time.
     Target: < 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import wasmtime

sys.path.insert(0, str(Path(__file__).parent))
from _stats import machine, table
from colony.bench import load_problems, verify_many
from colony.cartridges import CartridgeRequest, Cartridges
from colony.config import Settings
from colony.sandbox import Limits, WasiGrants, python_wasm_module, run_process, run_python, run_wasm, runtime
from colony.sandbox._python import python_program
from colony.store import open_database
from colony.testing import NodeServer

EXAMPLES = Path(__file__).resolve().parents[1] / "cartridges" / "examples"
PY_CARTRIDGE = 'def handle(request, kv, log):\n    return "hi"\n'


def timed(fn: Callable[[], object], n: int, warm: int = 5) -> list[float]:
    for _ in range(warm):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def cartridges(calls: int, home: Path) -> None:
    settings = Settings(home=home, autodetect_local_models=False, log_level="WARNING")
    db = open_database(settings.db_path)
    svc = Cartridges(db, settings)
    svc.deploy("hello", (EXAMPLES / "hello.wat").read_text(), lang="wat")
    svc.deploy("hello-py", PY_CARTRIDGE, lang="python")
    in_process = timed(lambda: svc.call("hello", CartridgeRequest()), calls)
    with NodeServer(settings) as node, httpx.Client(base_url=node.base_url, headers=node.auth) as client:
        def get(slug: str) -> None:
            r = client.get(f"/c/{slug}")
            assert r.status_code == 200, r.text
        def health() -> None:
            client.get("/api/v1/health").raise_for_status()
        health_http = timed(health, calls)
        wat_http = timed(lambda: get("hello"), calls)
        py_http = timed(lambda: get("hello-py"), max(20, calls // 20), warm=3)
    db.close()
    table("cartridge calls", [
        ("WAT hello, in process (Cartridges.call)", in_process),
        ("baseline: HTTP GET /api/v1/health (same server)", health_http),
        ("WAT hello, HTTP GET /c/hello", wat_http),
        ("Python hello (WASI), HTTP GET /c/hello-py", py_http),
    ], target="WAT through /c/{slug}: p50 < 2 ms")


def python_designs(cache: Path) -> None:
    rt = runtime()
    program = python_program("pass")
    grants = WasiGrants(argv=("python", "-s", "-S", "-c", program), env=(("PYTHONHASHSEED", "0"),))
    module = python_wasm_module(cache)
    cached = timed(lambda: rt.run_wasi(module, limits=Limits(), grants=grants), 20, warm=2)
    files = list(cache.glob("*.cwasm"))

    def deserialize_each_time() -> None:
        fresh = wasmtime.Module.deserialize_file(rt.engine, str(files[0]))
        rt.run_wasi(fresh, limits=Limits(), grants=grants)

    per_call = timed(deserialize_each_time, 10, warm=1)
    table("Python for WASI: module handling per call", [
        ("compiled module kept in memory, fresh instance", cached),
        ("deserialize .cwasm each call, fresh instance", per_call),
    ])


def tiers(cache: Path) -> None:
    empty = '(module (func (export "_start")))'
    table("sandbox start overhead per tier", [
        ("WASM: empty module (cached), fresh store", timed(lambda: run_wasm(empty), 200)),
        ("WASM: Python for WASI, `pass`", timed(lambda: run_python("pass", tier="wasm", cache_dir=cache), 20, 2)),
        ("process: /bin/true under bubblewrap", timed(lambda: run_process(["/bin/true"]), 30, 2)),
        ("process: Python `pass` under bubblewrap", timed(lambda: run_python("pass", tier="process"), 30, 2)),
    ])


def humaneval() -> None:
    problems = load_problems("humaneval")
    started = time.perf_counter()
    verdicts = verify_many([(p, p.solution) for p in problems], workers=2)
    wall = time.perf_counter() - started
    passed = sum(v.passed for v in verdicts)
    print(f"\nHumanEval canonical solutions ({machine()}): {passed}/{len(problems)} passed in {wall:.1f} s "
          f"(2 sandboxes at a time); target < 120 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--skip-humaneval", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="colony-bench-sandbox-") as tmp:
        home = Path(tmp) / "home"
        cache = home / "cache" / "wasm"
        t = time.perf_counter()
        python_wasm_module(cache)
        print(f"python.wasm: compile and serialize {time.perf_counter() - t:.1f} s (first use only)")
        cartridges(args.calls, home)
        python_designs(cache)
        tiers(cache)
    if not args.skip_humaneval:
        humaneval()


if __name__ == "__main__":
    main()
