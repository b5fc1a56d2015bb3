"""The memory store: three real channels (FTS5, the static embedding model + sqlite-vec, the
triple graph), fusion with explanations, corrections, curation, and bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st_

from colony.config import Settings
from colony.memory import Memory, MemoryError, MemoryIn, open_memory
from colony.memory._fts import to_match
from colony.store import Database, open_database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    d = open_database(tmp_path / "mem.db")
    yield d  # type: ignore[misc]
    d.close()


@pytest.fixture
def mem(db: Database, settings: Settings) -> Memory:
    m = open_memory(db, settings)
    assert m.embedder is not None, m.embedder_error  # the real model, not a stand-in
    return m


def add(mem: Memory, *texts: str, **kw: object) -> list[int]:
    return mem.add_many([MemoryIn(content=t, **kw) for t in texts])  # type: ignore[arg-type]


def test_each_channel_finds_what_only_it_can(mem: Memory) -> None:
    ids = add(
        mem,
        "Ticket INC-48213 was closed after the cache fix.",
        "Deploy keys are rotated every ninety days.",
        "Billing service uses the ledger library.",
        "The ledger library depends on libfixed.",
        "Lunch on Fridays is pizza.",
    )
    kw = mem.recall("INC-48213", channels={"keyword"})
    assert kw.hits[0].memory.id == ids[0]
    sem = mem.recall("How often do we change deployment credentials?", channels={"semantic"})
    assert sem.hits[0].memory.id == ids[1]
    graph = mem.recall("What does billing service indirectly depend on?", channels={"graph"})
    assert ids[3] in [h.memory.id for h in graph.hits]
    assert "billing service" not in mem.get(ids[3]).content.lower()  # type: ignore[union-attr]


def test_fused_recall_explains_every_hit(mem: Memory) -> None:
    ids = add(mem, "Billing service uses the ledger library.", "The ledger library depends on libfixed.")
    res = mem.recall("billing service dependencies", k=5)
    assert {h.memory.id for h in res.hits} == set(ids)
    for hit in res.hits:
        assert hit.channels and all(c.rank >= 1 for c in hit.channels)
    channels = {c.channel for h in res.hits for c in h.channels}
    assert {"keyword", "semantic", "graph"} <= channels
    assert "ledger library" in res.expanded_entities
    assert res.timings_ms["total"] > 0


def test_expired_and_superseded_never_come_back(mem: Memory) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    [expired] = mem.add_many([MemoryIn(content="The staging password rotates hourly", expires_at=past)])
    [old] = add(mem, "The office is located in Lisbon.")
    new = mem.correct(old, MemoryIn(content="The office is located in Porto.", verified="user_stated"))
    hits = {h.memory.id for h in mem.recall("office located staging password", k=10).hits}
    assert expired not in hits and old not in hits and new in hits
    chain = mem.history(new)
    assert [m.id for m in chain] == [old, new] and chain[0].superseded_by == new
    assert mem.get(old) is not None  # history is kept, not destroyed
    with pytest.raises(MemoryError, match="already corrected"):
        mem.correct(old, MemoryIn(content="The office is located in Faro."))


def test_contradicting_triples_flag_both_for_review(mem: Memory) -> None:
    [a] = add(mem, "Alice works at Initech.")
    report = mem.ingest([MemoryIn(content="Alice works at Globex.")])
    assert report.flagged == [(report.ids[0], a)]
    assert {m.id for m in mem.review_queue()} == {a, report.ids[0]}
    assert mem.get(a).content == "Alice works at Initech."  # type: ignore[union-attr]  (nothing overwritten)


def test_forget_removes_from_every_channel(mem: Memory, db: Database) -> None:
    [a, b] = add(mem, "Carol maintains the payments gateway.", "The payments gateway runs on host pg-01.")
    assert mem.forget(a) is True and mem.forget(a) is False
    for channel in ("keyword", "semantic", "graph"):
        assert a not in {h.memory.id for h in mem.recall("Carol payments gateway", channels={channel}).hits}  # type: ignore[arg-type]
    assert db.scalar("SELECT COUNT(*) FROM memory_embeddings WHERE memory_id = ?", (a,)) == 0
    assert db.scalar("SELECT COUNT(*) FROM memories_fts WHERE memories_fts MATCH 'carol'") == 0
    assert db.scalar("SELECT COUNT(*) FROM memory_triples WHERE subject = 'carol'") == 0
    assert mem.get(b) is not None


def test_duplicate_triples_reinforce_weight(mem: Memory, db: Database) -> None:
    add(mem, "Dave uses Emacs.", "Dave uses Emacs every day.")
    assert db.scalar("SELECT weight FROM memory_triples WHERE subject = 'dave' AND relation = 'uses'") >= 2


def test_curation_expires_dedupes_and_decays(mem: Memory, db: Database, settings: Settings) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    mem.add_many([MemoryIn(content="gone soon", expires_at=past)])
    low, high = mem.add_many([
        MemoryIn(content="The build uses make.", confidence=0.4),
        MemoryIn(content="The build uses make.", confidence=0.9, verified="user_stated"),
    ])
    [inferred] = add(mem, "Erin prefers tea.", confidence=0.5)
    first = mem.curate()
    assert first.expired == 1 and first.duplicates_removed == 1
    assert mem.get(low) is None and mem.get(high) is not None
    db.execute("UPDATE memory_meta SET value = ? WHERE key = 'last_decay_at'",
               ((datetime.now(UTC) - timedelta(days=10)).isoformat(),))
    second = mem.curate()
    assert second.decayed >= 1 and 9.9 < second.decay_days < 10.1
    assert mem.get(inferred).confidence == pytest.approx(0.5 - 0.1, abs=1e-3)  # type: ignore[union-attr]
    assert mem.get(high).confidence == 0.9  # type: ignore[union-attr]  (verified: no decay)


def test_confidence_and_verification_weigh_in_fusion(mem: Memory) -> None:
    sure, doubtful = mem.add_many([
        MemoryIn(content="The API gateway listens on port 8443.", confidence=1.0, verified="user_stated"),
        MemoryIn(content="The API gateway listens on port 8080.", confidence=0.1),
    ])
    res = mem.recall("which port does the API gateway listen on", k=2)
    assert [h.memory.id for h in res.hits] == [sure, doubtful]


@pytest.mark.parametrize(
    "query",
    ['"unbalanced', "NEAR(a b", "a* OR NOT b", "col:val", "((((", "AND", "-x +y", "'; DROP TABLE memories; --",
     "\x00", "🐝🐝", "مرحبا", "中文查询", "", "   ", "x" * 5000],
)
def test_any_query_is_safe(mem: Memory, query: str) -> None:
    add(mem, "Some ordinary memory about bees 🐝 and 中文查询.")
    res = mem.recall(query)
    assert isinstance(res.hits, list)


@given(st_.text(max_size=200))
@hsettings(max_examples=200, deadline=None)
def test_fts_match_expression_is_always_valid(text: str) -> None:
    d = Database(":memory:")
    try:
        d.connection().execute("CREATE VIRTUAL TABLE t USING fts5(c, tokenize='unicode61 remove_diacritics 2')")
        match = to_match(text)
        if match is not None:
            d.query("SELECT rowid FROM t WHERE t MATCH ?", (match,))
    finally:
        d.close()


def test_bad_memories_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="blank"):
        MemoryIn(content="   ")
    with pytest.raises(ValueError, match="at most 64000 characters"):
        MemoryIn(content="x" * 1_000_000)
    with pytest.raises(ValueError, match="less than or equal to 1"):
        MemoryIn(content="ok", confidence=1.5)


def test_unicode_and_nul_memories_round_trip(mem: Memory) -> None:
    texts = ["שלום עולם RTL text", "emoji 🐝🌻 memory", "中文记忆内容", "nul \x00 inside"]
    ids = add(mem, *texts)
    assert [mem.get(i).content for i in ids] == texts  # type: ignore[union-attr]
    assert mem.recall("emoji memory", k=4).hits


def test_agent_context_never_gets_restricted_memories(mem: Memory) -> None:
    add(mem, "The root password is kept in the vault.", sensitivity="restricted")
    add(mem, "The vault is in the basement.", sensitivity="internal")
    context = mem.recall_for_context("where is the vault and the password")
    assert context == ["The vault is in the basement."]


def test_semantic_channel_down_keeps_recall_working(db: Database, settings: Settings) -> None:
    mem = Memory(db, settings, None, embedder_error="model not installed (test)")
    [a] = mem.add_many([MemoryIn(content="Frank owns the release checklist.")])
    res = mem.recall("release checklist")
    assert res.hits[0].memory.id == a
    assert res.channels_down == {"semantic": "model not installed (test)"}
    assert mem.stats().unembedded == 1
    fixed = open_memory(db, settings)
    assert fixed.reindex() == 1 and fixed.stats().unembedded == 0
    assert fixed.recall("who is responsible for shipping steps", channels={"semantic"}).hits[0].memory.id == a


def test_concurrent_writers_and_readers(mem: Memory) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                mem.add(MemoryIn(content=f"worker {n} wrote fact number {i} about service s{n}"))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(20):
                mem.recall("fact about service")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert mem.stats().active == 80


_INGEST = textwrap.dedent(
    """
    import sys
    from colony.config import Settings
    from colony.memory import MemoryIn, open_memory
    from colony.store import open_database
    db = open_database(sys.argv[1])
    mem = open_memory(db, Settings())
    print("ready", flush=True)
    n = 0
    while True:
        mem.add_many([MemoryIn(content=f"batch fact {n}-{i}: node n{i} uses library l{i}") for i in range(50)])
        n += 1
    """
)


def test_killed_during_batch_ingest_leaves_no_half_indexed_memory(tmp_path: Path) -> None:
    path = tmp_path / "kill.db"
    open_database(path).close()
    proc = subprocess.Popen([sys.executable, "-c", _INGEST, str(path)], stdout=subprocess.PIPE, env=dict(os.environ))
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(1.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    db = open_database(path)
    try:
        n = db.scalar("SELECT COUNT(*) FROM memories")
        assert n > 0 and n % 50 == 0  # whole batches only
        assert db.scalar("SELECT COUNT(*) FROM memories_fts") == n
        assert db.scalar("SELECT COUNT(*) FROM memory_embeddings") == n
        assert db.scalar("SELECT COUNT(DISTINCT memory_id) FROM memory_triple_sources") == n
        tables = [r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE name LIKE 'memory_vec_%' AND sql LIKE '%vec0%'")]
        assert db.scalar(f"SELECT COUNT(*) FROM {tables[0]}") == n
        assert db.scalar("PRAGMA quick_check") == "ok"
    finally:
        db.close()


def test_expiry_in_a_far_past_or_future_year_round_trips(mem: Memory) -> None:
    # Found by schemathesis: year 411 was written as "411-…", which could not be read back.
    early = datetime(411, 4, 6, 1, 35, 1, 500000, tzinfo=UTC)
    late = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    [a, b] = mem.add_many([MemoryIn(content="an ancient expiry", expires_at=early),
                           MemoryIn(content="a distant expiry", expires_at=late)])
    assert mem.get(a).expires_at == early.replace(microsecond=500000)  # type: ignore[union-attr]
    assert [h.memory.id for h in mem.recall("expiry", k=5).hits] == [b]  # the early one has expired
