"""The colony as one node sees it: Psi(t) over its live members, and the views the surfaces show.

`psi_now` computes Psi (`colony.federation.psi.colony_psi`) from this node's own facts and its live
members' latest announcements (`colony.federation.colony_facts`), against the canonical weights this
node holds (`colony.federation.learn_task.canonical`). The loop does it every heartbeat, records a
reading into a `PsiSeries` at most every `series_interval` (persisted in the cognition store under
``colony_psi``) and feeds the value to the cognitive sphere (`Substrate.set_colony_psi`). A node
alone has no Psi (0: a colony of one is not a colony).

`colony_status` and `colony_peers` are what ``GET /api/v1/peers/status``, ``GET /api/v1/peers`` and
``colony peers status`` show on top of the member table: per member the replica (last sync time,
the member's root and the replica's, entries held, problems), the equivocation proofs held, this
node's part in federated averaging, and Psi now with its series. Everything is read from the
database, so the CLI shows the same as the running node; only the last sync's problem messages
come from the loop's memory (``syncs``), the database keeping their count.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from colony.cognition import state
from colony.federation import _replica_store as rs
from colony.federation import _store, partition
from colony.federation.colony_facts import own_state, peer_state
from colony.federation.learn_task import LearningOut, canonical, learning_status
from colony.federation.peers import PeersOut, StatusOut, heartbeat_of, peer_table, status
from colony.federation.psi import PsiReading, PsiSeries, colony_psi
from colony.federation.queen import live_nodes
from colony.federation.replicate import MemberSync
from colony.federation.replication import equivocations
from colony.federation.roles import view

if TYPE_CHECKING:
    from colony.node import Node

__all__ = ["ColonyOut", "ColonyPeersOut", "ColonyStatusOut", "PsiOut", "ReplicaOut", "colony_peers",
           "colony_status", "load_series", "psi_now", "save_series", "series_interval"]


def series_interval(heartbeat_s: float) -> float:
    """Seconds between two kept Psi readings: six heartbeats (30 s at the default heartbeat)."""
    return 6 * heartbeat_s


def load_series(node: Node, heartbeat_s: float) -> PsiSeries:
    """The persisted series (empty the first time)."""
    series = PsiSeries(min_interval_s=series_interval(heartbeat_s))
    state.restore(node.db, [series])
    return series


def save_series(node: Node, series: PsiSeries) -> None:
    state.save(node.db, [series])


def psi_now(node: Node, me: str, heartbeat_s: float, *, now: float | None = None) -> PsiReading:
    """Psi over this node and its live members, from their latest announcements."""
    at = time.time() if now is None else now
    live = live_nodes(view(node.db, me, heartbeat_s=heartbeat_s, now=at)) - {me}
    members = [m for m in _store.list_members(node.db, "trusted") if m["pubkey"] in live]
    if not members:
        return colony_psi([])
    states = [own_state(node, me), *(peer_state(m["pubkey"], m["last_announcement"]) for m in members)]
    kept = canonical(node.db)
    return colony_psi(states, canonical_round=kept.round if kept is not None else None,
                      canonical=kept.params if kept is not None else None)


# -- views --------------------------------------------------------------------------------------------
class ReplicaOut(BaseModel):
    """This node's replica of one member's ledger."""

    origin: str
    name: str
    last_sync_at: float | None
    syncs: int
    remote_root: str | None
    local_root: str | None
    in_sync: bool
    entries: int
    reputation_cursor: int
    problems: int
    last_problems: list[str] = []
    convicted_at: float | None = None


class PsiOut(BaseModel):
    now: dict[str, float | int]
    series: list[dict[str, float | int]]


class ColonyOut(BaseModel):
    replicas: list[ReplicaOut]
    equivocations: int
    learning: LearningOut
    psi: PsiOut
    #: The latest partitioned benchmark runs this node took part in (`colony.federation.partition`).
    bench_runs: list[dict[str, Any]] = []


class ColonyPeersOut(PeersOut):
    replicas: list[ReplicaOut]


class ColonyStatusOut(StatusOut):
    colony: ColonyOut


def _replicas(node: Node, syncs: Mapping[str, MemberSync]) -> list[ReplicaOut]:
    out = []
    for member in _store.list_members(node.db, "trusted"):
        origin = member["pubkey"]
        row: dict[str, Any] = rs.origin_row(node.db, origin) or {}
        last = syncs.get(origin)
        out.append(ReplicaOut(
            origin=origin, name=member["name"], last_sync_at=row.get("last_sync_at"), syncs=int(row.get("syncs") or 0),
            remote_root=row.get("last_remote_root"), local_root=row.get("last_local_root"),
            in_sync=row.get("last_remote_root") is not None and row.get("last_remote_root") == row.get("last_local_root"),
            entries=rs.entry_count(node.db, origin), reputation_cursor=int(row.get("reputation_cursor") or 0),
            problems=int(row.get("problems") or 0), last_problems=list(last.problems) if last is not None else [],
            convicted_at=row.get("convicted_at")))
    return out


def colony_peers(node: Node, syncs: Mapping[str, MemberSync] | None = None) -> ColonyPeersOut:
    """The member table with each member's replica."""
    return ColonyPeersOut(**peer_table(node).model_dump(), replicas=_replicas(node, syncs or {}))


def colony_status(node: Node, syncs: Mapping[str, MemberSync] | None = None,
                  series: PsiSeries | None = None) -> ColonyStatusOut:
    """This node's view plus the colony: replicas, proofs, learning, Psi now and over time."""
    base = status(node)
    hb = heartbeat_of(node)
    series = series if series is not None else load_series(node, hb)
    psi = PsiOut(now=psi_now(node, base.me.pubkey, hb).as_dict(), series=series.samples())
    colony = ColonyOut(replicas=_replicas(node, syncs or {}), equivocations=len(equivocations(node.db)),
                       learning=learning_status(node), psi=psi, bench_runs=partition.status(node.db))
    return ColonyStatusOut(**base.model_dump(), colony=colony)
