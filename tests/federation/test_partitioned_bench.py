"""The coding benchmark split across three `colony up` processes, each with its own scripted model.

Each node's model answers every problem it is given with the problem's known-good solution, except
the problems in `WRONG`, which get the known-wrong one: the merged score is then known in advance.
A run asked from a member (not the queen) is split by the rule (problem k of the sorted ids to node
k mod 3 of the keys sorted), each problem is solved once, by the node it was given to, and the
merged run on the queen — and its copy on the requester — has the expected pass count. A report for
a problem the sender was not given is refused and recorded; a late duplicate changes nothing. Then
a node is killed halfway through a run: its unreported problems move to the live nodes and the run
still merges, every problem solved exactly once.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fed_helpers import COLONY, NodeProc, wait_for

from colony.bench import own_problems
from colony.bench.runner import solution_path
from colony.config import Settings
from colony.federation import _store, send
from colony.federation.partition_wire import REPORT_KIND, ProblemReport, Report
from colony.node import Node
from colony.store import open_database
from colony.testing import Reply, ScriptedModelServer

PROBLEMS = sorted(own_problems(), key=lambda p: p.id)
#: Problems every model gets wrong (by position in id order): the merged score is known in advance.
WRONG = {p.id for i, p in enumerate(PROBLEMS) if i % 3 == 2}
#: Seconds each scripted reply waits: a stand-in for model latency, set per test.
DELAY = {"s": 0.0}


def answer(body: dict[str, Any]) -> Reply:
    """The scripted model: the right (or, for `WRONG`, the wrong) solution of the problem asked."""
    asked = json.dumps(body["messages"])
    for p in PROBLEMS:
        if f"`{solution_path(p)}`" in asked:
            code = p.wrong if p.id in WRONG else p.solution
            return Reply.text(f"```python\n{code}```", delay_s=DELAY["s"])
    return Reply.text("Nothing to do.")


def asked_problems(model: ScriptedModelServer) -> list[str]:
    """The problems this model was asked to solve, once per request."""
    found = []
    for body in model.requests:
        asked = json.dumps(body["messages"])
        found += [p.id for p in PROBLEMS if f"`{solution_path(p)}`" in asked]
    return found


def settings_of(n: NodeProc) -> Settings:
    return Settings(home=n.home, key_passphrase_file=Path(n.env["COLONY_KEY_PASSPHRASE_FILE"]))


def query(n: NodeProc, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    db = open_database(n.home / "colony.db")
    try:
        return db.query(sql, params)
    finally:
        db.close()


@pytest.fixture(scope="module")
def colony(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[NodeProc], dict[str, ScriptedModelServer]]]:
    root = tmp_path_factory.mktemp("partition")
    nodes = [NodeProc(name, root) for name in ("n1", "n2", "n3")]
    models = {n.name: ScriptedModelServer(answer).start() for n in nodes}
    try:
        for n in nodes:
            n.env.update(COLONY_MODEL_NAME="scripted", COLONY_MODEL_BASE_URL=models[n.name].base_url,
                         COLONY_RETRY_BASE_DELAY_S="0.01", COLONY_AUTODETECT_LOCAL_MODELS="false")
            n.start()
        for n in nodes:
            n.wait_ready()
        a, b, c = nodes
        for joiner, host in ((b, a), (c, a), (b, c)):
            token = host.api("POST", "/api/v1/peers/invites", json={}).json()["token"]
            r = joiner.api("POST", "/api/v1/peers", json={"url": host.url, "invite": token, "pubkey": host.pubkey})
            assert r.status_code == 200 and r.json()["joined"] is True, r.text
        queen = min(n.pubkey for n in nodes)

        def settled() -> bool:
            views = [n.api("GET", "/api/v1/peers/status").json() for n in nodes]
            return all(v["queen"] == queen and len(v["live"]) == 2 for v in views)

        wait_for("a queen and everyone live", settled, timeout=30)
        yield nodes, models
    finally:
        for n in nodes:
            n.stop()
        for m in models.values():
            m.stop()


def queen_of(nodes: list[NodeProc]) -> NodeProc:
    return min(nodes, key=lambda n: n.pubkey)


def test_a_run_asked_by_a_member_is_split_by_the_rule_solved_once_and_merged(
        colony: tuple[list[NodeProc], dict[str, ScriptedModelServer]]) -> None:
    nodes, models = colony
    queen = queen_of(nodes)
    requester = max(nodes, key=lambda n: n.pubkey)
    limit = 9
    chosen = PROBLEMS[:limit]
    r = subprocess.run([*COLONY, "bench", "coding", "--colony", "--suite", "colony", "--limit", str(limit),
                        "--problem-timeout", "60", "--wait-timeout", "60", "--json"],
                       env=requester.env, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr + r.stdout
    copy = json.loads(r.stdout)
    run = copy["id"]
    expected_passed = sum(1 for p in chosen if p.id not in WRONG)
    assert copy["state"] == "merged" and copy["queen"] == queen.pubkey and copy["requester"] == requester.pubkey
    assert (copy["summary"]["problems"], copy["summary"]["passed"]) == (limit, expected_passed)

    # The rule: problem k (ids sorted) to node k mod 3 (keys sorted); one result per problem, from that node.
    keys = sorted(n.pubkey for n in nodes)
    rule = {p.id: keys[k % 3] for k, p in enumerate(chosen)}
    given = query(queen, "SELECT problem_id, node, attempt FROM partition_assignments WHERE run = ?", (run,))
    assert {g["problem_id"]: g["node"] for g in given} == rule and {g["attempt"] for g in given} == {1}
    results = query(queen, "SELECT problem_id, node, outcome FROM partition_results WHERE run = ?", (run,))
    assert {x["problem_id"]: x["node"] for x in results} == rule
    assert {x["problem_id"]: x["outcome"] for x in results} == {
        p.id: "fail" if p.id in WRONG else "pass" for p in chosen}
    # Each node's own model solved exactly its share, each problem once.
    for n in nodes:
        assert Counter(asked_problems(models[n.name])) == Counter(p for p, k in rule.items() if k == n.pubkey)

    # The merged run is a normal stored run on the queen (shard "colony"), and the requester keeps a copy.
    merged = query(queen, "SELECT b.shard, b.problems, b.passed FROM partition_runs p JOIN bench_runs b ON "
                          "b.id = p.bench_run WHERE p.id = ?", (run,))
    assert merged == [{"shard": "colony", "problems": limit, "passed": expected_passed}]
    listing = subprocess.run([*COLONY, "bench", "runs", "--json"], env=requester.env, capture_output=True,
                             text=True, timeout=30)
    assert [(x["shard"], x["passed"], x["problems"]) for x in json.loads(listing.stdout)["runs"]] == [
        ("colony", expected_passed, limit)]
    shown = subprocess.run([*COLONY, "bench", "colony-runs", run], env={**queen.env, "COLUMNS": "160"},
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and f"{expected_passed}/{limit} passed" in shown.stdout, shown.stdout + shown.stderr
    status = queen.api("GET", "/api/v1/bench/colony-runs").json()["runs"]
    assert status[0]["id"] == run and status[0]["state"] == "merged" and status[0]["reported"] == limit
    check_refusals(queen, requester, run, rule)


def check_refusals(queen: NodeProc, requester: NodeProc, run: str, rule: dict[str, str]) -> None:
    """A late duplicate of the requester's own verdict changes nothing; a verdict on someone else's problem
    is refused, kept and recorded as an incident against it."""
    own = next(p for p, k in rule.items() if k == requester.pubkey)
    other = next(p for p, k in rule.items() if k != requester.pubkey)
    before = query(queen, "SELECT problem_id, node, outcome FROM partition_results WHERE run = ? ORDER BY problem_id",
                   (run,))
    node = Node(settings_of(requester))
    try:
        flipped = "pass" if own in WRONG else "fail"
        send(node, queen.pubkey, REPORT_KIND, Report(run=run, results=[
            ProblemReport(problem_id=own, outcome=flipped)]).model_dump_json())
        send(node, queen.pubkey, REPORT_KIND, Report(run=run, results=[
            ProblemReport(problem_id=other, outcome="pass")]).model_dump_json())
    finally:
        node.db.close()
    refused = wait_for("the queen to refuse the report on another node's problem", lambda: query(
        queen, "SELECT node, problem_id, reason FROM partition_refusals WHERE run = ?", (run,)))
    assert refused == [{"node": requester.pubkey, "problem_id": other, "reason": "not assigned to this node"}]
    assert query(queen, "SELECT problem_id, node, outcome FROM partition_results WHERE run = ? ORDER BY problem_id",
                 (run,)) == before
    db = open_database(queen.home / "colony.db")
    try:
        assert any(i["peer"] == requester.pubkey and i["kind"] == "bad_signature" and other in i["detail"]
                   for i in _store.list_incidents(db))
    finally:
        db.close()


def test_a_node_killed_mid_run_loses_its_problems_to_the_live_nodes_and_the_run_merges(
        colony: tuple[list[NodeProc], dict[str, ScriptedModelServer]]) -> None:
    nodes, models = colony
    DELAY["s"] = 1.0
    try:
        queen = queen_of(nodes)
        victim = max(nodes, key=lambda n: n.pubkey)
        survivors = [n for n in nodes if n is not victim]
        limit = 12
        chosen = PROBLEMS[:limit]
        asked_before = {n.name: Counter(asked_problems(models[n.name])) for n in survivors}
        r = queen.api("POST", "/api/v1/bench/colony-runs",
                      json={"suite": "colony", "limit": limit, "problem_timeout_s": 60})
        assert r.status_code == 202, r.text
        run = r.json()["id"]

        def victim_reported() -> int:
            return len(query(queen, "SELECT 1 FROM partition_results WHERE run = ? AND node = ?", (run, victim.pubkey)))

        wait_for("the victim's first verdict", victim_reported, timeout=30)
        victim.kill()
        reported_before = victim_reported()

        def merged() -> dict[str, Any] | None:
            detail: dict[str, Any] = queen.api("GET", f"/api/v1/bench/colony-runs/{run}").json()
            return detail if detail["state"] == "merged" else None

        detail = wait_for("the run to merge without the victim", merged, timeout=45)
    finally:
        DELAY["s"] = 0.0
    results = detail["results"]
    assert sorted(x["problem_id"] for x in results) == sorted(p.id for p in chosen)  # each problem exactly once
    assert {x["problem_id"]: x["outcome"] for x in results} == {
        p.id: "fail" if p.id in WRONG else "pass" for p in chosen}
    assert sum(1 for x in results if x["node"] == victim.pubkey) == reported_before
    moved = [a for a in detail["assignments"] if a["attempt"] > 1]
    first = {a["problem_id"]: a["node"] for a in detail["assignments"] if a["attempt"] == 1}
    assert moved and all(first[a["problem_id"]] == victim.pubkey for a in moved)
    assert all(a["node"] in {n.pubkey for n in survivors} for a in moved)
    assert detail["summary"]["reassigned"] == len(moved)
    assert detail["summary"]["passed"] == sum(1 for p in chosen if p.id not in WRONG)
    # Each survivor's model solved exactly the problems it was given in this run (its share and the moved ones), once.
    for n in survivors:
        delta = Counter(asked_problems(models[n.name])) - asked_before[n.name]
        assert delta == Counter(a["problem_id"] for a in detail["assignments"] if a["node"] == n.pubkey), n.name
