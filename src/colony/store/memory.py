"""SQL of the memory capability on SQLite: memories, their FTS5 index, vectors, triples and mentions.

`SqliteMemoryStore` and `SqliteMemoryWriter` implement the `colony.memory.store` protocols for a
node's own file. Everything a memory touches is written inside one transaction (`Database.tx`),
so a batch is in every channel or in none. The vector index is a sqlite-vec ``vec0`` table per
embedding model holding binary-quantised vectors; `memory_embeddings` keeps the float vectors
used to re-rank the binary candidates exactly, and `colony.store._codes` scans an in-process copy
of the binary codes (sqlite-vec's own scan is ten times slower).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import apsw
import numpy as np
import numpy.typing as npt

from colony.redaction import redact_text
from colony.store._codes import BinaryCodes
from colony.store._db import Database, Row

__all__ = [
    "ACTIVE",
    "COLUMNS",
    "UNEXPIRED",
    "VERIFIED_RANK",
    "SqliteMemoryStore",
    "SqliteMemoryWriter",
    "fts5_match",
    "link_mentions",
    "vector_table",
]

#: The condition for a memory that may be recalled: not superseded and not expired.
ACTIVE = "m.superseded_by IS NULL AND (m.expires_at IS NULL OR m.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
#: The condition for a memory a question about the past may see: superseded versions too, never expired ones.
UNEXPIRED = "(m.expires_at IS NULL OR m.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
#: Binary candidates scanned per result the semantic channel returns (then re-ranked exactly).
CANDIDATES_PER_RESULT = 4

#: The columns a new memory is written with, on every engine.
COLUMNS = ("content", "content_hash", "memory_type", "confidence", "verified", "sensitivity", "expires_at",
           "source_kind", "source_id", "supersedes", "embedding_model")
#: Which duplicate curation keeps (standard SQL, so every engine orders by it).
VERIFIED_RANK = "CASE verified WHEN 'system_verified' THEN 2 WHEN 'user_stated' THEN 1 ELSE 0 END"


def vector_table(model: str) -> str:
    return "memory_vec_" + re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")


def fts5_match(phrases: Sequence[Sequence[str]]) -> str | None:
    """An FTS5 MATCH expression OR-ing quoted phrases of bare tokens; None when there are none."""
    return " OR ".join('"' + " ".join(p) + '"' for p in phrases) if phrases else None


def _marks(values: Collection[object]) -> str:
    return ",".join("?" * len(values))


def link_mentions(conn: apsw.Connection, memory_id: int, entities: Sequence[str], relations: Sequence[str]) -> int:
    """Record what ``memory_id`` names and speaks of; return how many entities.

    Each entity's ``df`` counts its memories: raised here, lowered by a trigger when a mention
    is deleted (also when a forgotten memory's mentions cascade away). Migration 11 backfills
    with it too.
    """
    unique = list(dict.fromkeys(entities))
    if unique:  # one statement per table: ingest writes thousands of memories a second
        cursor = conn.cursor()
        cursor.set_row_trace(None)  # plain tuples
        ids = [int(row[0]) for row in cursor.execute(
            f"""INSERT INTO memory_entities(name, df) VALUES {",".join("(?, 1)" for _ in unique)}
                ON CONFLICT(name) DO UPDATE SET df = df + 1 RETURNING id""",
            tuple(unique),
        )]
        conn.execute(f"INSERT INTO memory_mentions(entity_id, memory_id) VALUES {','.join('(?, ?)' for _ in ids)}",
                     tuple(v for entity_id in ids for v in (entity_id, memory_id)))
    cues = list(dict.fromkeys(relations))
    if cues:
        conn.execute(f"INSERT INTO memory_cues(memory_id, relation) VALUES {','.join('(?, ?)' for _ in cues)}",
                     tuple(v for relation in cues for v in (memory_id, relation)))
    return len(unique)


class SqliteMemoryWriter:
    """One write transaction on the node's file (see `colony.memory.store.MemoryWriter`)."""

    def __init__(self, conn: apsw.Connection) -> None:
        self.conn = conn

    def insert_memory(self, values: Mapping[str, Any]) -> int:
        cols = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        row = {**values, "content": redact_text(str(values.get("content") or ""))}  # no secret at rest
        self.conn.execute(f"INSERT INTO memories({cols}) VALUES ({marks})", tuple(row.get(c) for c in COLUMNS))
        return int(self.conn.last_insert_rowid())

    def insert_vector(self, memory_id: int, model: str, vector: npt.NDArray[np.float32]) -> None:
        """The binary code into the model's vec0 table, the float16 vector for the exact re-rank."""
        bits = np.packbits(vector > 0).tobytes()
        self.conn.execute(f"INSERT INTO {vector_table(model)}(memory_id, embedding) VALUES (?, vec_bit(?))",
                          (memory_id, bits))
        self.conn.execute("INSERT INTO memory_embeddings(memory_id, model, vector) VALUES (?, ?, ?)",
                          (memory_id, model, vector.astype(np.float16).tobytes()))

    def mark_embedded(self, memory_id: int, model: str) -> None:
        """Record a vector added late (`Memory.reindex`): below the newest id, so in-process copies
        of the codes, which only extend past the newest id they hold, must reload."""
        self.conn.execute("UPDATE memories SET embedding_model = ? WHERE id = ?", (model, memory_id))
        self._bump_vector_generation()

    def _bump_vector_generation(self) -> None:
        self.conn.execute(
            """INSERT INTO memory_meta(key, value) VALUES ('vector_generation', '1')
               ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"""
        )

    def link_triple(self, subject: str, relation: str, obj: str, memory_id: int) -> int:
        """Store a triple (a duplicate reinforces its weight) and link it to the memory it came from."""
        row = self.conn.execute(
            """INSERT INTO memory_triples(subject, relation, object) VALUES (?, ?, ?)
               ON CONFLICT(subject, relation, object) DO UPDATE SET weight = weight + 1 RETURNING id""",
            (redact_text(subject), redact_text(relation), redact_text(obj)),
        ).fetchone()
        assert row is not None
        triple_id = int(row["id"])
        self.conn.execute("INSERT OR IGNORE INTO memory_triple_sources(triple_id, memory_id) VALUES (?, ?)",
                          (triple_id, memory_id))
        return triple_id

    def conflicting_triples(self, subject: str, relation: str, obj: str) -> list[int]:
        """Active memories that state another object for the same subject and relation."""
        return [int(r["memory_id"]) for r in self.conn.execute(
            f"""SELECT DISTINCT s.memory_id FROM memory_triples t
                JOIN memory_triple_sources s ON s.triple_id = t.id JOIN memories m ON m.id = s.memory_id
                WHERE t.subject = ? AND t.relation = ? AND t.object != ? AND {ACTIVE}""",
            (subject, relation, obj),
        )]

    def conflicting_subjects(self, subject: str, relation: str, obj: str) -> list[int]:
        """Active memories that give another subject for the same relation and object."""
        return [int(r["memory_id"]) for r in self.conn.execute(
            f"""SELECT DISTINCT s.memory_id FROM memory_triples t
                JOIN memory_triple_sources s ON s.triple_id = t.id JOIN memories m ON m.id = s.memory_id
                WHERE t.object = ? AND t.relation = ? AND t.subject != ? AND {ACTIVE}""",
            (obj, relation, subject),
        )]

    def link_mentions(self, memory_id: int, entities: Sequence[str], relations: Sequence[str]) -> int:
        return link_mentions(self.conn, memory_id, entities, relations)

    def flag_for_review(self, ids: Sequence[int]) -> None:
        for mid in ids:
            self.conn.execute("UPDATE memories SET needs_review = 1 WHERE id = ?", (mid,))

    def delete_memory(self, memory_id: int) -> bool:
        """Remove a memory from every channel: row, FTS (trigger), vectors, triple links and weights."""
        conn = self.conn
        if conn.execute("SELECT 1 FROM memories WHERE id = ?", (memory_id,)).fetchone() is None:
            return False
        self._bump_vector_generation()
        triple_ids = [int(r["triple_id"]) for r in conn.execute(
            "SELECT triple_id FROM memory_triple_sources WHERE memory_id = ?", (memory_id,))]
        tables = [str(r["name"]) for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'memory_vec_%' AND sql LIKE '%vec0%'")]
        for table in tables:
            conn.execute(f"DELETE FROM {table} WHERE memory_id = ?", (memory_id,))
        conn.execute("UPDATE memories SET superseded_by = NULL WHERE superseded_by = ?", (memory_id,))
        conn.execute("DELETE FROM memories WHERE id = ?", (memory_id,))  # cascades embeddings and links
        for tid in triple_ids:
            conn.execute("UPDATE memory_triples SET weight = weight - 1 WHERE id = ?", (tid,))
            conn.execute(
                "DELETE FROM memory_triples WHERE id = ? AND NOT EXISTS (SELECT 1 FROM memory_triple_sources WHERE triple_id = ?)",
                (tid, tid),
            )
        return True

    def expired_ids(self) -> list[int]:
        return [int(r["id"]) for r in self.conn.execute(
            "SELECT id FROM memories WHERE expires_at IS NOT NULL AND expires_at <= strftime('%Y-%m-%dT%H:%M:%fZ','now')")]

    def duplicate_losers(self) -> list[int]:
        """Ids of exact duplicates to drop: per content, all but the most verified, most confident, oldest."""
        losers: list[int] = []
        groups: list[Row] = list(self.conn.execute(
            "SELECT content_hash FROM memories WHERE superseded_by IS NULL GROUP BY content_hash HAVING COUNT(*) > 1"))
        for group in groups:
            ranked = [int(r["id"]) for r in self.conn.execute(
                f"""SELECT id FROM memories WHERE content_hash = ? AND superseded_by IS NULL
                    ORDER BY {VERIFIED_RANK} DESC, confidence DESC, created_at ASC, id ASC""",
                (group["content_hash"],))]
            losers.extend(ranked[1:])
        return losers

    def decay_unverified(self, amount: float, floor: float) -> int:
        self.conn.execute(
            "UPDATE memories SET confidence = MAX(?, confidence - ?) WHERE verified = 'inferred' AND confidence > ?",
            (floor, amount, floor),
        )
        return int(self.conn.changes())

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM memory_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO memory_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


class SqliteMemoryStore:
    """Memory on the node's SQLite file (see `colony.memory.store.MemoryStore`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._codes: dict[str, BinaryCodes] = {}

    @property
    def vector_error(self) -> str | None:
        return self.db.vector_error

    @contextmanager
    def write(self) -> Iterator[SqliteMemoryWriter]:
        with self.db.tx() as conn:
            yield SqliteMemoryWriter(conn)

    def ensure_vector_index(self, model: str, dim: int) -> str:
        """Create the binary vector index for ``model`` if needed; return its name."""
        name = vector_table(model)
        if self.db.one("SELECT name FROM sqlite_master WHERE name = ?", (name,)) is None:
            with self.db.tx() as conn:
                conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {name} USING vec0(memory_id INTEGER PRIMARY KEY, embedding bit[{dim}])")
        self._codes.setdefault(model, BinaryCodes(name, dim))
        return name

    # -- rows -----------------------------------------------------------------------------------
    def get_memories(self, ids: Sequence[int], *, active_only: bool = False) -> dict[int, Row]:
        """Rows by id; with ``active_only`` the superseded and expired ones are left out."""
        if not ids:
            return {}
        where = f" AND {ACTIVE}" if active_only else ""
        return {int(r["id"]): r for r in self.db.query(
            f"SELECT * FROM memories m WHERE m.id IN ({_marks(ids)}){where}", tuple(ids))}

    def supersedes_of(self, memory_id: int) -> int | None:
        row = self.db.one("SELECT supersedes FROM memories WHERE id = ?", (memory_id,))
        return None if row is None or row["supersedes"] is None else int(row["supersedes"])

    def mark_superseded(self, old_id: int, new_id: int) -> None:
        self.db.execute("UPDATE memories SET superseded_by = ? WHERE id = ?", (new_id, old_id))

    def touch_accessed(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        self.db.execute(
            f"UPDATE memories SET last_accessed_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id IN ({_marks(ids)})",
            tuple(ids),
        )

    def review_rows(self, limit: int) -> list[Row]:
        return self.db.query(f"SELECT * FROM memories m WHERE needs_review = 1 AND {ACTIVE} ORDER BY id LIMIT ?",
                             (limit,))

    def clear_review(self, memory_id: int) -> bool:
        with self.db.tx() as conn:
            conn.execute("UPDATE memories SET needs_review = 0 WHERE id = ?", (memory_id,))
            return bool(conn.changes())

    def active_rows(self) -> list[Row]:
        return self.db.query(f"SELECT * FROM memories m WHERE {ACTIVE} ORDER BY id")

    def unembedded(self, limit: int) -> list[Row]:
        return self.db.query("SELECT id, content FROM memories WHERE embedding_model IS NULL ORDER BY id LIMIT ?",
                             (limit,))

    def counts(self) -> dict[str, Any]:
        """The figures `Memory.stats` reports, in one place."""
        now = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"
        row = self.db.one(
            f"""SELECT COUNT(*) AS total,
                       SUM(superseded_by IS NULL AND (expires_at IS NULL OR expires_at > {now})) AS active,
                       SUM(superseded_by IS NOT NULL) AS superseded,
                       SUM(expires_at IS NOT NULL AND expires_at <= {now}) AS expired,
                       SUM(needs_review = 1) AS needs_review,
                       SUM(embedding_model IS NULL) AS unembedded
                FROM memories"""
        ) or {}
        by_type = {r["memory_type"]: int(r["n"]) for r in self.db.query(
            f"SELECT memory_type, COUNT(*) AS n FROM memories m WHERE {ACTIVE} GROUP BY memory_type")}
        return {
            **{k: int(v or 0) for k, v in row.items()},
            "triples": int(self.db.scalar("SELECT COUNT(*) FROM memory_triples")),
            "entities": int(self.db.scalar(
                "SELECT COUNT(*) FROM (SELECT subject FROM memory_triples UNION SELECT object FROM memory_triples)")),
            "by_type": by_type,
        }

    # -- the keyword channel --------------------------------------------------------------------
    def memory_count(self) -> int:
        return int(self.db.scalar("SELECT COALESCE(MAX(id), 0) FROM memories"))

    def doc_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many memories contain each (single-token) term, from the FTS5 vocabulary."""
        if not terms:
            return {}
        return {r["term"]: int(r["doc"]) for r in self.db.query(
            f"SELECT term, doc FROM memories_fts_vocab WHERE term IN ({_marks(terms)})", tuple(terms))}

    def keyword_search(self, phrases: Sequence[Sequence[str]], limit: int, *, history: bool = False,
                       ) -> list[tuple[int, float]]:
        """Active memories (with ``history``, superseded ones too) holding any phrase, best BM25
        first (FTS5's bm25 is negative, lower is better: returned negated)."""
        match = fts5_match(phrases)
        if match is None:
            return []
        return [(int(r["id"]), -float(r["score"])) for r in self.db.query(
            f"""SELECT f.rowid AS id, bm25(memories_fts) AS score FROM memories_fts f
                JOIN memories m ON m.id = f.rowid
                WHERE memories_fts MATCH ? AND {UNEXPIRED if history else ACTIVE} ORDER BY score LIMIT ?""",
            (match, limit),
        )]

    # -- the semantic channel -------------------------------------------------------------------
    def nearest(self, model: str, vector: npt.NDArray[np.float32], limit: int, *,
                history: bool = False) -> list[tuple[int, float]]:
        """Binary (Hamming) candidates from the in-process codes, re-ranked by exact cosine."""
        codes = self._codes.get(model)
        if codes is None:
            self.ensure_vector_index(model, int(vector.shape[0]))
            codes = self._codes[model]
        codes.sync(self.db)
        candidates = codes.search(np.packbits(vector > 0).tobytes(), limit * CANDIDATES_PER_RESULT)
        ids = [mid for mid, _ in candidates]
        if not ids:
            return []
        rows = self.db.query(
            f"""SELECT e.memory_id AS id, e.vector FROM memory_embeddings e JOIN memories m ON m.id = e.memory_id
                WHERE e.memory_id IN ({_marks(ids)}) AND {UNEXPIRED if history else ACTIVE}""",
            tuple(ids),
        )
        if not rows:
            return []
        matrix = np.vstack([np.frombuffer(r["vector"], dtype=np.float16) for r in rows]).astype(np.float32)
        sims = matrix @ vector
        order = np.argsort(-sims)[:limit]
        return [(int(rows[i]["id"]), float(sims[i])) for i in order]

    # -- the mention graph ----------------------------------------------------------------------
    def entities_named(self, names: Sequence[str]) -> list[tuple[int, str, int]]:
        if not names:
            return []
        return cast(list[tuple[int, str, int]], self.db.tuples(
            f"SELECT id, name, df FROM memory_entities WHERE name IN ({_marks(names)}) AND df > 0", tuple(names)))

    def mentioning(self, entity_id: int, limit: int) -> list[int]:
        return [mid for (mid,) in self.db.tuples(
            "SELECT memory_id FROM memory_mentions WHERE entity_id = ? ORDER BY memory_id DESC LIMIT ?",
            (entity_id, limit))]

    def mentions_of(self, entity_ids: Sequence[int]) -> list[tuple[int, int]]:
        if not entity_ids:
            return []
        return cast(list[tuple[int, int]], self.db.tuples(
            f"SELECT entity_id, memory_id FROM memory_mentions WHERE entity_id IN ({_marks(entity_ids)}) "
            "ORDER BY entity_id, memory_id",
            tuple(entity_ids)))

    def relation_cues(self, ids: Sequence[int], *, history: bool = False) -> list[tuple[int, str, str | None]]:
        if not ids:
            return []
        return cast(list[tuple[int, str, str | None]], self.db.tuples(
            f"""SELECT m.id, m.memory_type, c.relation FROM memories m
                LEFT JOIN memory_cues c ON c.memory_id = m.id WHERE m.id IN ({_marks(ids)}) AND {"1" if history else ACTIVE}
                ORDER BY m.id, c.relation""",
            tuple(ids),
        ))

    def entities_of(self, ids: Sequence[int]) -> list[tuple[int, int, str, int]]:
        if not ids:
            return []
        return cast(list[tuple[int, int, str, int]], self.db.tuples(
            f"""SELECT mm.memory_id, e.id, e.name, e.df FROM memory_mentions mm
                JOIN memory_entities e ON e.id = mm.entity_id WHERE mm.memory_id IN ({_marks(ids)})
                ORDER BY mm.memory_id, mm.entity_id""",
            tuple(ids),
        ))

    def contents(self, ids: Sequence[int]) -> list[tuple[int, str]]:
        if not ids:
            return []
        return cast(list[tuple[int, str]], self.db.tuples(
            f"SELECT id, content FROM memories WHERE id IN ({_marks(ids)})", tuple(ids)))

    def triples_of(self, ids: Sequence[int]) -> list[tuple[int, str, str, str]]:
        if not ids:
            return []
        return cast(list[tuple[int, str, str, str]], self.db.tuples(
            f"""SELECT s.memory_id, t.subject, t.relation, t.object FROM memory_triple_sources s
                JOIN memory_triples t ON t.id = s.triple_id WHERE s.memory_id IN ({_marks(ids)})
                ORDER BY s.memory_id, s.triple_id""",
            tuple(ids),
        ))
