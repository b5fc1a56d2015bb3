"""Memory on PostgreSQL: the `MemoryStore` every node of a colony shares.

Same contract as `colony.store.memory.SqliteMemoryStore` (the contract suite runs the same
assertions on both; the parity test runs the retrieval eval on both). How each channel is kept:

- **keyword**: ``memories.fts``, a generated ``tsvector`` cut like FTS5's ``unicode61`` tokens
  (migration 2, `colony.store.pg.memory_schema`), finds the rows holding any query phrase through
  its GIN index. They are scored with FTS5's own BM25 (`colony.memory._bm25`), not ``ts_rank``,
  because the fusion calibration was fitted on BM25's scale: one statement returns the rows'
  token counts and the query tokens' positions, each phrase's document count and the table's
  totals, and the exact score is computed here. Where many rows match, the statement first keeps
  the `KEYWORD_CANDIDATES_PER_RESULT` × limit best by BM25 at one occurrence per phrase (the exact
  score can only exceed it for a phrase a row repeats), so a common word costs a bounded read;
- **semantic**: pgvector. Each embedding model has a partial HNSW index (inner product on the
  ``halfvec`` column, the vectors being unit length; `HNSW_M` and `HNSW_EF_CONSTRUCTION` above
  pgvector's defaults, see there) searched with ``ef_search`` = `HNSW_EF_SEARCH` and iterative
  scans, so superseded or expired rows filtered after the index never leave fewer than ``limit``
  results; the score returned is the exact dot product of the
  stored vector and the float32 query, as SQLite's re-rank computes it. There is no in-process
  copy of the index: with writers on many nodes, ids commit out of order, and a copy extended
  "after the highest id it has" (SQLite's `colony.store._codes`) would miss a slower writer's
  rows. Searching in the server, every node sees every committed vector;
- **graph**: the same tables and the same walk (`colony.memory._paths`), read through this store.

Writers: every write transaction first takes one transaction-level advisory lock. Entity ``df``
counters, triple weights and the BM25 statistics are rows many memories share; two concurrent
batches would lock them in different orders and deadlock. Memory writes are short batches, and
SQLite serialises them the same way; reads never take the lock (MVCC). ``touch_accessed`` skips
rows a writer holds rather than waiting on them: the access time is a hint, recall must not
stall behind an ingest.

One difference the contract suite pins down: PostgreSQL's text cannot hold NUL, so a NUL in a
memory's content or source id is stored as U+FFFD (SQLite keeps it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg import sql

from colony.memory import _bm25
from colony.memory.store import Hit, Phrase
from colony.redaction import redact_text
from colony.store import Row
from colony.store.memory import COLUMNS, VERIFIED_RANK, vector_table
from colony.store.pg import PgConnection, PgDatabase

__all__ = ["HNSW_EF_CONSTRUCTION", "HNSW_EF_SEARCH", "HNSW_M", "KEYWORD_CANDIDATES_PER_RESULT", "PgMemoryStore",
           "PgMemoryWriter"]

#: The HNSW graph: neighbours per node and the candidate list while inserting. pgvector's defaults
#: (16, 64) lost the true nearest memories of clusters of near-identical ones (a template filled
#: in many times): at 100K, 0.84 of the exact top 10 found on average and none at all for some
#: questions; (32, 128) finds 0.90 and fixes those, for ~3 ms per inserted vector instead of ~1.5.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
#: Candidates the HNSW scan keeps while it walks the graph (at least the results asked for). At
#: 100K, 200 found 0.90 of the exact top 10 in 3.4 ms and 400 found 0.94 in 5.2 ms, and only 400
#: matched SQLite's recall@5 on the eval's plain questions among 100K look-alike distractors.
HNSW_EF_SEARCH = 400
#: Rows scored exactly per keyword result asked for, when more rows than that match.
KEYWORD_CANDIDATES_PER_RESULT = 8
#: The advisory lock every memory write transaction holds ("memo" in ASCII).
_WRITE_LOCK = 0x6D656D6F

_NOW = "now()"
ACTIVE = f"m.superseded_by IS NULL AND (m.expires_at IS NULL OR m.expires_at > {_NOW})"
UNEXPIRED = f"(m.expires_at IS NULL OR m.expires_at > {_NOW})"
_TEXT_TIME = """to_char(m.{0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS {0}"""
#: A memory row as SQLite returns it: every column but the index ones, times as ISO text.
_ROW = ", ".join([
    "m.id", "m.content", "m.content_hash", "m.memory_type", "m.confidence", "m.verified", "m.sensitivity",
    _TEXT_TIME.format("expires_at"), "m.source_kind", "m.source_id", _TEXT_TIME.format("created_at"),
    _TEXT_TIME.format("last_accessed_at"), "m.superseded_by", "m.supersedes", "m.needs_review",
    "m.embedding_model",
])

#: The keyword channel's statement. Per phrase, the rows holding it (through the GIN index; all
#: of them count for the phrase's document frequency, as in FTS5); of those that may be recalled
#: (``{eligible}``), the best by BM25 at one occurrence per phrase; and for each of these its
#: length and the positions of the query's tokens (its tsvector narrowed to them in C by
#: ``setweight`` + ``ts_filter``: seven times faster than ``unnest``), with the statistics BM25 needs.
_KEYWORD = """
WITH q AS MATERIALIZED (
    SELECT ord::int AS ord, string_to_array(memory_fts_text(p), ' ') AS lexemes,
           phraseto_tsquery('simple', memory_fts_text(p)) AS query
    FROM unnest(%(phrases)s::text[]) WITH ORDINALITY AS t(p, ord)
),
pairs AS MATERIALIZED (
    SELECT q.ord, h.id, h.fts_len, h.eligible FROM q CROSS JOIN LATERAL (
        SELECT m.id, m.fts_len, ({eligible}) AS eligible FROM memories m WHERE m.fts @@ q.query) h
),
stats AS (SELECT greatest(docs, 1)::float8 AS docs, greatest(tokens, 1)::float8 / greatest(docs, 1) AS avgdl
          FROM memory_fts_stats),
df AS (SELECT q.ord, q.lexemes, count(p.id) AS n FROM q LEFT JOIN pairs p ON p.ord = q.ord GROUP BY q.ord, q.lexemes),
weights AS (
    SELECT array_agg(greatest(ln((s.docs - df.n + 0.5) / (df.n + 0.5)), 1e-6) ORDER BY df.ord) AS idf,
           jsonb_agg(jsonb_build_array(df.lexemes, df.n) ORDER BY df.ord) AS phrases,
           (SELECT array_agg(DISTINCT l) FROM q, unnest(q.lexemes) AS l) AS lexemes, s.docs, s.avgdl
    FROM df, stats s GROUP BY s.docs, s.avgdl
),
top AS (
    SELECT p.id, p.fts_len FROM pairs p, weights w
    WHERE p.eligible
    GROUP BY p.id, p.fts_len, w.avgdl
    ORDER BY sum(w.idf[p.ord]) / (1 + %(k1)s * (1 - %(b)s + %(b)s * p.fts_len / w.avgdl)) DESC, p.id
    LIMIT %(candidates)s
)
SELECT t.id, t.fts_len, w.docs, w.avgdl, w.phrases::text AS phrases,
       ts_filter(setweight(m.fts, 'A', w.lexemes), '{{a}}')::text AS positions
FROM top t JOIN memories m ON m.id = t.id, weights w
"""
#: One lexeme of a tsvector's text form and its positions: ``'api':3A,17A`` (quotes doubled inside).
_LEXEME = re.compile(r"'((?:[^']|'')*)':([0-9A-D,]+)")


def _vector_text(vector: npt.NDArray[np.float32]) -> str:
    """pgvector's text form; float32 precision, as SQLite's re-rank reads the query."""
    return "[" + ",".join(map(repr, vector.astype(np.float32).tolist())) + "]"


class PgMemoryWriter:
    """One write transaction (see `colony.memory.store.MemoryWriter`)."""

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn

    def insert_memory(self, values: Mapping[str, Any]) -> int:
        row = {**values, "content": _storable(redact_text(str(values.get("content") or "")))}  # no secret at rest
        if row.get("source_id") is not None:
            row["source_id"] = _storable(str(row["source_id"]))
        found = self.conn.execute(
            f"INSERT INTO memories({', '.join(COLUMNS)}) VALUES ({', '.join('%s' for _ in COLUMNS)}) RETURNING id",
            tuple(row.get(c) for c in COLUMNS),
        ).fetchone()
        assert found is not None
        return int(found["id"])

    def insert_vector(self, memory_id: int, model: str, vector: npt.NDArray[np.float32]) -> None:
        self.conn.execute("INSERT INTO memory_embeddings(memory_id, model, vector) VALUES (%s, %s, %s::halfvec)",
                          (memory_id, model, _vector_text(vector)))

    def mark_embedded(self, memory_id: int, model: str) -> None:
        self.conn.execute("UPDATE memories SET embedding_model = %s WHERE id = %s", (model, memory_id))

    def link_triple(self, subject: str, relation: str, obj: str, memory_id: int) -> int:
        """Store a triple (a duplicate reinforces its weight) and link it to the memory it came from."""
        row = self.conn.execute(
            """WITH t AS (
                   INSERT INTO memory_triples(subject, relation, object) VALUES (%s, %s, %s)
                   ON CONFLICT ((md5(subject)), relation, (md5(object)))
                   DO UPDATE SET weight = memory_triples.weight + 1 RETURNING id),
               s AS (INSERT INTO memory_triple_sources(triple_id, memory_id) SELECT id, %s FROM t
                     ON CONFLICT DO NOTHING)
               SELECT id FROM t""",
            (redact_text(subject), redact_text(relation), redact_text(obj), memory_id),
        ).fetchone()
        assert row is not None
        return int(row["id"])

    def conflicting_triples(self, subject: str, relation: str, obj: str) -> list[int]:
        """Active memories that state another object for the same subject and relation."""
        return [int(r["memory_id"]) for r in self.conn.execute(
            f"""SELECT DISTINCT s.memory_id FROM memory_triples t
                JOIN memory_triple_sources s ON s.triple_id = t.id JOIN memories m ON m.id = s.memory_id
                WHERE md5(t.subject) = md5(%s) AND t.subject = %s AND t.relation = %s AND t.object <> %s
                  AND {ACTIVE}""",
            (subject, subject, relation, obj),
        ).fetchall()]

    def conflicting_subjects(self, subject: str, relation: str, obj: str) -> list[int]:
        """Active memories that give another subject for the same relation and object."""
        return [int(r["memory_id"]) for r in self.conn.execute(
            f"""SELECT DISTINCT s.memory_id FROM memory_triples t
                JOIN memory_triple_sources s ON s.triple_id = t.id JOIN memories m ON m.id = s.memory_id
                WHERE md5(t.object) = md5(%s) AND t.object = %s AND t.relation = %s AND t.subject <> %s
                  AND {ACTIVE}""",
            (obj, obj, relation, subject),
        ).fetchall()]

    def link_mentions(self, memory_id: int, entities: Sequence[str], relations: Sequence[str]) -> int:
        """Record what ``memory_id`` names and speaks of (``df`` as on SQLite: raised here,
        lowered by the mentions' delete trigger); return how many entities."""
        unique = list(dict.fromkeys(entities))
        cues = list(dict.fromkeys(relations))
        self.conn.execute(
            """WITH e AS (
                   INSERT INTO memory_entities(name, df) SELECT unnest(%s::text[]), 1
                   ON CONFLICT (name) DO UPDATE SET df = memory_entities.df + 1 RETURNING id),
               mentions AS (INSERT INTO memory_mentions(entity_id, memory_id) SELECT id, %s FROM e)
               INSERT INTO memory_cues(memory_id, relation) SELECT %s, unnest(%s::text[])""",
            (unique, memory_id, memory_id, cues),
        )
        return len(unique)

    def flag_for_review(self, ids: Sequence[int]) -> None:
        if ids:
            self.conn.execute("UPDATE memories SET needs_review = 1 WHERE id = ANY(%s)", (list(ids),))

    def delete_memory(self, memory_id: int) -> bool:
        """Remove a memory from every channel: row (its tsvector with it), vector, triple links and
        weights, mentions (the trigger lowers each entity's df)."""
        row = self.conn.execute(
            """WITH gone AS (DELETE FROM memories WHERE id = %s RETURNING id),
               links AS (SELECT triple_id FROM memory_triple_sources WHERE memory_id = %s)
               SELECT (SELECT count(*) FROM gone) AS deleted, ARRAY(SELECT triple_id FROM links) AS triples""",
            (memory_id, memory_id),
        ).fetchone()
        if row is None or not row["deleted"]:
            return False
        triples = list(row["triples"])
        if triples:  # the links cascaded away with the row; a triple no memory states goes too
            self.conn.execute("UPDATE memory_triples SET weight = weight - 1 WHERE id = ANY(%s)", (triples,))
            self.conn.execute(
                """DELETE FROM memory_triples t WHERE t.id = ANY(%s)
                   AND NOT EXISTS (SELECT 1 FROM memory_triple_sources s WHERE s.triple_id = t.id)""",
                (triples,),
            )
        return True

    def expired_ids(self) -> list[int]:
        return [int(r["id"]) for r in self.conn.execute(
            f"SELECT id FROM memories WHERE expires_at IS NOT NULL AND expires_at <= {_NOW} ORDER BY id").fetchall()]

    def duplicate_losers(self) -> list[int]:
        """Ids of exact duplicates to drop: per content, all but the most verified, most confident, oldest."""
        return [int(r["id"]) for r in self.conn.execute(
            f"""SELECT id FROM (
                    SELECT id, content_hash, row_number() OVER (
                        PARTITION BY content_hash
                        ORDER BY {VERIFIED_RANK} DESC, confidence DESC, created_at ASC, id ASC) AS place
                    FROM memories WHERE superseded_by IS NULL) ranked
                WHERE place > 1 ORDER BY content_hash, place"""
        ).fetchall()]

    def decay_unverified(self, amount: float, floor: float) -> int:
        return self.conn.execute(
            "UPDATE memories SET confidence = GREATEST(%s, confidence - %s) WHERE verified = 'inferred' AND confidence > %s",
            (floor, amount, floor),
        ).rowcount

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM memory_meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO memory_meta(key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


class PgMemoryStore:
    """Memory on a colony's PostgreSQL (see `colony.memory.store.MemoryStore`)."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self._dims: dict[str, int] = {}
        self._nearest: dict[tuple[str, bool], sql.Composed] = {}
        self._heal_statistics()

    def _heal_statistics(self) -> None:
        """Recount BM25's statistics if they disagree with the rows (rows copied in with triggers
        off); one snapshot reads both, so writers in flight cannot make them look wrong."""
        agree = "SELECT (SELECT docs FROM memory_fts_stats) = (SELECT count(*) FROM memories) AS agree"
        if self.db.scalar(agree) is not True:
            with self.write() as w:
                if w.conn.execute(agree).fetchone() != {"agree": True}:
                    w.conn.execute("SELECT memory_fts_rebuild()")

    @property
    def vector_error(self) -> str | None:
        return None  # migration 2 created the ``vector`` extension, or failed and said why

    @contextmanager
    def write(self) -> Iterator[PgMemoryWriter]:
        with self.db.tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            yield PgMemoryWriter(conn)

    def ensure_vector_index(self, model: str, dim: int) -> str:
        """The partial HNSW index of ``model``'s vectors, created if needed; its name.

        Named like SQLite's ``vec0`` table for the model. Created under the write lock, so two
        nodes starting at once do not both build it.
        """
        name = vector_table(model)
        if self.db.scalar("SELECT to_regclass(%s) IS NOT NULL", (name,)) is not True:
            with self.write() as w:
                w.conn.execute(sql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON memory_embeddings USING hnsw ((vector::halfvec({})) halfvec_ip_ops) "
                    "WITH (m = {}, ef_construction = {}) WHERE model = {}").format(
                    sql.Identifier(name), sql.Literal(int(dim)), sql.Literal(HNSW_M), sql.Literal(HNSW_EF_CONSTRUCTION),
                    sql.Literal(model)))
        self._dims[model] = int(dim)
        return name

    def _nearest_statement(self, model: str, history: bool) -> sql.Composed:
        """The KNN statement for one model: the model and dimension are literals, so the planner
        matches the partial index's predicate and expression in every plan (generic plans too)."""
        key = (model, history)
        if key not in self._nearest:
            dim = sql.Literal(self._dims[model])
            self._nearest[key] = sql.SQL(
                """SELECT e.memory_id AS id, -(e.vector::vector({dim}) <#> %(exact)s::vector({dim})) AS score
                   FROM memory_embeddings e JOIN memories m ON m.id = e.memory_id
                   WHERE e.model = {model} AND {eligible}
                   ORDER BY e.vector::halfvec({dim}) <#> %(query)s::halfvec({dim}) LIMIT %(limit)s""").format(
                dim=dim, model=sql.Literal(model), eligible=sql.SQL(UNEXPIRED if history else ACTIVE))
        return self._nearest[key]

    # -- rows -----------------------------------------------------------------------------------
    def get_memories(self, ids: Sequence[int], *, active_only: bool = False) -> dict[int, Row]:
        if not ids:
            return {}
        where = f" AND {ACTIVE}" if active_only else ""
        return {int(r["id"]): r for r in self.db.query(
            f"SELECT {_ROW} FROM memories m WHERE m.id = ANY(%s){where}", (list(ids),))}

    def supersedes_of(self, memory_id: int) -> int | None:
        value = self.db.scalar("SELECT supersedes FROM memories WHERE id = %s", (memory_id,))
        return None if value is None else int(value)

    def mark_superseded(self, old_id: int, new_id: int) -> None:
        self.db.execute("UPDATE memories SET superseded_by = %s WHERE id = %s", (new_id, old_id))

    def touch_accessed(self, ids: Sequence[int]) -> None:
        if ids:
            self.db.execute(
                f"""UPDATE memories SET last_accessed_at = {_NOW} WHERE id IN (
                        SELECT id FROM memories WHERE id = ANY(%s) ORDER BY id FOR UPDATE SKIP LOCKED)""",
                (list(ids),),
            )

    def review_rows(self, limit: int) -> list[Row]:
        return self.db.query(
            f"SELECT {_ROW} FROM memories m WHERE m.needs_review = 1 AND {ACTIVE} ORDER BY m.id LIMIT %s", (limit,))

    def clear_review(self, memory_id: int) -> bool:
        return self.db.execute("UPDATE memories SET needs_review = 0 WHERE id = %s", (memory_id,)) > 0

    def active_rows(self) -> list[Row]:
        return self.db.query(f"SELECT {_ROW} FROM memories m WHERE {ACTIVE} ORDER BY m.id")

    def unembedded(self, limit: int) -> list[Row]:
        return self.db.query(
            "SELECT id, content FROM memories WHERE embedding_model IS NULL ORDER BY id LIMIT %s", (limit,))

    def counts(self) -> dict[str, Any]:
        """The figures `Memory.stats` reports, in one place."""
        row = self.db.one(
            f"""SELECT count(*) AS total,
                       count(*) FILTER (WHERE superseded_by IS NULL
                                        AND (expires_at IS NULL OR expires_at > {_NOW})) AS active,
                       count(*) FILTER (WHERE superseded_by IS NOT NULL) AS superseded,
                       count(*) FILTER (WHERE expires_at IS NOT NULL AND expires_at <= {_NOW}) AS expired,
                       count(*) FILTER (WHERE needs_review = 1) AS needs_review,
                       count(*) FILTER (WHERE embedding_model IS NULL) AS unembedded,
                       (SELECT count(*) FROM memory_triples) AS triples,
                       (SELECT count(*) FROM (SELECT subject FROM memory_triples
                                              UNION SELECT object FROM memory_triples) names) AS entities
                FROM memories"""
        ) or {}
        by_type = {str(r["memory_type"]): int(r["n"]) for r in self.db.query(
            f"SELECT memory_type, count(*) AS n FROM memories m WHERE {ACTIVE} GROUP BY memory_type")}
        return {**{k: int(v or 0) for k, v in row.items()}, "by_type": by_type}

    # -- the keyword channel --------------------------------------------------------------------
    def memory_count(self) -> int:
        return int(self.db.scalar("SELECT COALESCE(MAX(id), 0) FROM memories"))

    def doc_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many memories contain each (single-token) term, from the term counts the triggers
        keep (looked up as given, like FTS5's vocabulary table: a term with a diacritic is absent)."""
        if not terms:
            return {}
        return {str(r["term"]): int(r["doc"]) for r in self.db.query(
            "SELECT term, doc FROM memory_fts_terms WHERE term = ANY(%s) AND doc > 0", (list(terms),))}

    def keyword_search(self, phrases: Sequence[Phrase], limit: int, *, history: bool = False) -> list[Hit]:
        """Memories holding any phrase, by FTS5's BM25 computed from the same statistics."""
        if not phrases or limit <= 0:
            return []
        rows = self.db.query(_KEYWORD.format(eligible=UNEXPIRED if history else ACTIVE), {
            "phrases": [" ".join(p) for p in phrases], "k1": _bm25.K1, "b": _bm25.B,
            "candidates": limit * KEYWORD_CANDIDATES_PER_RESULT,
        })
        if not rows:
            return []
        first = rows[0]
        docs, avgdl = float(first["docs"]), float(first["avgdl"])
        searched = [(list(lexemes), int(n)) for lexemes, n in json.loads(first["phrases"])]  # the same on every row
        idfs = [_bm25.idf(docs, n) for _, n in searched]
        scored = []
        for r in rows:
            positions = _token_positions(str(r["positions"] or ""))
            frequencies = [_bm25.instances(lexemes, positions) for lexemes, _ in searched]
            scored.append((int(r["id"]), _bm25.score(frequencies, idfs, int(r["fts_len"]), avgdl)))
        scored.sort(key=lambda hit: (-hit[1], hit[0]))
        return scored[:limit]

    # -- the semantic channel -------------------------------------------------------------------
    def nearest(self, model: str, vector: npt.NDArray[np.float32], limit: int, *,
                history: bool = False) -> list[Hit]:
        """The nearest ``model`` vectors by pgvector's HNSW index, scored by exact dot product."""
        if model not in self._dims:
            self.ensure_vector_index(model, int(vector.shape[0]))
        text = _vector_text(vector)
        statement = self._nearest_statement(model, history)
        with self.db.tx() as conn:
            conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(
                sql.Literal(max(HNSW_EF_SEARCH, limit))))
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = conn.execute(statement, {"exact": text, "query": text, "limit": limit}).fetchall()
        hits = [(int(r["id"]), float(r["score"])) for r in rows]
        hits.sort(key=lambda hit: (-hit[1], hit[0]))  # iterative scans may return near-ties out of order
        return hits

    # -- the mention graph ----------------------------------------------------------------------
    def entities_named(self, names: Sequence[str]) -> list[tuple[int, str, int]]:
        if not names:
            return []
        return [(int(r["id"]), str(r["name"]), int(r["df"])) for r in self.db.query(
            "SELECT id, name, df FROM memory_entities WHERE name = ANY(%s) AND df > 0", (list(names),))]

    def mentioning(self, entity_id: int, limit: int) -> list[int]:
        return [int(r["memory_id"]) for r in self.db.query(
            "SELECT memory_id FROM memory_mentions WHERE entity_id = %s ORDER BY memory_id DESC LIMIT %s",
            (entity_id, limit))]

    def mentions_of(self, entity_ids: Sequence[int]) -> list[tuple[int, int]]:
        if not entity_ids:
            return []
        return [(int(r["entity_id"]), int(r["memory_id"])) for r in self.db.query(
            "SELECT entity_id, memory_id FROM memory_mentions WHERE entity_id = ANY(%s) ORDER BY entity_id, memory_id",
            (list(entity_ids),))]

    def relation_cues(self, ids: Sequence[int], *, history: bool = False) -> list[tuple[int, str, str | None]]:
        if not ids:
            return []
        return [(int(r["id"]), str(r["memory_type"]), r["relation"]) for r in self.db.query(
            f"""SELECT m.id, m.memory_type, c.relation FROM memories m
                LEFT JOIN memory_cues c ON c.memory_id = m.id WHERE m.id = ANY(%s) AND {"TRUE" if history else ACTIVE}
                ORDER BY m.id, c.relation""",
            (list(ids),))]

    def entities_of(self, ids: Sequence[int]) -> list[tuple[int, int, str, int]]:
        if not ids:
            return []
        # A lateral lookup per mention (OFFSET 0 keeps the planner from flattening it): a plain join
        # of a few hundred mentions was planned as a hash join over every entity (10 ms at 100K).
        return [(int(r["memory_id"]), int(r["id"]), str(r["name"]), int(r["df"])) for r in self.db.query(
            """SELECT mm.memory_id, e.id, e.name, e.df FROM memory_mentions mm
               CROSS JOIN LATERAL (SELECT id, name, df FROM memory_entities WHERE id = mm.entity_id OFFSET 0) e
               WHERE mm.memory_id = ANY(%s) ORDER BY mm.memory_id, mm.entity_id""",
            (list(ids),))]

    def contents(self, ids: Sequence[int]) -> list[tuple[int, str]]:
        if not ids:
            return []
        return [(int(r["id"]), str(r["content"])) for r in self.db.query(
            "SELECT id, content FROM memories WHERE id = ANY(%s)", (list(ids),))]

    def triples_of(self, ids: Sequence[int]) -> list[tuple[int, str, str, str]]:
        if not ids:
            return []
        return [(int(r["memory_id"]), str(r["subject"]), str(r["relation"]), str(r["object"]))
                for r in self.db.query(
            """SELECT s.memory_id, t.subject, t.relation, t.object FROM memory_triple_sources s
               JOIN memory_triples t ON t.id = s.triple_id WHERE s.memory_id = ANY(%s)
               ORDER BY s.memory_id, s.triple_id""",
            (list(ids),))]


def _storable(text: str) -> str:
    """``text`` without NUL, which PostgreSQL's text type cannot hold (U+FFFD marks where it was)."""
    return text.replace("\x00", "\ufffd")


def _token_positions(tsvector: str) -> dict[str, list[int]]:
    """Lexeme → positions, from a tsvector's text form (weights stripped from the positions)."""
    return {m.group(1).replace("''", "'"): [int(p.rstrip("ABCD")) for p in m.group(2).split(",")]
            for m in _LEXEME.finditer(tsvector)}
