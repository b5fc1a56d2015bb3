"""SQL of the memory capability: memories, their FTS5 index, vectors and triples.

Everything a memory touches is written inside the caller's transaction (`Database.tx`), so a
batch is in every channel or in none. The vector index is a sqlite-vec ``vec0`` table per
embedding model holding binary-quantised vectors; `memory_embeddings` keeps the float vectors
used to re-rank the binary candidates exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import apsw

from colony.redaction import redact_text
from colony.store._db import Database, Row

__all__ = [
    "ACTIVE",
    "binary_codes",
    "delete_memory",
    "doc_frequencies",
    "ensure_vector_table",
    "fts_search",
    "get_memories",
    "insert_memory",
    "link_triple",
    "max_embedded_id",
    "touch_accessed",
    "vector_generation",
    "vector_table",
    "vectors_for",
]

#: The condition for a memory that may be recalled: not superseded and not expired.
ACTIVE = "m.superseded_by IS NULL AND (m.expires_at IS NULL OR m.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
#: The condition for a memory a question about the past may see: superseded versions too, never expired ones.
UNEXPIRED = "(m.expires_at IS NULL OR m.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ','now'))"

_COLUMNS = ("content", "content_hash", "memory_type", "confidence", "verified", "sensitivity", "expires_at",
            "source_kind", "source_id", "supersedes", "embedding_model")


def vector_table(model: str) -> str:
    return "memory_vec_" + re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")


def ensure_vector_table(db: Database, model: str, dim: int) -> str:
    """Create the binary vector index for ``model`` if needed; return its name."""
    name = vector_table(model)
    if db.one("SELECT name FROM sqlite_master WHERE name = ?", (name,)) is None:
        with db.tx() as conn:
            conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {name} USING vec0(memory_id INTEGER PRIMARY KEY, embedding bit[{dim}])")
    return name


def insert_memory(conn: apsw.Connection, values: dict[str, Any]) -> int:
    cols = ", ".join(_COLUMNS)
    marks = ", ".join("?" for _ in _COLUMNS)
    row = {**values, "content": redact_text(str(values.get("content") or ""))}  # no secret at rest
    conn.execute(f"INSERT INTO memories({cols}) VALUES ({marks})", tuple(row.get(c) for c in _COLUMNS))
    return int(conn.last_insert_rowid())


def insert_vector(conn: apsw.Connection, table: str, memory_id: int, model: str, bits: bytes, vector: bytes) -> None:
    conn.execute(f"INSERT INTO {table}(memory_id, embedding) VALUES (?, vec_bit(?))", (memory_id, bits))
    conn.execute("INSERT INTO memory_embeddings(memory_id, model, vector) VALUES (?, ?, ?)", (memory_id, model, vector))


def link_triple(conn: apsw.Connection, subject: str, relation: str, obj: str, memory_id: int) -> int:
    """Store a triple (a duplicate reinforces its weight) and link it to the memory it came from."""
    row = conn.execute(
        """INSERT INTO memory_triples(subject, relation, object) VALUES (?, ?, ?)
           ON CONFLICT(subject, relation, object) DO UPDATE SET weight = weight + 1 RETURNING id""",
        (redact_text(subject), redact_text(relation), redact_text(obj)),
    ).fetchone()
    assert row is not None
    triple_id = int(row["id"])
    conn.execute("INSERT OR IGNORE INTO memory_triple_sources(triple_id, memory_id) VALUES (?, ?)", (triple_id, memory_id))
    return triple_id


def conflicting_triples(conn: apsw.Connection, subject: str, relation: str, obj: str) -> list[Row]:
    """Active memories that state another object for the same subject and relation."""
    return list(conn.execute(
        f"""SELECT DISTINCT s.memory_id, t.object FROM memory_triples t
            JOIN memory_triple_sources s ON s.triple_id = t.id JOIN memories m ON m.id = s.memory_id
            WHERE t.subject = ? AND t.relation = ? AND t.object != ? AND {ACTIVE}""",
        (subject, relation, obj),
    ))


def conflicting_subjects(conn: apsw.Connection, subject: str, relation: str, obj: str) -> list[Row]:
    """Active memories that give another subject for the same relation and object."""
    return list(conn.execute(
        f"""SELECT DISTINCT s.memory_id, t.subject FROM memory_triples t
            JOIN memory_triple_sources s ON s.triple_id = t.id JOIN memories m ON m.id = s.memory_id
            WHERE t.object = ? AND t.relation = ? AND t.subject != ? AND {ACTIVE}""",
        (obj, relation, subject),
    ))


def doc_frequencies(db: Database, terms: Sequence[str]) -> dict[str, int]:
    """How many memories contain each (single-token) term, from the FTS5 vocabulary."""
    if not terms:
        return {}
    marks = ",".join("?" for _ in terms)
    return {r["term"]: int(r["doc"]) for r in db.query(
        f"SELECT term, doc FROM memories_fts_vocab WHERE term IN ({marks})", tuple(terms))}


def memory_count(db: Database) -> int:
    return int(db.scalar("SELECT COALESCE(MAX(id), 0) FROM memories"))


def fts_search(db: Database, match: str, limit: int, *, history: bool = False) -> list[Row]:
    """Active memories (with ``history``, superseded ones too) matching an FTS5 expression, best
    BM25 first (lower bm25 is better)."""
    return db.query(
        f"""SELECT f.rowid AS id, bm25(memories_fts) AS score FROM memories_fts f
            JOIN memories m ON m.id = f.rowid
            WHERE memories_fts MATCH ? AND {UNEXPIRED if history else ACTIVE} ORDER BY score LIMIT ?""",
        (match, limit),
    )


def vectors_for(db: Database, ids: Sequence[int], *, history: bool = False) -> list[Row]:
    if not ids:
        return []
    marks = ",".join("?" for _ in ids)
    return db.query(
        f"""SELECT e.memory_id AS id, e.vector FROM memory_embeddings e JOIN memories m ON m.id = e.memory_id
            WHERE e.memory_id IN ({marks}) AND {UNEXPIRED if history else ACTIVE}""",
        tuple(ids),
    )


def get_memories(db: Database, ids: Sequence[int], *, active_only: bool = False) -> dict[int, Row]:
    """Rows by id; with ``active_only`` the superseded and expired ones are left out."""
    if not ids:
        return {}
    marks = ",".join("?" for _ in ids)
    where = f" AND {ACTIVE}" if active_only else ""
    return {int(r["id"]): r for r in db.query(f"SELECT * FROM memories m WHERE m.id IN ({marks}){where}", tuple(ids))}


def touch_accessed(db: Database, ids: Sequence[int]) -> None:
    if not ids:
        return
    marks = ",".join("?" for _ in ids)
    db.execute(
        f"UPDATE memories SET last_accessed_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id IN ({marks})", tuple(ids)
    )


def vector_generation(db: Database) -> int:
    """Bumped whenever a vector is deleted, so in-process copies of the index know to reload."""
    value = db.scalar("SELECT value FROM memory_meta WHERE key = 'vector_generation'")
    return int(value) if value is not None else 0


def max_embedded_id(db: Database) -> int:
    return int(db.scalar("SELECT COALESCE(MAX(memory_id), 0) FROM memory_embeddings"))


def binary_codes(db: Database, table: str, after_id: int = 0) -> list[Row]:
    """(id, code) of every vector in the binary index with id > ``after_id``, in id order."""
    ids = [int(r["memory_id"]) for r in db.query(
        "SELECT memory_id FROM memory_embeddings WHERE memory_id > ? ORDER BY memory_id", (after_id,))]
    out: list[Row] = []
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        marks = ",".join("?" for _ in chunk)
        out.extend(db.query(f"SELECT memory_id AS id, embedding AS code FROM {table} WHERE memory_id IN ({marks})",
                            tuple(chunk)))
    out.sort(key=lambda r: int(r["id"]))
    return out


def delete_memory(conn: apsw.Connection, memory_id: int, vector_tables: Sequence[str]) -> bool:
    """Remove a memory from every channel: row, FTS (trigger), vectors, triple links and weights."""
    if conn.execute("SELECT 1 FROM memories WHERE id = ?", (memory_id,)).fetchone() is None:
        return False
    conn.execute(
        """INSERT INTO memory_meta(key, value) VALUES ('vector_generation', '1')
           ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"""
    )
    triple_ids = [int(r["triple_id"]) for r in conn.execute(
        "SELECT triple_id FROM memory_triple_sources WHERE memory_id = ?", (memory_id,))]
    for table in vector_tables:
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


def vector_tables(db: Database) -> list[str]:
    return [r["name"] for r in db.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'memory_vec_%' AND sql LIKE '%vec0%'")]


# -- corrections, review and upkeep --------------------------------------------------------------

_VERIFIED_RANK = "CASE verified WHEN 'system_verified' THEN 2 WHEN 'user_stated' THEN 1 ELSE 0 END"


def flag_for_review(conn: apsw.Connection, ids: Sequence[int]) -> None:
    for mid in ids:
        conn.execute("UPDATE memories SET needs_review = 1 WHERE id = ?", (mid,))


def clear_review(db: Database, memory_id: int) -> bool:
    with db.tx() as conn:
        conn.execute("UPDATE memories SET needs_review = 0 WHERE id = ?", (memory_id,))
        return bool(conn.changes())


def review_rows(db: Database, limit: int) -> list[Row]:
    return db.query(f"SELECT * FROM memories m WHERE needs_review = 1 AND {ACTIVE} ORDER BY id LIMIT ?", (limit,))


def active_rows(db: Database) -> list[Row]:
    return db.query(f"SELECT * FROM memories m WHERE {ACTIVE} ORDER BY id")


def mark_superseded(db: Database, old_id: int, new_id: int) -> None:
    db.execute("UPDATE memories SET superseded_by = ? WHERE id = ?", (new_id, old_id))


def supersedes_of(db: Database, memory_id: int) -> int | None:
    row = db.one("SELECT supersedes FROM memories WHERE id = ?", (memory_id,))
    return None if row is None or row["supersedes"] is None else int(row["supersedes"])


def unembedded(db: Database, limit: int) -> list[Row]:
    return db.query("SELECT id, content FROM memories WHERE embedding_model IS NULL ORDER BY id LIMIT ?", (limit,))


def mark_embedded(conn: apsw.Connection, memory_id: int, model: str) -> None:
    conn.execute("UPDATE memories SET embedding_model = ? WHERE id = ?", (model, memory_id))


def counts(db: Database) -> dict[str, Any]:
    """The figures `Memory.stats` reports, in one place."""
    now = "strftime('%Y-%m-%dT%H:%M:%fZ','now')"
    row = db.one(
        f"""SELECT COUNT(*) AS total,
                   SUM(superseded_by IS NULL AND (expires_at IS NULL OR expires_at > {now})) AS active,
                   SUM(superseded_by IS NOT NULL) AS superseded,
                   SUM(expires_at IS NOT NULL AND expires_at <= {now}) AS expired,
                   SUM(needs_review = 1) AS needs_review,
                   SUM(embedding_model IS NULL) AS unembedded
            FROM memories"""
    ) or {}
    by_type = {r["memory_type"]: int(r["n"]) for r in db.query(
        f"SELECT memory_type, COUNT(*) AS n FROM memories m WHERE {ACTIVE} GROUP BY memory_type")}
    return {
        **{k: int(v or 0) for k, v in row.items()},
        "triples": int(db.scalar("SELECT COUNT(*) FROM memory_triples")),
        "entities": int(db.scalar("SELECT COUNT(*) FROM (SELECT subject FROM memory_triples UNION SELECT object FROM memory_triples)")),
        "by_type": by_type,
    }


def expired_ids(conn: apsw.Connection) -> list[int]:
    return [int(r["id"]) for r in conn.execute(
        "SELECT id FROM memories WHERE expires_at IS NOT NULL AND expires_at <= strftime('%Y-%m-%dT%H:%M:%fZ','now')")]


def duplicate_losers(conn: apsw.Connection) -> list[int]:
    """Ids of exact duplicates to drop: per content, all but the most verified, most confident, oldest."""
    losers: list[int] = []
    groups: list[Row] = list(conn.execute(
        "SELECT content_hash FROM memories WHERE superseded_by IS NULL GROUP BY content_hash HAVING COUNT(*) > 1"))
    for group in groups:
        ranked = [int(r["id"]) for r in conn.execute(
            f"""SELECT id FROM memories WHERE content_hash = ? AND superseded_by IS NULL
                ORDER BY {_VERIFIED_RANK} DESC, confidence DESC, created_at ASC, id ASC""",
            (group["content_hash"],))]
        losers.extend(ranked[1:])
    return losers


def decay_unverified(conn: apsw.Connection, amount: float, floor: float) -> int:
    conn.execute(
        "UPDATE memories SET confidence = MAX(?, confidence - ?) WHERE verified = 'inferred' AND confidence > ?",
        (floor, amount, floor),
    )
    return int(conn.changes())


def get_meta(conn: apsw.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM memory_meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row["value"])


def set_meta(conn: apsw.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO memory_meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
