"""The task queue the market auctions from and its winners run from: the node's own, plus one claim.

Why the node's queue and not one of its own: an auction's task is an ordinary task (posted,
listed and cancelled like any other), so the market uses the queue the autonomy loop uses
(`colony.tasks.autonomy.open_store`: PostgreSQL with ``COLONY_DATABASE_URL``, else the node's
file) — which is also where the market's own tables live (`colony.store.engine.open_engine`), so
an award's task transition commits in the award's transaction. What the market adds is
`AssignedTasks.claim_assigned`: a winner's task is claimed only by the market worker, by its
assignee — the winner's account, so only the node hosting that agent claims it — and run as that
agent; both stores implement it.

May import `colony.tasks` (and so, through the autonomy loop, `colony.node`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from colony.errors import TaskError
from colony.tasks.autonomy import open_store
from colony.tasks.models import Lease
from colony.tasks.store import TaskStore

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["AssignedTasks", "market_tasks"]


@runtime_checkable
class AssignedTasks(TaskStore, Protocol):
    """A `TaskStore` that can claim the tasks awarded to the node's agents (``assignees``: their accounts)."""

    def claim_assigned(self, worker: str, ttl_s: float, *,
                       assignees: Iterable[str] | None = None) -> Lease | None: ...


def market_tasks(node: Node) -> AssignedTasks:
    """The node's task queue, as the market uses it."""
    store = open_store(node)
    if not isinstance(store, AssignedTasks):
        raise TaskError(f"The node's task queue ({type(store).__name__}) cannot claim awarded tasks; the market "
                        "needs one that can (SQLite's or PostgreSQL's).")
    return store
