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


def to_current(store: MemoryStore, rankings: Sequence[Sequence[tuple[int, float]]]) -> list[list[tuple[int, float]]]:
    """Each of ``rankings`` with every superseded memory replaced by its current version, each
    memory once per ranking.

    One pass over the rankings' memories together: a recall resolves its keyword and semantic
    lists with one read when no hit is superseded, and one more per correction step when some
    are. Whether the current version is still active (not expired) is the caller's check, as it
    is for every other hit.
    """
    ids = sorted({mid for ranking in rankings for mid, _ in ranking})
    head: dict[int, int] = {}
    pending: dict[int, int] = {}  # memory → the successor still to look up
    for mid, row in store.get_memories(ids).items():
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
            found = successors.get(successor)
            if found is None:
                continue
            if found["superseded_by"] is None:
                head[mid] = successor
            else:
                still[mid] = int(found["superseded_by"])
        pending = still
    out: list[list[tuple[int, float]]] = []
    for ranking in rankings:
        current: dict[int, float] = {}
        for mid, score in ranking:
            if mid in head:
                current.setdefault(head[mid], score)
        out.append(list(current.items()))
    return out
