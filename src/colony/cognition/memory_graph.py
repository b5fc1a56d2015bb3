"""Memory graph (module 6): associative recall from the memory capability into the blackboard.

Only memory's graph channel is asked (personalised PageRank over the triples around the entities
the input names): keyword and semantic recall already reach the context through the memory
seam, and the graph is the part that finds things two hops away. Recall does not mark memories
as accessed, so the substrate's looking around does not distort memory's own freshness signal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from colony.errors import ColonyError
from colony.memory.models import RecallResult

__all__ = ["GraphRecall", "RecallSource"]


class RecallSource(Protocol):
    """The part of `colony.memory.Memory` this module uses."""

    def recall(self, query: str, k: int = 5, channels: Any = None, explain: bool = True, *,
               touch: bool = True) -> RecallResult: ...


class GraphRecall:
    name = "memory_graph"
    enabled = True

    def __init__(self, source: Callable[[], RecallSource] | None, k: int = 3) -> None:
        self._source = source
        self.k = k
        self.recalls = 0
        self.hits = 0
        self.last_error: str | None = None

    def recall(self, query: str) -> list[tuple[int, str, float]]:
        """(memory id, content, fused score) of the best graph hits; [] when memory is absent."""
        if self._source is None or not query.strip():
            return []
        try:
            result = self._source().recall(query, k=self.k, channels=frozenset({"graph"}), explain=False, touch=False)
        except ColonyError as exc:  # recall trouble costs the substrate a hint, never the turn
            self.last_error = str(exc)
            return []
        self.recalls += 1
        self.hits += len(result.hits)
        return [(h.memory.id, h.memory.content, h.score) for h in result.hits if h.memory.sensitivity != "restricted"]

    def dump(self) -> dict[str, Any]:
        return {"recalls": self.recalls, "hits": self.hits}

    def load(self, state: Mapping[str, Any]) -> None:
        self.recalls = int(state.get("recalls", 0))
        self.hits = int(state.get("hits", 0))

    def status(self) -> dict[str, Any]:
        return {"enabled": True, "connected": self._source is not None, "recalls": self.recalls,
                "hits": self.hits, "last_error": self.last_error}
