"""A partitioned run outlives its coordinator, on three real nodes in one process (real SQLite, keys,
signed numbered messages through the real inbox, the sandbox): every participant keeps a copy, the
queen of the next term adopts the run and merges it with every problem once, the old queen that
comes back stands down, and stale messages of the old term change nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fed_helpers import key, trust

from colony.bench.problems import own_problems
from colony.config import Settings
from colony.errors import StoreError
from colony.federation import _store, partition
from colony.federation import partition_store as ps
from colony.federation.inbox import receive_message
from colony.federation.partition_wire import MERGED_KIND, STATE_KIND, Merged, ProblemReport, Report
from colony.federation.partition_worker import work_once
from colony.federation.roles import claim, current_role, role_view
from colony.identity.events import Event
from colony.node import Node

PROBLEMS = sorted(own_problems(), key=lambda p: p.id)
LIMIT = 9
Trio = tuple[Node, Node, Node]


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[Trio]:
    """Three nodes, each a trusted member of the others, ordered by key: the first is the queen of term 1."""
    made = [Node(Settings(home=tmp_path / name)) for name in ("x", "y", "z")]
    for n in made:
        n.keyring.ensure(announce=False)
    made.sort(key=key)
    for n in made:
        trust(n, *(m for m in made if m is not n))
    queen = made[0]
    assert claim(queen, 1) is not None
    deliver(queen, *made[1:])
    try:
        yield made[0], made[1], made[2]
    finally:
        for n in made:
            n.db.close()


def deliver(frm: Node, *to: Node) -> int:
    """Hand ``frm``'s queued messages for each of ``to`` to its real inbox, in order; returns how many."""
    count = 0
    for n in to:
        for row in _store.pending(frm.db, key(n), limit=1000):
            answer = receive_message(n, key(frm), Event.model_validate_json(row["event"]))
            assert answer.get("accepted") or answer.get("duplicate"), answer
            _store.mark_delivered(frm.db, key(n), int(row["seq"]), time.time())
            count += 1
    return count


def queued(frm: Node, to: Node, kind: int) -> list[Event]:
    return [e for row in _store.pending(frm.db, key(to), limit=1000)
            if (e := Event.model_validate_json(row["event"])).kind == kind]


def live(n: Node, *others: Node, at: float) -> None:
    """``n`` heard from ``others`` at ``at`` and from nobody else for a long time."""
    n.db.execute("UPDATE federation_nodes SET last_seen = ?", (at - 3600,))
    for o in others:
        n.db.execute("UPDATE federation_nodes SET last_seen = ? WHERE pubkey = ?", (at, key(o)))


def solve_share(n: Node) -> int:
    """Solve every pending problem of ``n``'s share, as its worker would; returns how many."""
    done = 0
    while asyncio.run(work_once(n)):
        done += 1
    return done


def incidents(n: Node, about: Node) -> list[str]:
    return [i["kind"] for i in _store.list_incidents(n.db) if i["peer"] == key(about)]


def started(trio: Trio) -> tuple[str, dict[str, str]]:
    """The queen plans a canonical run; every participant gets its copy and its share. Returns the run
    and who holds each problem."""
    q, s, t = trio
    run = partition.request_run(q, mode="canonical", limit=LIMIT, problem_timeout_s=600)["id"]
    assert partition.coordinate(q, now=time.time()) == 1
    deliver(q, s, t)
    holders = {a["problem_id"]: a["node"] for a in ps.assignments(q.db, run)}
    for n in (s, t):
        copy = ps.get_run(n.db, run)
        assert copy is not None and (copy["queen"], copy["term"], copy["state"]) == (key(q), 1, "running")
        assert copy["problems"] == LIMIT and {a["problem_id"]: a["node"] for a in ps.assignments(n.db, run)} == holders
    return run, holders


def test_the_next_queen_adopts_the_run_moves_the_dead_queens_problems_and_merges_each_once(trio: Trio) -> None:
    q, s, t = trio
    run, holders = started(trio)
    # s reports its share and the queen passes the verdicts on; the queen solves her own share but dies
    # before anyone hears of it, and t's verdicts never reach her.
    assert solve_share(s) > 0
    deliver(s, q)
    deliver(q, s, t)
    relayed = {r["problem_id"] for r in ps.results(t.db, run)}
    assert relayed == {p for p, n in holders.items() if n == key(s)}
    assert solve_share(q) > 0 and solve_share(t) > 0
    assert {r["problem_id"] for r in ps.results(q.db, run)} == {p for p, n in holders.items() if n != key(t)}

    # t is not the queen: it never adopts, though the coordinator is dead in its view.
    now = time.time()
    live(t, s, at=now)
    assert partition.coordinate(t, now=now) == 0
    assert ps.get_run(t.db, run)["queen"] == key(q)  # type: ignore[index]

    # s becomes the queen of term 2 and adopts: coordinator s, the whole state to t, q's problems moved.
    assert claim(s, 2) is not None
    live(s, t, at=now)
    assert partition.coordinate(s, now=now) == 1
    mine = ps.get_run(s.db, run)
    assert mine is not None and (mine["queen"], mine["term"], mine["state"]) == (key(s), 2, "running")
    moved = {a["problem_id"]: a["node"] for a in ps.assignments(s.db, run) if a["attempt"] == 2}
    assert sorted(moved) == sorted(p for p, n in holders.items() if n == key(q))
    assert set(moved.values()) <= {key(s), key(t)}
    assert queued(s, t, STATE_KIND) and queued(s, q, STATE_KIND)  # q hears of it when it is back
    assert partition.coordinate(s, now=now) == 1 and len(ps.assignments(s.db, run)) == LIMIT + len(moved)

    # t's copy moves to s; t sends its verdicts again there, and solves what it was given.
    deliver(s, t)
    copy = ps.get_run(t.db, run)
    assert copy is not None and (copy["queen"], copy["term"]) == (key(s), 2)
    assert current_role(t.db).queen == key(s)
    again = [Report.model_validate_json(e.content) for e in queued(t, s, 7352)]
    assert again[-1].again and {r.problem_id for r in again[-1].results} == {
        p for p, n in holders.items() if n == key(t)}
    solve_share(t)
    solve_share(s)
    deliver(t, s)
    partition.coordinate(s, now=now)
    merged = ps.get_run(s.db, run)
    assert merged is not None and merged["state"] == "merged"
    results = ps.results(s.db, run)
    assert sorted(r["problem_id"] for r in results) == [p.id for p in PROBLEMS[:LIMIT]]  # each problem once
    assert all(r["node"] != key(q) for r in results)  # the dead queen's verdicts never reached anyone
    assert merged["summary"]["term"] == 2 and merged["summary"]["reassigned"] == len(moved)
    assert merged["summary"]["passed"] == LIMIT
    assert incidents(s, t) == incidents(t, s) == []

    # The merged run reaches t (and waits for q); t keeps a copy of s's run.
    deliver(s, t)
    copy = ps.get_run(t.db, run)
    assert copy is not None and (copy["state"], copy["queen"], copy["term"]) == ("merged", key(s), 2)
    assert t.db.query("SELECT shard, problems, passed FROM bench_runs") == [
        {"shard": "colony", "problems": LIMIT, "passed": LIMIT}]
    assert len(queued(s, q, MERGED_KIND)) == 1

    # The old queen comes back: it does not act during its restart grace; its stale messages of term 1
    # change nothing where they arrive; it learns of term 2, stands down and keeps s's merged run.
    live(q, s, t, at=time.time())
    assert partition.coordinate(q, started_at=time.time()) == 0  # its worker has just started
    _store.set_self(q.db, url="http://127.0.0.1:9/q", pid=1, started_at=time.time(), heartbeat_s=0.5)
    assert partition.coordinate(q) == 0 and not queued(q, s, MERGED_KIND)  # its loop has just started
    deliver(q, s, t)
    assert ps.get_run(t.db, run)["queen"] == key(s)  # type: ignore[index]
    assert [w for w in ps.work_rows(t.db, run) if w["queen"] == key(q) and w["state"] == "pending"] == []
    deliver(s, q)
    assert role_view(q.db).queen == key(s)
    back = ps.get_run(q.db, run)
    assert back is not None and (back["state"], back["queen"], back["term"]) == ("merged", key(s), 2)
    _store.set_self(q.db, url="http://127.0.0.1:9/q", pid=1, started_at=time.time() - 3600, heartbeat_s=0.5)
    assert partition.coordinate(q) == 0
    assert q.db.query("SELECT COUNT(*) AS n FROM bench_runs WHERE shard = 'colony'") == [{"n": 1}]
    assert not queued(q, s, MERGED_KIND) and not queued(q, t, MERGED_KIND)
    for n in (s, t):
        assert incidents(n, q) == []
        assert n.db.query("SELECT COUNT(*) AS n FROM bench_runs") == [{"n": 1}]


def test_stale_reports_merges_and_assignments_of_an_older_term_change_nothing(trio: Trio) -> None:
    q, s, t = trio
    run, holders = started(trio)
    assert claim(s, 2) is not None
    now = time.time()
    live(s, t, at=now)
    partition.coordinate(s, now=now)  # adopted under term 2
    deliver(s, t)
    own_t = next(p for p, n in holders.items() if n == key(t))
    own_s = next(p for p, n in holders.items() if n == key(s))

    # The old queen, not yet back in step, merges what it has: its merged run of term 1 is refused at t
    # (kept as a refusal, no copy stored), with no incident: it is stale, not forged.
    stale = Merged(run=run, suite="colony", mode="canonical", requester=key(q), problems=[], term=1,
                   claim=None)
    event = q.keyring.node().sign(MERGED_KIND, stale.model_dump_json())
    partition.on_merged(t, event)
    copy = ps.get_run(t.db, run)
    assert copy is not None and (copy["state"], copy["queen"]) == ("running", key(s))
    assert [r["problem_id"] for r in ps.refusals(t.db, run)] == [""]
    assert t.db.query("SELECT id FROM bench_runs") == [] and incidents(t, q) == []

    # A term above the one t knows, without the sender's claim of it, is forged: refused and recorded.
    forged = Merged(run=run, suite="colony", mode="canonical", requester=key(q), problems=[], term=9)
    partition.on_merged(t, q.keyring.node().sign(MERGED_KIND, forged.model_dump_json()))
    assert ps.get_run(t.db, run)["state"] == "running" and incidents(t, q) == ["bad_signature"]  # type: ignore[index]

    # A verdict sent to the old coordinator (a copy now) is ignored there, not held against the sender.
    deliver(s, q)
    counts = partition.take_report(q, key(t), Report(run=run, results=[ProblemReport(problem_id=own_t,
                                                                                      outcome="pass")]))
    assert counts == {"taken": 0, "ignored": 1, "refused": 0} and incidents(q, t) == []

    # At the adopter: a verdict on a problem never given to the sender is refused and recorded, unless it
    # is one sent again after the adoption (the old coordinator may have given it after the last copy).
    wrong = Report(run=run, results=[ProblemReport(problem_id=own_s, outcome="pass")])
    assert partition.take_report(s, key(t), wrong)["refused"] == 1 and incidents(s, t) == ["bad_signature"]
    wrong_again = Report(run=run, results=[ProblemReport(problem_id=own_s, outcome="pass")], again=True)
    assert partition.take_report(s, key(t), wrong_again) == {"taken": 0, "ignored": 1, "refused": 0}
    assert incidents(s, t) == ["bad_signature"]
    assert partition.take_report(s, key(t), Report(run=run, results=[ProblemReport(problem_id=own_t, outcome="fail")],
                                                   again=True))["taken"] == 1


def test_the_database_moves_a_coordinator_only_up_in_term_and_keeps_a_merged_run_final(trio: Trio) -> None:
    q, s, _ = trio
    run, _ = started(trio)
    assert not ps.set_coordinator(s.db, run, key(s), 1)  # not above the copy's term
    with pytest.raises(StoreError, match="coordinator only with a higher term"):
        s.db.execute("UPDATE partition_runs SET queen = ? WHERE id = ?", (key(s), run))
    with pytest.raises(StoreError, match="coordinator only with a higher term"):
        s.db.execute("UPDATE partition_runs SET term = 0 WHERE id = ?", (run,))
    assert ps.set_coordinator(s.db, run, key(s), 2)
    assert ps.set_merged(s.db, run, "b" * 32, {}, LIMIT, time.time(), by=(key(q), 1)) is False  # not its coordinator
    assert ps.set_merged(s.db, run, "b" * 32, {}, LIMIT, time.time(), by=(key(s), 2))
    assert not ps.set_coordinator(s.db, run, key(q), 3)
    with pytest.raises(StoreError, match="coordinator only with a higher term"):
        s.db.execute("UPDATE partition_runs SET queen = ?, term = 5 WHERE id = ?", (key(q), run))
    with pytest.raises(StoreError, match="coordinator only with a higher term"):
        s.db.execute("UPDATE partition_runs SET bench_run = ? WHERE id = ?", ("c" * 32, run))


def test_a_request_the_dead_queen_never_planned_is_asked_again_of_the_next_queen(trio: Trio) -> None:
    """t asks q (the queen of term 1) for a run; q dies before the request reaches her. Once t follows
    s, the queen of term 2, it asks s, who plans it under her term; q, back, gets the stale request
    and plans nothing (it was not the queen when the request reached it)."""
    q, s, t = trio
    run = partition.request_run(t, mode="canonical", limit=LIMIT, problem_timeout_s=600)["id"]
    asked = ps.get_run(t.db, run)
    assert asked is not None and (asked["queen"], asked["term"], asked["state"]) == (key(q), 1, "requested")
    assert partition.coordinate(t, now=time.time()) == 0  # t still follows q: nothing to do

    assert claim(s, 2) is not None
    deliver(s, t)
    assert role_view(t.db).queen == key(s)
    partition.coordinate(t, now=time.time())
    again = ps.get_run(t.db, run)
    assert again is not None and (again["queen"], again["term"], again["state"]) == (key(s), 2, "requested")
    assert len(queued(t, s, 7350)) == 1

    now = time.time()
    deliver(t, s)
    live(s, t, at=now)
    assert partition.coordinate(s, now=now) == 1
    planned = ps.get_run(s.db, run)
    assert planned is not None and (planned["queen"], planned["term"], planned["state"]) == (key(s), 2, "running")
    assert {a["node"] for a in ps.assignments(s.db, run)} == {key(s), key(t)}  # q is not live in s's view
    deliver(s, t)
    copy = ps.get_run(t.db, run)
    assert copy is not None and (copy["queen"], copy["term"], copy["state"]) == (key(s), 2, "running")
    partition.coordinate(t, now=now)
    assert len(queued(t, s, 7350)) == 0  # delivered once; not asked a third time

    # q comes back: the stale request reaches it after it has heard of term 2; it keeps it, plans nothing.
    deliver(s, q)
    deliver(t, q)
    kept = ps.get_run(q.db, run)
    assert kept is not None and (kept["state"], kept["term"]) == ("requested", 0)
    live(q, s, t, at=time.time())
    _store.set_self(q.db, url="http://127.0.0.1:9/q", pid=1, started_at=time.time() - 3600, heartbeat_s=0.5)
    partition.coordinate(q, started_at=time.time() - 3600)
    assert ps.assignments(q.db, run) == [] and not queued(q, s, 7351) and not queued(q, t, 7351)
