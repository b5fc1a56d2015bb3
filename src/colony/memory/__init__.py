"""Memory (M): one store per node, recalled through keywords, vectors and an associative graph.

Owns the memory tables (behind the `store.MemoryStore` seam: `colony.store.memory` on SQLite,
`pg_store` on PostgreSQL), the embedding models, triple extraction and PageRank, fusion, curation
and corrections. May import `store`, `config`,
`errors`; the agent reaches it through the `MemoryProvider` seam, never the other way round.
"""

from __future__ import annotations

from colony.memory.models import MemoryIn, MemoryItem, RecallHit, RecallResult
from colony.memory.service import IngestReport, Memory, MemoryError, MemoryStats, open_memory

__all__ = ["IngestReport", "Memory", "MemoryError", "MemoryIn", "MemoryItem", "MemoryStats", "RecallHit", "RecallResult", "open_memory"]
