"""``GET /api/v1/peers/graph``: the colony's agents and the credits paid between them, for scripts.

The JSON twin of the Colony page's graph (`colony.federation.colony_graph`): nodes (this one first,
then the trusted members whose ledgers this node replicates), agents with their home node and the
credits they paid and received, and payment edges heaviest first, from this node's ledger and its
verified replicas. Bounded: ``max_agents`` (1-500, default 40) and ``max_edges`` (1-2000, default
80) cap the answer, at most 100,000 entries are read per ledger and 64 ledgers in all; what was left
out is counted in ``dropped_agents``, ``dropped_edges`` and ``truncated``. The bearer token, like the
rest of ``/api/v1``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from colony.federation.colony_graph import (
    DEFAULT_AGENTS,
    DEFAULT_EDGES,
    MAX_AGENTS,
    MAX_EDGES,
    ColonyGraphOut,
    colony_graph,
)
from colony.server.api._deps import node
from colony.server.auth import require_auth

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/peers", tags=["federation"], dependencies=[Depends(require_auth)])


@router.get("/graph", response_model=ColonyGraphOut,
            summary="The colony's agents (by home node) and the credits paid between them, across every ledger "
                    "this node holds or replicates")
def graph(request: Request,
          max_agents: Annotated[int, Query(ge=1, le=MAX_AGENTS, description="Agents returned at most.")] = DEFAULT_AGENTS,
          max_edges: Annotated[int, Query(ge=1, le=MAX_EDGES, description="Payment edges returned at most (the "
                                                                           "heaviest).")] = DEFAULT_EDGES,
          ) -> ColonyGraphOut:
    return colony_graph(node(request), max_agents=max_agents, max_edges=max_edges)
