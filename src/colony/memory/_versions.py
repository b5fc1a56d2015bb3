"""A corrected memory answers through its current version.

A correction (`Memory.correct`) is often worded as a change, not as the fact again: "The Economy
Board meets in Committee Room 2" becomes "Venue change: the Economy Board moves to the Mayor's
Parlour". A question worded like the old fact ("where does the Economy Board meet now?") then
matches the old version's words and meaning, which recall hides, and misses the new one, whose
words it does not share. So the keyword and semantic channels search the superseded versions
too, and a hit on one counts for the version that replaced it (the head of its correction chain),
at the rank the old wording earned; a version both found keeps its better rank. Questions about
the past are untouched: they see every version as it is (`Memory.recall`'s history mode).
"""

from __future__ import annotations

from collections.abc import Sequence

from colony.memory.store import MemoryStore

__all__ = ["MAX_CHAIN", "to_current"]

#: Corrections followed from a superseded hit to its current version (a longer chain stops there).
MAX_CHAIN = 16


def to_current(store: MemoryStore, ranking: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """``ranking`` with each superseded memory replaced by its current version, each memory once.

    A superseded memory whose chain ends in nothing active (the current version expired or was
    deleted) is dropped, as recall would drop it.
    """
    if not ranking:
        return []
    ids = [mid for mid, _ in ranking]
    rows = store.get_memories(ids)
    head: dict[int, int] = {}
    pending: dict[int, int] = {}  # memory → the successor still to look up
    for mid in ids:
        row = rows.get(mid)
        if row is None:
            continue
        successor = row["superseded_by"]
        if successor is None:
            head[mid] = mid
        else:
            pending[mid] = int(successor)
    for _ in range(MAX_CHAIN):
        if not pending:
            break
        successors = store.get_memories(sorted(set(pending.values())))
        still: dict[int, int] = {}
        for mid, successor in pending.items():
            row = successors.get(successor)
            if row is None:
                continue
            if row["superseded_by"] is None:
                head[mid] = successor
            else:
                still[mid] = int(row["superseded_by"])
        pending = still
    live = store.get_memories(sorted(set(head.values())), active_only=True)
    out: dict[int, float] = {}
    for mid, score in ranking:
        current = head.get(mid)
        if current is not None and current in live and current not in out:
            out[current] = score
    return list(out.items())
