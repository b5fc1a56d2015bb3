"""An in-process copy of a model's binary vector index on SQLite, scanned with NumPy.

sqlite-vec's brute-force KNN over 100K binary codes took ~10 ms here — a third of the recall
budget. The same Hamming scan over a NumPy array of packed codes (XOR + popcount on uint64
words) takes ~1 ms. The database stays the source of truth: this copy is loaded from the vec0
table, extended with new ids before each search, and reloaded when the store's vector
generation changes (a delete, or vectors `Memory.reindex` adds below the newest id), so every
process sees every other process's writes.

Why extending by id is enough: SQLite has one writer at a time, so ids are committed in
increasing order and a copy that holds every id up to N has seen every commit before it. (A
PostgreSQL colony has concurrent writers whose ids commit out of order; it keeps no such copy
and searches pgvector in the server instead, see `colony.memory.pg_store`.)
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from colony.store._db import Database, Row

__all__ = ["BinaryCodes"]


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


class BinaryCodes:
    def __init__(self, table: str, dim: int) -> None:
        self.table = table
        self.words = (dim + 63) // 64
        self._bytes = dim // 8
        self._ids = np.zeros(0, dtype=np.int64)
        self._codes = np.zeros((0, self.words), dtype=np.uint64)
        self._max_id = 0
        self._generation = -1
        self._lock = threading.Lock()

    def _pack(self, blobs: list[bytes]) -> npt.NDArray[np.uint64]:
        raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), self._bytes)
        pad = self.words * 8 - self._bytes
        if pad:
            raw = np.hstack([raw, np.zeros((len(blobs), pad), dtype=np.uint8)])
        return raw.view(np.uint64).reshape(len(blobs), self.words)

    def sync(self, db: Database) -> None:
        generation = vector_generation(db)
        newest = max_embedded_id(db)
        with self._lock:
            if generation != self._generation:
                rows = binary_codes(db, self.table)
                self._ids = np.array([int(r["id"]) for r in rows], dtype=np.int64)
                self._codes = self._pack([r["code"] for r in rows]) if rows else np.zeros((0, self.words), np.uint64)
                self._generation = generation
                self._max_id = int(self._ids[-1]) if len(self._ids) else 0
            elif newest > self._max_id:
                rows = binary_codes(db, self.table, after_id=self._max_id)
                if rows:
                    self._ids = np.concatenate([self._ids, np.array([int(r["id"]) for r in rows], dtype=np.int64)])
                    self._codes = np.vstack([self._codes, self._pack([r["code"] for r in rows])])
                    self._max_id = int(self._ids[-1])

    def __len__(self) -> int:
        return len(self._ids)

    def search(self, code: bytes, k: int) -> list[tuple[int, int]]:
        """The ``k`` nearest ids by Hamming distance, nearest first."""
        with self._lock:
            ids, codes = self._ids, self._codes
        if not len(ids):
            return []
        query = self._pack([code])[0]
        distances = np.bitwise_count(codes ^ query).sum(axis=1)
        k = min(k, len(ids))
        top = np.argpartition(distances, k - 1)[:k]
        top = top[np.argsort(distances[top], kind="stable")]
        return [(int(ids[i]), int(distances[i])) for i in top]
