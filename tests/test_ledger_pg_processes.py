"""The ledger on one PostgreSQL database under real OS processes (``spawn``), as several workers
or nodes of a colony write it.

- contention: 6 processes each apply 250 random signed transfers among 5 accounts (every
  transfer fights for the same few account rows and for the state tree) and re-send some of
  their own and some of another process's authorisations, racing: every (payer, nonce) is applied
  once with one agreed result, the supply is conserved, no balance goes below zero, and
  `Ledger.verify()` recomputes every chain, signature, pairing and cache without a problem;
- crash: a process paying, holding, capturing and releasing in a loop is SIGKILLed at random
  moments; PostgreSQL rolls its open transaction back, so nothing partial is ever left.

The SQLite equivalents are tests/test_ledger_processes.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest

from colony.identity import SchnorrKey
from colony.ledger import MICRO, Ledger, TransferRefusedError, sign_transfer
from colony.ledger.pg_store import PgLedgerStore
from colony.store.pg import PgDatabase, open_pg

CTX = multiprocessing.get_context("spawn")
ACCOUNTS, PROCESSES, PER_PROCESS = 5, 6, 250
FUNDS = 100 * MICRO


def _start(target: Callable[..., None], *args: Any) -> BaseProcess:
    proc = CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def _ledger(url: str, node_secret: str) -> tuple[Ledger, PgDatabase]:
    db = open_pg(url, max_size=2)
    return Ledger(PgLedgerStore(db), SchnorrKey(bytes.fromhex(node_secret))), db


class Book:
    """The test's own view of the database: a ledger with the node key and funded accounts."""

    def __init__(self, url: str, accounts: int, funds: int) -> None:
        self.url = url
        self.node_key = SchnorrKey.generate()
        self.ledger, self.db = _ledger(url, self.node_key.secret.hex())
        self.keys = [SchnorrKey.generate() for _ in range(accounts)]
        for k in self.keys:
            self.ledger.mint(k.public_hex, funds, "test funding")

    def count(self, sql: str) -> int:
        return int(self.db.scalar(sql))

    def balances(self) -> list[int]:
        return [self.ledger.balance(k.public_hex).balance for k in self.keys]


@pytest.fixture
def book(pg_url: str) -> Iterator[Book]:
    b = Book(pg_url, ACCOUNTS, FUNDS)
    yield b
    b.db.close()


def _apply_all(url: str, node_secret: str, secrets: list[str], specs: list[list[Any]], out: str) -> None:
    """Sign each spec as its payer (same fields → same authorisation id) and apply it; record results."""
    ledger, db = _ledger(url, node_secret)
    keys = [SchnorrKey(bytes.fromhex(s)) for s in secrets]
    results = []
    try:
        for payer, payee, amount, nonce, at in specs:
            event = sign_transfer(keys[payer], keys[payee].public_hex, amount, nonce=nonce, now=at)
            try:
                r = ledger.transfer(event)
                results.append([nonce, "applied", r.entries, r.replayed])
            except TransferRefusedError as exc:
                results.append([nonce, exc.result.reason, exc.result.entries, exc.result.replayed])
    finally:
        db.close()
    Path(out).write_text(json.dumps(results))


def test_six_processes_racing_on_five_accounts_apply_every_nonce_once(book: Book, tmp_path: Path) -> None:
    rng = random.Random(29)
    at = int(time.time())
    own: list[list[list[Any]]] = []
    for _ in range(PROCESSES):
        specs = []
        for _ in range(PER_PROCESS):
            payer, payee = rng.sample(range(ACCOUNTS), 2)
            specs.append([payer, payee, rng.randint(1, 30 * MICRO), os.urandom(32).hex(), at])
        own.append(specs)
    plans = []
    for i, specs in enumerate(own):
        mine = list(specs)
        # Retries: a tenth of its own again later, and 40 of the next process's, racing it.
        for spec in rng.sample(specs, PER_PROCESS // 10):
            mine.insert(rng.randint(mine.index(spec) + 1, len(mine)), spec)
        for spec in rng.sample(own[(i + 1) % PROCESSES], 40):
            mine.insert(rng.randint(0, len(mine)), spec)
        plans.append(mine)
    secrets = [k.secret.hex() for k in book.keys]
    started = time.monotonic()
    procs = [_start(_apply_all, book.url, book.node_key.secret.hex(), secrets, plan, str(tmp_path / f"r{i}.json"))
             for i, plan in enumerate(plans)]
    for proc in procs:
        proc.join(300)
        assert proc.exitcode == 0, f"worker {proc.pid} exited with {proc.exitcode}"
    elapsed = time.monotonic() - started

    by_nonce: dict[str, list[list[Any]]] = defaultdict(list)
    for i in range(PROCESSES):
        for nonce, *rest in json.loads((tmp_path / f"r{i}.json").read_text()):
            by_nonce[nonce].append(rest)
    submitted = sum(len(p) for p in plans)
    assert len(by_nonce) == PROCESSES * PER_PROCESS and sum(len(v) for v in by_nonce.values()) == submitted
    for nonce, seen in by_nonce.items():
        assert len({json.dumps(s[:2]) for s in seen}) == 1, f"submissions of {nonce} saw different results: {seen}"
        assert [s[2] for s in seen].count(False) == 1, f"{nonce} was applied (or refused) more than once"
    outcomes = Counter(seen[0][0] for seen in by_nonce.values())
    applied = outcomes["applied"]
    assert applied > PROCESSES * PER_PROCESS * 0.5 and set(outcomes) <= {"applied", "insufficient_funds"}
    assert book.count("SELECT count(*) FROM ledger_transfers") == PROCESSES * PER_PROCESS
    assert book.count("SELECT count(*) FROM ledger_transfers WHERE status = 'applied'") == applied
    assert book.count("SELECT count(*) FROM (SELECT payer, nonce FROM ledger_transfers "
                      "GROUP BY payer, nonce HAVING count(*) > 1) d") == 0
    assert book.count("SELECT count(*) FROM ledger_entries WHERE kind = 'debit'") == applied
    assert book.count("SELECT count(*) FROM ledger_entries WHERE kind = 'credit'") == applied
    balances = book.balances()
    assert sum(balances) == ACCOUNTS * FUNDS == book.ledger.store.supply() and min(balances) >= 0
    assert book.count("SELECT count(*) FROM ledger_entries WHERE balance < 0") == 0
    report = book.ledger.verify()
    assert report.ok, report.problems[:5]
    assert report.entries == ACCOUNTS + 2 * applied
    print(f"\npostgresql: {submitted} submissions by {PROCESSES} processes in {elapsed:.1f} s "
          f"({submitted / elapsed:.0f}/s); {applied} applied; verify {report.entries} entries in "
          f"{report.seconds:.2f} s")


def _transfer_forever(url: str, node_secret: str, secrets: list[str], seed: int) -> None:
    ledger, _ = _ledger(url, node_secret)
    keys = [SchnorrKey(bytes.fromhex(s)) for s in secrets]
    rng = random.Random(seed)
    while True:
        payer, payee = rng.sample(keys, 2)
        try:
            if rng.random() < 0.2:
                hold = ledger.pay(payer, None, rng.randint(1, MICRO), op="hold")
                if rng.random() < 0.5:
                    ledger.capture(hold.transfer_id, payee.public_hex)
                else:
                    ledger.release(hold.transfer_id)
            else:
                ledger.pay(payer, payee.public_hex, rng.randint(1, 3 * MICRO))
        except TransferRefusedError:
            continue


def test_sigkill_during_transfers_leaves_nothing_partial(pg_url: str) -> None:
    book = Book(pg_url, 4, 50 * MICRO)
    secrets = [k.secret.hex() for k in book.keys]
    rng = random.Random(11)
    try:
        for round_ in range(5):
            before = book.count("SELECT count(*) FROM ledger_entries")
            proc = _start(_transfer_forever, pg_url, book.node_key.secret.hex(), secrets, round_)
            deadline = time.monotonic() + 60
            while book.count("SELECT count(*) FROM ledger_entries") < before + 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.2))  # somewhere in the middle of some transfer
            assert proc.pid is not None and proc.is_alive()
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(10)
            assert proc.exitcode == -signal.SIGKILL
            report = book.ledger.verify()
            assert report.ok, (round_, report.problems[:5])
            debits = book.count("SELECT count(*) FROM ledger_entries WHERE kind = 'debit'")
            applied = book.count("SELECT count(*) FROM ledger_transfers WHERE status = 'applied' AND op = 'transfer'")
            assert debits == applied == book.count(
                "SELECT count(*) FROM ledger_entries WHERE kind = 'credit' "
                "AND ref IN (SELECT id FROM ledger_transfers WHERE op = 'transfer')")
            held = sum(h.amount for h in book.ledger.store.holds() if h.state == "held")
            assert sum(book.balances()) + held == 4 * 50 * MICRO and min(book.balances()) >= 0
        assert book.count("SELECT count(*) FROM ledger_entries") > 5 * 20
    finally:
        book.db.close()
