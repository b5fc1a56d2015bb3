"""A step that spans stores on PostgreSQL (`PgDatabase.thread_tx`, `PgEngine`): what the market's
exactly-once rests on, tested below the market.

- the ledger's and the task queue's writes made on the step's thread join its transaction: they
  commit with it, and an error anywhere in the step leaves nothing of any of them;
- two steps that lock the same names in opposite orders deadlock; PostgreSQL aborts one, and
  `PgDatabase.atomic` runs it again whole, so both finish, each once;
- a named lock outside a step is a bug, refused; refusals are told from conflicts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from colony.errors import StoreError
from colony.identity import SchnorrKey
from colony.ledger import MICRO, Ledger
from colony.ledger.pg_store import PgLedgerStore
from colony.store.pg import PgDatabase, open_pg
from colony.store.pg.engine import PgEngine
from colony.tasks import TaskSpec
from colony.tasks.pg_store import PgTaskStore


@pytest.fixture
def pg(pg_url: str) -> Iterator[PgDatabase]:
    db = open_pg(pg_url, max_size=4)
    yield db
    db.close()


def test_the_stores_of_a_step_commit_with_it_or_not_at_all(pg: PgDatabase) -> None:
    engine, tasks = PgEngine(pg), PgTaskStore(pg)
    ledger = Ledger(PgLedgerStore(pg), SchnorrKey.generate())
    payer = SchnorrKey.generate()
    ledger.mint(payer.public_hex, 10 * MICRO, "funds")
    task = tasks.post(TaskSpec(goal="auctioned"))

    def step(fail: bool) -> str:
        hold = ledger.pay(payer, None, 2 * MICRO, op="hold")
        tasks.transition(task.id, "bidding", actor="test", reason="in the step")
        assert ledger.balance(payer.public_hex).held == 2 * MICRO  # the step reads what it wrote
        assert tasks.get(task.id).state == "bidding"
        if fail:
            raise RuntimeError("the step's last check failed")
        return hold.transfer_id

    with pytest.raises(RuntimeError):
        engine.atomic(lambda: step(True))
    assert ledger.balance(payer.public_hex).balance == 10 * MICRO and tasks.get(task.id).state == "posted"
    assert pg.scalar("SELECT count(*) FROM ledger_holds") == 0 and not pg.in_thread_tx

    hold = engine.atomic(lambda: step(False))
    assert ledger.store.hold(hold).state == "held" and tasks.get(task.id).state == "bidding"
    assert ledger.verify().ok


def test_steps_that_deadlock_are_run_again_whole_and_each_finishes_once(pg: PgDatabase) -> None:
    pg.execute("CREATE TABLE steps (who TEXT PRIMARY KEY)")
    engine = PgEngine(pg)
    start = threading.Barrier(2)
    tries = {"ab": 0, "ba": 0}
    errors: list[BaseException] = []

    def run(first: str, second: str) -> None:
        def step() -> None:
            tries[first + second] += 1
            engine.lock(first)
            if tries[first + second] == 1:
                start.wait()  # both hold their first lock: each now waits for the other's
            engine.lock(second)
            engine.execute("INSERT INTO steps(who) VALUES (?)", (first + second,))

        try:
            engine.atomic(step)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(r["who"] for r in pg.query("SELECT who FROM steps")) == ["ab", "ba"]
    assert sorted(tries.values()) == [1, 2]  # PostgreSQL aborted one; it ran again from the start


def test_locks_belong_in_a_step_and_refusals_are_told_from_conflicts(pg: PgDatabase) -> None:
    engine = PgEngine(pg)
    with pytest.raises(StoreError, match="outside a step"):
        engine.lock("market:auction:x")
    pg.execute("CREATE TABLE once (k TEXT PRIMARY KEY CHECK (k <> 'bad'))")
    engine.execute("INSERT INTO once(k) VALUES (?)", ("a",))
    for value, kind in (("a", "unique"), ("bad", "refused")):
        with pytest.raises(StoreError) as refused:
            engine.execute("INSERT INTO once(k) VALUES (?)", (value,))
        assert engine.refusal(refused.value) == kind
    with pytest.raises(StoreError) as broken:
        engine.execute("SELECT * FROM no_such_table")
    assert engine.refusal(broken.value) is None
