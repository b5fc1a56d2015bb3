"""Benchmark the colony: partitioned-benchmark throughput with 1 vs 3 nodes, how soon a new node is useful,
and what ledger sync costs per 1,000 entries.

Run with ``.venv/bin/python bench/bench_colony.py [--problems 18] [--delay 0.5] [--heartbeat 0.5]
[--sync-accounts 1000] [--sync-transfers 2000] [--no-sync]``.

Every node is a real ``colony up`` process on loopback with its own home, keys and port; each has a
scripted model server of its own whose every reply waits ``--delay`` seconds, a stand-in for model
latency (each node's model is a separate endpoint, as on separate machines). What is measured:

1. **Throughput**: problems per second of a partitioned coding-benchmark run (`colony bench coding
   --colony`: the first ``--problems`` of Colony's own problems; every problem is an agent turn, one
   model reply, then the hidden tests in the sandbox) through one node alone and through a colony of
   three, from the request on the coordinating node to the merged run. Auctioned tasks per second are
   not the measure here: a cross-node auction lasts its commit and reveal phases by design, so its rate
   says how those were set, not what the colony can do.
2. **A new node becoming useful**: ``colony spawn`` from the queen of the three (`colony.federation.spawn`)
   → the child joined → the queen has its first announcement → the queen counts it live → a colony run
   asked right then gets the child's first verdict.
3. **Sync cost per 1,000 ledger entries**: `bench_sync` (its own table, smaller by default here).

Keys use test-strength scrypt (``COLONY_INSECURE_TEST_KDF``): a node's first key derivation is not what
is measured. Prints the machine and its load: the figures are only as quiet as the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import bench_sync
from _stats import machine
from colony.bench import own_problems
from colony.bench.runner import solution_path
from colony.config import Settings
from colony.federation.spawn import spawn
from colony.server.auth import load_or_create_token
from colony.server.run import free_port
from colony.testing import Reply, ScriptedModelServer

T = TypeVar("T")
PROBLEMS = sorted(own_problems(), key=lambda p: p.id)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) / {five:.2f} (5 min)"


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60.0, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (httpx.HTTPError, KeyError, ValueError):
            found = None
        if found:
            return found
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def scripted(delay: float) -> ScriptedModelServer:
    """A model that answers each problem with its known-good solution after ``delay`` seconds."""
    def answer(body: dict[str, Any]) -> Reply:
        asked = json.dumps(body["messages"])
        for p in PROBLEMS:
            if f"`{solution_path(p)}`" in asked:
                return Reply.text(f"```python\n{p.solution}```", delay_s=delay)
        return Reply.text("Nothing to do.", delay_s=delay)

    return ScriptedModelServer(answer).start()


class Proc:
    """One ``colony up`` with its own home, passphrase file, port and scripted model."""

    def __init__(self, root: Path, name: str, env: dict[str, str], model: ScriptedModelServer,
                 prepare: Callable[[Settings], None] | None = None) -> None:
        self.name, self.home, self.port = name, root / name, free_port("127.0.0.1")
        root.mkdir(parents=True, exist_ok=True)
        secret = root / f"{name}.passphrase"
        secret.write_text(secrets.token_urlsafe(24) + "\n")
        secret.chmod(0o600)
        self.passphrase = secret
        self.env = {**env, "COLONY_HOME": str(self.home), "COLONY_KEY_PASSPHRASE_FILE": str(secret),
                    "COLONY_MODEL_BASE_URL": model.base_url}
        self.home.mkdir(parents=True)
        if prepare is not None:  # agents, wallets, stake: written before the node opens its database
            prepare(Settings(home=self.home, key_passphrase_file=secret))
        log = open(root / f"{name}.log", "ab")  # noqa: SIM115 - the child writes it
        self.proc = subprocess.Popen([sys.executable, "-m", "colony", "up", "--port", str(self.port)], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.pubkey = ""
        self.started = time.perf_counter()
        self.ready_s = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> Proc:
        self.pubkey = wait_for(f"{self.name} to answer", lambda: str(
            httpx.get(f"{self.url}/federation/v1/hello", timeout=2).json()["pubkey"]))
        self.ready_s = time.perf_counter() - self.started
        return self

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        token = load_or_create_token(self.home)[0]
        r = httpx.request(method, f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=15,
                          **kwargs)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@contextmanager
def colony(root: Path, names: list[str], env: dict[str, str], delay: float,
           model: Callable[[float], ScriptedModelServer] = scripted,
           prepare: Callable[[str, Settings], None] | None = None) -> Iterator[list[Proc]]:
    """Nodes that all know each other, a queen chosen and everyone live in her view.

    Each node gets its own ``model(delay)``; ``prepare(name, settings)`` runs before a node starts."""
    models = [model(delay) for _ in names]
    nodes = [Proc(root, name, env, m, None if prepare is None else (lambda s, n=name: prepare(n, s)))
             for name, m in zip(names, models, strict=True)]
    try:
        for n in nodes:
            n.ready()
        for joiner in nodes[1:]:
            for host in nodes[:nodes.index(joiner)]:
                token = host.api("POST", "/api/v1/peers/invites", json={})["token"]
                joiner.api("POST", "/api/v1/peers", json={"url": host.url, "invite": token, "pubkey": host.pubkey})
        if len(nodes) > 1:
            queen = min(n.pubkey for n in nodes)
            wait_for("a queen and everyone live", lambda: all(
                (s := n.api("GET", "/api/v1/peers/status"))["queen"] == queen and len(s["live"]) == len(nodes) - 1
                for n in nodes))
        yield nodes
    finally:
        for n in nodes:
            n.stop()
        for m in models:
            m.stop()


def colony_run(coordinator: Proc, problems: int) -> tuple[float, dict[str, Any]]:
    """Ask for a partitioned run and wait for it to merge; returns (wall seconds, the run)."""
    started = time.perf_counter()
    run = coordinator.api("POST", "/api/v1/bench/colony-runs", json={"suite": "colony", "limit": problems,
                                                                     "problem_timeout_s": 120})["id"]

    def merged() -> dict[str, Any] | None:
        detail: dict[str, Any] = coordinator.api("GET", f"/api/v1/bench/colony-runs/{run}")
        return detail if detail["state"] == "merged" else None

    detail = wait_for("the merged run", merged, timeout=600)
    return time.perf_counter() - started, detail


def throughput(root: Path, env: dict[str, str], problems: int, delay: float) -> dict[int, tuple[float, dict[str, Any]]]:
    out = {}
    for size in (1, 3):
        with colony(root / f"c{size}", [f"n{i + 1}" for i in range(size)], env, delay) as nodes:
            queen = min(nodes, key=lambda n: n.pubkey)
            out[size] = colony_run(queen, problems)
            print(f"  {size} node(s): {problems} problems in {out[size][0]:.2f} s "
                  f"({out[size][1]['summary']['passed']}/{problems} passed)", flush=True)
    return out


def new_node(root: Path, env: dict[str, str], problems: int, delay: float) -> dict[str, float]:
    """Spawn a fourth node from the queen of three; the time to each step, from the spawn."""
    marks: dict[str, float] = {}
    child_model = scripted(delay)
    with colony(root / "grow", ["n1", "n2", "n3"], env, delay) as nodes:
        marks["(for scale: a plain `colony up` answering its hello, slowest of 3)"] = max(n.ready_s for n in nodes)
        queen = min(nodes, key=lambda n: n.pubkey)
        parent = Settings(home=queen.home, key_passphrase_file=queen.passphrase)
        saved = dict(os.environ)
        os.environ.update({**env, "COLONY_MODEL_BASE_URL": child_model.base_url})
        t0 = time.perf_counter()
        try:
            child = spawn(parent, "n4")
        finally:
            os.environ.clear()
            os.environ.update(saved)
        marks["joined (spawn returned)"] = time.perf_counter() - t0
        try:
            def peer() -> dict[str, Any] | None:
                return next((p for p in queen.api("GET", "/api/v1/peers")["peers"] if p["pubkey"] == child.pubkey), None)

            wait_for("the queen to hear the child", lambda: (p := peer()) is not None and p["last_seen"] is not None)
            marks["first announcement seen by the parent"] = time.perf_counter() - t0
            wait_for("the child live in the queen's view",
                     lambda: child.pubkey in queen.api("GET", "/api/v1/peers/status")["live"])
            marks["live in the queen's view"] = time.perf_counter() - t0
            run = queen.api("POST", "/api/v1/bench/colony-runs", json={"suite": "colony", "limit": problems,
                                                                       "problem_timeout_s": 120})["id"]
            wait_for("the child's first verdict", lambda: any(
                r["node"] == child.pubkey for r in queen.api("GET", f"/api/v1/bench/colony-runs/{run}")["results"]),
                timeout=300)
            marks["first shard verdict from it"] = time.perf_counter() - t0
        finally:
            with suppress(ProcessLookupError):
                os.kill(child.pid, 15)
            child_model.stop()
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=18, help="problems per partitioned run")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds each scripted model reply takes")
    parser.add_argument("--heartbeat", type=float, default=0.5, help="COLONY_FEDERATION_HEARTBEAT_S of every node")
    parser.add_argument("--sync-accounts", type=int, default=1_000)
    parser.add_argument("--sync-transfers", type=int, default=2_000)
    parser.add_argument("--no-sync", action="store_true", help="skip the ledger sync table")
    args = parser.parse_args()
    print(f"machine: {machine()}, {_load()}")
    print(f"scripted model: {args.delay:.2f} s per reply · heartbeat {args.heartbeat:.2f} s · "
          f"{args.problems} problems per run\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="colony-bench-colony-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLONY_")}
        env.update(COLONY_FEDERATION_HEARTBEAT_S=str(args.heartbeat), COLONY_INSECURE_TEST_KDF="true",
                   COLONY_AUTODETECT_LOCAL_MODELS="false", COLONY_MODEL_NAME="scripted", COLONY_LOG_LEVEL="WARNING",
                   COLONY_RETRY_BASE_DELAY_S="0.01", XDG_CONFIG_HOME=str(root / "config"))
        print("(1) partitioned benchmark throughput", flush=True)
        runs = throughput(root, env, args.problems, args.delay)
        print("(2) a new node becoming useful", flush=True)
        marks = new_node(root, env, args.problems, args.delay)
        one, three = runs[1][0], runs[3][0]
        print("\n| measure | value |\n|---|---|")
        print(f"| partitioned run, 1 node: {args.problems} problems | {one:.2f} s · {args.problems / one:.2f} problems/s |")
        nodes = runs[3][1]["summary"]["nodes"]
        split = "/".join(str(n["solved"]) for n in nodes.values())
        print(f"| partitioned run, 3 nodes: {args.problems} problems (split {split}) | {three:.2f} s · "
              f"{args.problems / three:.2f} problems/s |")
        print(f"| speed-up, 3 nodes vs 1 | {one / three:.2f}× |")
        for label, at in marks.items():
            print(f"| new node: {label if label.startswith('(') else 'spawn → ' + label} | {at:.2f} s |")
        if not args.no_sync:
            print("\n(3) sync cost per 1,000 ledger entries (bench_sync)\n", flush=True)
            bench_sync.run(root / "sync", args.sync_accounts, args.sync_transfers, [10, 100, 1000])
    print(f"\n{_load()} at end")


if __name__ == "__main__":
    main()
