"""Many nodes, one memory: node processes on one PostgreSQL see each other's memories at once.

Each node is its own process with its own data directory (``COLONY_HOME``) and the same
``COLONY_DATABASE_URL``, so `Node.memory` opens the colony's memory on PostgreSQL (the real
static embedding model, no stand-in). What one node stores, another recalls through every channel
in its next query — the semantic channel included: PostgreSQL nodes keep no in-process copy of
the vector index that could miss another node's rows. Two nodes writing at once, their memories
naming the same entities, neither deadlock nor leave the shared counters wrong.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import pytest

from colony.config import Settings
from colony.memory import MemoryIn
from colony.node import Node
from colony.store.pg import open_pg

#: A forkserver gives clean, single-threaded children (see tests/test_tasks_reliability.py).
CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["colony.node", "colony.memory.pg_store", "colony.memory.embed", __name__])


def _env(tmp_path: Path, name: str, url: str) -> dict[str, str]:
    return {"COLONY_HOME": str(tmp_path / name), "COLONY_WORKSPACE": str(tmp_path / name / "ws"),
            "COLONY_DATABASE_URL": url}


def _in_node(env: dict[str, str], job: str, arg: Any, out: Queue[Any]) -> None:
    """A node process: store or recall through `Node.memory`, then put what it saw on ``out``."""
    os.environ.update(env)
    Path(env["COLONY_WORKSPACE"]).mkdir(parents=True, exist_ok=True)
    node = Node(Settings())
    try:
        memory = node.memory
        if job == "add":
            out.put(memory.add(MemoryIn(content=str(arg))))
        elif job == "recall":
            out.put({channel: [h.memory.id for h in memory.recall(
                str(arg), channels={channel} if channel != "fused" else None, touch=False).hits]
                for channel in ("keyword", "semantic", "graph", "fused")})
        else:  # "ingest": batches naming the same entities as the other writer's
            writer, batches = arg
            ids: list[int] = []
            for b in range(batches):
                ids += memory.add_many([MemoryIn(content=f"Team Kestrel and team Osprey share service s{i % 3}; "
                                                         f"writer {writer} batch {b} note {i}, reviewed by Pat Lee.")
                                        for i in range(10)])
            out.put((writer, ids))
    finally:
        asyncio.run(node.aclose())


def _run(job: str, arg: Any, env: dict[str, str]) -> Any:
    out: Queue[Any] = CTX.Queue()
    proc = CTX.Process(target=_in_node, args=(env, job, arg, out))
    proc.start()
    try:
        return out.get(timeout=90)
    finally:
        proc.join(30)
        assert proc.exitcode == 0


@pytest.fixture
def here(tmp_path: Path, pg_url: str) -> Any:
    """This test process as a third node on the same database."""
    Path(tmp_path / "here" / "ws").mkdir(parents=True)
    node = Node(Settings(home=tmp_path / "here", workspace=tmp_path / "here" / "ws", database_url=pg_url))
    yield node
    asyncio.run(node.aclose())


def test_what_one_node_stores_another_recalls_at_once(tmp_path: Path, pg_url: str, here: Node) -> None:
    lead = here.memory.add(MemoryIn(content="Kofi MacLeod leads the Willow team."))
    fact = "The Willow team maintains the pricing API behind INC-48213."
    mid = _run("add", fact, _env(tmp_path, "a", pg_url))
    assert here.memory.get(mid) is not None and here.memory.get(mid).content == fact  # type: ignore[union-attr]
    for channel, query in (("keyword", "INC-48213"), ("semantic", "Who looks after the pricing interface?"),
                           ("graph", "Who should I escalate to about the pricing API?")):
        hits = [h.memory.id for h in here.memory.recall(query, channels={channel}, touch=False).hits]  # type: ignore[arg-type]
        assert mid in hits, channel
        if channel == "graph":  # the path runs through the other node's memory to this one's
            assert lead in hits
    newer = here.memory.correct(mid, MemoryIn(content="The Falcon team maintains the pricing API behind INC-48213."))
    seen = _run("recall", "Which team maintains the pricing API behind INC-48213?", _env(tmp_path, "b", pg_url))
    assert all(mid not in hits for hits in seen.values())  # the correction hides the old version everywhere
    assert newer in seen["keyword"] and newer in seen["semantic"] and seen["fused"][0] == newer


def test_two_nodes_writing_at_once_keep_the_shared_counters_right(tmp_path: Path, pg_url: str, here: Node) -> None:
    out: Queue[Any] = CTX.Queue()
    procs = [CTX.Process(target=_in_node, args=(_env(tmp_path, f"w{n}", pg_url), "ingest", (n, 15), out))
             for n in range(2)]
    for p in procs:
        p.start()
    written = dict(out.get(timeout=110) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    everything = [i for ids in written.values() for i in ids]
    assert len(everything) == len(set(everything)) == 300
    assert here.memory.stats().total == 2 * 15 * 10
    pg = open_pg(pg_url, max_size=1)
    try:
        assert pg.scalar("""SELECT count(*) FROM memory_entities e
                            WHERE df <> (SELECT count(*) FROM memory_mentions m WHERE m.entity_id = e.id)""") == 0
        assert pg.scalar("SELECT docs FROM memory_fts_stats") == 300
        assert pg.scalar("SELECT doc FROM memory_fts_terms WHERE term = 'kestrel'") == 300
        assert pg.scalar("SELECT df FROM memory_entities WHERE name = 'pat lee'") == 300
    finally:
        pg.close()
    for writer, ids in written.items():  # each writer's last memory, found by this third node
        hits = [h.memory.id for h in here.memory.recall(f"writer {writer} batch 14 note 9", channels={"keyword"},
                                                        touch=False).hits]
        assert hits[0] == ids[-1]
