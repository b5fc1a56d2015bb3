"""The ledger under real processes on one SQLite file.

- contention: 8 OS processes each apply 2,000 random signed transfers among 20 accounts, and
  re-send some of their own and some of another process's (the same authorisations, racing):
  every nonce is applied exactly once with one agreed result, supply is conserved, no balance
  goes negative, and every chain verifies;
- crash: a process applying transfers in a loop is SIGKILLed at random moments; nothing partial
  is ever left — every chain verifies and every debit has its credit.

Workers come from a forkserver (a clean single-threaded parent), as in the task engine's tests.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from colony.identity import SchnorrKey
from colony.ledger import MICRO, Ledger, SqliteLedgerStore, TransferRefusedError, sign_transfer
from colony.store import Database
from ledger_helpers import open_book

CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["colony.ledger", "colony.store", __name__])

ACCOUNTS, PROCESSES, PER_PROCESS = 20, 8, 2000
FUNDS = 200 * MICRO


def _start(target: Callable[..., None], *args: Any) -> BaseProcess:
    proc = CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def _apply_all(path: str, node_secret: str, secrets: list[str], specs: list[list[Any]], out: str) -> None:
    """Sign each spec as its payer (same fields → same authorisation id) and apply it; record results."""
    db = Database(path)
    ledger = Ledger(SqliteLedgerStore(db), SchnorrKey(bytes.fromhex(node_secret)))
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


def test_eight_processes_two_thousand_transfers_each_every_nonce_applied_once(tmp_path: Path) -> None:
    book = open_book(tmp_path / "ledger.db", accounts=ACCOUNTS, funds=FUNDS)
    rng = random.Random(13)
    at = int(time.time())
    own: list[list[list[Any]]] = []
    for _ in range(PROCESSES):
        specs = []
        for _ in range(PER_PROCESS):
            payer, payee = rng.sample(range(ACCOUNTS), 2)
            specs.append([payer, payee, rng.randint(1, 20 * MICRO), os.urandom(32).hex(), at])
        own.append(specs)
    plans = []
    for i, specs in enumerate(own):
        mine = list(specs)
        # Retries: a tenth of its own again later, and 150 of the next process's, racing it.
        for spec in rng.sample(specs, PER_PROCESS // 10):
            mine.insert(rng.randint(mine.index(spec) + 1, len(mine)), spec)
        for spec in rng.sample(own[(i + 1) % PROCESSES], 150):
            mine.insert(rng.randint(0, len(mine)), spec)
        plans.append(mine)
    secrets = [k.secret.hex() for k in book.keys]
    started = time.monotonic()
    procs = [_start(_apply_all, str(book.path), book.node_key.secret.hex(), secrets, plan, str(tmp_path / f"r{i}.json"))
             for i, plan in enumerate(plans)]
    for proc in procs:
        proc.join(240)
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
    assert applied > PROCESSES * PER_PROCESS * 0.8 and set(outcomes) <= {"applied", "insufficient_funds"}
    db = book.db
    assert db.scalar("SELECT count(*) FROM ledger_transfers") == PROCESSES * PER_PROCESS
    assert db.scalar("SELECT count(*) FROM ledger_transfers WHERE status = 'applied'") == applied
    assert db.scalar("SELECT count(*) FROM ledger_entries WHERE kind = 'debit'") == applied
    assert db.scalar("SELECT count(*) FROM ledger_entries WHERE kind = 'credit'") == applied
    balances = [book.balance(k) for k in book.keys]
    assert sum(balances) == ACCOUNTS * FUNDS == book.store.supply() and min(balances) >= 0
    report = book.ledger.verify()
    assert report.ok, report.problems[:5]
    assert report.entries == ACCOUNTS + 2 * applied
    print(f"\n{submitted} submissions by {PROCESSES} processes in {elapsed:.1f} s "
          f"({submitted / elapsed:.0f}/s); {applied} applied; verify {report.entries} entries in "
          f"{report.seconds:.2f} s")
    book.close()


def _transfer_forever(path: str, node_secret: str, secrets: list[str], seed: int) -> None:
    db = Database(path)
    ledger = Ledger(SqliteLedgerStore(db), SchnorrKey(bytes.fromhex(node_secret)))
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


def test_sigkill_during_transfers_leaves_no_partial_entry(tmp_path: Path) -> None:
    book = open_book(tmp_path / "ledger.db", accounts=6, funds=50 * MICRO)
    secrets = [k.secret.hex() for k in book.keys]
    rng = random.Random(7)
    kills = 0
    for round_ in range(8):
        before = book.db.scalar("SELECT count(*) FROM ledger_entries")
        proc = _start(_transfer_forever, str(book.path), book.node_key.secret.hex(), secrets, round_)
        deadline = time.monotonic() + 20
        while book.db.scalar("SELECT count(*) FROM ledger_entries") < before + 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.2))  # somewhere in the middle of some transfer
        assert proc.pid is not None and proc.is_alive()
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL
        kills += 1
        report = book.ledger.verify()
        assert report.ok, (round_, report.problems[:5])
        debits = book.db.scalar("SELECT count(*) FROM ledger_entries WHERE kind = 'debit'")
        applied = book.db.scalar("SELECT count(*) FROM ledger_transfers WHERE status = 'applied' AND op = 'transfer'")
        assert debits == applied == book.db.scalar("SELECT count(*) FROM ledger_entries WHERE kind = 'credit' "
                                                    "AND ref IN (SELECT id FROM ledger_transfers WHERE op = 'transfer')")
        assert sum(book.balance(k) for k in book.keys) + sum(
            h.amount for h in book.store.holds() if h.state == "held") == 6 * 50 * MICRO
    assert kills == 8 and book.db.scalar("SELECT count(*) FROM ledger_entries") > 8 * 20
    book.close()


def test_verify_sees_one_consistent_moment_while_another_process_pays(tmp_path: Path) -> None:
    book = open_book(tmp_path / "ledger.db", accounts=6, funds=50 * MICRO)
    proc = _start(_transfer_forever, str(book.path), book.node_key.secret.hex(), [k.secret.hex() for k in book.keys], 99)
    try:
        start = book.db.scalar("SELECT count(*) FROM ledger_entries")
        deadline = time.monotonic() + 30
        while book.db.scalar("SELECT count(*) FROM ledger_entries") < start + 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        seen = []
        for _ in range(15):
            report = book.ledger.verify()
            assert report.ok, report.problems[:3]  # never a half-read transfer or a stale cache
            seen.append(report.entries)
            time.sleep(0.02)
        assert seen[-1] > seen[0] > start  # the writer was busy all along
    finally:
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
    book.close()
