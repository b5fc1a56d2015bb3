"""The partitioned benchmark's rules on real nodes in one process (real SQLite, keys, signed messages,
sandbox): the split, first-verdict-wins, refusals, moving a silent node's problems, the merge, and
what a member does with the merged run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest
from fed_helpers import key, trust

from colony.bench.problems import own_problems
from colony.config import Settings
from colony.federation import _store, partition
from colony.federation import partition_store as ps
from colony.federation.partition_wire import (
    ASSIGN_KIND,
    MERGED_KIND,
    Assignment,
    Outcome,
    ProblemReport,
    Report,
    parse,
)
from colony.federation.partition_worker import work_once
from colony.federation.roles import claim
from colony.identity.events import Event
from colony.node import Node

PROBLEMS = sorted(own_problems(), key=lambda p: p.id)
LIMIT = 7


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Node, Node, Node]]:
    """The coordinator a (queen of term 1) and two members b and c, each a node of its own."""
    made = [Node(Settings(home=tmp_path / name)) for name in ("a", "b", "c")]
    for n in made:
        n.keyring.ensure(announce=False)
    a, b, c = made
    trust(a, b, c)
    trust(b, a)
    trust(c, a)
    assert claim(a, 1) is not None
    try:
        yield a, b, c
    finally:
        for n in made:
            n.db.close()


def sent(frm: Node, to: Node, kind: int) -> list[Event]:
    return [e for row in _store.pending(frm.db, key(to)) if (e := Event.model_validate_json(row["event"])).kind == kind]


def report(run: str, problem: str, outcome: Outcome = "pass") -> Report:
    return Report(run=run, results=[ProblemReport(problem_id=problem, outcome=outcome)])


def test_split_verdicts_refusals_moves_and_merge(nodes: tuple[Node, Node, Node]) -> None:
    a, b, c = nodes
    run = partition.request_run(a, mode="canonical", limit=LIMIT, problem_timeout_s=30)
    assert run["queen"] == key(a) and run["state"] == "requested"
    t0 = time.time()
    partition.coordinate(a, now=t0)

    # Problem k (ids sorted) to node k mod 3 (keys sorted): a's share is queued here, b's and c's are sent.
    keys = sorted(key(n) for n in nodes)
    rule = {p.id: keys[k % 3] for k, p in enumerate(PROBLEMS[:LIMIT])}
    assert {x["problem_id"]: x["node"] for x in ps.assignments(a.db, run["id"])} == rule
    assert [w["problem_id"] for w in ps.work_rows(a.db, run["id"])] == [p for p, n in rule.items() if n == key(a)]
    share = {n: parse(sent(a, n, ASSIGN_KIND)[0], ASSIGN_KIND, Assignment).problems for n in (b, c)}
    assert all(share[n] == [p for p, k in rule.items() if k == key(n)] for n in (b, c))

    # First verdict wins; a repeat is ignored; another node's problem, or a run not coordinated here, is refused.
    mine_b, mine_c = share[b][0], share[c][0]
    assert partition.take_report(a, key(b), report(run["id"], mine_b))["taken"] == 1
    assert partition.take_report(a, key(b), report(run["id"], mine_b, "fail"))["ignored"] == 1
    assert partition.take_report(a, key(b), report(run["id"], mine_c))["refused"] == 1
    assert partition.take_report(a, key(b), report("f" * 32, mine_b))["refused"] == 1
    assert [r["outcome"] for r in ps.results(a.db, run["id"])] == ["pass"]
    assert [(r["node"], r["problem_id"]) for r in ps.refusals(a.db, run["id"])] == [(key(b), mine_c)]
    assert [i["kind"] for i in _store.list_incidents(a.db) if i["peer"] == key(b)] == ["bad_signature"] * 2
    with pytest.raises(apsw.ConstraintError):  # the database itself refuses a verdict from a node not given the problem
        ps.add_result(a.db, run["id"], key(c), {"problem_id": mine_b, "tier": 1, "outcome": "pass", "detail": "",
                                                 "tokens": 0, "wall_ms": 0.0, "solution_sha256": None}, t0)

    # a solves its own share here, in the sandbox; c reports everything; b stays live but says nothing more
    # past the timeout: its other problems move, round robin, to the live nodes that never held them.
    solve_share(a)
    for pid in share[c]:
        partition.take_report(a, key(c), report(run["id"], pid))
    later = time.time() + 31
    a.db.execute("UPDATE federation_nodes SET last_seen = ?", (later,))
    partition.coordinate(a, now=later)
    moved = {x["problem_id"]: x["node"] for x in ps.assignments(a.db, run["id"]) if x["attempt"] == 2}
    left = [p for p in share[b] if p != mine_b]
    assert sorted(moved) == left and set(moved.values()) <= {key(a), key(c)}
    partition.coordinate(a, now=later)  # nothing moves twice
    assert len(ps.assignments(a.db, run["id"])) == LIMIT + len(left)

    solve_share(a)
    for pid, holder in moved.items():
        if holder == key(c):
            partition.take_report(a, key(c), report(run["id"], pid))
    partition.coordinate(a, now=later)
    merged = ps.get_run(a.db, run["id"])
    assert merged is not None and merged["state"] == "merged"
    row = a.db.one("SELECT shard, problems, passed FROM bench_runs WHERE id = ?", (merged["bench_run"],))
    assert row == {"shard": "colony", "problems": LIMIT, "passed": LIMIT}
    summary = merged["summary"]
    assert summary["reassigned"] == len(left) and summary["refused"] == 1
    assert sum(n["solved"] for n in summary["nodes"].values()) == LIMIT
    assert summary["results"][mine_b] == [key(b), "pass"]

    # b gets the merged run: it drops what it had not started and keeps a copy with the same score.
    for event in sent(a, b, ASSIGN_KIND):
        partition.on_assign(b, event)
    merged_event = sent(a, b, MERGED_KIND)
    assert len(merged_event) == 1 and len(sent(a, c, MERGED_KIND)) == 1
    partition.on_merged(b, merged_event[0])
    partition.on_merged(b, merged_event[0])  # handled again: nothing more
    assert {w["state"] for w in ps.work_rows(b.db, run["id"])} == {"cancelled"}
    copies = b.db.query("SELECT shard, problems, passed FROM bench_runs")
    assert copies == [{"shard": "colony", "problems": LIMIT, "passed": LIMIT}]


def test_a_merged_run_from_a_node_nobody_asked_is_refused(nodes: tuple[Node, Node, Node]) -> None:
    a, b, c = nodes
    run = partition.request_run(a, mode="canonical", limit=1, problem_timeout_s=30)
    forged = c.keyring.node().sign(MERGED_KIND, '{"run":"' + run["id"] + '","suite":"colony","mode":"canonical",'
                                   '"requester":"' + key(a) + '","problems":[]}')
    partition.on_merged(b, forged)  # b neither asked c for it nor worked on it for c
    assert b.db.query("SELECT id FROM bench_runs") == [] and ps.get_run(b.db, run["id"]) is None
    assert [i["kind"] for i in _store.list_incidents(b.db) if i["peer"] == key(c)] == ["bad_signature"]


def solve_share(n: Node) -> None:
    """Solve every pending problem of ``n``'s share, as its worker would."""
    while asyncio.run(work_once(n)):
        pass
