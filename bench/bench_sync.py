"""Benchmark ledger replication: what a sync costs per 1,000 ledger entries, first and incremental.

Run with ``.venv/bin/python bench/bench_sync.py [--accounts N] [--transfers N] [--changes 10,100,1000]``.

An origin ledger (N accounts, each minted once, then T random transfers: N + 2T entries) is
replicated into an empty SQLite file, through two sources:

- ``store``: the origin's `LedgerStore` read in-process (`StoreSource`);
- ``http``: the origin's ``/federation/v1/ledger`` routes on a loopback uvicorn server, every
  request NIP-98 signed by the replica and verified (replay-guarded in SQLite) by the origin.

Rows: the first sync (a paged scan of everything), an unchanged sync (one root comparison), then
incremental syncs after k more transfers (2k changed accounts, found by the Merkle walk). Each row
gives wall seconds, requests and bytes, and the same per 1,000 entries pulled. Every entry is
verified (hash, signature, cited authorisation, chain) before it is stored.

Prints the machine and its load (``os.getloadavg``): the figures are only as quiet as the machine was.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from colony.config import Settings
from colony.federation.replica_sources import HttpSource, LedgerSource, StoreSource
from colony.federation.replication import SyncResult, sync
from colony.identity import SchnorrKey
from colony.ledger import MICRO, Ledger, SqliteLedgerStore
from colony.node import Node
from colony.server.api.federation_ledger import router
from colony.server.errors import install_error_handlers
from colony.server.run import free_port
from colony.store import Database, open_database


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) / {five:.2f} (5 min)"


@contextmanager
def _serve(node: Node) -> Iterator[str]:
    app = FastAPI()
    app.state.node = node
    app.include_router(router)
    install_error_handlers(app)
    port = free_port("127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def _transfers(ledger: Ledger, keys: list[SchnorrKey], n: int, rng: random.Random) -> None:
    for _ in range(n):
        payer, payee = rng.sample(keys, 2)
        ledger.pay(payer, payee.public_hex, rng.randint(1, 1_000))


def _row(label: str, r: SyncResult) -> str:
    per = 1000 / r.entries_added if r.entries_added else 0.0
    per_k = (f"{r.seconds * per:.3f} s | {r.requests * per:,.1f} | {r.bytes * per / 1024:,.0f} KiB"
             if r.entries_added else "— | — | —")
    assert not r.problems, r.problems[:3]
    return (f"| {label} | {r.entries_added:,} | {r.accounts_differing:,} | {r.seconds:.3f} s | {r.requests:,} | "
            f"{r.bytes / 1024:,.0f} KiB | {per_k} |")


def run(tmp: Path, accounts: int, transfers: int, changes: list[int]) -> None:
    os.environ["COLONY_AUTODETECT_LOCAL_MODELS"] = "false"
    node = Node(Settings(home=tmp / "origin", workspace=tmp / "ws"))
    origin_key = SchnorrKey.generate()
    ledger = Ledger(SqliteLedgerStore(node.db), origin_key)
    keys = [SchnorrKey.generate() for _ in range(accounts)]
    started = time.perf_counter()
    for key in keys:
        ledger.mint(key.public_hex, 1000 * MICRO, "benchmark funds")
    rng = random.Random(1)
    _transfers(ledger, keys, transfers, rng)
    entries = ledger.store.entry_count()
    print(f"origin: {accounts:,} accounts, {entries:,} entries (built in {time.perf_counter() - started:.1f} s)\n")
    replicas: dict[str, Database] = {name: open_database(tmp / f"{name}.db") for name in ("store", "http")}
    with _serve(node) as url, HttpSource(url, SchnorrKey.generate()) as http:
        sources: dict[str, LedgerSource] = {"store": StoreSource(ledger.store), "http": http}
        print("| sync | entries pulled | accounts differing | seconds | requests | bytes | "
              "s / 1,000 entries | requests / 1,000 | bytes / 1,000 |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, source in sources.items():
            print(_row(f"{name}: first", sync(replicas[name], origin_key.public_hex, source)))
            print(_row(f"{name}: unchanged", sync(replicas[name], origin_key.public_hex, source)))
        for k in changes:
            _transfers(ledger, keys, k, rng)
            for name, source in sources.items():
                result = sync(replicas[name], origin_key.public_hex, source)
                assert result.in_sync
                print(_row(f"{name}: +{k:,} transfers", result))
    for db in replicas.values():
        db.close()
    node.db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--transfers", type=int, default=4_000)
    parser.add_argument("--changes", default="10,100,1000", help="comma-separated transfer counts between syncs")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {_load()}")
    with tempfile.TemporaryDirectory(prefix="colony-bench-sync-") as tmp:
        run(Path(tmp), args.accounts, args.transfers, [int(c) for c in args.changes.split(",") if c])
    print(f"\n{_load()} at end")


if __name__ == "__main__":
    main()
