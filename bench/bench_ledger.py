"""Benchmark the credit ledger: signed transfers/s, verification rate, state-root cost per transfer.

Run with ``.venv/bin/python bench/bench_ledger.py [--transfers N] [--accounts N] [--processes N]``.

1. Transfers/s on one node: N payer-signed authorisations (signed beforehand, as clients would)
   applied one by one through `Ledger.transfer` — each one fully verified (id recomputed, BIP-340
   signature), its nonce claimed, two entries signed by the node and appended, the Merkle tree
   updated, all in one ``BEGIN IMMEDIATE`` transaction — plus p50 / p99 latency. Also the same with
   several processes applying their share concurrently on one file.
2. Verification: `colony ledger verify`'s work over the resulting database (every entry's hash
   and signature, every authorisation, chains, pairing, supply, caches), in entries/s, on one
   thread and on the default pool; and over an exported feed (JSON lines), as a replica would.
3. State root: the time the tree update takes inside each transfer (measured around the store's
   ``colony.ledger._writes._update_tree``), in µs and as a share of the transfer.

Prints the machine and its load (``os.getloadavg``) before and after: the figures are only as
quiet as the machine was.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import apsw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stats import percentile
from colony.identity import Event, SchnorrKey
from colony.ledger import (
    MICRO,
    Ledger,
    SqliteLedgerStore,
    _writes,
    export_lines,
    read_lines,
    sign_transfer,
    verify_feed,
)
from colony.store import Database, open_database


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) / {five:.2f} (5 min)"


def _events(keys: list[SchnorrKey], n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        payer, payee = rng.sample(keys, 2)
        out.append(sign_transfer(payer, payee.public_hex, rng.randint(1, MICRO)))
    return out


def _setup(path: Path, accounts: int) -> tuple[Ledger, list[SchnorrKey], SchnorrKey]:
    node = SchnorrKey.generate()
    ledger = Ledger(SqliteLedgerStore(open_database(path)), node)
    keys = [SchnorrKey.generate() for _ in range(accounts)]
    for key in keys:
        ledger.mint(key.public_hex, 10**6 * MICRO, "benchmark funds")
    return ledger, keys, node


def single(tmp: Path, transfers: int, accounts: int) -> dict[str, Any]:
    ledger, keys, _ = _setup(tmp / "single.db", accounts)
    events = _events(keys, transfers, 1)
    assert isinstance(ledger.store, SqliteLedgerStore)
    tree_s: list[float] = []
    update = _writes._update_tree

    def timed(tx: Any, written: Any) -> None:
        start = time.perf_counter()
        update(tx, written)
        tree_s.append(time.perf_counter() - start)

    _writes._update_tree = timed  # measure one step; behaviour unchanged
    latencies = []
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for event in events:
            start = time.perf_counter()
            ledger.transfer(event)
            latencies.append(time.perf_counter() - start)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        _writes._update_tree = update
    return {"ledger": ledger, "per_s": transfers / wall, "per_cpu_s": transfers / cpu,
            "p50_ms": statistics.median(latencies) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "tree_us": statistics.fmean(tree_s) * 1e6, "transfer_us": wall / transfers * 1e6}


def _apply(path: str, node_secret: str, events: list[dict[str, Any]]) -> None:
    db = Database(path)
    ledger = Ledger(SqliteLedgerStore(db), SchnorrKey(bytes.fromhex(node_secret)))
    for event in events:
        ledger.transfer(event)
    db.close()


def concurrent(tmp: Path, transfers: int, accounts: int, processes: int) -> float:
    ledger, keys, node = _setup(tmp / "multi.db", accounts)
    events = [e.model_dump() for e in _events(keys, transfers, 2)]
    ctx = multiprocessing.get_context("forkserver")
    share = -(-len(events) // processes)
    procs = [ctx.Process(target=_apply, args=(str(tmp / "multi.db"), node.secret.hex(), events[i:i + share]))
             for i in range(0, len(events), share)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    elapsed = time.perf_counter() - start
    assert ledger.verify().ok
    return transfers / elapsed


def verification(ledger: Ledger) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, threads in (("1 thread", 1), ("default threads", None)):
        best = min((ledger.verify(threads=threads) for _ in range(2)), key=lambda r: r.seconds)
        assert best.ok
        out[label] = best.entries / best.seconds
    lines = list(export_lines(ledger.store))
    start = time.perf_counter()
    feed = read_lines(lines)
    report = verify_feed(feed)
    assert report.ok
    out["exported feed (parse + verify)"] = report.entries / (time.perf_counter() - start)
    out["entries"] = report.entries
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=5000)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--processes", type=int, default=4)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"SQLite {apsw.sqlite_lib_version()}; {_load()} at start")
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        one = single(Path(tmp), args.transfers, args.accounts)
        print(f"\n1. signed transfers on one node ({args.transfers} among {args.accounts} accounts, one process)")
        print("| transfers/s (wall) | transfers per CPU-second | p50 | p99 |\n|---|---|---|---|")
        print(f"| {one['per_s']:,.0f} | {one['per_cpu_s']:,.0f} | {one['p50_ms']:.2f} ms | {one['p99_ms']:.2f} ms |")
        multi = concurrent(Path(tmp), args.transfers, args.accounts, args.processes)
        print(f"{args.processes} processes on one file: {multi:,.0f} transfers/s")
        ver = verification(one["ledger"])
        print(f"\n2. verification of {int(ver.pop('entries')):,} entries")
        print("| how | entries/s |\n|---|---|")
        for label, rate in ver.items():
            print(f"| {label} | {rate:,.0f} |")
        print("\n3. state root (Merkle tree over account heads) kept current inside each transfer")
        print(f"tree update: {one['tree_us']:.0f} µs per transfer = {one['tree_us'] / one['transfer_us']:.0%} of a "
              f"transfer ({one['transfer_us']:.0f} µs)")
    print(f"\n{_load()} at end; targets: >= 1,000 transfers/s, >= 20,000 entries/s verified")


if __name__ == "__main__":
    main()
