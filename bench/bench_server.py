"""Node server under load from other processes on loopback.

Run: .venv/bin/python bench/bench_server.py [--duration 10] [--streams 100]
Needs `wrk` (Debian package wrk). Starts `colony up` and a scripted model server as
subprocesses, then:
  1. wrk against GET /api/v1/health (no auth) and GET /api/v1/sessions (bearer auth):
     requests/s and p99 latency. Target: health >= 1,500 req/s with p99 < 20 ms.
  2. N concurrent SSE chat streams (POST /api/v1/chat/stream) against the scripted model:
     how many completed, wall time, and the node's resident memory before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _stats import machine
from colony.server.run import free_port

PY = sys.executable


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def wrk(url: str, duration: int, headers: dict[str, str], warmup_s: int = 2) -> tuple[float, float]:
    """Requests/s and p99 (ms) of ``url`` under wrk, after an unmeasured warm-up of the same load
    (connections opened, the endpoint's first-use work done, allocator and caches settled)."""
    args = ["wrk", "-t2", "-c32", "--latency"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    if warmup_s:
        subprocess.run([*args, f"-d{warmup_s}s", url], capture_output=True, text=True, check=True)
    out = subprocess.run([*args, f"-d{duration}s", url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    value, unit = float(p99.group(1)), p99.group(2)
    return rps, value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def streams(base: str, token: str, n: int) -> tuple[int, float]:
    async def one(client: httpx.AsyncClient, i: int) -> bool:
        async with client.stream("POST", "/api/v1/chat/stream", json={"prompt": f"stream {i}"}) as r:
            body = "".join([chunk async for chunk in r.aiter_text()])
        return '"status":"completed"' in body

    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                 timeout=120, limits=limits) as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(client, i) for i in range(n)), return_exceptions=True)
        return sum(r is True for r in results), time.perf_counter() - t0


def main(duration: int, n_streams: int, log_level: str) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    # The machine may be shared: say how busy it was, since tail latency depends on it.
    load_before = Path("/proc/loadavg").read_text().split()[0]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.json"
        script.write_text(json.dumps([{"text": "a streamed answer of a few words for the benchmark"}]))
        mport, nport = free_port("127.0.0.1"), free_port("127.0.0.1")
        env = dict(os.environ, COLONY_HOME=f"{tmp}/home", COLONY_WORKSPACE=tmp,
                   COLONY_MODEL_BASE_URL=f"http://127.0.0.1:{mport}/v1", COLONY_MODEL_NAME="scripted",
                   COLONY_LOG_LEVEL=log_level)
        model = subprocess.Popen([PY, "-m", "colony.testing", "--script", str(script),
                                  "--port", str(mport), "--repeat-last"], stdout=subprocess.DEVNULL, env=env)
        node = subprocess.Popen([PY, "-m", "colony", "up", "--port", str(nport)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{nport}"
            wait_http(f"{base}/api/v1/health")
            token = subprocess.run([PY, "-m", "colony", "token"], env=env, capture_output=True, text=True,
                                   check=True).stdout.strip()
            auth = {"Authorization": f"Bearer {token}"}
            rows = []
            rows.append(("GET /api/v1/health", *wrk(f"{base}/api/v1/health", duration, {})))
            rows.append(("GET /api/v1/sessions (auth)", *wrk(f"{base}/api/v1/sessions", duration, auth)))
            before = rss_mb(node.pid)
            done, wall = asyncio.run(streams(base, token, n_streams))
            after = rss_mb(node.pid)
        finally:
            for p in (node, model):
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
    print(f"\nNode server under load  ({machine()}; wrk -t2 -c32 -d{duration}s after a 2 s warm-up; "
          f"log level {log_level}; load average before {load_before})")
    print(f"{'endpoint':<32} {'req/s':>10} {'p99 ms':>10}")
    for name, rps, p99 in rows:
        print(f"{name:<32} {rps:>10.0f} {p99:>10.2f}")
    print("target: health >= 1500 req/s, p99 < 20 ms")
    print(f"\n{n_streams} concurrent SSE chat streams: {done} completed, {n_streams - done} dropped, "
          f"{wall:.2f} s wall; node RSS {before:.0f} MB before, {after:.0f} MB after")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--log-level", default="INFO", help="the node's COLONY_LOG_LEVEL (INFO logs every request)")
    a = parser.parse_args()
    main(a.duration, a.streams, a.log_level)
