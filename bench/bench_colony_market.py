"""Benchmark auctioned tasks per second through one node and through a colony of three.

Run with ``.venv/bin/python bench/bench_colony_market.py [--tasks 12] [--gap 1.5] [--delay 4.0]
[--commit 1] [--reveal 1] [--heartbeat 0.5] [--sizes 1,3] [--keep DIR]``.

Every node is a real ``colony up`` process on loopback (own home, keys, port, ledger) with the market
worker on, one agent of its own and its own scripted model server, whose every reply waits ``--delay``
seconds (the stand-in for model latency; separate endpoints, as on separate machines). The first node
is also the poster: ``--tasks`` tasks arrive one every ``--gap`` seconds, each put up for auction
(``--commit`` + ``--reveal`` seconds of sealed bidding, verified by unit tests in the poster's sandbox,
the winner paid from escrow — through x402 on the poster's ledger when the winner is on another node).

What spreads the work: a node runs its winners' tasks one at a time, and an agent prices the won
work it has not finished into its next bid (`colony.market.backlog`), so while the cheapest agent is
busy the next task goes to an idle one on another node. The agents' costs differ a little (3.0, 3.1,
3.2 credits), so with nothing queued the first node's agent wins. Bids are made at the start of an
auction, so what an agent knows of its load is the awards made until then: the gap between tasks
should be about an auction's length or more, or a burst is priced all at once and goes to the
cheapest (`colony.market.backlog`).

What is measured, for one node and for three: the wall time from the first post to the last task
paid, tasks per second over it, each task's time from post to paid (median, p95), and who won how
many. The arrival rate is set above what one node can run (``--gap`` < ``--delay``), so the figure is
the colony's capacity, not the arrival rate. Keys use test-strength scrypt (``COLONY_INSECURE_TEST_KDF``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _stats import machine
from bench_colony import Proc, _load, colony, wait_for
from colony.config import Settings
from colony.ledger import MICRO
from colony.market import stakes
from colony.market.cost import CostModel
from colony.market.profiles import AgentSpec, create_agent
from colony.market.service import Market
from colony.node import Node
from colony.testing import Reply, ScriptedModelServer

TESTS = ("def check(candidate):\n    assert candidate(0) == 0\n    assert candidate(123) == 6\n"
         "    assert candidate(-45) == 9\n")
ANSWER = "```python\ndef digit_sum(n):\n    return sum(int(c) for c in str(abs(n)))\n```"
COST = {"n1": 3_000_000, "n2": 3_100_000, "n3": 3_200_000}


def model(delay: float) -> ScriptedModelServer:
    return ScriptedModelServer(lambda body: Reply.text(ANSWER, delay_s=delay)).start()


def prepare(name: str, settings: Settings) -> None:
    """The node's one agent (wallet, 50 credits of stake); the first node's poster gets the budget."""
    node = Node(settings)
    try:
        market = Market(node)
        agent = f"w{name[1:]}"
        create_agent(node.keyring, AgentSpec(name=agent, persona=f"You are {agent}, a Python programmer.",
                                             skills=["python"], cost=CostModel(overhead=COST[name])))
        market.ledger.mint(node.keyring.agent(agent).public_hex, 60 * MICRO, "bench: wallet and stake")
        stakes.deposit(node, agent, 50 * MICRO)
        if name == "n1":
            market.ledger.mint(node.keyring.agent("colony").public_hex, 10_000 * MICRO, "bench: the poster's budget")
    finally:
        node.db.close()


def stream(poster: Proc, tasks: int, gap: float, commit_s: int, reveal_s: int) -> dict[str, Any]:
    """Post ``tasks`` auctions ``gap`` seconds apart; wait until each is paid."""
    posted: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(tasks):
        at = start + i * gap
        time.sleep(max(0.0, at - time.perf_counter()))
        detail = poster.api("POST", "/api/v1/market/auctions", json={
            "goal": f"Write digit_sum(n) (task {i + 1}).", "skills": ["python"], "reserve": 50 * MICRO,
            "verification": "tests", "tests": TESTS, "entry_point": "digit_sum", "commit_s": commit_s,
            "reveal_s": reveal_s})
        posted[detail["id"]] = time.perf_counter()
    paid: dict[str, float] = {}
    winners: dict[str, str] = {}

    def all_paid() -> bool:
        for auction in posted:
            if auction in paid:
                continue
            d = poster.api("GET", f"/api/v1/market/auctions/{auction}")
            if d["state"] == "paid":
                paid[auction] = time.perf_counter()
                winners[auction] = str(d.get("winner_name") or d.get("winner"))
            elif d["state"] in ("refunded", "cancelled", "void"):
                raise SystemExit(f"auction {auction[:12]} ended {d['state']}: the benchmark expects every task paid")
        return len(paid) == len(posted)

    wait_for("every task paid", all_paid, timeout=120 + tasks * 30, every=0.1)
    wall = max(paid.values()) - start
    latencies = sorted(paid[a] - posted[a] for a in posted)
    split: dict[str, int] = {}
    for w in winners.values():
        split[w] = split.get(w, 0) + 1
    return {"wall": wall, "rate": tasks / wall, "p50": statistics.median(latencies),
            "p95": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))], "split": split}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--gap", type=float, default=1.5, help="seconds between two tasks' arrival")
    parser.add_argument("--delay", type=float, default=4.0, help="seconds each scripted model reply takes")
    parser.add_argument("--commit", type=int, default=1, help="each auction's commit phase, seconds")
    parser.add_argument("--reveal", type=int, default=1, help="each auction's reveal phase, seconds")
    parser.add_argument("--heartbeat", type=float, default=0.5, help="COLONY_FEDERATION_HEARTBEAT_S of every node")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the nodes' homes and logs in this (new) directory instead of a temporary one")
    parser.add_argument("--sizes", default="1,3", help="colony sizes to run, comma-separated")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"machine: {machine()}, {_load()}")
    print(f"{args.tasks} tasks, one every {args.gap:.2f} s · model {args.delay:.2f} s per reply · "
          f"commit {args.commit} s + reveal {args.reveal} s\n", flush=True)
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="colony-bench-market-") as tmp:
        root = args.keep if args.keep is not None else Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLONY_")}
        env.update(COLONY_FEDERATION_HEARTBEAT_S=str(args.heartbeat), COLONY_INSECURE_TEST_KDF="true",
                   COLONY_AUTODETECT_LOCAL_MODELS="false", COLONY_MODEL_NAME="scripted", COLONY_LOG_LEVEL="WARNING",
                   COLONY_RETRY_BASE_DELAY_S="0.01", COLONY_MARKET_ENABLED="true", COLONY_MARKET_INTERVAL_S="0.3",
                   XDG_CONFIG_HOME=str(root / "config"))
        for size in sizes:
            names = [f"n{i + 1}" for i in range(size)]
            with colony(root / f"c{size}", names, env, args.delay, model=model, prepare=prepare) as nodes:
                poster = next(n for n in nodes if n.name == "n1")
                if size > 1:  # the poster's node knows every member's agents before the first task
                    wait_for("the members' agents", lambda p=poster, k=size - 1: len(
                        [m for m in p.api("GET", "/api/v1/peers")["peers"] if m.get("agents")]) == k)
                results[size] = stream(poster, args.tasks, args.gap, args.commit, args.reveal)
                r = results[size]
                print(f"  {size} node(s): {args.tasks} tasks in {r['wall']:.2f} s, won {r['split']}", flush=True)
    if set(sizes) != {1, 3}:
        return
    one, three = results[1], results[3]
    print("\n| measure | 1 node | 3 nodes |\n|---|---|---|")
    print(f"| wall, first post → last paid | {one['wall']:.2f} s | {three['wall']:.2f} s |")
    print(f"| tasks per second | {one['rate']:.3f} | {three['rate']:.3f} |")
    print(f"| post → paid, median | {one['p50']:.2f} s | {three['p50']:.2f} s |")
    print(f"| post → paid, p95 | {one['p95']:.2f} s | {three['p95']:.2f} s |")
    print(f"| tasks won per agent | {one['split']} | {three['split']} |")
    print(f"| speed-up, 3 nodes vs 1 | | {three['rate'] / one['rate']:.2f}× |")
    print(f"\n{_load()} at end")


if __name__ == "__main__":
    main()
