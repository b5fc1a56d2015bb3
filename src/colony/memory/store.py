"""The storage seam of memory: every statement the memory capability runs, behind two protocols.

`MemoryStore` is what recall and upkeep read (rows, the three channels' candidates, the mention
graph) plus the few single-statement writes; `MemoryWriter` is one write transaction (a batch is
in every channel or in none). Two engines implement them:

- `colony.store.memory.SqliteMemoryStore`: the node's SQLite file (FTS5, sqlite-vec binary codes
  re-ranked exactly, the triple and mention tables);
- `colony.memory.pg_store.PgMemoryStore`: PostgreSQL, where several nodes share one database
  (a ``tsvector`` column scored with FTS5's BM25, pgvector, the same graph tables).

What stays above the seam, engine-independent: which terms a query searches for
(`colony.memory._fts`), the graph walk (`colony.memory._paths`), fusion and its calibration,
corrections, history chains and curation rules. Each channel's method returns scores on the
scale the calibration was fitted on: `keyword_search` FTS5's BM25 (positive, higher is better),
`nearest` the cosine similarity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from colony.store import Database, Row

__all__ = ["Hit", "MemoryStore", "MemoryWriter", "Phrase", "as_store"]

#: (memory id, the channel's score), best first.
Hit = tuple[int, float]
#: A keyword query term: one token, or several that must follow each other (an identifier).
Phrase = tuple[str, ...]


class MemoryWriter(Protocol):
    """The statements of one write transaction (`MemoryStore.write`)."""

    def insert_memory(self, values: Mapping[str, Any]) -> int:
        """Insert a memory (content redacted at this boundary); return its id."""
        ...

    def insert_vector(self, memory_id: int, model: str, vector: npt.NDArray[np.float32]) -> None: ...

    def mark_embedded(self, memory_id: int, model: str) -> None: ...

    def conflicting_triples(self, subject: str, relation: str, obj: str) -> list[int]:
        """Active memories stating another object for this subject and relation."""
        ...

    def conflicting_subjects(self, subject: str, relation: str, obj: str) -> list[int]:
        """Active memories giving another subject for this relation and object."""
        ...

    def link_triple(self, subject: str, relation: str, obj: str, memory_id: int) -> int:
        """Store a triple (a duplicate adds to its weight), linked to its memory; return its id."""
        ...

    def link_mentions(self, memory_id: int, entities: Sequence[str], relations: Sequence[str]) -> int:
        """Record what a memory names and which relations it speaks of; return how many entities."""
        ...

    def flag_for_review(self, ids: Sequence[int]) -> None: ...

    def delete_memory(self, memory_id: int) -> bool:
        """Remove a memory from every channel; False if there was none."""
        ...

    def expired_ids(self) -> list[int]: ...

    def duplicate_losers(self) -> list[int]:
        """Exact duplicates to drop: per content, all but the most verified, most confident, oldest."""
        ...

    def decay_unverified(self, amount: float, floor: float) -> int: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


class MemoryStore(Protocol):
    """One node's (or one colony's) memory tables."""

    @property
    def vector_error(self) -> str | None:
        """Why vectors cannot be stored here (the extension is missing), or None."""
        ...

    def write(self) -> AbstractContextManager[MemoryWriter]:
        """One write transaction: committed on success, rolled back on any error."""
        ...

    def ensure_vector_index(self, model: str, dim: int) -> str:
        """Create the vector index for ``model`` if needed; return its name."""
        ...

    # -- rows -----------------------------------------------------------------------------------
    def get_memories(self, ids: Sequence[int], *, active_only: bool = False) -> dict[int, Row]:
        """Rows by id, times as SQLite's ``%Y-%m-%dT%H:%M:%fZ`` text on every engine."""
        ...

    def supersedes_of(self, memory_id: int) -> int | None: ...

    def mark_superseded(self, old_id: int, new_id: int) -> None: ...

    def touch_accessed(self, ids: Sequence[int]) -> None: ...

    def review_rows(self, limit: int) -> list[Row]: ...

    def clear_review(self, memory_id: int) -> bool: ...

    def active_rows(self) -> list[Row]: ...

    def unembedded(self, limit: int) -> list[Row]: ...

    def counts(self) -> dict[str, Any]:
        """The figures `Memory.stats` reports."""
        ...

    # -- the keyword channel --------------------------------------------------------------------
    def memory_count(self) -> int:
        """The highest memory id: the corpus size the common-term and coverage rules scale by."""
        ...

    def doc_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many memories hold each single-token term (absent terms are left out)."""
        ...

    def keyword_search(self, phrases: Sequence[Phrase], limit: int, *, history: bool = False) -> list[Hit]:
        """Memories holding any of the phrases, by FTS5's BM25 (positive; higher is better).

        Active memories only, unless ``history`` (superseded ones too; never expired ones).
        """
        ...

    # -- the semantic channel -------------------------------------------------------------------
    def nearest(self, model: str, vector: npt.NDArray[np.float32], limit: int, *,
                history: bool = False) -> list[Hit]:
        """The memories whose ``model`` vectors are nearest to ``vector``, by cosine similarity."""
        ...

    # -- the mention graph ----------------------------------------------------------------------
    def entities_named(self, names: Sequence[str]) -> list[tuple[int, str, int]]:
        """(id, name, df) of the known entities among ``names`` that some memory still names."""
        ...

    def mentioning(self, entity_id: int, limit: int) -> list[int]:
        """The newest memories naming an entity."""
        ...

    def mentions_of(self, entity_ids: Sequence[int]) -> list[tuple[int, int]]:
        """(entity id, memory id) for every memory naming one of the entities."""
        ...

    def relation_cues(self, ids: Sequence[int], *, history: bool = False) -> list[tuple[int, str, str | None]]:
        """(memory id, memory type, relation cue or None) of the memories that may be recalled."""
        ...

    def entities_of(self, ids: Sequence[int]) -> list[tuple[int, int, str, int]]:
        """(memory id, entity id, name, df) for what each memory names."""
        ...

    def contents(self, ids: Sequence[int]) -> list[tuple[int, str]]: ...

    def triples_of(self, ids: Sequence[int]) -> list[tuple[int, str, str, str]]:
        """(memory id, subject, relation, object) of each memory's triples."""
        ...


def as_store(source: MemoryStore | Database) -> MemoryStore:
    """A store for ``source``: a node's SQLite `Database` gets the SQLite implementation."""
    if isinstance(source, Database):
        from colony.store.memory import SqliteMemoryStore

        sqlite: MemoryStore = SqliteMemoryStore(source)  # mypy checks the implementation against the protocol
        return sqlite
    return source
