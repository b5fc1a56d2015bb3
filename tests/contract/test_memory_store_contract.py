"""Memory's contract, run on every engine: SQLite (the node's file) and PostgreSQL (pgvector).

Every test takes the `backend` fixture, parametrised over both engines, and goes through the
public `Memory` API with the real static embedding model — ingest, the three recall channels,
corrections and history, forgetting, expiry, abstention, curation, review, redaction at rest,
Unicode, strings shaped like SQL / FTS5 / tsquery syntax, and concurrent writers — so whatever
passes on SQLite must pass on PostgreSQL. Raw SQL appears only to check what is at rest; it is
written once with ``?`` marks and run on either engine.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from colony.config import Settings
from colony.memory import Memory, MemoryError, MemoryIn
from colony.memory.embed import load_embedder
from colony.memory.pg_store import PgMemoryStore
from colony.store import open_database
from colony.store.pg import open_pg

SQLITE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class Backend:
    """One engine under test: the memory, and raw reads for what is at rest."""

    name: str
    memory: Memory
    scalar: Callable[..., Any]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, settings: Settings) -> Iterator[Backend]:
    embedder = load_embedder("static")  # the real model, as the other memory tests use it
    if request.param == "sqlite":
        db = open_database(tmp_path / "memory.db")
        yield Backend("sqlite", Memory(db, settings, embedder), db.scalar)
        db.close()
        return
    pg = open_pg(request.getfixturevalue("pg_url"), max_size=6)

    def scalar(statement: str, params: tuple[Any, ...] = ()) -> Any:
        return pg.scalar(statement.replace("?", "%s"), params)

    yield Backend("postgres", Memory(PgMemoryStore(pg), settings, embedder), scalar)
    pg.close()


def add(memory: Memory, *texts: str, **fields: Any) -> list[int]:
    return memory.add_many([MemoryIn(content=t, **fields) for t in texts])


def ranked(memory: Memory, query: str, channel: str | None = None, **kw: Any) -> list[int]:
    channels = {channel} if channel else None
    return [h.memory.id for h in memory.recall(query, channels=channels, touch=False, **kw).hits]  # type: ignore[arg-type]


def consistent(b: Backend) -> None:
    """What every write must leave true: df counts mentions, no orphan triple, every memory embedded."""
    assert b.scalar("""SELECT COUNT(*) FROM memory_entities e
                       WHERE df <> (SELECT COUNT(*) FROM memory_mentions m WHERE m.entity_id = e.id)""") == 0
    assert b.scalar("""SELECT COUNT(*) FROM memory_triples t
                       WHERE NOT EXISTS (SELECT 1 FROM memory_triple_sources s WHERE s.triple_id = t.id)""") == 0
    assert b.scalar("SELECT COUNT(*) FROM memories") == b.scalar("SELECT COUNT(*) FROM memory_embeddings")
    if b.name == "postgres":  # FTS5 keeps its own statistics; PostgreSQL's BM25 reads these
        assert b.scalar("SELECT docs FROM memory_fts_stats") == b.scalar("SELECT COUNT(*) FROM memories")
        assert b.scalar("SELECT tokens FROM memory_fts_stats") == b.scalar("SELECT COALESCE(SUM(fts_len), 0) FROM memories")
        assert b.scalar("""SELECT COUNT(*) FROM (
                               SELECT lexeme, COUNT(*) AS n FROM memories, unnest(tsvector_to_array(fts)) AS lexeme
                               GROUP BY lexeme) counted
                           FULL JOIN memory_fts_terms t ON t.term = counted.lexeme
                           WHERE counted.n IS DISTINCT FROM t.doc""") == 0


# -- ingest and recall ---------------------------------------------------------------------------


def test_each_channel_finds_what_only_it_can(backend: Backend) -> None:
    mem = backend.memory
    ids = add(mem, "Ticket INC-48213 was closed after the cache fix.", "Deploy keys are rotated every ninety days.",
              "Billing service uses the ledger library.", "The ledger library depends on libfixed.",
              "Lunch on Fridays is pizza.")
    assert ranked(mem, "INC-48213", "keyword")[0] == ids[0]
    assert ranked(mem, "How often do we change deployment credentials?", "semantic")[0] == ids[1]
    assert ids[3] in ranked(mem, "What does billing service indirectly depend on?", "graph")
    fused = mem.recall("billing service dependencies", k=5, touch=False)
    assert {h.memory.id for h in fused.hits} >= {ids[2], ids[3]}
    assert {c.channel for h in fused.hits for c in h.channels} == {"keyword", "semantic", "graph"}
    assert "ledger library" in fused.expanded_entities
    consistent(backend)


def test_a_memory_reads_back_as_it_was_written(backend: Backend) -> None:
    mem = backend.memory
    expires = datetime(2999, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    [mid] = mem.add_many([MemoryIn(content="The release train leaves on Tuesdays.", memory_type="procedure",
                                   confidence=0.35, verified="user_stated", sensitivity="confidential",
                                   expires_at=expires, source_kind="session", source_id="sess-42")])
    item = mem.get(mid)
    assert item is not None
    assert (item.content, item.memory_type, item.confidence, item.verified, item.sensitivity) == (
        "The release train leaves on Tuesdays.", "procedure", 0.35, "user_stated", "confidential")
    assert (item.expires_at, item.source_kind, item.source_id) == (expires, "session", "sess-42")
    assert SQLITE_TIME.match(item.created_at) and item.last_accessed_at is None
    assert item.superseded_by is None and item.needs_review is False
    mem.recall("release train", k=1)  # touches what it returns
    touched = mem.get(mid)
    assert touched is not None and touched.last_accessed_at is not None and SQLITE_TIME.match(touched.last_accessed_at)
    assert mem.get(mid + 1000) is None
    assert [e["id"] for e in mem.export()] == [mid]


def test_expiry_in_a_far_past_or_future_year_round_trips(backend: Backend) -> None:
    early = datetime(411, 4, 6, 1, 35, 1, 500000, tzinfo=UTC)
    late = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    a, b = backend.memory.add_many([MemoryIn(content="an ancient expiry", expires_at=early),
                                    MemoryIn(content="a distant expiry", expires_at=late)])
    assert backend.memory.get(a).expires_at == early  # type: ignore[union-attr]
    assert backend.memory.get(b).expires_at == late  # type: ignore[union-attr]
    assert ranked(backend.memory, "expiry") == [b]  # the early one has expired


def test_memories_stored_while_the_model_was_down_are_embedded_later(backend: Backend, settings: Settings) -> None:
    """Their vectors arrive below the newest id: a memory that searched before must still find them."""
    down = Memory(backend.memory.store, settings, None, embedder_error="model not installed (test)")
    [mid] = down.add_many([MemoryIn(content="Frank owns the release checklist.")])
    add(backend.memory, "The car park closes at midnight.")  # a newer id, embedded at once
    assert ranked(backend.memory, "who is responsible for shipping steps", "semantic") != [mid]  # searched before
    result = down.recall("release checklist", touch=False)
    assert result.hits[0].memory.id == mid and result.channels_down == {"semantic": "model not installed (test)"}
    assert backend.memory.stats().unembedded == 1
    assert backend.memory.reindex() == 1 and backend.memory.stats().unembedded == 0
    assert ranked(backend.memory, "who is responsible for shipping steps", "semantic")[0] == mid
    consistent(backend)


def test_stats_count_every_state(backend: Backend) -> None:
    mem = backend.memory
    [old] = add(mem, "The office is located in Lisbon.")
    mem.correct(old, MemoryIn(content="The office is located in Porto."))
    mem.add_many([MemoryIn(content="A note that has expired.", expires_at=datetime.now(UTC) - timedelta(hours=1)),
                  MemoryIn(content="Bob prefers tea.", memory_type="preference")])
    stats = mem.stats()
    assert (stats.total, stats.active, stats.superseded, stats.expired, stats.unembedded) == (4, 2, 1, 1, 0)
    assert stats.by_type == {"fact": 1, "preference": 1}
    assert stats.triples >= 2 and stats.entities >= 3
    assert stats.embedder == "minilm-static-v1" and stats.vector_index == "memory_vec_minilm_static_v1"


# -- corrections, history, forgetting ------------------------------------------------------------


def test_a_correction_supersedes_and_keeps_the_history(backend: Backend) -> None:
    mem = backend.memory
    [old] = add(mem, "The office is located in Lisbon.")
    new = mem.correct(old, MemoryIn(content="The office is located in Porto.", verified="user_stated"))
    newest = mem.correct(new, MemoryIn(content="The office is located in Faro."))
    assert [m.id for m in mem.history(new)] == [old, new, newest]
    assert mem.get(old).superseded_by == new  # type: ignore[union-attr]
    for channel in ("keyword", "semantic", "graph", None):
        assert old not in ranked(mem, "Where is the office located?", channel)
        assert new not in ranked(mem, "Where is the office located?", channel)
    assert ranked(mem, "Where is the office located?")[0] == newest
    past = ranked(mem, "Where was the office located before?", include_history=True)
    assert {old, new} <= set(past)
    with pytest.raises(MemoryError, match="already corrected"):
        mem.correct(old, MemoryIn(content="The office is located in Braga."))
    with pytest.raises(MemoryError, match="No memory"):
        mem.correct(10_000, MemoryIn(content="nothing to correct"))


def test_forget_removes_a_memory_from_every_channel(backend: Backend) -> None:
    mem = backend.memory
    a, b = add(mem, "Carol maintains the payments gateway.", "The payments gateway runs on host pg-01.")
    assert backend.scalar("SELECT df FROM memory_entities WHERE name = ?", ("payments gateway",)) == 2
    assert mem.forget(a) is True and mem.forget(a) is False
    for channel in ("keyword", "semantic", "graph", None):
        assert a not in ranked(mem, "Carol payments gateway", channel)
    assert backend.scalar("SELECT COUNT(*) FROM memory_embeddings WHERE memory_id = ?", (a,)) == 0
    assert backend.scalar("SELECT COUNT(*) FROM memory_triples WHERE subject = 'carol'") == 0
    assert backend.scalar("SELECT df FROM memory_entities WHERE name = ?", ("payments gateway",)) == 1
    assert backend.scalar("SELECT COUNT(*) FROM memory_entities WHERE name = 'carol'") == 0
    assert mem.get(a) is None and mem.get(b) is not None
    consistent(backend)


def test_forgetting_the_correction_reopens_the_original(backend: Backend) -> None:
    mem = backend.memory
    [old] = add(mem, "The build server is named hopper.")
    new = mem.correct(old, MemoryIn(content="The build server is named turing."))
    assert mem.forget(new)
    assert mem.get(old).superseded_by is None  # type: ignore[union-attr]
    assert ranked(mem, "build server name", "keyword")[0] == old


def test_duplicate_triples_reinforce_their_weight(backend: Backend) -> None:
    add(backend.memory, "Dave uses Emacs.", "Dave uses Emacs every day.")
    assert backend.scalar("SELECT weight FROM memory_triples WHERE subject = 'dave' AND relation = 'uses'") >= 2


# -- expiry, abstention, review, curation --------------------------------------------------------


def test_expired_memories_are_never_recalled(backend: Backend) -> None:
    mem = backend.memory
    past = datetime.now(UTC) - timedelta(minutes=5)
    gone, kept = mem.add_many([MemoryIn(content="The staging password rotates hourly.", expires_at=past),
                               MemoryIn(content="The staging cluster rotates nodes nightly.",
                                        expires_at=datetime.now(UTC) + timedelta(days=1))])
    for channel in ("keyword", "semantic", "graph", None):
        assert gone not in ranked(mem, "staging password rotates", channel, include_history=True)
    assert ranked(mem, "staging cluster", "keyword") == [kept]
    assert mem.get(gone) is not None  # still stored until curation


def test_recall_abstains_when_nothing_relevant_is_stored(backend: Backend) -> None:
    mem = backend.memory
    add(mem, "The billing service depends on the ledger library.", "Deploy keys are rotated every ninety days.",
        "Lunch on Fridays is pizza.", "The Willow team maintains the pricing API.")
    nothing = mem.recall("What is the airspeed velocity of an unladen swallow?", touch=False)
    assert nothing.abstained and mem.recall_for_context("What is the airspeed velocity of an unladen swallow?") == []
    found = mem.recall("Which team maintains the pricing API?", touch=False)
    assert not found.abstained and found.relevance > nothing.relevance


def test_contradicting_facts_are_flagged_then_resolved(backend: Backend) -> None:
    mem = backend.memory
    [a] = add(mem, "Alice works at Initech.")
    report = mem.ingest([MemoryIn(content="Alice works at Globex.")])
    assert report.flagged == [(report.ids[0], a)]
    assert {m.id for m in mem.review_queue()} == {a, report.ids[0]}
    assert mem.resolve_review(a) is True and [m.id for m in mem.review_queue()] == [report.ids[0]]
    assert mem.get(a).content == "Alice works at Initech."  # type: ignore[union-attr]  (nothing overwritten)


def test_curation_expires_dedupes_and_decays(backend: Backend, settings: Settings) -> None:
    mem = backend.memory
    mem.add_many([MemoryIn(content="gone soon", expires_at=datetime.now(UTC) - timedelta(days=1))])
    low, high = mem.add_many([MemoryIn(content="The build uses make.", confidence=0.4),
                              MemoryIn(content="The build uses make.", confidence=0.9, verified="user_stated")])
    [inferred] = add(mem, "Erin prefers tea.", confidence=0.5)
    first = mem.curate()
    assert (first.expired, first.duplicates_removed) == (1, 1)
    assert mem.get(low) is None and mem.get(high) is not None
    ten_days_ago = (datetime.now(UTC) - timedelta(days=10)).isoformat()
    with mem.store.write() as w:
        w.set_meta("last_decay_at", ten_days_ago)
    second = mem.curate()
    assert second.decayed >= 1 and 9.9 < second.decay_days < 10.1
    assert mem.get(inferred).confidence == pytest.approx(0.5 - 0.1, abs=1e-3)  # type: ignore[union-attr]
    assert mem.get(high).confidence == 0.9  # type: ignore[union-attr]  (verified: no decay)
    consistent(backend)


# -- what is at rest, and hostile input ----------------------------------------------------------


def test_secrets_never_reach_the_tables(backend: Backend) -> None:
    secret = "sk-MemoryContractSecret0123456789abcdef"
    token = "ghp_" + "A1b2C3d4" * 5
    [mid] = add(backend.memory, f"Carol uses {secret} for the deploy; Dave keeps GITHUB_TOKEN={token}.")
    content = backend.memory.get(mid).content  # type: ignore[union-attr]
    assert secret not in content and token not in content and "[REDACTED]" in content
    for table, column in (("memories", "content"), ("memory_triples", "subject"), ("memory_triples", "object"),
                          ("memory_entities", "name")):
        for needle in (secret, token, "memorycontractsecret", token.lower()):
            found = backend.scalar(f"SELECT COUNT(*) FROM {table} WHERE LOWER({column}) LIKE ?", (f"%{needle.lower()}%",))
            assert found == 0, (table, column, needle)


def test_unicode_is_stored_and_found_by_its_words(backend: Backend) -> None:
    mem = backend.memory
    texts = ["שלום עולם RTL text", "emoji 🐝🌻 memory", "中文记忆内容", "Der Straßenbahn-Fahrplan hängt im Café Größe",
             "naïve coöperation at the Zürich office"]
    ids = add(mem, *texts)
    assert [mem.get(i).content for i in ids] == texts  # type: ignore[union-attr]
    assert ranked(mem, "Café", "keyword")[0] == ids[3]
    assert ranked(mem, "cafe straßenbahn", "keyword")[0] == ids[3]  # diacritics folded, as FTS5's unicode61 does
    assert ranked(mem, "zurich cooperation", "keyword")[0] == ids[4]
    assert ranked(mem, "中文记忆内容", "keyword") == [ids[2]]
    assert ranked(mem, "שלום", "keyword") == [ids[0]]
    nul = mem.add(MemoryIn(content="nul \x00 inside"))
    stored = mem.get(nul).content  # type: ignore[union-attr]
    assert stored == ("nul \x00 inside" if backend.name == "sqlite" else "nul \ufffd inside")


HOSTILE = [
    "'); DROP TABLE memories; --",
    'NEAR("a" "b") OR * AND title:secret ^start',
    "a & b | !c <-> d:* (e) 'f'",
    "%s %(name)s {0} {x} $1 ?1 :param",
    "\\x00 \\' \\\\ E'\\n' $$dollar$$ $tag$ body $tag$",
    "SELECT * FROM memory_meta; /* comment */ -- tail",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_strings_shaped_like_query_syntax_are_just_text(backend: Backend, text: str) -> None:
    mem = backend.memory
    [mid] = add(mem, f"Note about {text} in the runbook.")
    assert mem.get(mid).content == f"Note about {text} in the runbook."  # type: ignore[union-attr]
    for channel in ("keyword", "semantic", "graph", None):
        mem.recall(text, channels={channel} if channel else None, touch=False)  # type: ignore[arg-type]
    assert mid in ranked(mem, f"runbook {text}")
    assert backend.scalar("SELECT COUNT(*) FROM memories") == 1
    consistent(backend)


# -- concurrency ---------------------------------------------------------------------------------


def test_concurrent_writers_readers_and_forgetting(backend: Backend) -> None:
    """Writers whose memories share entities (shared counters), a reader, a forgetter: no error, no
    deadlock, and the counters agree with the rows afterwards."""
    mem = backend.memory
    errors: list[BaseException] = []
    forgotten: list[int] = []

    def run(fn: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                fn()
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)
        return threading.Thread(target=guarded)

    def writer(n: int) -> Callable[[], None]:
        def write() -> None:
            for i in range(6):
                mem.add_many([MemoryIn(content=f"Team Kestrel and team Osprey share service s{(n + j) % 3} "
                                               f"(worker {n} batch {i} item {j}); Pat Lee reviews it.")
                              for j in range(5)])
        return write

    def reader() -> None:
        for _ in range(10):
            mem.recall("Which team shares service s1?", touch=True)

    def forgetter() -> None:
        for _ in range(10):
            hits = ranked(mem, "Kestrel Osprey service", "keyword")
            if hits and mem.forget(hits[-1]):
                forgotten.append(hits[-1])

    threads = [run(writer(n)) for n in range(4)] + [run(reader), run(forgetter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=100)
    assert errors == []
    assert mem.stats().total == 4 * 6 * 5 - len(forgotten)
    consistent(backend)


def test_statistics_are_recounted_when_rows_arrive_without_triggers(pg_url: str, settings: Settings) -> None:
    """PostgreSQL only (FTS5 keeps its own): rows copied in with triggers off (as `colony db migrate` copies
    a node's SQLite file) leave BM25's statistics behind; the next store to open recounts them."""
    pg = open_pg(pg_url, max_size=2)
    try:
        embedder = load_embedder("static")
        add(Memory(PgMemoryStore(pg), settings, embedder), "Ticket INC-48213 was closed.", "The cache was fixed.")
        with pg.tx() as conn:
            conn.execute("ALTER TABLE memories DISABLE TRIGGER USER")
            conn.execute("""INSERT INTO memories(content, content_hash, memory_type, confidence, verified, sensitivity,
                            source_kind) VALUES ('Copied: ticket INC-9 reopened.', 'h', 'fact', 0.5, 'inferred',
                            'internal', 'import')""")
            conn.execute("ALTER TABLE memories ENABLE TRIGGER USER")
        assert pg.scalar("SELECT docs FROM memory_fts_stats") == 2
        memory = Memory(PgMemoryStore(pg), settings, embedder)
        assert pg.scalar("SELECT docs FROM memory_fts_stats") == 3
        assert pg.scalar("SELECT doc FROM memory_fts_terms WHERE term = 'ticket'") == 2
        assert ranked(memory, "ticket reopened", "keyword")[0] == 3
    finally:
        pg.close()
