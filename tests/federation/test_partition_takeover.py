"""Kill the queen mid-run: the next queen adopts the partitioned benchmark and the run still merges.

Three `colony up` processes on loopback, each with its own scripted model (the right solution of
every problem, the wrong one for `WRONG`, after a short delay that stands in for a model). A run is
started on the queen; once the next queen holds a copy with some verdicts in it, the queen is killed
(SIGKILL). The survivors agree on term 2, the new queen adopts the run, moves the dead queen's
unreported problems, and stores the merged run with every problem exactly once; the third node keeps
a copy of that run. Then the old queen is restarted: it stands down and keeps the new queen's merged
run — it never merges (or sends) a second one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fed_helpers import NodeProc, wait_for
from test_colony_processes import agreed

from colony.bench import own_problems
from colony.bench.runner import solution_path
from colony.federation.partition_wire import MERGED_KIND
from colony.server.run import free_port
from colony.store import open_database
from colony.testing import Reply, ScriptedModelServer

PROBLEMS = sorted(own_problems(), key=lambda p: p.id)
WRONG = {p.id for i, p in enumerate(PROBLEMS) if i % 3 == 2}
LIMIT = 9
#: Seconds each scripted reply waits (a stand-in for a model)…
DELAY_S = 1.0
#: … and the queen's, slower, so she dies with problems of her share unreported.
QUEEN_DELAY_S = 4.0


def answer(delay: dict[str, float], body: dict[str, Any]) -> Reply:
    asked = json.dumps(body["messages"])
    for p in PROBLEMS:
        if f"`{solution_path(p)}`" in asked:
            return Reply.text(f"```python\n{p.wrong if p.id in WRONG else p.solution}```", delay_s=delay["s"])
    return Reply.text("Nothing to do.")


def query(n: NodeProc, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    db = open_database(n.home / "colony.db")
    try:
        return db.query(sql, params)
    finally:
        db.close()


def run_row(n: NodeProc, run: str) -> dict[str, Any] | None:
    rows = query(n, "SELECT queen, term, state, bench_run FROM partition_runs WHERE id = ?", (run,))
    return rows[0] if rows else None


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[list[NodeProc]]:
    """Three joined nodes, ordered by key (the queen first), each with its own scripted model."""
    nodes = [NodeProc(name, tmp_path) for name in ("n1", "n2", "n3")]
    delays = [{"s": DELAY_S} for _ in nodes]
    models = [ScriptedModelServer(partial(answer, d)).start() for d in delays]
    try:
        for n, model in zip(nodes, models, strict=True):
            n.env.update(COLONY_MODEL_NAME="scripted", COLONY_MODEL_BASE_URL=model.base_url,
                         COLONY_RETRY_BASE_DELAY_S="0.01", COLONY_AUTODETECT_LOCAL_MODELS="false")
            n.start()
        for n in nodes:
            n.wait_ready()
        delays[min(range(3), key=lambda i: nodes[i].pubkey)]["s"] = QUEEN_DELAY_S
        nodes.sort(key=lambda n: n.pubkey)
        a, b, c = nodes
        for joiner, host in ((b, a), (c, a), (b, c)):
            token = host.api("POST", "/api/v1/peers/invites", json={}).json()["token"]
            r = joiner.api("POST", "/api/v1/peers", json={"url": host.url, "invite": token, "pubkey": host.pubkey})
            assert r.status_code == 200 and r.json()["joined"] is True, r.text
        wait_for("everyone live and following the lowest key", lambda: agreed(nodes, a.pubkey), timeout=30)
        yield nodes
    finally:
        for n in nodes:
            n.stop()
        for m in models:
            m.stop()


def test_the_queen_killed_mid_run_the_next_queen_adopts_and_merges_once_and_the_old_queen_stands_down(
        trio: list[NodeProc]) -> None:
    queen, heir, other = trio
    r = queen.api("POST", "/api/v1/bench/colony-runs", json={"suite": "colony", "limit": LIMIT,
                                                              "problem_timeout_s": 60})
    assert r.status_code == 202, r.text
    assert (r.json()["queen"], r.json()["term"]) == (queen.pubkey, 1)  # asked of herself, queen of term 1
    run = r.json()["id"]

    def copied_verdicts() -> int:
        """Verdicts the queen took and passed on to the heir's copy of the run."""
        row = run_row(heir, run)
        if row is None or (row["queen"], row["term"], row["state"]) != (queen.pubkey, 1, "running"):
            return 0
        return len(query(heir, "SELECT 1 FROM partition_results WHERE run = ?", (run,)))

    wait_for("the heir's copy to hold two verdicts", lambda: copied_verdicts() >= 2, timeout=40)
    queen.kill()
    first = {x["problem_id"]: x["node"] for x in query(heir, "SELECT problem_id, node FROM partition_assignments "
                                                             "WHERE run = ? AND attempt = 1", (run,))}
    assert sorted(first) == [p.id for p in PROBLEMS[:LIMIT]]

    survivors = [heir, other]
    assert wait_for("the survivors to follow the heir", lambda: agreed(survivors, heir.pubkey), timeout=20) == 2

    def merged(n: NodeProc) -> dict[str, Any] | None:
        row = run_row(n, run)
        return row if row is not None and row["state"] == "merged" else None

    row = wait_for("the heir to adopt and merge the run", lambda: merged(heir), timeout=45)
    assert (row["queen"], row["term"]) == (heir.pubkey, 2)
    detail: dict[str, Any] = heir.api("GET", f"/api/v1/bench/colony-runs/{run}").json()
    assert (detail["queen"], detail["term"]) == (heir.pubkey, 2)
    results = detail["results"]
    assert sorted(x["problem_id"] for x in results) == [p.id for p in PROBLEMS[:LIMIT]]  # each problem exactly once
    assert {x["problem_id"]: x["outcome"] for x in results} == {
        p.id: "fail" if p.id in WRONG else "pass" for p in PROBLEMS[:LIMIT]}
    moved = [a for a in detail["assignments"] if a["attempt"] > 1]
    assert all(first[a["problem_id"]] == queen.pubkey and a["node"] != queen.pubkey for a in moved)
    unreported = {p for p, n in first.items() if n == queen.pubkey} - {
        x["problem_id"] for x in results if x["node"] == queen.pubkey}
    assert moved and {a["problem_id"] for a in moved} == unreported
    assert detail["summary"]["term"] == 2 and detail["summary"]["reassigned"] == len(moved)
    copy = wait_for("the other node's copy of the merged run", lambda: merged(other), timeout=20)
    assert (copy["queen"], copy["term"]) == (heir.pubkey, 2)

    # The old queen comes back: it learns term 2, stands down, and keeps the heir's merged run.
    queen.start(port=free_port("127.0.0.1"))
    queen.wait_ready()
    back = wait_for("the old queen to keep the heir's merged run", lambda: merged(queen), timeout=40)
    assert (back["queen"], back["term"]) == (heir.pubkey, 2)
    assert wait_for("the old queen to follow term 2", lambda: agreed(trio, heir.pubkey), timeout=20) == 2
    for n in trio:
        assert query(n, "SELECT COUNT(*) AS n FROM bench_runs WHERE shard = 'colony'") == [{"n": 1}], n.name
        assert "Traceback" not in n.log(), n.log()[-3000:]
    assert query(queen, "SELECT COUNT(*) AS n FROM federation_outbox WHERE kind = ?", (MERGED_KIND,)) == [{"n": 0}]
    for n in survivors:  # nothing the old queen sent was refused as forged
        assert query(n, "SELECT COUNT(*) AS n FROM federation_incidents WHERE kind = 'bad_signature'") == [{"n": 0}]
